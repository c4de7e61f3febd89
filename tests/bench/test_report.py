"""What the benchmark's report says (bench/report.py)."""

from __future__ import annotations

import pytest

from bench.figures import Results, Timing
from bench.report import print_cost


def test_the_migration_of_a_fresh_database_is_shown_beside_the_fixed_cost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = Results(started="2026-12-02T16:00:00", environment={})
    results.imports = {"great_expectations": Timing(3.0, 3.1)}
    results.migration = Timing(1.5, 1.25)
    print_cost(results)
    out = capsys.readouterr().out
    assert "migrating a fresh one (once, `tomeflow migrate` or the first run) took 1.50 s" in out
    assert "1.25 CPU-s" in out


def test_the_load_lock_wait_is_the_flows_stage_name_and_shown_apart_from_the_load(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench import figures
    from bench.figures import LoadComparison
    from bench.loadspeed import DltResult
    from bench.report import print_load
    from flows.batch import LOCK_WAIT

    assert figures.LOCK_WAIT == LOCK_WAIT
    load = LoadComparison(
        papers=10, load_rows=1000, load_seconds=2.0, copy_rows=1000, copy_seconds=1.0,
        copy_tables=3, dlt=DltResult(error="skipped"), lock_wait_seconds=1.5,
        load_summed_seconds=2.5,
    )  # fmt: skip
    print_load(load)
    out = capsys.readouterr().out
    assert "1,000 rows in 2.00 s" in out and "the load stage is 2.50 s" in out
    assert "its batches waited 1.50 s for the load lock besides" in out
