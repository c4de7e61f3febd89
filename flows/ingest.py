"""The ingest flow: seeds -> fetch -> parse -> normalise -> validate -> load -> report."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows import report
from flows.db import database_url
from flows.fetch import PerHostRateLimiter
from flows.load import PostgresLoader, RunCounts
from flows.migrate import upgrade
from flows.plan import Mode
from flows.quality import SUITES_DIR, QualityGate
from flows.quarantine import QuarantineRow
from flows.rawstore import RawStore
from flows.seeds import PaperRecord, SeedBatch, discover_seeds, drop_duplicate_ids
from flows.settings import get_settings
from flows.tasks import (
    FetchProgress,
    assemble,
    fetch_fulltexts,
    load,
    parse_seeds,
    read_stored,
    record_refused_batch,
    unwalked,
    validate,
    validate_tables,
)

T = TypeVar("T")

# tables whose rows carry the run that wrote them: the after-load checkpoint counts them
RUN_TABLES = (
    "core.papers",
    "core.paper_authors",
    "core.key_findings",
    "core.paper_entities",
    "core.paper_entity_names",
    "core.sections",
    "core.paper_references",
    "core.captions",
    "core.entity_mentions",
    "raw.fetches",
)


class DataQualityError(RuntimeError):
    """The run loaded what it could, but a quality gate refused a batch or the tables."""

    def __init__(self, summary: report.RunSummary) -> None:
        super().__init__("; ".join(summary.problems))
        self.summary = summary


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most size items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_mode(offline: bool, full_refresh: bool, only: Sequence[str] | None) -> Mode:
    """How this run treats full texts: reuse fresh ones, refetch all, or stay offline."""
    if offline:
        return "offline"
    return "full_refresh" if full_refresh or only else "incremental"


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


def _run_name() -> str:
    return f"ingest-{dt.datetime.now(dt.UTC):%Y-%m-%d}"


@flow(name="ingest", flow_run_name=_run_name, log_prints=False)
def ingest(
    seeds: str | None = None,
    batch_size: int | None = None,
    offline: bool = False,
    full_refresh: bool = False,
    only: list[str] | None = None,
) -> report.RunSummary:
    """Read every seed document under `seeds`, fetch full texts and load PostgreSQL.

    offline: no HTTP, full texts come from the raw layer. full_refresh: refetch and rewrite
    every paper. only: process just these paper ids (refetched and rewritten).
    """
    started = time.perf_counter()
    logger = get_run_logger()
    settings = get_settings()
    seeds_path = Path(seeds) if seeds else settings.seeds_dir
    size = batch_size or settings.batch_size
    mode = run_mode(offline, full_refresh, only)
    force = mode == "full_refresh" or bool(full_refresh)
    wanted = frozenset(only) if only else None
    url = database_url(settings)
    upgrade(url)
    loader = PostgresLoader(url)
    run_id = uuid.UUID(flow_run.id) if flow_run.id else uuid.uuid4()
    loader.start_run(run_id, flow_run.name, str(seeds_path))
    counts = RunCounts()
    times = report.StageTimes()
    quality = report.DataQuality()
    failures: list[str] = []  # what fails the run: refused batches, failed after-load checks
    notes: list[str] = []  # what the user should know
    found: set[str] = set()
    try:
        paths = discover_seeds(seeds_path)
        if not paths:
            raise FileNotFoundError(f"no seed documents (*.md, *.txt) under {seeds_path}")
        logger.info(
            "%d seed documents under %s, batches of %d, %s", len(paths), seeds_path, size, mode
        )
        store = RawStore(settings.raw_dir)
        gate = QualityGate(
            SUITES_DIR,
            settings.data_docs_dir,
            reference_count_gap_tolerance=settings.reference_count_gap_tolerance,
        )
        limiter = PerHostRateLimiter(settings.per_host_rate)
        progress = FetchProgress(len(paths))
        seen_ids: dict[str, str] = {}
        for number, batch_paths in enumerate(batched(paths, size), 1):
            with times.stage("parse"):
                papers, rejected = select_papers(parse_seeds(batch_paths), seen_ids, wanted)
            found.update(p.paper_id for p in papers)
            ids = [p.paper_id for p in papers]
            with times.stage("fetch"):
                stored = read_stored(loader, ids, mode == "offline")
                fetched = fetch_fulltexts(
                    unwalked(papers),
                    unwalked(stored),
                    mode,
                    settings,
                    store,
                    limiter,
                    progress,
                    (number - 1) * size,
                )
            with times.stage("assemble"):
                loads, problems_found = assemble(
                    unwalked(papers), unwalked(fetched), unwalked(stored), store, force
                )
            with times.stage("validate"):
                verdict = validate(gate, unwalked(loads), number, settings.dq_max_failure_share)
            rejected += [*problems_found, *verdict.rejected]
            quality.add(verdict.report.outcomes)
            with times.stage("load"):
                if verdict.over_threshold:
                    failures.append(f"batch {number} not loaded: {verdict.message()}")
                    logger.error(failures[-1])
                    record_refused_batch(
                        loader,
                        run_id,
                        unwalked(rejected),
                        unwalked(fetched.results),
                        unwalked(verdict.report.outcomes),
                    )
                else:
                    result = load(
                        loader,
                        run_id,
                        unwalked(verdict.loads),
                        unwalked(rejected),
                        unwalked(fetched.results),
                        unwalked(verdict.report.outcomes),
                        force,
                    )
                    counts.add(result)
            counts.seen += len(papers) if wanted else len(batch_paths)
            counts.quarantined += sum(1 for r in rejected if r.rejected_whole)
            counts.fetch_statuses.update(
                Counter(s.status for s in fetched.states.values() if s.requested and s.status)
            )
            logger.info(
                "batch %d: %d papers, %d fetched, %d quarantine rows",
                number, len(papers), len(fetched.results), len(rejected),
            )  # fmt: skip
            # let this batch go before the next one is read: one batch in memory at a time
            del papers, rejected, stored, fetched, loads, problems_found, verdict
        if wanted is not None and (missing := sorted(wanted - found)):
            notes.append(f"--only ids not found among the seeds: {', '.join(missing)}")
            logger.warning(notes[-1])
        with times.stage("validate"):
            expected = {t: counts.rows_written.get(t, 0) for t in RUN_TABLES}
            after = validate_tables(gate, loader, url, run_id, expected)
        quality.add(after.outcomes)
        failures += report.failed_after_load(after)
        counts.dq_failed_expectations = len(quality.failed)
        counts.row_counts = loader.row_counts()
        with times.stage("report"):
            docs = gate.build_data_docs()
    except BaseException as exc:
        loader.finish_run(run_id, "failed", counts, f"{type(exc).__name__}: {exc}")
        raise
    status = "failed" if failures else "completed"
    problems = [*failures, *notes]
    loader.finish_run(run_id, status, counts, "; ".join(problems) or None)
    shown, total = loader.quarantine_for(run_id, report.QUARANTINE_SHOWN)
    summary = report.summarise(
        run_id, flow_run.name, status, url, counts, shown, total, quality, docs, problems, times,
        time.perf_counter() - started,
    )  # fmt: skip
    report.publish(summary)
    logger.info(summary.headline())
    logger.info(quality.headline())
    logger.info("data docs: %s", docs)
    if failures:
        raise DataQualityError(summary)
    return summary
