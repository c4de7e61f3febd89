"""Print the benchmark's figures, each goal beside its figure with the ratio figure/goal."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from bench import figures as g
from bench.figures import CliFigures, LoadComparison, Results, RunFigures, SizeFigures
from bench.where import print_profiles, print_where

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TASK_COUNT_TEST = PROJECT_ROOT / "tests" / "flow" / "test_incremental.py"
WIDTH = 34


def goal(value: float, op: str, target: float, unit: str = "", digits: int | None = None) -> str:
    """`(goal <= 40 s, 0.88x, met)`: the goal, the ratio figure/goal, and whether it holds."""
    held = value <= target if op == "<=" else value >= target
    ratio = f"{value / target:.2f}x" if target else "-"
    if digits is None:
        digits = 0 if target >= 10 or target == int(target) else 2
    return f"(goal {op} {target:,.{digits}f}{unit}, {ratio}, {'met' if held else 'MISSED'})"


def line(label: str, value: str, note: str = "", indent: int = 4) -> None:
    print(f"{' ' * indent}{label:<{WIDTH}} {value:>16}  {note}".rstrip())


def heading(text: str) -> None:
    print(f"\n== {text} ==")


def mb(value: float) -> str:
    return f"{value:,.0f} MB"


def secs(value: float) -> str:
    return f"{value:,.2f} s"


def reference(results: Results) -> SizeFigures | None:
    """The size the run-time goals are read at: 10,000 papers, else the largest measured."""
    by_size = {s.papers: s for s in results.sizes}
    if g.REFERENCE_PAPERS in by_size:
        return by_size[g.REFERENCE_PAPERS]
    return results.sizes[-1] if results.sizes else None


def first_run_wall_goal(papers: int) -> float:
    """40 s for 10,000 papers; other sizes at the same 250 papers/s."""
    return papers / g.PAPERS_PER_SECOND


def print_header(results: Results, batch_size: int, limits: Mapping[str, str]) -> None:
    from flows.settings import Settings

    env = results.environment
    defaults = Settings.model_fields
    print(f"\ntomeflow benchmark, {results.started}")
    print(
        f"  machine      {env['machine']}; Python {env['python']}, Prefect {env['prefect']}, "
        f"great_expectations {env['great_expectations']}, PostgreSQL {env['postgresql']}"
    )
    sizes = ", ".join(f"{s.papers:,}" for s in results.sizes)
    print(
        f"  corpus       synthetic papers with 50 KB full texts (bench/synth.py): {sizes} "
        f"(written in {results.corpus_seconds:.0f} s); batches of {batch_size}"
    )
    print(
        "  wall         the ingest() call in the run process (`python -m bench.child run`, "
        "which imports flows.ingest and calls ingest()); flow body = summary.wall_seconds; "
        "process = spawn to exit"
    )
    print(
        "  CPU          user+sys of the run process (RUSAGE_SELF) plus its children "
        "(RUSAGE_CHILDREN), read as it exits"
    )
    print(
        "  peak RSS     the run process, and the sum over its children, sampled with psutil "
        "every 0.2 s from the parent (ru_maxrss beside it)"
    )
    print("  HTTP         requests the local full-text server (another process) answered")
    print(
        f"  servers      first runs, reruns (a) and `tomeflow run`: a running `prefect server "
        f"start` (up in {results.prefect_server_start:.1f} s); reruns (b): no PREFECT_API_URL, "
        "so the run process starts Prefect's temporary server first, as `tomeflow run` does "
        "(flows/api_server.py), and it comes up while the flow imports"
    )
    print(
        "  rate limits  the benchmark raises the per-host rate limit and concurrency for its "
        "local server only:"
    )
    print(
        f"               TOMEFLOW_PER_HOST_RATE={limits['TOMEFLOW_PER_HOST_RATE']} (default "
        f"{defaults['per_host_rate'].default}/s), TOMEFLOW_PER_HOST_CONCURRENCY="
        f"{limits['TOMEFLOW_PER_HOST_CONCURRENCY']} (default "
        f"{defaults['per_host_concurrency'].default}), TOMEFLOW_ALLOWED_HOSTS="
        f"{limits['TOMEFLOW_ALLOWED_HOSTS']}; real hosts keep the polite defaults"
    )
    for note in results.notes:
        print(f"  note         {note}")


def print_run(run: RunFigures, *, first: bool, wall_goal: float | None) -> None:
    """One run's figures; goals where they are stated for this kind of run."""
    print(f"  {run.label}")
    if first and wall_goal is not None:
        line("wall", secs(run.wall), goal(run.wall, "<=", wall_goal, " s"))
        line(
            "throughput",
            f"{run.papers_per_second:,.0f} papers/s",
            goal(run.papers_per_second, ">=", g.PAPERS_PER_SECOND, " papers/s"),
        )
    elif first:
        line("wall", secs(run.wall))
        line("throughput", f"{run.papers_per_second:,.0f} papers/s")
    else:
        line("wall", secs(run.wall), goal(run.wall, "<=", g.NOOP_SECONDS, " s"))
    if run.server_wait_seconds is not None:
        up = f"up {run.server_up_seconds:.2f} s after it started, " if run.server_up_seconds else ""
        line(
            "  of which waiting for the temporary server",
            secs(run.server_wait_seconds),
            f"({up}the imports meanwhile; wall without it "
            f"{run.wall - run.server_wait_seconds:.2f} s)",
        )
    line(
        "flow body / process",
        f"{run.flow_wall:.2f} / {run.process_wall:.2f} s",
        f"(import flows.ingest in the run process {run.import_seconds:.2f} s)",
    )
    line(
        "CPU (user+sys)",
        secs(run.cpu),
        f"(run process {run.cpu_self:.2f} s + children {run.cpu_children:.2f} s; "
        f"the ingest() call {run.call_cpu:.2f} s)",
    )
    line(
        "PostgreSQL CPU",
        secs(run.postgres_cpu),
        "(the server's processes, the run's backends included, meanwhile)",
    )
    line(
        "rest of the machine",
        f"{run.other_cores:.2f} cores",
        f"busy on average besides the run process tree ({os.cpu_count()} CPUs; PostgreSQL, "
        f"Prefect server, anything else); peak load average {run.peak_load:.1f}",
    )
    stages = [s for s in g.STAGE_ORDER if s in run.stages]
    stages += [s for s in run.stages if s not in g.STAGE_ORDER]
    for stage in stages:
        seconds = run.stages[stage]
        line(f"  stage {stage}", secs(seconds), f"{100 * seconds / run.wall:5.1f} % of wall")
    total = run.stage_seconds
    if run.batches_overlap:
        print(
            f"      the stages add up to {total:.1f} s, more than the wall: batches in flight "
            "overlap, and each stage's seconds are summed over the batches"
        )
    if first:
        share = 100 * run.validation_share
        line(
            "validation share" + (" of stage time" if run.batches_overlap else " of wall"),
            f"{share:.1f} %",
            goal(share, "<=", 100 * g.VALIDATION_SHARE, " %"),
        )
    line(
        "peak RSS, run process",
        mb(run.peak_rss_mb),
        f"(ru_maxrss {mb(run.maxrss_mb)}) {goal(run.peak_rss_mb, '<=', g.PEAK_RSS_MB, ' MB')}",
    )
    line("peak RSS, its children", mb(run.peak_children_rss_mb), "; ".join(run.children))
    http = "(goal 0, " + ("met)" if run.http_requests == 0 else "MISSED)")
    line("HTTP requests", f"{run.http_requests:,}", "" if first else http)
    line("papers", f"{run.new:,} new", f"{run.unchanged:,} unchanged, of {run.seen:,} seeds")
    if run.rows:
        line(
            "rows written",
            f"{run.rows:,}",
            f"(a batch loading during {run.load_seconds:.2f} s: "
            f"{run.load_rows_per_second:,.0f} rows/s; the load stage summed over batches "
            f"{run.stages.get('load', 0.0):.2f} s, besides it "
            f"{run.stages.get(g.LOCK_WAIT, 0.0):.2f} s waiting for the load lock)",
        )


