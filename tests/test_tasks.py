"""The flow's tasks: which failures are retried (flows/tasks.py)."""

from __future__ import annotations

import psycopg
import pytest
from prefect.states import Completed, Failed

from flows.tasks import DB_RETRIES


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
