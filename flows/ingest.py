"""The ingest flow: seeds -> parse -> normalise -> load -> report, in batches."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import psycopg
from prefect import State, flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from flows import report
from flows.db import database_url
from flows.entities import normalise_entities
from flows.load import LoadResult, PaperLoad, PostgresLoader, RunCounts
from flows.migrate import upgrade
from flows.quarantine import QuarantineRow
from flows.seeds import (
    PaperRecord,
    SeedBatch,
    discover_seeds,
    drop_duplicate_ids,
    parse_batch,
)
from flows.settings import get_settings

T = TypeVar("T")


@task(name="parse-seeds", cache_policy=NONE)
def parse_seeds(paths: Sequence[Path]) -> SeedBatch:
    """Parse one batch of seed files."""
    return parse_batch(paths)


@task(name="normalise-entities", cache_policy=NONE)
def normalise(papers: Sequence[PaperRecord]) -> tuple[list[PaperLoad], list[QuarantineRow]]:
    """Turn each paper's listed entities into CURIEs; bad identifiers are quarantined."""
    return normalise_papers(papers)


def _transient(task: object, task_run: object, state: State[object]) -> bool:
    # retry a load only when the database went away, never for a bug or bad data
    try:
        state.result()
    except psycopg.OperationalError:
        return True
    except BaseException:
        return False
    return False


@task(
    name="load-batch",
    cache_policy=NONE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=_transient,
)
def load(
    loader: PostgresLoader,
    run_id: uuid.UUID,
    papers: Sequence[PaperLoad],
    rejected: Sequence[QuarantineRow],
) -> LoadResult:
    """Load one batch in one transaction."""
    return loader.load_batch(run_id, papers, rejected)


def normalise_papers(
    papers: Sequence[PaperRecord],
) -> tuple[list[PaperLoad], list[QuarantineRow]]:
    """Normalise every paper of a batch into the loader's input records."""
    loads: list[PaperLoad] = []
    rejected: list[QuarantineRow] = []
    for paper in papers:
        entities, problems = normalise_entities(paper.paper_id, paper.entities)
        rejected.extend(
            QuarantineRow(
                paper.seed_path,
                "normalise",
                p.reason,
                False,
                paper.paper_id,
                p.line,
                {"identifier": p.curie_or_raw},
            )
            for p in problems
        )
        loads.append(PaperLoad(paper, tuple(entities), content_hash(paper.seed_sha256)))
    return loads, rejected


def content_hash(*parts: str | None) -> str:
    """One hash over every input a paper's rows derive from."""
    return hashlib.sha256("|".join(p or "" for p in parts).encode()).hexdigest()


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most size items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _run_name() -> str:
    return f"ingest-{dt.datetime.now(dt.UTC):%Y-%m-%d}"


@flow(name="ingest", flow_run_name=_run_name, log_prints=False)
def ingest(seeds: str | None = None, batch_size: int | None = None) -> report.RunSummary:
    """Read every seed document under `seeds` and load it into PostgreSQL."""
    logger = get_run_logger()
    settings = get_settings()
    seeds_path = Path(seeds) if seeds else settings.seeds_dir
    size = batch_size or settings.batch_size
    url = database_url(settings)
    upgrade(url)
    loader = PostgresLoader(url)
    run_id = uuid.UUID(flow_run.id) if flow_run.id else uuid.uuid4()
    loader.start_run(run_id, flow_run.name, str(seeds_path))
    counts = RunCounts()
    try:
        paths = discover_seeds(seeds_path)
        if not paths:
            raise FileNotFoundError(f"no seed documents (*.md, *.txt) under {seeds_path}")
        logger.info("%d seed documents under %s, batches of %d", len(paths), seeds_path, size)
        seen_ids: dict[str, str] = {}
        for batch_paths in batched(paths, size):
            parsed = parse_seeds(batch_paths)
            papers, duplicates = drop_duplicate_ids(parsed.papers, seen_ids)
            loads, bad_entities = normalise(papers)
            rejected = [*parsed.rejected, *duplicates, *bad_entities]
            result = load(loader, run_id, loads, rejected)
            counts.seen += len(batch_paths)
            counts.quarantined += sum(1 for r in rejected if r.rejected_whole)
            counts.add(result)
            logger.info(
                "batch: %d new, %d updated, %d unchanged, %d quarantine rows",
                len(result.new), len(result.updated), len(result.unchanged), len(rejected),
            )  # fmt: skip
        counts.row_counts = loader.row_counts()
    except BaseException as exc:
        loader.finish_run(run_id, "failed", counts, f"{type(exc).__name__}: {exc}")
        raise
    loader.finish_run(run_id, "completed", counts)
    summary = report.summarise(run_id, flow_run.name, url, counts, loader.quarantine_for(run_id))
    report.publish(summary)
    logger.info(summary.headline())
    return summary