def print_sizes(results: Results, ref: SizeFigures | None) -> None:
    heading("1. first run and no-op rerun, per size (fresh database and TOMEFLOW_HOME each)")
    for size in results.sizes:
        print(f"\n-- {size.papers:,} papers --")
        wall_goal = first_run_wall_goal(size.papers) if size is ref else None
        if size is ref and size.papers != g.REFERENCE_PAPERS:
            print(
                f"  (goals for {g.REFERENCE_PAPERS:,} papers read at {size.papers:,}: "
                f"{g.PAPERS_PER_SECOND:.0f} papers/s)"
            )
        print_run(size.first, first=True, wall_goal=wall_goal)
        print_run(size.noop_server, first=False, wall_goal=None)
        print_run(size.noop_temporary, first=False, wall_goal=None)


def print_noop(results: Results) -> None:
    heading("2. no-op rerun (every paper unchanged): (a) running server, (b) temporary server")
    print(
        f"    {'papers':>10} {'(a) wall':>10} {'(b) wall':>10} {'(b) server wait':>17} "
        f"{'(b) without it':>15} {'HTTP (a)/(b)':>13} {'CPU (a)/(b)':>14}"
    )
    for s in results.sizes:
        a, b = s.noop_server, s.noop_temporary
        start = b.server_wait_seconds or 0.0
        print(
            f"    {s.papers:>10,} {a.wall:>8.2f} s {b.wall:>8.2f} s {start:>15.2f} s "
            f"{b.wall - start:>13.2f} s {a.http_requests:>6} / {b.http_requests:<5} "
            f"{a.cpu:>5.1f} / {b.cpu:.1f} s"
        )
    print(
        f"    goal: <= {g.NOOP_SECONDS:.0f} s for {g.REFERENCE_PAPERS:,} unchanged papers, "
        "with zero HTTP requests"
    )


