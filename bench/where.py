"""Where the time and memory go: the py-spy profiles, and one paragraph per goal not met.

Each paragraph names the measured figure, the profile lines (or measured split) that show
where the remaining time or memory goes, and why that part is not removed. Every number in
it is one this invocation measured.
"""

from __future__ import annotations

import os

from bench import figures as g
from bench.figures import Results, RunFigures, SizeFigures
from bench.profile import RATE, ProfiledRun

ROLES = ("run process", "assemble process", "gate process", "Prefect server")


def heading(text: str) -> None:
    print(f"\n== {text} ==")


def say(text: str, indent: int = 4) -> None:
    print(" " * indent + text)


def print_profiles(profiles: list[ProfiledRun]) -> None:
    """Section 8: each profiled run's busiest labels, per process."""
    heading(f"8. where the time goes: py-spy, {RATE} samples/s of every busy thread")
    if not profiles:
        say("not measured (--profile-papers 0)")
    for run in profiles:
        say(f"{run.what}" + (f" (wall {run.wall:.1f} s under py-spy)" if run.wall else ""))
        if run.profile is None:
            say(f"not profiled: {run.error}", 6)
            continue
        for who in ROLES:
            if not run.profile.total(who):
                continue
            say(f"{who}: {run.profile.seconds(who):.1f} busy thread-seconds sampled", 6)
            for name, share in run.profile.top(who):
                say(f"{100 * share:5.1f} %  {name}", 8)


def _profile(results: Results, one_seed: bool) -> ProfiledRun | None:
    found = [p for p in results.profiles if p.profile and ("one seed" in p.what) == one_seed]
    return found[0] if found else None


def _top(run: ProfiledRun | None, who: str, n: int) -> str:
    if run is None or run.profile is None or not run.profile.total(who):
        return "(no profile)"
    return "; ".join(f"{100 * s:.0f} % {name}" for name, s in run.profile.top(who, n))


def _first_run(ref: SizeFigures, results: Results) -> None:
    run, wall_goal = ref.first, ref.papers / g.PAPERS_PER_SECOND
    if run.wall <= wall_goal:
        return
    cores = os.cpu_count() or 1
    needed = run.cpu + run.postgres_cpu
    say(
        f"- {ref.papers:,} papers, first run, {run.wall:.1f} s (goal {wall_goal:.0f} s): the run "
        f"needs {needed:.1f} CPU-s, the run process {run.cpu_self:.1f} + its processes "
        f"(assemble, gate) {run.cpu_children:.1f} + PostgreSQL {run.postgres_cpu:.1f}; on "
        f"{cores} cores that is at least {needed / cores:.1f} s however well the stages "
        f"overlap (the machine was busy {run.machine_cpu / run.process_wall:.2f} of {cores} "
        "cores on average)."
    )
    load = ref.load
    if load is not None and load.sections_seconds:
        search = max(0.0, load.sections_seconds - load.sections_plain_seconds)
        say(
            f"  PostgreSQL's part is mostly `core.sections.search`: the raw COPY of the same "
            f"rows spends {load.sections_seconds:.1f} s of its {load.copy_seconds:.1f} s on "
            f"core.sections, {load.sections_plain_seconds:.1f} s without the search tsvector: "
            f"{search:.1f} s is to_tsvector('english') and its GIN index over the sections' "
            "text. Analysts' full-text search (analytics.search_sections) is built on it, so "
            "it stays; it is PostgreSQL's CPU on the same two cores.",
            4,
        )


def _cost(results: Results) -> None:
    per_paper = results.cpu_per_paper()
    if per_paper is not None and per_paper[0] > g.CPU_MS_PER_PAPER:
        sized = _profile(results, one_seed=False)
        say(
            f"- CPU per paper, {per_paper[0]:.2f} CPU-ms (goal {g.CPU_MS_PER_PAPER:.0f}), from "
            f"the profiled first run ({sized.what if sized else 'none'}): the run process: "
            f"{_top(sized, 'run process', 5)}; its assemble process: "
            f"{_top(sized, 'assemble process', 5)}; the gate's process: "
            f"{_top(sized, 'gate process', 3)}."
        )
    fixed_missed = results.one_seed is not None and results.one_seed.cpu > results.fixed_cpu_goal()
    cli_missed = results.cli is not None and results.cli.wall > g.ONE_SEED_CLI_SECONDS
    if not (fixed_missed or cli_missed):
        return
    one = _profile(results, one_seed=True)
    imports = one.profile.share("run process", "import ") if one and one.profile else 0.0
    say(
        f"- fixed CPU and one seed (goal {g.FIXED_CPU_SECONDS:.0f} CPU-s plus GX's import, "
        f"{g.ONE_SEED_CLI_SECONDS:.0f} s): imports are {100 * imports:.0f} % of the one-seed "
        f"run's samples; its biggest lines: {_top(one, 'run process', 6)}. Importing Prefect "
        "and Great Expectations is theirs to speed up; GX is imported only when a batch "
        "will validate, in the gate's process (TOMEFLOW_GATE_PROCESS) while the batch fetches."
    )


