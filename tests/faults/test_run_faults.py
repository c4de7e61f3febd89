"""Faults a whole run meets, on loopback: each asserts that nothing is lost and nothing doubled.

A run is killed (SIGKILL) while it fetches and while it loads, two runs go at once, the
database drops the loader's connection, the raw store's disk is full, hostile seeds sit among
good ones. After each, a rerun gives exactly the tables a clean run gives.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench.synth import SynthPaper, make_paper, write_seeds
from flows.fetch.rawstore import RawStore
from flows.ingest import ingest
from flows.load import entities as load_entities
from flows.settings import PROJECT_ROOT, get_settings
from tests.helpers import CORE_TABLES, child_processes, process_alive, query, snapshot
from tests.http_server import Reply, ScriptedHTTPServer, markdown

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("prefect_server")]

# columns that say when or by which run a row was written: they differ between equal runs
WHEN = ("run_id", "loaded_at", "fulltext_fetched_at", "author_id")


@pytest.fixture
def corpus(tmp_path: Path, http_server: ScriptedHTTPServer) -> list[SynthPaper]:
    made = [make_paper(i, http_server.base_url, fulltext_kb=2) for i in range(4)]
    for paper in made:
        http_server.route(f"/paper/{paper.paper_id}/full.md", markdown(paper.fulltext))
    write_seeds(tmp_path / "seeds", made)
    return made


@pytest.fixture
def clean(
    tmp_path: Path, other_db_url: str, corpus: list[SynthPaper], monkeypatch: pytest.MonkeyPatch
) -> dict[str, list[tuple[object, ...]]]:
    """The core tables a clean run of the corpus gives (in a database of their own)."""
    with monkeypatch.context() as clean_env:
        clean_env.setenv("DATABASE_URL", other_db_url)
        clean_env.setenv("TOMEFLOW_HOME", str(tmp_path / "clean-home"))
        get_settings.cache_clear()
        ingest(seeds=str(tmp_path / "seeds"))
    get_settings.cache_clear()
    return snapshot(other_db_url, CORE_TABLES, WHEN)


def _child(db_url: str, home: Path, seeds: Path, before_load: str = "") -> subprocess.Popen[str]:
    """`ingest` in a process of its own (so it can be killed); before_load runs in its load."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from flows.load import entities
        real = entities.refresh_aliases
        def hook(cur, run_id):
            {before_load or "pass"}
            return real(cur, run_id)
        entities.refresh_aliases = hook
        from flows.ingest import ingest
        ingest(seeds={str(seeds)!r})
        """
    )
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),  # the session's test server
        "DATABASE_URL": db_url,
        "TOMEFLOW_HOME": str(home),
        "TOMEFLOW_ASSEMBLE_PROCESSES": "0",
        "TOMEFLOW_DATA_DOCS": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-c", script], env=env, cwd=PROJECT_ROOT, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_for(check: object, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event the test sets to let held replies go (set at teardown in any case)."""
    event = threading.Event()
    yield event
    event.set()


def test_a_run_killed_while_fetching_is_marked_crashed_and_the_rerun_does_not_wait(
    tmp_path: Path,
    tomeflow_env: str,
    http_server: ScriptedHTTPServer,
    corpus: list[SynthPaper],
    clean: dict[str, list[tuple[object, ...]]],
    gate: threading.Event,
) -> None:
    held = corpus[0]
    http_server.route(f"/paper/{held.paper_id}/full.md", Reply(body=b"# late", gate=gate))
    child = _child(tomeflow_env, tmp_path / "home", tmp_path / "seeds")
    _wait_for(lambda: http_server.in_flight >= 1, "the child to be fetching")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    gate.set()
    http_server.route(f"/paper/{held.paper_id}/full.md", markdown(held.fulltext))
    assert query(tomeflow_env, "select status from ops.runs") == [("running",)]

    started = time.monotonic()
    summary = ingest(seeds=str(tmp_path / "seeds"))
    # the dead run's fetch slot went with its connection: no lease to wait out
    assert summary.stage_seconds.get("fetch", 0.0) < 30
    assert time.monotonic() - started < 60
    statuses = query(tomeflow_env, "select status, message from ops.runs order by started_at")
    assert [s for s, _ in statuses] == ["crashed", "completed"]
    assert "its process ended before the run did" in statuses[0][1]
    assert snapshot(tomeflow_env, CORE_TABLES, WHEN) == clean