def print_cost(results: Results) -> None:
    heading("3. cost per paper and per invocation")
    for module, timing in results.imports.items():
        line(
            f"import {module} alone",
            f"{timing.wall:.2f} s wall",
            f"{timing.cpu:.2f} CPU-s (a fresh process, median of 3)",
        )
    per_paper = results.cpu_per_paper()
    if per_paper is not None:
        value, how = per_paper
        line(
            "CPU per paper",
            f"{value:.2f} CPU-ms",
            goal(value, "<=", g.CPU_MS_PER_PAPER, " CPU-ms", 0),
        )
        print(f"      {how}")
    one = results.one_seed
    if one is not None:
        target = results.fixed_cpu_goal()
        line(
            "fixed CPU per invocation",
            f"{one.cpu:.2f} CPU-s",
            goal(one.cpu, "<=", target, " CPU-s", 2),
        )
        print(
            f"      a one-seed first run: run process {one.cpu_self:.2f} s + children "
            f"{one.cpu_children:.2f} s (wall {one.wall:.2f} s, process {one.process_wall:.2f} s);"
            f" goal {g.FIXED_CPU_SECONDS:.0f} CPU-s plus great_expectations' import"
        )
    if results.migration is not None:
        m = results.migration
        print(
            "      into a migrated database, as every run after a database's first meets it; "
            f"migrating a fresh one (once, `tomeflow migrate` or the first run) took {m.wall:.2f} s"
            f" wall, {m.cpu:.2f} CPU-s (a process of its own, its imports included)"
        )


def print_cli(cli: CliFigures | None) -> None:
    heading("4. one seed, `tomeflow run --seeds <folder with 1 seed>` (a subprocess)")
    if cli is None:
        print("    not measured")
        return
    line("wall", secs(cli.wall), goal(cli.wall, "<=", g.ONE_SEED_CLI_SECONDS, " s"))
    line("CPU (user+sys, wait4)", secs(cli.cpu))
    line("peak RSS", mb(cli.peak_rss_mb))
    line("HTTP requests", f"{cli.http_requests:,}")
    print(
        "      against the running `prefect server start` (no server start in this wall time), "
        "a migrated database and a fresh TOMEFLOW_HOME: a first run of that seed"
    )


