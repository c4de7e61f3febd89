"""ingest_batch: one batch of seed files through parse -> fetch -> assemble -> validate -> load.

A batch is the unit of work: its records live only inside `ingest_batch`, which hands back a
small `BatchOutcome` (counts, quality outcomes, stage times) for the run summary to fold in.
"""

from __future__ import annotations

import datetime as dt
import pickle
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from flows import watch
from flows.cluster import WorkerSpec, on_dask, worker_resources
from flows.fetch.plan import needs_nothing
from flows.fetch.progress import FetchProgress
from flows.fetch.stage import FetchContext
from flows.quality.results import QualityReport
from flows.quality.verdict import BatchVerdict
from flows.records import (
    BatchOutcome,
    FetchResult,
    KnownSeed,
    LoadResult,
    Mode,
    PaperLoad,
    PaperRecord,
    QuarantineRow,
    StoredPaper,
)
from flows.resources import Resources
from flows.seeds import SeedBatch, all_unchanged, document_name, drop_duplicate_ids, seeds_root
from flows.settings import Settings
from flows.shards import Shard
from flows.tasks import (
    assemble,
    fetch_fulltexts,
    load,
    parse_seeds,
    read_stored,
    record_refused_batch,
    unwalked,
    validate,
)

# the stage seconds of a batch's load spent waiting for the load lock, apart from "load"
LOCK_WAIT = "wait for load lock"


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What a run does: which seeds, in what batches, in which mode."""

    run_id: uuid.UUID
    seeds: Path
    batch_size: int
    mode: Mode
    force: bool  # rewrite papers even when unchanged
    only: frozenset[str] | None  # just these paper ids
    shard: Shard | None = None  # just the papers of this shard

    @classmethod
    def from_parameters(
        cls,
        settings: Settings,
        run_id: uuid.UUID,
        seeds: str | None,
        batch_size: int | None,
        offline: bool,
        full_refresh: bool,
        only: Sequence[str] | None,
        shard: str | None = None,
    ) -> RunPlan:
        """The plan the flow's parameters and the settings describe."""
        mode = run_mode(offline, full_refresh, only)
        return cls(
            run_id=run_id,
            seeds=Path(seeds) if seeds else settings.seeds_dir,
            batch_size=batch_size or settings.batch_size,
            mode=mode,
            force=mode == "full_refresh" or bool(full_refresh),
            only=frozenset(only) if only else None,
            shard=Shard.parse(shard) if shard else None,
        )


def run_mode(offline: bool, full_refresh: bool, only: Sequence[str] | None) -> Mode:
    """How this run treats full texts: reuse fresh ones, refetch all, or stay offline."""
    if offline:
        return "offline"
    return "full_refresh" if full_refresh or only else "incremental"


class _Clock:
    """Wall seconds per stage of one batch, and when it was in each (epoch seconds, so that
    batches of other processes compare); watchers hear when a stage is done."""

    def __init__(self, papers: int = 0) -> None:
        self.seconds: dict[str, float] = {}
        self.spans: dict[str, tuple[float, float]] = {}
        self.papers = papers

    @classmethod
    def after_reading(cls, batch: ReadBatch) -> _Clock:
        """A batch's clock, its parse stage already timed (the flow read its seeds)."""
        clock = cls(batch.documents)
        clock.seconds["parse"] = batch.seconds
        clock.spans["parse"] = (batch.read_at, batch.read_at + batch.seconds)
        return clock

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start, began = time.perf_counter(), time.time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.spans[name] = (self.spans.get(name, (began,))[0], time.time())
        watch.advance(name, self.papers)

    def set_apart(self, name: str, within: str, seconds: float) -> None:
        """Count `seconds` of stage `within` as `name` of their own."""
        if seconds > 0:
            self.seconds[within] = self.seconds.get(within, 0.0) - seconds
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds


