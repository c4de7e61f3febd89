"""The ingest flow's Prefect tasks: thin wrappers over the stages' plain functions.

One task run per stage per batch (never per paper), so a 10,000-paper run in batches of 1,000
makes 10 x 6 + 1 task runs. The database steps retry when the connection drops; the fetcher
retries each request itself, so its task does not.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import psycopg
from prefect import State, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.utilities.annotations import quote

from flows.assemble import assemble_batch
from flows.fetch.stage import FetchContext, fetch_batch
from flows.load.loader import PostgresLoader
from flows.quality.results import QualityReport
from flows.quality.verdict import BatchVerdict, check_batch
from flows.records import (
    ExpectationOutcome,
    FetchedBatch,
    FetchResult,
    KnownSeed,
    LoadResult,
    Mode,
    PaperLoad,
    PaperRecord,
    QuarantineRow,
    StoredPaper,
)
from flows.seeds import SeedBatch, parse_batch

if TYPE_CHECKING:
    from flows.quality.process import Gate

T = TypeVar("T")


def unwalked(batch: T) -> T:
    """Pass a batch into a task without prefect walking every record in it.

    Prefect visits each task argument recursively looking for upstream futures; for a batch
    of thousands of nested records that visit costs more than the task's work.
    """
    return cast(T, quote(batch))


def _transient(task: object, task_run: object, state: State[object]) -> bool:
    # retry a load only when the database went away, never for a bug or bad data
    try:
        state.result()
    except psycopg.OperationalError:
        return True
    except BaseException:
        return False
    return False


# the database steps retry when the connection dropped, never for a bug or bad data
DB_RETRIES: dict[str, Any] = {
    "cache_policy": NONE,
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_condition_fn": _transient,
}


@task(name="parse-seeds", cache_policy=NONE)
def parse_seeds(paths: Sequence[Path], known: Mapping[str, KnownSeed], root: Path) -> SeedBatch:
    """Parse one batch of seed files (a known seed whose bytes are unchanged is not parsed)."""
    return parse_batch(paths, known, root)


@task(name="read-stored-state", **DB_RETRIES)
def read_stored(
    loader: PostgresLoader, paper_ids: Sequence[str], offline: bool
) -> dict[str, StoredPaper]:
    """What earlier runs stored about these papers."""
    return loader.stored_papers(paper_ids, raw_fallback=offline)


@task(name="fetch-fulltexts", cache_policy=NONE)
def fetch_fulltexts(
    papers: Sequence[PaperRecord],
    stored: Mapping[str, StoredPaper],
    mode: Mode,
    ctx: FetchContext,
    force: bool,
) -> FetchedBatch:
    """Fetch the full texts this batch needs, politely; every failure is a state, not a raise."""
    return fetch_batch(papers, stored, mode, ctx, force=force)


@task(name="assemble-papers", cache_policy=NONE)
def assemble(
    papers: Sequence[PaperRecord],
    fetched: FetchedBatch,
    stored: Mapping[str, StoredPaper],
    force: bool,
    pool: Executor | None,
) -> tuple[list[PaperLoad], list[QuarantineRow]]:
    """Parse full texts, normalise entities and count mentions for the papers that changed.

    With a process pool the work runs there, on another core, while this process fetches and
    loads other batches; only the states and the bodies' names travel, not the fetch log: the
    process reads each body from the raw store itself.
    """
    if pool is None:
        return assemble_batch(papers, fetched, stored, force=force)
    slim = FetchedBatch(fetched.states, (), fetched.bodies)
    try:
        return pool.submit(assemble_batch, papers, slim, stored, force=force).result()
    except BrokenProcessPool as exc:
        # the assemble process died (killed, out of memory): this batch assembles here
        get_run_logger().warning("assemble process lost (%s); assembling this batch here", exc)
        return assemble_batch(papers, fetched, stored, force=force)


@task(name="validate-batch", cache_policy=NONE)
def validate(
    gate: Gate, loads: Sequence[PaperLoad], batch: int, max_failure_share: float
) -> BatchVerdict:
    """The before-load checkpoint: which rows may load."""
    return check_batch(gate, loads, batch, max_failure_share)


@task(name="load-batch", **DB_RETRIES)
def load(
    loader: PostgresLoader,
    run_id: uuid.UUID,
    loads: Sequence[PaperLoad],
    rejected: Sequence[QuarantineRow],
    fetches: Sequence[FetchResult],
    dq: Sequence[ExpectationOutcome],
    force: bool,
) -> LoadResult:
    """Load one batch, with its quarantine rows, fetch log and dq results, in one transaction."""
    return loader.load_batch(run_id, loads, rejected, fetches, dq, force=force)


@task(name="record-refused-batch", **DB_RETRIES)
def record_refused_batch(
    loader: PostgresLoader,
    run_id: uuid.UUID,
    rejected: Sequence[QuarantineRow],
    fetches: Sequence[FetchResult],
    dq: Sequence[ExpectationOutcome],
) -> LoadResult:
    """A batch the quality gate refused: record why, load none of its rows."""
    return loader.record_rejected_batch(run_id, rejected, fetches, dq)


@task(name="validate-tables", cache_policy=NONE)
def validate_tables(
    gate: Gate,
    loader: PostgresLoader,
    run_id: uuid.UUID,
    expected: Mapping[str, int],
) -> QualityReport:
    """The after-load checkpoint on the PostgreSQL tables; its results go to ops.dq_results."""
    result = gate.validate_tables(loader.url, run_id, 0, expected)
    loader.record_dq_results(run_id, result.outcomes)
    return result
