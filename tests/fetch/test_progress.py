"""The run's fetch progress artifact (flows/fetch/progress.py)."""

from __future__ import annotations

import pytest

from flows.fetch.progress import FetchProgress


def test_progress_moves_with_the_papers_of_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[float] = []
    monkeypatch.setattr(
        "flows.fetch.progress.create_progress_artifact", lambda p, **kw: shown.append(p)
    )
    monkeypatch.setattr(
        "flows.fetch.progress.update_progress_artifact", lambda i, p: shown.append(p)
    )
    monkeypatch.setattr("flows.fetch.progress.time.monotonic", iter(range(0, 1000, 10)).__next__)
    progress = FetchProgress(total_papers=200)
    on_progress = progress.batch(papers_before=100, batch_papers=100)
    for done in range(1, 11):
        on_progress(done, 10)
    assert shown[0] == pytest.approx(55.0) and shown[-1] == pytest.approx(100.0)
    assert shown == sorted(shown)
