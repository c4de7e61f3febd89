"""`make bench`: the figures behind tomeflow's speed and memory goals, printed, never asserted.

    python -m bench.run                  # 1,000 and 10,000 papers with 50 KB full texts
    python -m bench.run --papers 50000   # other sizes (make bench PAPERS=50000: memory at 50k)
    python -m bench.run --papers 50 200  # a quick look

One invocation measures, and prints each figure beside its goal and the ratio figure/goal:

- for each size, in a fresh scratch database and a fresh TOMEFLOW_HOME: a first run and a no-op
  rerun, each in a run process of its own (`python -m bench.child run`, which imports
  flows.ingest and calls ingest()); the rerun twice: against a running `prefect server start`
  and with no PREFECT_API_URL (the run process starts Prefect's temporary server first, as
  `tomeflow run` does);
- CPU per paper and per invocation (a one-seed first run), the imports of flows.ingest and of
  great_expectations alone, and `tomeflow run` of one seed as a subprocess;
- the load stage beside a raw COPY and a dlt merge of the very same rows (bench/loadspeed.py);
- the stages' hot paths on one 50 KB document, and the task-run count for 10,000 papers;
- where the time goes: a one-seed `tomeflow run` and a first run of 1,000 papers under py-spy
  (bench/profile.py), PostgreSQL's CPU during every run, and the raw COPY of core.sections
  with and without its search tsvector; after the summary table, one paragraph per goal not
  met names the figure, where the rest goes and why it stays (bench/where.py).

Full texts come from a local HTTP server in another process, which counts its requests. The
synthetic corpus, databases, Prefect homes and servers live only as long as the invocation;
each size's first-run figures are also kept in bench/out/ so that a later `PAPERS=50000`
invocation can say whether peak memory stays flat from 10k to 50k.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from bench import loadspeed
from bench.figures import (
    LOCK_WAIT,
    REFERENCE_PAPERS,
    CliFigures,
    LoadComparison,
    Results,
    RunFigures,
    SizeFigures,
    Timing,
)
from bench.infra import (
    FileServer,
    fulltext_server,
    prefect_server,
    read_json,
    run_sampled,
    scratch_database,
    server_url,
    server_version,
    tail,
)
from bench.profile import Profile, ProfiledRun, profiled
from bench.report import print_report
from bench.synth import make_paper, write_seeds
from flows.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = PROJECT_ROOT / "bench" / "out"
BIN = Path(sys.executable).parent  # the project's virtualenv (make bench runs .venv/bin/python)
BATCH_SIZE = Settings.model_fields["batch_size"].default  # what a run gets unless told
TASKS_PER_BATCH = 7  # see tests/flow/test_incremental.py, which counts them
TASKS_PER_RUN = 1
FULLTEXT_KB = 50
DEFAULT_PAPERS = (1000, 10_000)
# the local runner against a two-worker Dask cluster: this many papers, in batches of
# DASK_BATCH (several batches, so that both workers have one)
DASK_PAPERS = 1000
DASK_BATCH = 250
# the local server may be hammered; real hosts keep the polite defaults (flows/settings.py)
LOCAL_LIMITS = {
    "TOMEFLOW_ALLOWED_HOSTS": "127.0.0.1",
    "TOMEFLOW_PER_HOST_RATE": "5000",
    "TOMEFLOW_PER_HOST_CONCURRENCY": "8",
}
IMPORT_REPEATS = 3


class BenchError(RuntimeError):
    """A child process failed; the message carries the end of its log."""


class Bench:
    """Runs the children: run processes, import timings, hot paths, the CLI."""

    def __init__(self, root: Path, files: FileServer, api_url: str, prefect_home: Path) -> None:
        self.root = root
        self.files = files
        self.api_url = api_url
        self.prefect_home = prefect_home  # the children's; (b) reruns' temporary server uses it
        self.logs = root / "logs"
        self.logs.mkdir(exist_ok=True)
        self._count = 0

    def base_env(self) -> dict[str, str]:
        """The environment without the caller's prefect/tomeflow settings, analytics off."""
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "TOMEFLOW_")) and k != "DATABASE_URL"
        }
        return keep | {
            "GX_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_HOME": str(self.prefect_home),
        }

    def run_env(self, db: str, home: Path, *, api: bool) -> dict[str, str]:
        """What a run process (or `tomeflow run`) is started with."""
        env = (
            self.base_env()
            | LOCAL_LIMITS
            | {
                "DATABASE_URL": db,
                "TOMEFLOW_HOME": str(home),
                "TOMEFLOW_BATCH_SIZE": str(BATCH_SIZE),
                # as `tomeflow run` sets them (flows/cli.py)
                "PREFECT_LOGGING_EXTRA_LOGGERS": "flows",
                "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            }
        )
        if api:
            env["PREFECT_API_URL"] = self.api_url
        return env

    def _paths(self, label: str) -> tuple[Path, Path]:
        self._count += 1
        slug = "".join(c if c.isalnum() else "-" for c in label).strip("-")
        stem = f"{self._count:02d}-{slug}"
        return self.logs / f"{stem}.log", self.logs / f"{stem}.json"

    def _failed(self, label: str, log: Path, why: str) -> BenchError:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        kept = OUT_DIR / f"failed-{log.name}"
        shutil.copyfile(log, kept)
        return BenchError(f"{label}: {why} (log kept in {kept})\n{tail(log)}")

    def ingest_run(
        self,
        label: str,
        papers: int,
        seeds: Path,
        db: str,
        home: Path,
        *,
        api: bool,
        env: dict[str, str] | None = None,
    ) -> RunFigures:
        """One ingest() call in a fresh run process; memory sampled from here."""
        log, result = self._paths(label)
        print(f"  {label} ...", flush=True)
        requests = self.files.requests
        cmd = [sys.executable, "-m", "bench.child", "run", str(seeds), "--result", str(result)]
        run_env = self.run_env(db, home, api=api) | (env or {})
        stats = run_sampled(cmd, run_env, log, cwd=PROJECT_ROOT)
        data = read_json(result)
        if stats.returncode != 0 or "error" in data or "call_wall" not in data:
            raise self._failed(label, log, data.get("error") or f"exit {stats.returncode}")
        if data.get("status") != "completed":
            print(f"    note: the run ended {data.get('status')}: {data.get('problems')}")
        return RunFigures.from_child(
            label,
            papers,
            data,
            process_wall=stats.wall,
            peak_rss_mb=stats.peak_rss_mb,
            peak_children_rss_mb=stats.peak_children_rss_mb,
            children=stats.children,
            machine_cpu=stats.machine_cpu,
            peak_load=stats.peak_load,
            http_requests=self.files.requests - requests,
            postgres_cpu=stats.postgres_cpu,
        )

    def cli_run(self, seeds: Path, db: str, home: Path) -> CliFigures:
        """`tomeflow run --seeds <folder>` against the running server, as a subprocess."""
        log, _ = self._paths("tomeflow-run")
        print("  tomeflow run --seeds <one seed> ...", flush=True)
        requests = self.files.requests
        cmd = [str(BIN / "tomeflow"), "run", "--seeds", str(seeds)]
        stats = run_sampled(cmd, self.run_env(db, home, api=True), log, cwd=PROJECT_ROOT)
        if stats.returncode != 0:
            raise self._failed("tomeflow run", log, f"exit {stats.returncode}")
        return CliFigures(stats.wall, stats.cpu, stats.peak_rss_mb, self.files.requests - requests)

    def import_time(self, module: str) -> Timing:
        """The median over fresh processes of `import module` alone."""
        walls, cpus, rss = [], [], []
        for _ in range(IMPORT_REPEATS):
            log, result = self._paths(f"import-{module}")
            cmd = [sys.executable, "-m", "bench.child", "import", module, "--result", str(result)]
            stats = run_sampled(cmd, self.base_env(), log, cwd=PROJECT_ROOT)
            data = read_json(result)
            if stats.returncode != 0 or "wall" not in data:
                raise self._failed(f"import {module}", log, f"exit {stats.returncode}")
            walls.append(float(data["wall"]))
            cpus.append(float(data["cpu"]))
            rss.append(float(data.get("rss_mb", 0.0)))
        return Timing(statistics.median(walls), statistics.median(cpus), statistics.median(rss))

    def hot_paths(self) -> dict[str, float]:
        """The hot paths on one 50 KB document, in a process of their own."""
        log, result = self._paths("hot-paths")
        cmd = [sys.executable, "-m", "bench.child", "hot", "--result", str(result)]
        stats = run_sampled(cmd, self.base_env(), log, cwd=PROJECT_ROOT)
        data = read_json(result)
        if stats.returncode != 0 or not data:
            raise self._failed("hot paths", log, f"exit {stats.returncode}")
        return {k: float(v) for k, v in data.items()}

    def profiled(self, what: str, cmd: Sequence[str], env: dict[str, str]) -> ProfiledRun:
        """cmd run to its end under py-spy (every busy thread, its children too)."""
        log, _ = self._paths(f"profile-{what}")
        out = log.with_suffix(".spy")
        print(f"  {what}, under py-spy ...", flush=True)
        try:
            wrapped = profiled(cmd, out)
        except FileNotFoundError as exc:
            return ProfiledRun(what, error=str(exc))
        stats = run_sampled(wrapped, env, log, cwd=PROJECT_ROOT)
        if stats.returncode != 0 or not out.exists():
            return ProfiledRun(what, error=f"exit {stats.returncode}: {tail(log, 400)}")
        return ProfiledRun(what, Profile.load(out), stats.wall)

    def migrate(self, db: str) -> Timing:
        """Bring a scratch database to tomeflow's newest schema (in a child: alembic logs)."""
        log, _ = self._paths("migrate")
        code = "import sys; from flows.load.migrate import upgrade; upgrade(sys.argv[1])"
        stats = run_sampled([sys.executable, "-c", code, db], self.base_env(), log, PROJECT_ROOT)
        if stats.returncode != 0:
            raise self._failed("migrate", log, f"exit {stats.returncode}")
        return Timing(stats.wall, stats.cpu, stats.peak_rss_mb)

    def prepare_temporary_server_database(self) -> float:
        """Migrate the database the (b) reruns' temporary server opens, as a used install has."""
        log, _ = self._paths("prefect-database-upgrade")
        cmd = [str(BIN / "prefect"), "server", "database", "upgrade", "-y"]
        stats = run_sampled(cmd, self.base_env(), log, cwd=PROJECT_ROOT)
        if stats.returncode != 0:
            raise self._failed("prefect server database upgrade", log, f"exit {stats.returncode}")
        return stats.wall


def write_corpus(site: Path, root: Path, base_url: str, sizes: Sequence[int]) -> dict[int, Path]:
    """Full texts for the largest size under site; a seed folder per size (its first papers).

    Written to disk one by one: no process holds a paper it is not working on.
    """
    folders = {n: root / f"seeds-{n}" for n in sorted(set(sizes))}
    for i in range(max(folders)):
        paper = make_paper(i, base_url, fulltext_kb=FULLTEXT_KB)
        page = site / "paper" / paper.paper_id / "full.md"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(paper.fulltext, encoding="utf-8")
        for n, folder in folders.items():
            if i < n:
                write_seeds(folder, [paper])
    return folders


def measure_size(
    bench: Bench, papers: int, seeds: Path, compare: bool, dlt_format: str | None
) -> SizeFigures:
    """A first run and the no-op rerun (both servers) in a fresh database and TOMEFLOW_HOME."""
    print(f"{papers:,} papers:", flush=True)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=bench.root)))
        db = stack.enter_context(scratch_database(str(papers)))
        home = tmp / "home"

        def run(what: str, *, api: bool) -> RunFigures:
            return bench.ingest_run(f"{papers:,} papers, {what}", papers, seeds, db, home, api=api)

        first = run("first run (running server)", api=True)
        dumped = copy_db = None
        if compare:
            # the raw COPY's database is migrated now, with the migrations the run saw
            copy_db = stack.enter_context(scratch_database("copy"))
            bench.migrate(copy_db)
            dumped = loadspeed.dump_tables(db, tmp / "dump", copy_db)
        noop_a = run("no-op rerun (a) running server", api=True)
        noop_b = run("no-op rerun (b) temporary server", api=False)
        load = None
        if dumped is not None and copy_db is not None:
            load = compare_load(first, dumped, copy_db, tmp, dlt_format)
    save_size(first)
    return SizeFigures(papers, first, noop_a, noop_b, load)