def print_runners(runners: tuple[RunFigures, RunFigures] | None) -> None:
    heading("4b. scale-out: the same corpus on the local runner and on a two-worker Dask cluster")
    if runners is None:
        print("    not measured (--dask-papers 0)")
        return
    local, dask = runners
    for figures in runners:
        line(
            figures.label.split(", ")[-1],
            f"{figures.papers_per_second:,.1f} papers/s",
            f"{figures.papers:,} papers in {figures.wall:.1f} s, CPU {figures.cpu:.1f} s",
        )
    ratio = dask.papers_per_second / local.papers_per_second if local.papers_per_second else 0.0
    print(
        f"      Dask / local: {ratio:.2f}; a local cluster of 2 worker processes on this "
        f"{os.cpu_count()}-core machine (the flow, the server and PostgreSQL share the cores): "
        "the figure shows the cluster's overhead here, not a speed-up; more machines add cores"
    )


def print_load(load: LoadComparison | None) -> None:
    heading("5. load speed: the load stage beside a raw COPY and a dlt merge of the same rows")
    if load is None:
        print("    not measured")
        return
    print(f"    rows of the {load.papers:,}-paper first run")
    line(
        "load stage (rows written)",
        f"{load.load_rate:,.0f} rows/s",
        f"{load.load_rows:,} rows in {load.load_seconds:.2f} s",
    )
    print(
        "      the wall seconds during which a batch was loading: loads overlap (each parses "
        "its sections' search tsvector before it takes the load lock); summed over the "
        f"batches the load stage is {load.load_summed_seconds:.2f} s, and its batches waited "
        f"{load.lock_wait_seconds:.2f} s for the load lock besides (another batch writing)"
    )
    line(
        "raw COPY FROM STDIN",
        f"{load.copy_rate:,.0f} rows/s",
        f"{load.copy_rows:,} rows in {load.copy_seconds:.2f} s ({load.copy_tables} tables)",
    )
    print(
        "      every column both databases have, in foreign-key order, in one transaction, "
        "into a freshly migrated database"
    )
    if load.sections_seconds:
        line(
            "  of which core.sections",
            secs(load.sections_seconds),
            f"without its search tsvector {load.sections_plain_seconds:.2f} s: "
            f"{load.sections_seconds - load.sections_plain_seconds:.2f} s is to_tsvector "
            "and the GIN index",
        )
    if load.copy_rate:
        share = load.load_rate / load.copy_rate
        line(
            "load / raw COPY",
            f"{100 * share:.0f} %",
            goal(100 * share, ">=", 100 * g.LOAD_VS_COPY, " %"),
        )
    if load.dlt.error:
        line("dlt merge", "not measured", load.dlt.error.replace("\n", "\n      "))
        return
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in (load.dlt.steps or {}).items())
    line(
        "dlt merge",
        f"{load.dlt_rate:,.0f} rows/s",
        f"{load.dlt.rows:,} rows in {load.dlt.seconds:.2f} s ({steps})",
    )
    print(
        f"      dlt {load.dlt.version}, write_disposition=merge with each table's primary key, "
        f"{load.dlt.file_format or 'default'} files, into a fresh database"
    )
    if load.dlt_rate:
        times = load.load_rate / load.dlt_rate
        line("load / dlt merge", f"{times:.1f}x", goal(times, ">=", g.LOAD_VS_DLT, "x", 0))


def print_hot(hot: Mapping[str, float]) -> None:
    heading(f"6. hot paths on one {hot.get('fulltext_kb', 0):.0f} KB full text (median of 20)")
    line("seed page parse (pyromark)", f"{hot['seed_parse_ms']:.2f} ms")
    line("entity normalisation", f"{hot['normalise_ms']:.2f} ms")
    line("full-text parse (pyromark)", f"{hot['fulltext_parse_ms']:.2f} ms")
    line("mention automaton build", f"{hot['matcher_build_ms']:.2f} ms", "MentionMatcher(targets)")
    line(
        "mention counting (Aho-Corasick)",
        f"{hot['mention_count_ms']:.2f} ms",
        "matcher.count_mentions(sections, targets)",
    )