def test_a_run_killed_while_loading_leaves_nothing_half_loaded(
    tmp_path: Path,
    tomeflow_env: str,
    corpus: list[SynthPaper],
    clean: dict[str, list[tuple[object, ...]]],
) -> None:
    marker = tmp_path / "in-load"
    child = _child(
        tomeflow_env, tmp_path / "home", tmp_path / "seeds",
        f"open({str(marker)!r}, 'w').close(); time.sleep(600)",
    )  # fmt: skip
    _wait_for(marker.exists, "the child to be inside its load")
    helpers = child_processes(child.pid)  # its gate's and assemble processes, among others
    assert helpers  # the gate's process and multiprocessing's resource tracker, at least
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    for table in CORE_TABLES:
        assert query(tomeflow_env, f"select count(*) from {table}") == [(0,)], table
    # they end with it (flows/parent.py) instead of waiting for ever, memory held
    _wait_for(lambda: not any(process_alive(p) for p in helpers), "its helpers to end")
    ingest(seeds=str(tmp_path / "seeds"))
    assert snapshot(tomeflow_env, CORE_TABLES, WHEN) == clean


def test_two_runs_at_once_write_each_row_once(
    tmp_path: Path,
    tomeflow_env: str,
    corpus: list[SynthPaper],
    clean: dict[str, list[tuple[object, ...]]],
) -> None:
    children = [_child(tomeflow_env, tmp_path / f"home{n}", tmp_path / "seeds") for n in (1, 2)]
    for child in children:
        assert child.wait(timeout=300) == 0, child.stderr.read() if child.stderr else ""
    assert snapshot(tomeflow_env, CORE_TABLES, WHEN) == clean
    counts = query(tomeflow_env, "select papers_new from ops.runs order by papers_new")
    assert counts == [(0,), (4,)]  # one loaded the papers, the other found them loaded


def test_a_dropped_database_connection_mid_load_is_retried_and_loads_once(
    tmp_path: Path,
    tomeflow_env: str,
    corpus: list[SynthPaper],
    clean: dict[str, list[tuple[object, ...]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = load_entities.refresh_aliases
    dropped: list[int] = []

    def drop_once(cur: psycopg.Cursor[object], run_id: object) -> None:
        if not dropped:
            (pid,) = cur.execute("select pg_backend_pid()").fetchone()  # type: ignore[misc]
            dropped.append(pid)
            with psycopg.connect(tomeflow_env, autocommit=True) as admin:
                admin.execute("select pg_terminate_backend(%s)", (pid,))
        real(cur, run_id)  # type: ignore[arg-type]

    monkeypatch.setattr(load_entities, "refresh_aliases", drop_once)
    summary = ingest(seeds=str(tmp_path / "seeds"))
    assert dropped and summary.status == "completed" and summary.counts.new == 4
    assert snapshot(tomeflow_env, CORE_TABLES, WHEN) == clean


def test_a_full_raw_store_disk_loses_no_summary_and_the_next_run_fills_in(
    tmp_path: Path,
    tomeflow_env: str,
    corpus: list[SynthPaper],
    clean: dict[str, list[tuple[object, ...]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(self: RawStore, body: bytes) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(RawStore, "put", full)
        summary = ingest(seeds=str(tmp_path / "seeds"))
    assert summary.counts.new == 4 and summary.counts.fetch_statuses == {"failed": 4}
    assert query(tomeflow_env, "select count(*) from core.sections") == [(0,)]
    errors = query(tomeflow_env, "select distinct error_class from raw.fetches")
    assert errors == [("OSError",)]
    ingest(seeds=str(tmp_path / "seeds"))  # space again: the full texts come in
    assert snapshot(tomeflow_env, CORE_TABLES, WHEN) == clean


def test_hostile_seeds_among_good_ones_are_quarantined_and_the_good_ones_load(
    tmp_path: Path,
    tomeflow_env: str,
    corpus: list[SynthPaper],
    clean: dict[str, list[tuple[object, ...]]],
) -> None:
    seeds = tmp_path / "seeds"
    (seeds / "ipv6.md").write_text(
        "# A title\n\nSource: https://[tomesphere.com/paper/PMC77\n", "utf-8"
    )
    (seeds / "binary.md").write_bytes(b"# \x00\x01\x02 binary\n")
    (seeds / "huge.md").write_text("# Huge\n\n" + "word " * 2_000_000, "utf-8")
    (seeds / "empty.md").write_bytes(b"")
    summary = ingest(seeds=str(seeds))
    assert summary.status == "completed" and summary.counts.new == 4
    rejected = dict(
        query(
            tomeflow_env,
            "select document, reason from ops.quarantine where rejected_whole order by 1",
        )
    )
    assert set(rejected) == {"binary.md", "empty.md", "huge.md", "ipv6.md"}  # named in seeds/
    assert snapshot(tomeflow_env, CORE_TABLES, WHEN) == clean