def measure_runners(bench: Bench, papers: int, seeds: Path) -> tuple[RunFigures, RunFigures]:
    """The same corpus, first runs: the local runner, then a local two-worker Dask cluster."""
    print(f"{papers:,} papers in batches of {DASK_BATCH}, local runner against Dask:", flush=True)
    figures = []
    batches = {"TOMEFLOW_BATCH_SIZE": str(DASK_BATCH)}
    for runner, env in (
        ("local runner", batches | {"TOMEFLOW_TASK_RUNNER": "local"}),
        (
            "Dask, 2 workers",
            batches | {"TOMEFLOW_TASK_RUNNER": "dask", "TOMEFLOW_DASK_WORKERS": "2"},
        ),
    ):
        with tempfile.TemporaryDirectory(dir=bench.root) as tmp, scratch_database("dask") as db:
            figures.append(
                bench.ingest_run(
                    f"{papers:,} papers, first run, {runner}",
                    papers,
                    seeds,
                    db,
                    Path(tmp) / "home",
                    api=True,
                    env=env,
                )
            )
    return figures[0], figures[1]


def profile_runs(bench: Bench, one: Path, papers: int, seeds: Path) -> list[ProfiledRun]:
    """A one-seed `tomeflow run` and a first run of `papers`, each under py-spy."""
    profiles = []
    with tempfile.TemporaryDirectory(dir=bench.root) as tmp, scratch_database("spy1") as db:
        bench.migrate(db)  # as the measured one-seed runs meet it
        cmd = [str(BIN / "tomeflow"), "run", "--seeds", str(one)]
        env = bench.run_env(db, Path(tmp) / "home", api=True)
        profiles.append(bench.profiled("one seed, tomeflow run", cmd, env))
    with tempfile.TemporaryDirectory(dir=bench.root) as tmp, scratch_database("spy") as db:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "bench.child", "run", str(seeds), "--result", str(result)]
        env = bench.run_env(db, Path(tmp) / "home", api=True)
        profiles.append(bench.profiled(f"{papers:,} papers, first run", cmd, env))
    return profiles


