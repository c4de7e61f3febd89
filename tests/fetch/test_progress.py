"""The run's fetch progress artifact (flows/fetch/progress.py)."""

from __future__ import annotations

import pytest

from flows.fetch.progress import FetchProgress


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """What the progress artifact showed, in order (the clock moves 10 s per reading)."""
    values: list[float] = []
    monkeypatch.setattr(
        "flows.fetch.progress.create_progress_artifact", lambda p, **kw: values.append(p)
    )
    monkeypatch.setattr(
        "flows.fetch.progress.update_progress_artifact", lambda i, p: values.append(p)
    )
    monkeypatch.setattr("flows.fetch.progress.time.monotonic", iter(range(0, 1000, 10)).__next__)
    return values


def test_progress_moves_with_the_papers_of_the_run(shown: list[float]) -> None:
    progress = FetchProgress(total_papers=200)
    progress.batch_done(1, 100)  # the first batch needed no fetching
    on_progress = progress.batch(2, batch_papers=100)
    for done in range(1, 11):
        on_progress(done, 10)
    assert shown[:2] == pytest.approx([50.0, 55.0]) and shown[-1] == pytest.approx(100.0)
    assert shown == sorted(shown)


def test_batches_fetching_at_once_add_up_and_never_go_back(shown: list[float]) -> None:
    progress = FetchProgress(total_papers=200)
    first, second = progress.batch(1, 100), progress.batch(2, 100)
    for done in range(1, 11):
        second(done, 10)  # the later batch runs ahead
        first(done, 10)
    assert shown == sorted(shown) and shown[-1] == pytest.approx(100.0)
