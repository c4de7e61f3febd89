"""The benchmark's figures and the goals they are printed beside."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.loadspeed import DltResult
from bench.profile import ProfiledRun

# goals (printed beside the figures, never asserted)
REFERENCE_PAPERS = 10_000  # the size the run-time goals are stated for
PAPERS_PER_SECOND = 250.0  # first run: 10,000 papers in 40 s
FIRST_RUN_SECONDS = REFERENCE_PAPERS / PAPERS_PER_SECOND
NOOP_SECONDS = 5.0  # no-op rerun of 10,000 unchanged papers, with zero HTTP requests
VALIDATION_SHARE = 0.10  # of the wall time
PEAK_RSS_MB = 500.0  # of the run process
RSS_FLAT = 1.10  # "flat from 10k to 50k": read as at most 10% growth
CPU_MS_PER_PAPER = 7.0
FIXED_CPU_SECONDS = 3.0  # per invocation, plus great_expectations' own import
LOAD_VS_COPY = 0.50  # load stage rows/s over raw COPY rows/s
LOAD_VS_DLT = 5.0  # load stage rows/s over dlt merge rows/s
ONE_SEED_CLI_SECONDS = 5.0  # `tomeflow run` of one seed, besides Prefect's server start
LOCK_WAIT = "wait for load lock"  # flows.batch.LOCK_WAIT: the bench reads result files only
STAGE_ORDER = ("parse", "fetch", "assemble", "validate", "load", LOCK_WAIT, "report")


@dataclass(frozen=True, slots=True)
class RunFigures:
    """One ingest() call in a run process of its own."""

    label: str
    papers: int
    wall: float  # the ingest() call
    flow_wall: float  # summary.wall_seconds: the flow body
    process_wall: float  # spawn to exit, from the parent
    import_seconds: float  # import flows.ingest in the run process
    cpu_self: float  # RUSAGE_SELF of the run process, whole process, at exit
    cpu_children: float  # RUSAGE_CHILDREN (e.g. a temporary Prefect server it started)
    call_cpu: float  # of the ingest() call alone (self + children)
    stages: dict[str, float]
    rows_written: dict[str, int]
    seen: int
    new: int
    unchanged: int
    peak_rss_mb: float  # sampled: the run process
    peak_children_rss_mb: float  # sampled: its descendants, summed
    children: tuple[str, ...]  # the descendants seen while sampling
    machine_cpu: float  # busy CPU seconds of the whole machine during the run (every process)
    peak_load: float  # the highest 1-minute load average seen during the run
    maxrss_mb: float  # ru_maxrss of the run process
    http_requests: int  # answered by the full-text server during the run
    server_wait_seconds: float | None  # the wait, after the imports, for a temporary server
    server_up_seconds: float | None = None  # its start to its first answer (imports overlap it)
    postgres_cpu: float = 0.0  # CPU seconds of the PostgreSQL server during the run
    stage_busy: dict[str, float] = field(default_factory=dict)  # wall s a batch was in each

    @property
    def cpu(self) -> float:
        """User+sys seconds of the whole invocation: the run process and its children."""
        return self.cpu_self + self.cpu_children

    @property
    def other_cores(self) -> float:
        """Cores the rest of the machine kept busy on average (PostgreSQL, servers, others)."""
        return (
            max(0.0, self.machine_cpu - self.cpu) / self.process_wall if self.process_wall else 0.0
        )

    @property
    def papers_per_second(self) -> float:
        return self.papers / self.wall if self.wall else 0.0

    @property
    def rows(self) -> int:
        return sum(self.rows_written.values())

    @property
    def validation_share(self) -> float:
        """The validate stage's share of the run: of its wall time, or, when batches overlap
        (each stage's seconds are summed over the batches, and the stages then add up to more
        than the wall), of the summed stage time."""
        total = max(self.wall, self.stage_seconds)
        return self.stages.get("validate", 0.0) / total if total else 0.0

    @property
    def stage_seconds(self) -> float:
        """The stages' seconds added up (over batches: more than the wall when they overlap)."""
        return sum(self.stages.values())

    @property
    def batches_overlap(self) -> bool:
        return self.stage_seconds > self.wall

    @property
    def load_seconds(self) -> float:
        """The wall seconds during which a batch was loading (loads overlap: each parses its
        sections before it takes the load lock); the summed stage seconds without them."""
        return self.stage_busy.get("load") or self.stages.get("load", 0.0)

    @property
    def load_rows_per_second(self) -> float:
        return self.rows / self.load_seconds if self.load_seconds else 0.0

    @classmethod
    def from_child(cls, label: str, papers: int, data: dict[str, Any], **parent: Any) -> RunFigures:
        """From the run process's result file and what the parent measured."""
        return cls(
            label=label,
            papers=papers,
            wall=float(data["call_wall"]),
            flow_wall=float(data["flow_wall"]),
            import_seconds=float(data["import_seconds"]),
            cpu_self=float(data["cpu_self"]),
            cpu_children=float(data["cpu_children"]),
            call_cpu=float(data["call_cpu"]),
            stages={k: float(v) for k, v in data["stages"].items()},
            stage_busy={k: float(v) for k, v in data.get("stage_busy", {}).items()},
            rows_written={k: int(v) for k, v in data["rows_written"].items()},
            seen=int(data["seen"]),
            new=int(data["new"]),
            unchanged=int(data["unchanged"]),
            maxrss_mb=float(data["maxrss_mb"]),
            server_wait_seconds=data.get("server_wait_seconds"),
            server_up_seconds=data.get("server_up_seconds"),
            **parent,
        )


