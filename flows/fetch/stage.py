"""fetch_batch: one batch's full texts through plan -> fetch -> states, with the bodies in use.

Every failure is a state, never a raise. The bodies the assemble stage will read (papers whose
inputs changed, or all of them on a full refresh) are named with the states, not held: each is
written to the raw store as it arrives and read back from there by whoever parses it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import requests

from flows.fetch.client import Fetcher
from flows.fetch.guard import host_of
from flows.fetch.limits import PerHostRateLimiter, host_slots
from flows.fetch.plan import needs_reading, plan_fetches, state_after_fetch
from flows.fetch.policy import FetchPolicy
from flows.fetch.progress import FetchProgress
from flows.fetch.rawstore import RawStore, StoredBodies
from flows.records import FetchedBatch, FetchResult, FulltextState, Mode, PaperRecord, StoredPaper
from flows.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FetchContext:
    """What fetching needs beyond the batch: settings, the store, limits and progress."""

    settings: Settings
    store: RawStore
    limiter: PerHostRateLimiter
    progress: FetchProgress
    batch: int = 1  # the batch's number in the run, for the progress bar
    session: requests.Session | None = None  # the run's one session; None: one per batch
    database_url: str = ""  # where the fetch slots live (advisory locks); "": no slots


def fetch_batch(
    papers: Sequence[PaperRecord],
    stored: Mapping[str, StoredPaper],
    mode: Mode,
    ctx: FetchContext,
    *,
    force: bool = False,
) -> FetchedBatch:
    """Fetch the full texts this batch needs, politely, and hand on the bodies in use."""
    now = dt.datetime.now(dt.UTC)
    freshness = dt.timedelta(hours=ctx.settings.freshness_hours)
    plan = plan_fetches(papers, stored, mode, now, freshness, ctx.store.has)
    states: dict[str, FulltextState] = dict(plan.kept)
    results: tuple[FetchResult, ...] = ()
    if plan.requests:
        hosts = sorted({host_of(r.url) for r in plan.requests} - {""})
        policy = FetchPolicy.from_settings(ctx.settings, seed_hosts=hosts)
        logger.info(
            "fetching %d full texts from %s (%d kept from earlier runs)",
            len(plan.requests), ", ".join(hosts) or "-", len(plan.kept),
        )  # fmt: skip
        on_progress = ctx.progress.batch(ctx.batch, len(papers))
        with (
            host_slots(
                ctx.database_url, hosts if ctx.database_url else [], ctx.settings.fetch_host_slots
            ),  # fmt: skip
            Fetcher(policy, ctx.store, ctx.session, limiter=ctx.limiter) as fetcher,
        ):
            for host in hosts:  # the slot's last holder may be another process, just done
                ctx.limiter.taken_over(host)
            results = tuple(fetcher.fetch_many(plan.requests, on_progress=on_progress))
        for result in results:
            states[result.paper_id] = state_after_fetch(result, stored.get(result.paper_id), now)
    else:
        ctx.progress.batch_done(ctx.batch, len(papers))
    bodies = bodies_to_read(papers, states, stored, ctx.store, force)
    return FetchedBatch(states, results, bodies)


def bodies_to_read(
    papers: Sequence[PaperRecord],
    states: Mapping[str, FulltextState],
    stored: Mapping[str, StoredPaper],
    store: RawStore,
    force: bool,
) -> StoredBodies:
    """The bodies assemble will read: those of the papers whose inputs changed (all on force).

    Named, not read: whoever parses them reads each from the raw store, whether this batch
    fetched it or an earlier run kept it, and finds there whether it is missing or damaged.
    """
    wanted = {
        state.sha256
        for paper in papers
        if (state := states[paper.paper_id]).sha256 is not None
        and (force or needs_reading(paper, state, stored.get(paper.paper_id)))
    }
    return StoredBodies(store, wanted)
