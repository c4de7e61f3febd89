"""The benchmark's paragraphs for the goals not met (bench/where.py)."""

from __future__ import annotations

import pytest

from bench.figures import CliFigures, Results, RunFigures, SizeFigures, Timing
from bench.where import print_where


def run(papers: int, cpu: float) -> RunFigures:
    return RunFigures(
        label=f"{papers} papers", papers=papers, wall=1.0, flow_wall=1.0, process_wall=1.0,
        import_seconds=0.5, cpu_self=cpu, cpu_children=0.0, call_cpu=cpu, stages={},
        rows_written={}, seen=papers, new=papers, unchanged=0, peak_rss_mb=100.0,
        peak_children_rss_mb=0.0, children=(), machine_cpu=cpu, peak_load=1.0, maxrss_mb=100.0,
        http_requests=papers, server_wait_seconds=None,
    )  # fmt: skip


def results(one_seed_cpu: float, cli_wall: float, large_cpu: float) -> Results:
    figures = Results(started="2026-12-02T19:00:00", environment={})
    figures.imports = {"great_expectations": Timing(2.5, 2.7)}  # the fixed goal: 5.7 CPU-s
    figures.one_seed = run(1, one_seed_cpu)
    figures.cli = CliFigures(cli_wall, 4.0, 140.0, 1)
    figures.sizes = [_size(1000, 10.0), _size(10_000, large_cpu)]
    return figures


def _size(papers: int, cpu: float) -> SizeFigures:
    first = run(papers, cpu)
    return SizeFigures(papers, first, first, first)


def test_only_the_goals_missed_get_a_paragraph(capsys: pytest.CaptureFixture[str]) -> None:
    print_where(results(one_seed_cpu=4.8, cli_wall=4.85, large_cpu=100.0), None)  # 10 ms a paper
    out = capsys.readouterr().out
    assert "- CPU per paper, 10.00 CPU-ms (goal 7)" in out
    assert "fixed CPU and one seed" not in out

    print_where(results(one_seed_cpu=4.8, cli_wall=5.2, large_cpu=60.0), None)  # 5.6 ms a paper
    out = capsys.readouterr().out
    assert "CPU per paper" not in out
    assert "- fixed CPU and one seed" in out

    print_where(results(one_seed_cpu=6.0, cli_wall=4.0, large_cpu=60.0), None)
    assert "- fixed CPU and one seed" in capsys.readouterr().out