def compare_load(
    first: RunFigures,
    dumped: list[loadspeed.DumpedTable],
    copy_db: str,
    tmp: Path,
    dlt_format: str | None,
) -> LoadComparison:
    """Raw COPY of the first run's rows into a migrated database; dlt merge into another."""
    print("  raw COPY of the same rows ...", flush=True)
    copy_rows, copy_seconds, per_table = loadspeed.raw_copy(copy_db, dumped)
    plain_sections = loadspeed.copy_without_search(copy_db, dumped)
    if dlt_format == "skip":
        dlt = loadspeed.DltResult(error="skipped (--dlt-format skip)")
    else:
        print("  dlt merge of the same rows ...", flush=True)
        with scratch_database("dlt") as dlt_db:
            dlt = loadspeed.dlt_merge(dlt_db, dumped, tmp / "dlt", dlt_format)
    return LoadComparison(
        papers=first.papers,
        load_rows=first.rows,
        load_seconds=first.load_seconds,
        load_summed_seconds=first.stages.get("load", 0.0),
        copy_rows=copy_rows,
        copy_seconds=copy_seconds,
        copy_tables=len(dumped),
        dlt=dlt,
        sections_seconds=per_table.get("core.sections", 0.0),
        sections_plain_seconds=plain_sections,
        lock_wait_seconds=first.stages.get(LOCK_WAIT, 0.0),
    )


