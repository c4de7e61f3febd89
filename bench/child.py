"""The benchmark's child processes: `python -m bench.child run|import|hot --result FILE`.

run     the run process: imports flows.ingest and calls ingest() once (settings come from the
        environment the parent sets); writes the summary's figures and the process's CPU
        (RUSAGE_SELF and RUSAGE_CHILDREN, read at exit, after Prefect has stopped a temporary
        server it started) to FILE
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
        # handlers: a temporary server the flow started is stopped and reaped by now
        own, kids = cpu_seconds()
        out["cpu_self"], out["cpu_children"] = own, kids
        out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        result.write_text(json.dumps(out), encoding="utf-8")

    atexit.register(write_result)
    start, cpu0 = time.perf_counter(), _cpu()
    from flows.ingest import ingest

    out["import_seconds"], out["import_cpu"] = time.perf_counter() - start, _cpu() - cpu0
    if not os.environ.get("PREFECT_API_URL"):
        _time_temporary_server(out)
    start, cpu0 = time.perf_counter(), _cpu()
    try:
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
        rows_written=counts.rows_written,
        seen=counts.seen,
        new=counts.new,
        updated=counts.updated,
        unchanged=counts.unchanged,
        failed=counts.failed,
        quarantined=counts.quarantined,
        problems=list(summary.problems),
    )


def _time_temporary_server(out: dict[str, Any]) -> None:
    """Record how long the temporary Prefect server the flow starts takes to come up."""
    from prefect.server.api.server import SubprocessASGIServer

    original = SubprocessASGIServer.start

    def timed_start(self: SubprocessASGIServer, timeout: int | None = None) -> None:
        began = time.perf_counter()
        try:
            original(self, timeout)
        finally:
            out["server_start_seconds"] = (
                out.get("server_start_seconds", 0.0) + time.perf_counter() - began
            )

    SubprocessASGIServer.start = timed_start  # type: ignore[method-assign]


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
