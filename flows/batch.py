"""ingest_batch: one batch of seed files through parse -> fetch -> assemble -> validate -> load.

A batch is the unit of work: its records live only inside `ingest_batch`, which hands back a
small `BatchOutcome` (counts, quality outcomes, stage times) for the run summary to fold in.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flows.fetch.progress import FetchProgress
from flows.fetch.stage import FetchContext
from flows.records import BatchOutcome, LoadResult, Mode, PaperRecord, QuarantineRow
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
) -> tuple[list[PaperRecord], list[QuarantineRow]]:
    """The batch's papers to process (first document per id, only the named ones if any)."""
    papers, duplicates = drop_duplicate_ids(parsed.papers, seen)
    rejected = [*parsed.rejected, *duplicates]
    if only is None:
        return papers, rejected
    return (
        [p for p in papers if p.paper_id in only],
        [r for r in rejected if r.paper_id in only],
    )


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
    with clock.stage("parse"):
        papers, rejected = select_papers(parse_seeds(paths), seen, run.only)
    with clock.stage("fetch"):
        ids = [p.paper_id for p in papers]
        stored = read_stored(res.loader, ids, run.mode == "offline")
        before = (number - 1) * run.batch_size
        ctx = FetchContext(settings, res.store, res.limiter, progress, before, res.session)
        fetched = fetch_fulltexts(unwalked(papers), unwalked(stored), run.mode, ctx, run.force)
    with clock.stage("assemble"):
        loads, problems = assemble(unwalked(papers), unwalked(fetched), unwalked(stored), run.force)
    with clock.stage("validate"):
        verdict = validate(res.gate(), unwalked(loads), number, settings.dq_max_failure_share)
    rejected += [*problems, *verdict.rejected]
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
    statuses = Counter(s.status for s in fetched.states.values() if s.requested and s.status)
    return BatchOutcome(
        number=number,
        documents=len(papers) if run.only else len(paths),
        papers=tuple(ids),
        quarantined=sum(1 for r in rejected if r.rejected_whole),
        quarantine_rows=len(rejected),
        fetched=len(fetched.results),
        fetch_statuses=dict(statuses),
        result=result,
        refused=verdict.message() if verdict.over_threshold else None,
        outcomes=verdict.report.outcomes,
        seconds=clock.seconds,
    )