def save_size(first: RunFigures) -> None:
    """Keep a size's first-run figures in bench/out/ for later invocations."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    record = {
        "papers": first.papers,
        "measured_at": dt.datetime.now().isoformat(timespec="seconds"),
        "wall": first.wall,
        "cpu": first.cpu,
        "peak_rss_mb": first.peak_rss_mb,
        "maxrss_mb": first.maxrss_mb,
    }
    (OUT_DIR / f"first-run-{first.papers}.json").write_text(json.dumps(record, indent=2))


def stored_rss(sizes: Sequence[int]) -> dict[int, tuple[float, str]]:
    """Peak RSS of 10k and 50k first runs measured by earlier invocations."""
    stored = {}
    for papers in (10_000, 50_000):
        path = OUT_DIR / f"first-run-{papers}.json"
        if papers in sizes or not path.exists():
            continue
        data = read_json(path)
        if "peak_rss_mb" in data:
            stored[papers] = (float(data["peak_rss_mb"]), str(data.get("measured_at", "?")))
    return stored


def environment(db_url: str) -> dict[str, str]:
    """What the figures were measured on."""
    from importlib.metadata import version

    return {
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.system()}",
        "python": platform.python_version(),
        "prefect": version("prefect"),
        "great_expectations": version("great_expectations"),
        "postgresql": server_version(db_url),
    }


def _raise_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the context managers: databases, servers, temps


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="tomeflow's benchmark", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--papers", type=int, nargs="+", default=list(DEFAULT_PAPERS), help="corpus sizes"
    )
    parser.add_argument(
        "--compare-at",
        type=int,
        default=None,
        help="size whose rows the load comparison copies (default: 10000 if run, else largest)",
    )
    parser.add_argument(
        "--dlt-format",
        choices=("insert_values", "csv", "skip"),
        default=None,
        help="dlt's loader file format (default: dlt's own for postgres); skip: no dlt",
    )
    parser.add_argument(
        "--dask-papers",
        type=int,
        default=DASK_PAPERS,
        help="corpus size for the local-runner against Dask figure (0: skip it)",
    )
    parser.add_argument(
        "--profile-papers",
        type=int,
        default=DEFAULT_PAPERS[0],
        help="corpus size of the first run profiled with py-spy (0: no profiles)",
    )
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.papers):
        parser.error("--papers: sizes must be positive")
    args.papers = sorted(set(args.papers))
    if args.compare_at is None:
        args.compare_at = REFERENCE_PAPERS if REFERENCE_PAPERS in args.papers else args.papers[-1]
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Measure everything, then print the report."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    started = time.perf_counter()
    db_url = server_url()
    results = Results(
        started=dt.datetime.now().isoformat(timespec="seconds"), environment=environment(db_url)
    )
    results.stored_rss = stored_rss(args.papers)
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tomeflow-bench-")))
        files = stack.enter_context(fulltext_server(root / "site"))
        print("starting `prefect server start` ...", flush=True)
        server_log = root / "prefect-server.log"
        api_url, results.prefect_server_start = stack.enter_context(
            prefect_server(BIN / "prefect", root / "prefect-server", os.environ, server_log)
        )
        bench = Bench(root, files, api_url, root / "prefect-client")
        results.notes.append(
            "the temporary server's database (PREFECT_HOME of the run processes) was migrated "
            f"beforehand in {bench.prepare_temporary_server_database():.1f} s, as on a used install"
        )
        count = max(args.papers)
        print(f"writing {count:,} synthetic papers ({FULLTEXT_KB} KB full texts) ...", flush=True)
        corpus_start = time.perf_counter()
        seeds = write_corpus(root / "site", root, files.base_url, [1, *args.papers])
        results.corpus_seconds = time.perf_counter() - corpus_start

        print("imports and hot paths ...", flush=True)
        results.imports = {m: bench.import_time(m) for m in ("flows.ingest", "great_expectations")}
        results.hot = bench.hot_paths()

        print("one seed:", flush=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp, scratch_database("one") as db:
            # as every run after a database's first meets it: migrated (timed on its own)
            results.migration = bench.migrate(db)
            results.one_seed = bench.ingest_run(
                "one seed, first run (running server)",
                1,
                seeds[1],
                db,
                Path(tmp) / "home",
                api=True,
            )
        with tempfile.TemporaryDirectory(dir=root) as tmp, scratch_database("cli") as db:
            bench.migrate(db)
            results.cli = bench.cli_run(seeds[1], db, Path(tmp) / "home")

        for papers in args.papers:
            compare = papers == args.compare_at
            results.sizes.append(
                measure_size(bench, papers, seeds[papers], compare, args.dlt_format)
            )
        if args.profile_papers:
            print("where the time goes (py-spy):", flush=True)
            size = min(args.papers, key=lambda n: abs(n - args.profile_papers))
            results.profiles = profile_runs(bench, seeds[1], size, seeds[size])
        if args.dask_papers:
            dask_seeds = seeds.get(args.dask_papers) or seeds[min(args.papers)]
            results.runners = measure_runners(bench, len(list(dask_seeds.iterdir())), dask_seeds)
    results.notes.append(f"the whole benchmark took {time.perf_counter() - started:.0f} s")
    print_report(results, BATCH_SIZE, LOCAL_LIMITS, (TASKS_PER_BATCH, TASKS_PER_RUN))


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        sys.exit(f"bench failed: {exc}")
    except subprocess.SubprocessError as exc:
        sys.exit(f"bench failed: {exc}")