def tasks_counted_by_test() -> tuple[int, int] | None:
    """TASKS_PER_BATCH and TASKS_PER_RUN as the test that counts task runs states them."""
    try:
        text = TASK_COUNT_TEST.read_text(encoding="utf-8")
    except OSError:
        return None
    per_batch = re.search(r"^TASKS_PER_BATCH = (\d+)", text, re.MULTILINE)
    per_run = re.search(r"^TASKS_PER_RUN = (\d+)", text, re.MULTILINE)
    if per_batch is None or per_run is None:
        return None
    return int(per_batch.group(1)), int(per_run.group(1))


def print_tasks(batch_size: int, per_batch: int, per_run: int) -> None:
    heading("7. task runs")
    batches = -(-10_000 // batch_size)
    print(
        f"    task runs for 10,000 papers: {per_batch} per batch x {batches} batches "
        f"+ {per_run} = {per_batch * batches + per_run}"
    )
    counted = tasks_counted_by_test()
    if counted is not None and counted != (per_batch, per_run):
        test_batch, test_run = counted
        print(
            f"    note: {TASK_COUNT_TEST.relative_to(PROJECT_ROOT)} counts {test_batch} per "
            f"batch + {test_run}: {test_batch * batches + test_run} task runs"
        )


def rss_flatness(results: Results) -> tuple[str, str]:
    """Peak RSS 10k -> 50k: (measured, ratio) for the summary, from this or earlier runs."""
    rss: dict[int, tuple[float, str]] = dict(results.stored_rss)
    for s in results.sizes:
        rss[s.papers] = (s.first.peak_rss_mb, "")
    if 10_000 not in rss or 50_000 not in rss:
        missing = "50k" if 10_000 in rss else "10k" if 50_000 in rss else "10k and 50k"
        return f"{missing} not measured (make bench PAPERS=50000)", "-"
    (small, when_small), (large, when_large) = rss[10_000], rss[50_000]
    stored = [w for w in (when_small, when_large) if w]
    source = f" (stored from {', '.join(stored)})" if stored else ""
    growth = large / small
    ratio = growth / g.RSS_FLAT
    return f"{small:.0f} -> {large:.0f} MB, x{growth:.2f}{source}", f"{ratio:.2f}x"


class Row(NamedTuple):
    """One line of the summary table."""

    figure: str
    measured: str
    goal: str
    ratio: str


def _x(value: float, target: float) -> str:
    return f"{value / target:.2f}x"


def first_run_row(ref: SizeFigures) -> Row:
    run, wall_goal = ref.first, first_run_wall_goal(ref.papers)
    rate = run.papers_per_second
    return Row(
        f"{ref.papers:,} papers, first run",
        f"{run.wall:.1f} s ({rate:,.0f} papers/s)",
        f"<= {wall_goal:.{0 if wall_goal >= 10 else 2}f} s (>= {g.PAPERS_PER_SECOND:.0f} papers/s)",
        f"{_x(run.wall, wall_goal)} ({_x(rate, g.PAPERS_PER_SECOND)})",
    )


def cost_row(results: Results) -> Row:
    per_paper, one, fixed = results.cpu_per_paper(), results.one_seed, results.fixed_cpu_goal()
    paper = ("-", "-")
    if per_paper is not None:
        paper = (f"{per_paper[0]:.2f} CPU-ms", _x(per_paper[0], g.CPU_MS_PER_PAPER))
    invocation = (f"{one.cpu:.2f} CPU-s", _x(one.cpu, fixed)) if one else ("-", "-")
    return Row(
        "cost per paper / per invocation",
        f"{paper[0]} / {invocation[0]}",
        f"<= {g.CPU_MS_PER_PAPER:.0f} CPU-ms / <= {g.FIXED_CPU_SECONDS:.0f} CPU-s plus GX import"
        f" (= {fixed:.2f})",
        f"{paper[1]} / {invocation[1]}",
    )


def noop_row(ref: SizeFigures) -> Row:
    a, b = ref.noop_server, ref.noop_temporary
    return Row(
        f"no-op rerun of {ref.papers:,} unchanged papers",
        f"(a) {a.wall:.1f} s, (b) {b.wall:.1f} s; HTTP {a.http_requests} / {b.http_requests}",
        f"<= {g.NOOP_SECONDS:.0f} s, zero HTTP",
        f"(a) {_x(a.wall, g.NOOP_SECONDS)}, (b) {_x(b.wall, g.NOOP_SECONDS)}",
    )


def load_row(load: LoadComparison) -> Row:
    share = load.load_rate / load.copy_rate if load.copy_rate else 0.0
    times = load.load_rate / load.dlt_rate if load.dlt_rate else None
    return Row(
        "load stage vs raw COPY of the same rows",
        f"{100 * share:.0f} %, " + (f"{times:.1f}x dlt merge" if times else "dlt not measured"),
        f">= {100 * g.LOAD_VS_COPY:.0f} %, and >= {g.LOAD_VS_DLT:.0f}x dlt merge",
        f"{_x(share, g.LOAD_VS_COPY)} / " + (_x(times, g.LOAD_VS_DLT) if times else "-"),
    )


def validation_row(ref: SizeFigures) -> Row:
    share = ref.first.validation_share
    return Row(
        "validation share of wall",
        f"{100 * share:.1f} % ({ref.papers:,} papers"
        + (
            ", of the stage time summed over overlapping batches)"
            if ref.first.batches_overlap
            else ")"
        ),
        f"<= {100 * g.VALIDATION_SHARE:.0f} %",
        _x(share, g.VALIDATION_SHARE),
    )


def rss_row(results: Results) -> Row:
    runs = [r for s in results.sizes for r in (s.first, s.noop_server, s.noop_temporary)]
    worst = max(runs, key=lambda r: r.peak_rss_mb)
    flat, flat_ratio = rss_flatness(results)
    return Row(
        "peak RSS of the run process",
        f"{worst.peak_rss_mb:.0f} MB ({worst.label}); {flat}",
        f"<= {g.PEAK_RSS_MB:.0f} MB, flat 10k -> 50k (x <= {g.RSS_FLAT:.2f})",
        f"{_x(worst.peak_rss_mb, g.PEAK_RSS_MB)} / {flat_ratio}",
    )


def cli_row(cli: CliFigures) -> Row:
    return Row(
        "one seed, tomeflow run",
        f"{cli.wall:.1f} s",
        f"<= {g.ONE_SEED_CLI_SECONDS:.0f} s besides Prefect's server start",
        _x(cli.wall, g.ONE_SEED_CLI_SECONDS),
    )


def print_summary(results: Results, ref: SizeFigures | None) -> None:
    heading("summary")
    rows = [cost_row(results)]
    if ref is not None:
        rows = [first_run_row(ref), *rows, noop_row(ref)]
    load = comparison(results)
    if load is not None:
        rows.append(load_row(load))
    if ref is not None:
        rows += [validation_row(ref), rss_row(results)]
    if results.cli is not None:
        rows.append(cli_row(results.cli))
    header = Row("figure", "measured", "goal", "measured / goal")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    if ref is not None:
        run = ref.first
        print(
            f"during the {ref.papers:,}-paper first run the rest of the machine kept "
            f"{run.other_cores:.2f} of {os.cpu_count()} cores busy on average (PostgreSQL, the "
            f"Prefect server and anything else running), peak load average {run.peak_load:.1f}"
        )


def comparison(results: Results) -> LoadComparison | None:
    """The size's load comparison, if one was measured."""
    return next((s.load for s in results.sizes if s.load is not None), None)


def print_report(
    results: Results, batch_size: int, limits: Mapping[str, str], tasks: tuple[int, int]
) -> None:
    """Every section, then the summary table."""
    ref = reference(results)
    print_header(results, batch_size, limits)
    print_sizes(results, ref)
    print_noop(results)
    print_cost(results)
    print_cli(results.cli)
    print_runners(results.runners)
    print_load(comparison(results))
    print_hot(results.hot)
    print_tasks(batch_size, *tasks)
    print_profiles(results.profiles)
    print_summary(results, ref)
    print_where(results, ref)