def _noop(ref: SizeFigures) -> None:
    b = ref.noop_temporary
    if b.wall <= g.NOOP_SECONDS or b.server_wait_seconds is None:
        return
    say(
        f"- no-op rerun (b), {b.wall:.1f} s (goal {g.NOOP_SECONDS:.0f} s): "
        f"{b.server_wait_seconds:.1f} s of it is waiting for Prefect's temporary server to "
        f"come up (its own process: imports, migrations, the API app; started before the "
        f"flow's imports, it overlaps them); the run itself took "
        f"{b.wall - b.server_wait_seconds:.1f} s. Scheduled runs meet a running server, (a)."
    )


def _load(ref: SizeFigures) -> None:
    load = ref.load
    if load is None or not load.copy_rate:
        return
    share = load.load_rate / load.copy_rate
    times = load.load_rate / load.dlt_rate if load.dlt_rate else 0.0
    if share >= g.LOAD_VS_COPY and times >= g.LOAD_VS_DLT:
        return
    search = max(0.0, load.sections_seconds - load.sections_plain_seconds)
    dlt = f"{times:.1f}x the dlt merge" if times else "the dlt merge not measured"
    raw = load.copy_rate / load.dlt_rate if load.dlt_rate else 0.0
    bound = (
        f" the raw COPY itself is {raw:.1f}x the dlt merge, so no load of these rows into "
        "tables with the search column reaches 5x;"
        if raw
        else ""
    )
    say(
        f"- load {load.load_rate:,.0f} rows/s, {100 * share:.0f} % of the raw COPY and "
        f"{dlt} (goals {100 * g.LOAD_VS_COPY:.0f} %, {g.LOAD_VS_DLT:.0f}x): the load and "
        f"the raw COPY pay the search tsvector ({search:.1f} s of the raw COPY's "
        f"{load.copy_seconds:.1f} s), the dlt merge writes tables without it;{bound} the "
        "load's wall seconds are shared with the next batches' fetch and assemble on the "
        "same two cores, and PostgreSQL's CPU with them."
    )


def _memory(results: Results, ref: SizeFigures) -> None:
    runs = [r for s in results.sizes for r in (s.first, s.noop_server, s.noop_temporary)]
    worst: RunFigures = max(runs, key=lambda r: r.peak_rss_mb)
    if worst.peak_rss_mb <= g.PEAK_RSS_MB:
        return
    from flows.settings import Settings

    settings = Settings()
    ingest, gx = results.imports.get("flows.ingest"), results.imports.get("great_expectations")
    base, gx_rss = (ingest.rss_mb if ingest else 0.0), (gx.rss_mb if gx else 0.0)
    if settings.gate_process:
        where_gx = (
            f"great_expectations ({gx_rss:.0f} MB in a fresh process, with pandas) validates in "
            "the gate's process, counted among the children"
        )
        fixed = base
    else:
        where_gx = (
            f"with TOMEFLOW_GATE_PROCESS=false the run process imports great_expectations too "
            f"({gx_rss:.0f} MB in a fresh process, with pandas)"
        )
        fixed = base + gx_rss
    say(
        f"- peak RSS {worst.peak_rss_mb:.0f} MB ({worst.label}; goal {g.PEAK_RSS_MB:.0f} MB): "
        f"a fresh process holds {base:.0f} MB after `import flows.ingest`; {where_gx}. The "
        f"other {max(0.0, worst.peak_rss_mb - fixed):.0f} MB is the run's data: up to "
        f"{settings.batches_in_flight} batches of {settings.batch_size} papers' records in "
        "flight, about 95 KB a paper, received from the assemble process as a pickle of about "
        "66 KB a paper (TOMEFLOW_BATCHES_IN_FLIGHT, TOMEFLOW_BATCH_SIZE lower it), Prefect's "
        "runtime and what the allocator keeps."
    )


def print_where(results: Results, ref: SizeFigures | None) -> None:
    """One paragraph per goal not met: the figure, where it goes, why it stays."""
    heading("where the rest goes, for the goals not met")
    if ref is not None:
        _first_run(ref, results)
    _cost(results)
    if ref is not None:
        _noop(ref)
        _load(ref)
        _memory(results, ref)
