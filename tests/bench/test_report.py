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