@dataclass(frozen=True, slots=True)
class LoadComparison:
    """The load stage of a first run beside a raw COPY and a dlt merge of the same rows."""

    papers: int
    load_rows: int
    load_seconds: float
    copy_rows: int
    copy_seconds: float
    copy_tables: int
    dlt: DltResult
    sections_seconds: float = 0.0  # of the raw COPY: core.sections alone
    sections_plain_seconds: float = 0.0  # the same rows into a copy without the search tsvector
    lock_wait_seconds: float = 0.0  # the load's batches waiting for the load lock, apart
    load_summed_seconds: float = 0.0  # the load stage's seconds summed over the batches

    @property
    def load_rate(self) -> float:
        return self.load_rows / self.load_seconds if self.load_seconds else 0.0

    @property
    def copy_rate(self) -> float:
        return self.copy_rows / self.copy_seconds if self.copy_seconds else 0.0

    @property
    def dlt_rate(self) -> float:
        return self.dlt.rows / self.dlt.seconds if self.dlt.seconds else 0.0


@dataclass(frozen=True, slots=True)
class SizeFigures:
    """One corpus size: a first run and the no-op rerun against both kinds of server."""

    papers: int
    first: RunFigures
    noop_server: RunFigures  # (a) against the running `prefect server start`
    noop_temporary: RunFigures  # (b) no PREFECT_API_URL: the flow starts a temporary server
    load: LoadComparison | None = None


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall and CPU seconds."""

    wall: float
    cpu: float
    rss_mb: float = 0.0  # peak RSS of the process that did it (imports: the whole process)


@dataclass(frozen=True, slots=True)
class CliFigures:
    """`tomeflow run --seeds <one seed>` as a subprocess."""

    wall: float
    cpu: float
    peak_rss_mb: float
    http_requests: int


@dataclass(slots=True)
class Results:
    """Everything one invocation measured."""

    started: str
    environment: dict[str, str]
    prefect_server_start: float = 0.0
    corpus_seconds: float = 0.0
    imports: dict[str, Timing] = field(default_factory=dict)
    hot: dict[str, float] = field(default_factory=dict)
    one_seed: RunFigures | None = None  # into a migrated database, as every later run meets it
    migration: Timing | None = None  # migrating a fresh database, once per database
    cli: CliFigures | None = None
    sizes: list[SizeFigures] = field(default_factory=list)
    stored_rss: dict[int, tuple[float, str]] = field(default_factory=dict)  # earlier runs
    runners: tuple[RunFigures, RunFigures] | None = None  # local, then two Dask workers
    notes: list[str] = field(default_factory=list)
    profiles: list[ProfiledRun] = field(default_factory=list)  # py-spy: where the time goes

    def cpu_per_paper(self) -> tuple[float, str] | None:
        """CPU-ms per paper from two first runs: 10k and 1k, else the largest and the smallest."""
        runs = {s.papers: s.first for s in self.sizes}
        if 1000 in runs and 10_000 in runs:
            small, large = runs[1000], runs[10_000]
        elif len(runs) >= 2:
            small, large = runs[min(runs)], runs[max(runs)]
        elif runs and self.one_seed is not None:
            small, large = self.one_seed, next(iter(runs.values()))
        else:
            return None
        if large.papers == small.papers:
            return None
        per_paper = 1000 * (large.cpu - small.cpu) / (large.papers - small.papers)
        how = (
            f"(CPU of the {large.papers:,} first run {large.cpu:.1f} s - of the "
            f"{small.papers:,} first run {small.cpu:.1f} s) / {large.papers - small.papers:,}"
        )
        return per_paper, how

    def fixed_cpu_goal(self) -> float:
        """The fixed-cost goal: 3 CPU-s plus great_expectations' own import, as measured."""
        gx = self.imports.get("great_expectations")
        return FIXED_CPU_SECONDS + (gx.cpu if gx else 0.0)
