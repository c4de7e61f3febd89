"""The ingest flow's Prefect tasks: thin wrappers over the stages' plain functions.

One task run per stage per batch (never per paper), so a 10,000-paper run in batches of 1,000
makes 10 x 6 + 1 task runs. The database steps retry when the connection drops; the fetcher
retries each request itself, so its task does not.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import psycopg
from prefect import State, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NONE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.utilities.annotations import quote

from flows.fetch import Fetcher, FetchPolicy, FetchResult, PerHostRateLimiter, host_of
from flows.load import LoadResult, PostgresLoader
from flows.papers import PaperLoad, assemble_batch
from flows.plan import FulltextState, Mode, StoredPaper, plan_fetches, state_after_fetch
from flows.quality import ExpectationOutcome, QualityGate, QualityReport
from flows.quarantine import QuarantineRow
from flows.rawstore import RawStore
from flows.seeds import PaperRecord, SeedBatch, parse_batch
from flows.settings import Settings
from flows.validate import BatchVerdict, check_batch

FETCH_LIMIT_PREFIX = "tomeflow-fetch-"
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


@dataclass(frozen=True, slots=True)
class FetchedBatch:
    """The full-text state of every paper of a batch, and the fetches made for it."""

    states: Mapping[str, FulltextState]
    results: tuple[FetchResult, ...]


class FetchProgress:
    """One progress artifact per run, moved along as batches fetch."""

    def __init__(self, total_papers: int) -> None:
        self._total = max(total_papers, 1)
        self._artifact_id: uuid.UUID | None = None
        self._shown = -1.0
        self._last = -math.inf  # the first update always shows

    def batch(self, papers_before: int, batch_papers: int) -> Callable[[int, int], None]:
        """A callback for Fetcher.fetch_many covering one batch of the run."""

        def on_progress(done: int, total: int) -> None:
            self.papers_done(papers_before + batch_papers * done / total)

        return on_progress

    def papers_done(self, papers: float) -> None:
        """Show this many papers of the run as done; updates at most twice a second."""
        percent = 100.0 * papers / self._total
        now = time.monotonic()
        if percent < 100 and (percent - self._shown < 1 or now - self._last < 0.5):
            return
        self._shown, self._last = percent, now
        if self._artifact_id is None:
            created = create_progress_artifact(
                percent, key="ingest-fetch-progress", description="full texts fetched"
            )
            self._artifact_id = created if isinstance(created, uuid.UUID) else None
        else:
            update_progress_artifact(self._artifact_id, percent)


@task(name="parse-seeds", cache_policy=NONE)
def parse_seeds(paths: Sequence[Path]) -> SeedBatch:
    """Parse one batch of seed files."""
    return parse_batch(paths)


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
    settings: Settings,
    store: RawStore,
    limiter: PerHostRateLimiter,
    progress: FetchProgress,
    papers_before: int,
) -> FetchedBatch:
    """Fetch the full texts this batch needs, politely; every failure is a state, not a raise."""
    now = dt.datetime.now(dt.UTC)
    freshness = dt.timedelta(hours=settings.freshness_hours)
    plan = plan_fetches(papers, stored, mode, now, freshness, store.has)
    if not plan.requests:
        progress.papers_done(papers_before + len(papers))
        return FetchedBatch(plan.kept, ())
    hosts = sorted({host_of(r.url) for r in plan.requests} - {""})
    policy = FetchPolicy.from_settings(settings, seed_hosts=hosts)
    get_run_logger().info(
        "fetching %d full texts from %s (%d kept from earlier runs)",
        len(plan.requests), ", ".join(hosts) or "-", len(plan.kept),
    )  # fmt: skip
    on_progress = progress.batch(papers_before, len(papers))
    with (
        host_slots(hosts, settings.fetch_host_slots),
        Fetcher(policy, store, limiter=limiter) as fetcher,
    ):
        results = fetcher.fetch_many(plan.requests, on_progress=on_progress)
    states = dict(plan.kept)
    for result in results:
        states[result.paper_id] = state_after_fetch(result, stored.get(result.paper_id), now)
    return FetchedBatch(states, tuple(results))


@contextmanager
def host_slots(hosts: Sequence[str], slots: int) -> Iterator[None]:
    """Hold one slot of each host's Prefect global concurrency limit while fetching from it.

    The limit (`tomeflow-fetch-<host>`, created with `slots` slots when missing; an operator
    may change it in the UI) bounds how many batches of all runs and workers fetch from one
    host at once, so the per-host rate of one process is the rate the host sees.
    """
    names = [f"{FETCH_LIMIT_PREFIX}{h}" for h in hosts]
    if not names:
        yield
        return
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

                with suppress(ObjectAlreadyExists):  # another run made it first
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=slots)
                    )
    # a crashed run holds its slot until the lease lapses: a minute, not the default five
    with concurrency(names, occupy=1, lease_duration=60, strict=True):
        yield


@task(name="assemble-papers", cache_policy=NONE)
def assemble(
    papers: Sequence[PaperRecord],
    fetched: FetchedBatch,
    stored: Mapping[str, StoredPaper],
    store: RawStore,
    force: bool,
) -> tuple[list[PaperLoad], list[QuarantineRow]]:
    """Parse full texts, normalise entities and count mentions for the papers that changed."""
    return assemble_batch(papers, fetched.states, stored, store, force=force)


@task(name="validate-batch", cache_policy=NONE)
def validate(
    gate: QualityGate, loads: Sequence[PaperLoad], batch: int, max_failure_share: float
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
) -> None:
    """A batch the quality gate refused: record why, load none of its rows."""
    loader.record_rejected_batch(run_id, rejected, fetches, dq)


@task(name="validate-tables", cache_policy=NONE)
def validate_tables(
    gate: QualityGate,
    loader: PostgresLoader,
    url: str,
    run_id: uuid.UUID,
    expected: Mapping[str, int],
) -> QualityReport:
    """The after-load checkpoint on the PostgreSQL tables; its results go to ops.dq_results."""
    result = gate.validate_tables(url, run_id, 0, expected)
    loader.record_dq_results(run_id, result.outcomes)
    return result
