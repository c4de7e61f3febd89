"""Shared fixtures: a real PostgreSQL per test, isolated settings, a Prefect test server.

What is expensive is made once per session (per xdist worker): the migrated template
database each test's database is cloned from, the quality gate (a Great Expectations
context), the Prefect test server. Flow runs build no Data Docs unless a test asks for them
(TOMEFLOW_DATA_DOCS=true).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from flows import resources
from flows.load.migrate import upgrade
from flows.settings import PROJECT_ROOT, Settings, get_settings

if TYPE_CHECKING:
    from flows.quality.gate import QualityGate

pytest_plugins = ["tests.http_server"]

DATA = Path(__file__).parent / "data"
CI_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"


def _answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """A PostgreSQL server to create test databases in: explicit, CI's, or embedded."""
    explicit = os.environ.get("TOMEFLOW_TEST_DATABASE_URL")
    if explicit:
        return explicit
    if _answers(CI_DATABASE):
        return CI_DATABASE
    from flows.load.db import embedded_database_url

    return embedded_database_url(PROJECT_ROOT / ".tomeflow" / "test-pgdata", "postgres")


def _with_dbname(url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


@pytest.fixture(scope="session")
def migrated_template(pg_server_url: str) -> Iterator[str]:
    """A database migrated to head once per session, copied for each test."""
    name = f"tf_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    upgrade(_with_dbname(pg_server_url, name))
    yield name
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@contextmanager
def _cloned(pg_server_url: str, template: str) -> Iterator[str]:
    """A database made from the migrated template, dropped afterwards."""
    name = f"tf_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{template}"')
    yield _with_dbname(pg_server_url, name)
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def db_url(pg_server_url: str, migrated_template: str) -> Iterator[str]:
    """A fresh, migrated, real PostgreSQL database for one test."""
    with _cloned(pg_server_url, migrated_template) as url:
        yield url


@pytest.fixture
def other_db_url(pg_server_url: str, migrated_template: str) -> Iterator[str]:
    """A second fresh, migrated database, for tests that compare two loads."""
    with _cloned(pg_server_url, migrated_template) as url:
        yield url


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    name = f"tf_empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    yield _with_dbname(pg_server_url, name)
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own state folder and re-reads settings from its environment."""
    monkeypatch.setenv("TOMEFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# fetch settings for end-to-end runs: loopback named in the allowlist, quick retries
FAST_FETCH = {
    "TOMEFLOW_ALLOWED_HOSTS": "127.0.0.1",
    "TOMEFLOW_PER_HOST_RATE": "1000",
    "TOMEFLOW_CONNECT_TIMEOUT": "1",
    "TOMEFLOW_READ_TIMEOUT": "1",
    "TOMEFLOW_MAX_RETRIES": "2",
    "TOMEFLOW_BACKOFF_FACTOR": "0.01",
    "TOMEFLOW_BACKOFF_MAX": "0.05",
    "TOMEFLOW_RETRY_AFTER_CAP": "0.1",
}


@pytest.fixture(scope="session")
def session_gate() -> QualityGate:
    """One quality gate for the whole session, without Data Docs."""
    from flows.quality.gate import QualityGate
    from flows.quality.suites import SUITES_DIR

    return QualityGate(SUITES_DIR, None)


@pytest.fixture
def tomeflow_env(db_url: str, monkeypatch: pytest.MonkeyPatch, session_gate: QualityGate) -> str:
    """Point tomeflow's settings at the test database and quick fetches; returns the db url.

    Runs share the session's quality gate; a test that sets TOMEFLOW_DATA_DOCS=true, or a
    threshold of the gate, gets a gate of its own.
    """
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("TOMEFLOW_DATA_DOCS", "false")
    # batches assemble in the run's own process (a pool costs a second to start); the golden
    # test runs the pipeline with its assemble process
    monkeypatch.setenv("TOMEFLOW_ASSEMBLE_PROCESSES", "0")
    for name, value in FAST_FETCH.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    build = resources.quality_gate
    monkeypatch.setattr(
        resources,
        "quality_gate",
        lambda settings: build(settings) if _own_gate(settings) else session_gate,
    )
    return db_url


def _own_gate(settings: Settings) -> bool:
    # a test that writes Data Docs or sets the gate's own thresholds gets a gate of its own
    from flows.quality.suites import DEFAULT_DRIFT_MAX_DROP, DEFAULT_REFERENCE_COUNT_GAP_TOLERANCE

    return (
        settings.data_docs
        or settings.drift_max_drop != DEFAULT_DRIFT_MAX_DROP
        or settings.reference_count_gap_tolerance != DEFAULT_REFERENCE_COUNT_GAP_TOLERANCE
    )


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full, so new connections hang in the handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [*fillers, listener]:
        sock.close()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A throwaway Prefect API (SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
