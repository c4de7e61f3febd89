"""The benchmark's child processes: `python -m bench.child run|import|hot --result FILE`.

run     the run process: imports flows.ingest and calls ingest() once (settings come from the
        environment the parent sets; with no PREFECT_API_URL it first starts Prefect's
        temporary server, as `tomeflow run` does); writes the summary's figures and the
        process's CPU (RUSAGE_SELF and RUSAGE_CHILDREN, read at exit, after the temporary
        server has stopped) to FILE
import  times `import <module>` alone in this fresh process
hot     times the hot paths of the stages on one 50 KB synthetic paper

Only the standard library is imported up front, so each mode pays for what it imports itself.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any


def cpu_seconds() -> tuple[float, float]:
    """User+sys seconds of this process and of its reaped children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _cpu() -> float:
    return sum(cpu_seconds())


def run(seeds: str, result: Path) -> None:
    """One ingest run; its figures go to result when the process exits."""
    out: dict[str, Any] = {}

    def write_result() -> None:
        # registered before prefect is imported, so it runs after prefect's own atexit
        # handlers and the temporary server's stop: that server is reaped by now
        own, kids = cpu_seconds()
        out["cpu_self"], out["cpu_children"] = own, kids
        out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        result.write_text(json.dumps(out), encoding="utf-8")

    atexit.register(write_result)
    start, cpu0 = time.perf_counter(), _cpu()
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        from flows.api_server import start_if_unset

        server = start_if_unset()  # as `tomeflow run` does: it comes up while the flow imports
    from flows.ingest import ingest

    out["import_seconds"], out["import_cpu"] = time.perf_counter() - start, _cpu() - cpu0
    start, cpu0 = time.perf_counter(), _cpu()
    try:
        if server is not None:
            out["server_wait_seconds"] = server.wait()  # what is left of its start
            out["server_up_seconds"] = time.perf_counter() - server.began
        with server.in_use() if server is not None else nullcontext():
            summary = ingest(seeds=seeds, batch_size=int(os.environ["TOMEFLOW_BATCH_SIZE"]))
    except BaseException as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        out["call_wall"], out["call_cpu"] = time.perf_counter() - start, _cpu() - cpu0
    counts = summary.counts
    out.update(
        status=summary.status,
        flow_wall=summary.wall_seconds,
        stages=summary.stage_seconds,
        stage_busy=summary.stage_busy_seconds,
        rows_written=counts.rows_written,
        seen=counts.seen,
        new=counts.new,
        updated=counts.updated,
        unchanged=counts.unchanged,
        failed=counts.failed,
        quarantined=counts.quarantined,
        problems=list(summary.problems),
    )


def time_import(module: str, result: Path) -> None:
    """Wall and CPU seconds of importing module in this fresh process."""
    import importlib

    start, cpu0 = time.perf_counter(), _cpu()
    importlib.import_module(module)
    wall, cpu = time.perf_counter() - start, _cpu() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.write_text(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": rss}), encoding="utf-8")


def median_ms(fn: Callable[[], object], repeat: int = 20) -> float:
    """The median of repeated timings of fn, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def hot_paths(result: Path) -> None:
    """Per-document timings of the stages' hot paths on one 50 KB synthetic paper."""
    from bench.synth import make_paper
    from flows.entities import normalise_entities
    from flows.fulltext import parse_fulltext
    from flows.mentions import MentionMatcher, targets_from
    from flows.seeds import parse_summary

    paper = make_paper(7, "http://127.0.0.1:1", fulltext_kb=50)
    seed = paper.seed.encode()
    record = parse_summary(seed, "bench.md")
    entities, _ = normalise_entities(record.paper_id, record.entities)
    fulltext = parse_fulltext(paper.fulltext)
    sections = [(s.ordinal, s.text) for s in fulltext.sections]
    targets = targets_from(entities)
    matcher = MentionMatcher(targets)
    figures = {
        "fulltext_kb": len(paper.fulltext.encode()) / 1024,
        "seed_parse_ms": median_ms(lambda: parse_summary(seed, "bench.md")),
        "normalise_ms": median_ms(lambda: normalise_entities(record.paper_id, record.entities)),
        "fulltext_parse_ms": median_ms(lambda: parse_fulltext(paper.fulltext)),
        "matcher_build_ms": median_ms(lambda: MentionMatcher(targets)),
        "mention_count_ms": median_ms(lambda: matcher.count_mentions(sections, targets)),
    }
    result.write_text(json.dumps(figures), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("run", "import", "hot"))
    parser.add_argument("target", nargs="?", help="run: the seed folder; import: the module")
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    if args.mode == "run":
        run(args.target, args.result)
    elif args.mode == "import":
        time_import(args.target, args.result)
    else:
        hot_paths(args.result)


if __name__ == "__main__":
    main()
