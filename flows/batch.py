"""ingest_batch: one batch of seed files through parse -> fetch -> assemble -> validate -> load.

A batch is the unit of work: its records live only inside `ingest_batch`, which hands back a
small `BatchOutcome` (counts, quality outcomes, stage times) for the run summary to fold in.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from prefect import get_run_logger

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
)
from flows.resources import Resources
from flows.seeds import SeedBatch, drop_duplicate_ids
from flows.settings import Settings
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


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What a run does: which seeds, in what batches, in which mode."""

    run_id: uuid.UUID
    seeds: Path
    batch_size: int
    mode: Mode
    force: bool  # rewrite papers even when unchanged
    only: frozenset[str] | None  # just these paper ids

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
        )


def run_mode(offline: bool, full_refresh: bool, only: Sequence[str] | None) -> Mode:
    """How this run treats full texts: reuse fresh ones, refetch all, or stay offline."""
    if offline:
        return "offline"
    return "full_refresh" if full_refresh or only else "incremental"


class _Clock:
    """Wall seconds per stage of one batch."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def batched(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    """Consecutive slices of at most size items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def select_papers(
    parsed: SeedBatch, seen: dict[str, str], only: frozenset[str] | None
) -> tuple[list[PaperRecord], list[QuarantineRow], list[KnownSeed]]:
    """The batch's papers to process, its rejected documents, and its unchanged seeds.

    The first document of each id wins, in path order, parsed or not; with `only`, just the
    named papers.
    """
    papers, duplicates = drop_duplicate_ids(parsed.papers, seen, parsed.ids)
    dropped = {r.document for r in duplicates}
    unchanged = [k for k in parsed.unchanged if k.seed_path not in dropped]
    rejected = [*parsed.rejected, *duplicates]
    if only is None:
        return papers, rejected, unchanged
    return (
        [p for p in papers if p.paper_id in only],
        [r for r in rejected if r.paper_id in only],
        [k for k in unchanged if k.paper_id in only],
    )


def known_seeds(run: RunPlan, res: Resources, paths: Sequence[Path]) -> dict[str, KnownSeed]:
    """Seeds loaded before whose full text needs nothing now: same bytes, no parsing needed."""
    if run.mode != "incremental" or run.only is not None:
        return {}
    now = dt.datetime.now(dt.UTC)
    freshness = dt.timedelta(hours=res.settings.freshness_hours)
    return {
        path: KnownSeed(path, stored.paper_id, stored.source_sha256)
        for path, stored in res.loader.stored_seeds([str(p) for p in paths]).items()
        if stored.source_sha256 and needs_nothing(stored, now, freshness, res.store.has)
    }


def ingest_batch(
    number: int,
    paths: Sequence[Path],
    run: RunPlan,
    res: Resources,
    seen: dict[str, str],
    progress: FetchProgress,
) -> BatchOutcome:
    """Take one batch of seed files through every stage; returns what it did."""
    clock = _Clock()
    settings = res.settings
    before = (number - 1) * run.batch_size
    with clock.stage("parse"):
        parsed = parse_seeds(paths, known_seeds(run, res, paths))
        papers, rejected, unchanged = select_papers(parsed, seen, run.only)
    skipped = LoadResult(unchanged=tuple(k.paper_id for k in unchanged))
    if not papers:
        # every seed unchanged (or rejected): nothing to fetch, assemble, validate or load
        progress.papers_done(before + len(paths))
        if rejected:
            record_refused_batch(res.loader, run.run_id, unwalked(rejected), (), ())
        return _outcome(number, paths, run, [], skipped, rejected, skipped, None, (), {}, clock)
    with clock.stage("fetch"):
        ids = [p.paper_id for p in papers]
        stored = read_stored(res.loader, ids, run.mode == "offline")
        ctx = FetchContext(settings, res.store, res.limiter, progress, before, res.session)
        fetched = fetch_fulltexts(unwalked(papers), unwalked(stored), run.mode, ctx, run.force)
    with clock.stage("assemble"):
        loads, problems = assemble(unwalked(papers), unwalked(fetched), unwalked(stored), run.force)
    rejected += problems
    with clock.stage("validate"):
        verdict = validate_or_skip(res, loads, number)
    rejected += verdict.rejected
    result: LoadResult | None = None
    with clock.stage("load"):
        if verdict.over_threshold:
            record_refused_batch(
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
    statuses = Counter(s.status for s in fetched.states.values() if s.requested and s.status)
    return _outcome(
        number, paths, run, papers, skipped, rejected, result, verdict, fetched.results, statuses,
        clock,
    )  # fmt: skip


def validate_or_skip(res: Resources, loads: Sequence[PaperLoad], number: int) -> BatchVerdict:
    """The before-load checkpoint, or, when no paper of the batch is written, nothing to do."""
    if all(load.content is None for load in loads):
        get_run_logger().info("batch %d: every paper unchanged, nothing to validate", number)
        return BatchVerdict(tuple(loads), (), QualityReport((), ()), 0, 0.0, False)
    return validate(res.gate(), unwalked(loads), number, res.settings.dq_max_failure_share)


def _outcome(
    number: int,
    paths: Sequence[Path],
    run: RunPlan,
    papers: Sequence[PaperRecord],
    skipped: LoadResult,
    rejected: Sequence[QuarantineRow],
    result: LoadResult | None,
    verdict: BatchVerdict | None,
    fetches: Sequence[FetchResult],
    statuses: Mapping[str, int],
    clock: _Clock,
) -> BatchOutcome:
    refused = verdict is not None and verdict.over_threshold
    return BatchOutcome(
        number=number,
        documents=len(papers) + len(skipped.unchanged) if run.only else len(paths),
        papers=(*(p.paper_id for p in papers), *skipped.unchanged),
        quarantined=sum(1 for r in rejected if r.rejected_whole),
        quarantine_rows=len(rejected),
        fetched=len(fetches),
        fetch_statuses=dict(statuses),
        result=None if refused else result,
        refused=verdict.message() if verdict is not None and refused else None,
        outcomes=() if verdict is None else verdict.report.outcomes,
        seconds=clock.seconds,
    )
