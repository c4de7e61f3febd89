"""The golden test: the fixed corpus through the real flow, every table against the dump.

It guards every refactor: a change that moves code must leave the tables exactly as they
were. A change that means to alter them rewrites tests/data/golden/expected.json with
TOMEFLOW_GOLDEN_UPDATE=1 and says why in its commit.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.ingest import ingest
from flows.settings import get_settings
from tests.golden import dump, golden_server, read_expected, write_corpus, write_expected
from tests.helpers import CORE_TABLES

# the golden server listens on one fixed port: tests using it share an xdist worker
pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.xdist_group("golden_port")]


def test_golden_corpus_gives_the_checked_in_tables(
    tmp_path: Path, tomeflow_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # three batches in flight, assembled in a process of their own: the tables must not show it
    monkeypatch.setenv("TOMEFLOW_ASSEMBLE_PROCESSES", "1")
    monkeypatch.setenv("TOMEFLOW_ASSEMBLE_PROCESS_MIN_BODIES", "0")  # its batches are small
    monkeypatch.setenv("TOMEFLOW_BATCHES_IN_FLIGHT", "3")
    get_settings.cache_clear()
    seeds = tmp_path / "seeds"
    with golden_server() as server:
        write_corpus(seeds, server.base_url)
        ingest(seeds=str(seeds), batch_size=5)
        first = dump(tomeflow_env, server.base_url, seeds)
        ingest(seeds=str(seeds), batch_size=5)
        second = dump(tomeflow_env, server.base_url, seeds)
    got = {"first_run": first, "second_run": second}
    if os.environ.get("TOMEFLOW_GOLDEN_UPDATE"):
        write_expected(got)
    expected = read_expected()
    for run in ("first_run", "second_run"):
        for table in expected[run]:
            assert got[run][table] == expected[run][table], f"{run}: {table} differs"
    assert set(got["first_run"]) == set(expected["first_run"])
    # the second run changed nothing, failed fetches asked again included: no core row moved
    for table in CORE_TABLES:
        assert second[table] == first[table], f"the rerun rewrote {table}"
