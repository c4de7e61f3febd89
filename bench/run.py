"""`make bench`: the figures behind tomeflow's speed and memory goals, printed, never asserted.

    python -m bench.run                 # 1,000 and 2,000 papers with 50 KB full texts
    python -m bench.run --papers 2000   # other sizes

Each size runs in a child process of its own (so peak memory is that run's), against a fresh
database on the server tests use (TOMEFLOW_TEST_DATABASE_URL, else 127.0.0.1:5432 if it
answers, else the embedded server), with full texts served from files by a local HTTP server
in another process. A child runs the real flow twice (the second run finds everything
unchanged) and times the hot paths on one 50 KB document.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench.synth import make_paper, write_seeds

CI_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
BATCH_SIZE = 1000
TASKS_PER_BATCH = 6  # see tests/test_flow_incremental.py, which counts them
TASKS_PER_RUN = 1


def server_url() -> str:
    """The PostgreSQL server to create the bench database in."""
    explicit = os.environ.get("TOMEFLOW_TEST_DATABASE_URL")
    if explicit:
        return explicit
    try:
        psycopg.connect(CI_DATABASE, connect_timeout=3).close()
        return CI_DATABASE
    except psycopg.OperationalError:
        from flows.load.db import embedded_database_url
        from flows.settings import PROJECT_ROOT

        return embedded_database_url(PROJECT_ROOT / ".tomeflow" / "test-pgdata", "postgres")


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh database, dropped afterwards."""
    admin = server_url()
    name = f"tomeflow_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def _serve_folder(root: str, ports: Any) -> None:
    """Serve root's files as Markdown on a free loopback port (runs in a process of its own)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = Path(root, self.path.lstrip("/"))
            body = path.read_bytes() if path.is_file() else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/markdown; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ports.put(httpd.server_address[1])
    httpd.serve_forever()


@contextmanager
def fulltext_server(root: Path) -> Iterator[str]:
    """A server for the files under root, in another process so it costs the run nothing."""
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve_folder, args=(str(root), ports), daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{ports.get(timeout=30)}"
    finally:
        server.terminate()
        server.join()


def best_ms(fn: Callable[[], object], repeat: int = 20) -> float:
    """The median of repeated timings of fn, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def hot_paths() -> dict[str, float]:
    """Per-document timings of the stages' hot paths on one 50 KB synthetic paper."""
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
    matcher = MentionMatcher.for_entities(targets)
    return {
        "fulltext_kb": len(paper.fulltext.encode()) / 1024,
        "seed_parse_ms": best_ms(lambda: parse_summary(seed, "bench.md")),
        "normalise_ms": best_ms(lambda: normalise_entities(record.paper_id, record.entities)),
        "fulltext_parse_ms": best_ms(lambda: parse_fulltext(paper.fulltext)),
        "matcher_build_ms": best_ms(lambda: MentionMatcher.for_entities(targets)),
        "mention_count_ms": best_ms(lambda: matcher.count_mentions(sections)),
    }


def child(papers_count: int) -> dict[str, Any]:
    """One size: the real flow twice over synthetic papers, and the hot paths."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with tempfile.TemporaryDirectory() as tmp, scratch_database() as db:
        root = Path(tmp)
        with fulltext_server(root / "site") as base:
            # written to disk one by one: the run process holds no paper it is not loading
            for i in range(papers_count):
                paper = make_paper(i, base, fulltext_kb=50)
                write_seeds(root / "seeds", [paper])
                page = root / "site" / "paper" / paper.paper_id / "full.md"
                page.parent.mkdir(parents=True)
                page.write_text(paper.fulltext, encoding="utf-8")
            os.environ.update(
                DATABASE_URL=db,
                TOMEFLOW_HOME=str(root / "home"),
                TOMEFLOW_ALLOWED_HOSTS="127.0.0.1",
                TOMEFLOW_PER_HOST_RATE="5000",
                TOMEFLOW_PER_HOST_CONCURRENCY="8",
                TOMEFLOW_BATCH_SIZE=str(BATCH_SIZE),
            )
            from flows.ingest import ingest

            first = ingest(seeds=str(root / "seeds"))
            second = ingest(seeds=str(root / "seeds"))
    rows = first.counts.rows_written
    return {
        "papers": papers_count,
        "first": {"wall": first.wall_seconds, "stages": first.stage_seconds, "rows": rows},
        "second": {"wall": second.wall_seconds, "stages": second.stage_seconds},
        "unchanged_second": second.counts.unchanged,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "hot": hot_paths(),
    }


def report(results: list[dict[str, Any]]) -> None:
    """Print the figures."""
    hot = results[-1]["hot"]
    print(f"\nhot paths on one {hot['fulltext_kb']:.0f} KB full text (median of 20):")
    print(f"  seed page parse (pyromark)      {hot['seed_parse_ms']:8.2f} ms")
    print(f"  entity normalisation            {hot['normalise_ms']:8.2f} ms")
    print(f"  full-text parse (pyromark)      {hot['fulltext_parse_ms']:8.2f} ms")
    print(f"  mention automaton build         {hot['matcher_build_ms']:8.2f} ms")
    print(f"  mention counting (Aho-Corasick) {hot['mention_count_ms']:8.2f} ms")
    for r in results:
        first, second = r["first"], r["second"]
        stages = first["stages"]
        validate = stages.get("validate", 0.0)
        load = stages.get("load", 0.0)
        written = sum(first["rows"].get(t, 0) for t in first["rows"])
        print(f"\n{r['papers']} papers, 50 KB full texts each, batches of {BATCH_SIZE}:")
        print(f"  first run wall time             {first['wall']:8.2f} s "
              f"({r['papers'] / first['wall']:.0f} papers/s)")  # fmt: skip
        for stage, seconds in stages.items():
            print(f"    {stage:<12}                  {seconds:8.2f} s "
                  f"({100 * seconds / first['wall']:4.1f}%)")  # fmt: skip
        print(f"  validation share of wall time   {100 * validate / first['wall']:8.1f} % "
              "(goal: at most 10%)")  # fmt: skip
        print(f"  load (COPY + upserts)           {r['papers'] / load:8.0f} papers/s, "
              f"{written / load:.0f} rows/s")  # fmt: skip
        print(f"  second run (all unchanged: {r['unchanged_second']})  {second['wall']:8.2f} s")
        print(f"  peak memory of the run process  {r['peak_rss_mb']:8.0f} MB")
    batches = -(-10_000 // BATCH_SIZE)
    print(f"\ntask runs for 10,000 papers: {TASKS_PER_BATCH} per batch x {batches} batches "
          f"+ {TASKS_PER_RUN} = {TASKS_PER_BATCH * batches + TASKS_PER_RUN}")  # fmt: skip


def main() -> None:
    """Run each size in a child process and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--papers", type=int, nargs="+", default=[1000, 2000])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.papers[0])))
        return
    results = []
    for count in args.papers:
        print(f"running {count} papers ...", flush=True)
        out = subprocess.run(
            [sys.executable, "-m", "bench.run", "--child", "--papers", str(count)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            print(out.stdout[-3000:], out.stderr[-3000:], file=sys.stderr)
            sys.exit(f"bench child for {count} papers failed")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    report(results)


if __name__ == "__main__":
    main()
