"""The flow's tasks: which failures are retried, and the fetch progress (flows/tasks.py)."""

from __future__ import annotations

import psycopg
import pytest
from prefect.states import Completed, Failed

from flows.tasks import DB_RETRIES, FetchProgress


@pytest.mark.parametrize(
    ("state", "retried"),
    [
        (Failed(data=psycopg.OperationalError("server closed the connection")), True),
        (Failed(data=psycopg.errors.CheckViolation("papers_title_check")), False),
        (Failed(data=ValueError("a bug")), False),
        (Completed(data=1), False),
    ],
)
def test_a_database_step_is_retried_only_when_the_connection_dropped(
    state: object, retried: bool
) -> None:
    assert DB_RETRIES["retry_condition_fn"](None, None, state) is retried
    assert DB_RETRIES["retries"] == 2


def test_progress_moves_with_the_papers_of_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[float] = []
    monkeypatch.setattr("flows.tasks.create_progress_artifact", lambda p, **kw: shown.append(p))
    monkeypatch.setattr("flows.tasks.update_progress_artifact", lambda i, p: shown.append(p))
    monkeypatch.setattr("flows.tasks.time.monotonic", iter(range(0, 1000, 10)).__next__)
    progress = FetchProgress(total_papers=200)
    on_progress = progress.batch(papers_before=100, batch_papers=100)
    for done in range(1, 11):
        on_progress(done, 10)
    assert shown[0] == pytest.approx(55.0) and shown[-1] == pytest.approx(100.0)
    assert shown == sorted(shown)
