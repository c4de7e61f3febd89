"""flows/collector.py: the garbage collector, set for processes that hold batches of records."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest

from flows import collector
from flows.assemble import worker_ready


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


@pytest.mark.usefixtures("restored_collector")
def test_settling_freezes_what_is_held_and_collects_young_objects_less_often() -> None:
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    held = [object() for _ in range(10)]  # noqa: F841  (alive while settling)
    gc.unfreeze()
    collector.settle()
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0  # the permanent generation holds what existed
    collector.settle()  # again (every run in a process settles): the same thresholds
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)


@pytest.mark.usefixtures("restored_collector")
def test_settling_leaves_a_higher_threshold_and_a_collector_turned_off_alone() -> None:
    gc.set_threshold(100_000, 20, 30)
    collector.settle()
    assert gc.get_threshold() == (100_000, 20, 30)
    gc.set_threshold(0)  # an embedding program turned it off
    collector.settle()
    assert gc.get_threshold()[0] == 0


def test_an_assemble_process_starts_settled() -> None:
    context = get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=worker_ready) as pool:
        threshold = pool.submit(gc.get_threshold).result(timeout=120)
        frozen = pool.submit(gc.get_freeze_count).result(timeout=120)
    assert threshold[0] == collector.YOUNG_THRESHOLD
    assert frozen > 0  # flows.assemble and what it imports: out of the collections
