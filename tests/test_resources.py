"""What a run is handed (flows/resources.py): the gate prepared in the background."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, cast

import pytest

from flows.fetch.limits import PerHostRateLimiter
from flows.fetch.rawstore import RawStore
from flows.load.loader import PostgresLoader
from flows.resources import Resources
from flows.settings import Settings


def resources_with(make_gate: Any, tmp_path: Path) -> Resources:
    loader = cast(PostgresLoader, object())  # never touched by the gate
    return Resources(Settings(), loader, RawStore(tmp_path), PerHostRateLimiter(1.0), make_gate)


def test_a_prepared_gate_is_built_once_in_another_thread(tmp_path: Path) -> None:
    built: list[str] = []
    release = threading.Event()

    def make_gate() -> object:
        release.wait(5)
        built.append(threading.current_thread().name)
        return object()

    res = resources_with(make_gate, tmp_path)
    res.prepare_gate()
    res.prepare_gate()  # a second batch asking again starts nothing more
    assert not res.gate_built
    release.set()
    gate = res.gate()
    assert res.gate() is gate and res.gate_built
    assert built == ["tomeflow-gate"]


def test_a_gate_that_fails_to_build_fails_the_batch_that_asks_for_it(tmp_path: Path) -> None:
    def make_gate() -> object:
        raise ImportError("great_expectations is broken")

    res = resources_with(make_gate, tmp_path)
    res.prepare_gate()
    with pytest.raises(ImportError, match="broken"):
        res.gate()
    assert not res.gate_built


def test_an_unprepared_gate_is_built_when_first_asked_for(tmp_path: Path) -> None:
    built: list[str] = []
    res = resources_with(lambda: built.append(threading.current_thread().name), tmp_path)
    res.gate()
    assert built == [threading.current_thread().name]