def batched(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    """Consecutive slices of at most size items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def select_papers(
    parsed: SeedBatch,
    seen: dict[str, str],
    only: frozenset[str] | None,
    shard: Shard | None = None,
) -> tuple[list[PaperRecord], list[QuarantineRow], list[KnownSeed]]:
    """The batch's papers to process, its rejected documents, and its unchanged seeds.

    The first document of each id wins, in path order, parsed or not; with `only`, just the
    named papers; with `shard`, just the papers (and rejected documents) of that shard.
    """
    papers, duplicates = drop_duplicate_ids(parsed.papers, seen, parsed.ids)
    dropped = {r.document for r in duplicates}
    unchanged = [k for k in parsed.unchanged if k.seed_path not in dropped]
    rejected = [*parsed.rejected, *duplicates]
    if shard is not None:
        papers = [p for p in papers if shard.holds(p.paper_id)]
        rejected = [r for r in rejected if shard.holds(r.paper_id or r.document)]
        unchanged = [k for k in unchanged if shard.holds(k.paper_id)]
    if only is None:
        return papers, rejected, unchanged
    return (
        [p for p in papers if p.paper_id in only],
        [r for r in rejected if r.paper_id in only],
        [k for k in unchanged if k.paper_id in only],
    )


def known_seeds(run: RunPlan, res: Resources, names: Sequence[str]) -> dict[str, KnownSeed]:
    """Seeds loaded before whose full text needs nothing now: same bytes, no parsing needed."""
    if run.mode != "incremental" or run.only is not None:
        return {}
    now = dt.datetime.now(dt.UTC)
    freshness = dt.timedelta(hours=res.settings.freshness_hours)
    return {
        path: KnownSeed(path, stored.paper_id, stored.source_sha256)
        for path, stored in res.loader.stored_seeds(names).items()
        if stored.source_sha256 and needs_nothing(stored, now, freshness, res.store.has)
    }


@dataclass(frozen=True, slots=True)
class ReadBatch:
    """A batch's seed files, read in the flow in order: what goes on, and what stops here."""

    number: int
    documents: int  # seed documents the batch counts as seen
    papers: tuple[PaperRecord, ...]  # to fetch, assemble, validate and load
    rejected: tuple[QuarantineRow, ...]
    unchanged: tuple[str, ...]  # ids of known seeds with the same bytes: nothing to do
    seconds: float  # reading and parsing
    read_at: float = 0.0  # when reading began (epoch seconds)

    @property
    def nothing_to_do(self) -> bool:
        """No paper to fetch, assemble, validate or load, and no document to quarantine."""
        return not self.papers and not self.rejected


def read_batch(
    number: int, paths: Sequence[Path], run: RunPlan, res: Resources, seen: dict[str, str]
) -> ReadBatch:
    """Parse one batch's seeds (not the unchanged ones) and drop ids read before in the run.

    Batches are read one after another, in path order, so the first document of an id wins
    whatever order the batches then finish in.
    """
    started, read_at = time.perf_counter(), time.time()
    root = seeds_root(run.seeds)
    known = known_seeds(run, res, [document_name(p, root) for p in paths])
    # every seed known with the same bytes (a rerun): hashed here, no parse task to start
    parsed = all_unchanged(paths, known, root) or parse_seeds(
        unwalked(paths), unwalked(known), root
    )
    papers, rejected, unchanged = select_papers(parsed, seen, run.only, run.shard)
    if run.only:
        documents = len(papers) + len(unchanged)
    elif run.shard:
        documents = len(papers) + len(unchanged) + len({r.document for r in rejected})
    else:
        documents = len(paths)
    watch.advance("parse", len(paths))
    return ReadBatch(
        number,
        documents,
        tuple(papers),
        tuple(rejected),
        tuple(k.paper_id for k in unchanged),
        time.perf_counter() - started,
        read_at,
    )


def ingest_batch(
    batch: ReadBatch, run: RunPlan, res: Resources, progress: FetchProgress
) -> BatchOutcome:
    """Take one read batch through fetch -> assemble -> validate -> load; returns what it did."""
    clock = _Clock.after_reading(batch)
    papers, rejected = batch.papers, list(batch.rejected)
    skipped = LoadResult(unchanged=batch.unchanged)
    if not papers:
        # every seed unchanged (or rejected): nothing to fetch, assemble, validate or load
        progress.batch_done(batch.number, batch.documents)
        for stage in watch.STAGES[1:]:
            watch.advance(stage, batch.documents)
        if rejected:
            record_refused_batch(res.loader, run.run_id, unwalked(rejected), (), ())
        return _outcome(batch, rejected, skipped, None, (), {}, clock)
    with clock.stage("fetch"):
        stored = read_stored(res.loader, [p.paper_id for p in papers], run.mode == "offline")
        if run.force or any(_seed_changed(p, stored) for p in papers):
            res.prepare_gate()  # Great Expectations imports while the batch fetches, assembles
        ctx = FetchContext(
            res.settings, res.store, res.limiter, progress, batch.number, res.session,
            res.database_url,
        )  # fmt: skip
        fetched = fetch_fulltexts(unwalked(papers), unwalked(stored), run.mode, ctx, run.force)
        # its unchanged and rejected documents count too: the run's bar ends at 100%
        progress.batch_done(batch.number, batch.documents)
    with clock.stage("assemble"):
        pool = res.cpu_pool(len(fetched.bodies))
        loads, problems = assemble(
            unwalked(papers), unwalked(fetched), unwalked(stored), run.force, pool
        )
    rejected += problems
    with clock.stage("validate"):
        verdict = validate_or_skip(res, loads, batch.number)
    rejected += verdict.rejected
    result: LoadResult | None = None
    with clock.stage("load"):
        if verdict.over_threshold:
            result = record_refused_batch(
                res.loader,
                run.run_id,
                unwalked(rejected),
                unwalked(fetched.results),
                unwalked(verdict.report.outcomes),
            )
        else:
            res.store.sync(fetched.stored)  # the bodies the rows will name are on disk first
            result = load(
                res.loader,
                run.run_id,
                unwalked(verdict.loads),
                unwalked(rejected),
                unwalked(fetched.results),
                unwalked(verdict.report.outcomes),
                run.force,
            )
            result = replace(result, unchanged=(*result.unchanged, *skipped.unchanged))
    if result is not None:  # waiting while another batch's load writes is not loading
        clock.set_apart(LOCK_WAIT, "load", result.lock_wait_seconds)
    statuses = Counter(s.status for s in fetched.states.values() if s.requested and s.status)
    return _outcome(batch, rejected, result, verdict, fetched.results, statuses, clock)


@task(name="ingest-batch", cache_policy=NONE)
def run_batch(
    batch: ReadBatch, run: RunPlan, res: Resources, progress: FetchProgress
) -> BatchOutcome:
    """One batch, as a task the flow's task runner runs next to the batches around it."""
    return ingest_batch(batch, run, res, progress)


@task(name="ingest-batch", cache_policy=NONE, retries=1)
def run_batch_on_worker(batch: bytes, run: RunPlan, spec: WorkerSpec) -> BatchOutcome:
    """One batch (a pickled ReadBatch) on a Dask worker, with the worker's own resources.

    The batch travels pickled: prefect neither walks nor rebuilds its records on the way.
    Retried once: a worker that dies mid-batch leaves nothing half-loaded (a batch loads in
    one transaction), so running the batch again on another worker is safe.
    """
    read: ReadBatch = pickle.loads(batch)  # our own pickle, from the flow
    res = worker_resources(spec)
    return ingest_batch(read, run, res, FetchProgress(read.documents, show=False))


class BatchPipeline:
    """Batches in flight at once (bounded), their outcomes handed on in batch order.

    With the flow's thread pool, batch n+1 fetches while batch n assembles (in a process of
    its own) and batch n-1 loads; loads parse their sections side by side and write one at a
    time, under the database's advisory lock. A bound on the batches in flight bounds the
    memory they hold. On a Dask task runner each batch goes to a worker (flows/cluster.py), as
    many in flight as the cluster has workers, at least batches_in_flight.
    """

    def __init__(
        self,
        run: RunPlan,
        res: Resources,
        progress: FetchProgress,
        on_outcome: Callable[[BatchOutcome], object],
    ) -> None:
        self._run, self._res, self._progress = run, res, progress
        self._on_outcome = on_outcome
        self._limit = max(1, res.settings.batches_in_flight)
        self._spec = WorkerSpec.of(res) if on_dask() else None
        if self._spec is not None:
            self._limit = max(self._limit, res.settings.dask_workers)
        self._in_flight: deque[tuple[ReadBatch, Any]] = deque()

    def submit(self, batch: ReadBatch) -> None:
        """Start a batch; waits for the oldest one first when the pipeline is full."""
        while len(self._in_flight) >= self._limit:
            self._done(*self._in_flight.popleft())
        if batch.nothing_to_do:
            # nothing to fetch, assemble, validate or load: done here, no task to start
            future: Any = Future()
            future.set_result(ingest_batch(batch, self._run, self._res, self._progress))
        elif self._spec is not None:
            payload = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
            future = run_batch_on_worker.submit(payload, self._run, self._spec)
        else:
            future = run_batch.submit(
                unwalked(batch), self._run, unwalked(self._res), unwalked(self._progress)
            )
        self._in_flight.append((batch, future))

    def drain(self) -> None:
        """Wait for every batch still in flight."""
        while self._in_flight:
            self._done(*self._in_flight.popleft())

    def _done(self, batch: ReadBatch, future: Any) -> None:
        outcome = future.result()
        if self._spec is not None and not batch.nothing_to_do:  # a worker's: move it here
            self._progress.batch_done(batch.number, batch.documents)
            for stage in watch.STAGES[1:]:
                watch.advance(stage, batch.documents)
        self._on_outcome(outcome)


def _seed_changed(paper: PaperRecord, stored: Mapping[str, StoredPaper]) -> bool:
    """A new paper, or one whose seed changed: the batch will have rows to validate."""
    before = stored.get(paper.paper_id)
    return before is None or before.source_sha256 != paper.seed_sha256


def validate_or_skip(res: Resources, loads: Sequence[PaperLoad], number: int) -> BatchVerdict:
    """The before-load checkpoint, or, when no paper of the batch is written, nothing to do."""
    if all(load.content is None for load in loads):
        get_run_logger().info("batch %d: every paper unchanged, nothing to validate", number)
        return BatchVerdict(tuple(loads), (), QualityReport((), ()), 0, 0.0, False)
    return validate(res.gate(), unwalked(loads), number, res.settings.dq_max_failure_share)


def _outcome(
    batch: ReadBatch,
    rejected: Sequence[QuarantineRow],
    result: LoadResult | None,
    verdict: BatchVerdict | None,
    fetches: Sequence[FetchResult],
    statuses: Mapping[str, int],
    clock: _Clock,
) -> BatchOutcome:
    refused = verdict is not None and verdict.over_threshold
    return BatchOutcome(
        number=batch.number,
        documents=batch.documents,
        papers=(*(p.paper_id for p in batch.papers), *batch.unchanged),
        quarantined=sum(1 for r in rejected if r.rejected_whole),
        quarantine_rows=len(rejected),
        fetched=len(fetches),
        fetch_statuses=dict(statuses),
        result=result,  # a refused batch's result holds only the fetch log it wrote
        refused=verdict.message() if verdict is not None and refused else None,
        outcomes=() if verdict is None else verdict.report.outcomes,
        seconds=clock.seconds,
        spans=clock.spans,
    )
