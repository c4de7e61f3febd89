"""Which papers need their full text fetched this run, and the full-text state each ends with.

A run reads every seed; what it does with a paper's full text depends on the run's mode:

- `incremental` (the default): a paper whose seed is unchanged (same sha256), whose full-text
  URL is unchanged and whose full text was fetched (or confirmed by a 304) within the
  freshness window is not requested at all: it keeps its stored body. Every other paper is
  requested, conditionally (If-None-Match / If-Modified-Since) when a body is stored for the
  same URL. A paper whose last fetch failed is always requested again.
- `full_refresh`: every paper is requested unconditionally and every paper is rewritten.
- `offline`: nothing is requested; each paper uses the body the raw layer holds for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from flows.records import (
    GOOD_STATUSES,
    NEVER_REQUESTED,
    NO_URL,
    STATUSES,
    FetchRequest,
    FetchResult,
    FulltextState,
    Mode,
    PaperRecord,
    StoredPaper,
)


def content_hash(seed_sha256: str, fulltext_sha256: str | None) -> str:
    """One hash over every input a paper's rows derive from: the seed and the body in use."""
    return hashlib.sha256(f"{seed_sha256}|{fulltext_sha256 or ''}".encode()).hexdigest()


def needs_reading(paper: PaperRecord, state: FulltextState, before: StoredPaper | None) -> bool:
    """Whether a paper's inputs differ from what is loaded, so its content must be read."""
    digest = content_hash(paper.seed_sha256, state.sha256)
    return before is None or before.content_sha256 != digest


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """The requests to send, and the state of every paper that needs none."""

    requests: tuple[FetchRequest, ...]
    kept: Mapping[str, FulltextState]  # paper id -> state, for papers not requested


def plan_fetches(
    papers: Sequence[PaperRecord],
    stored: Mapping[str, StoredPaper],
    mode: Mode,
    now: dt.datetime,
    freshness: dt.timedelta,
    has_body: Callable[[str], bool],
) -> FetchPlan:
    """Decide, for each paper, whether to request its full text or keep what is stored."""
    requests: list[FetchRequest] = []
    kept: dict[str, FulltextState] = {}
    for paper in papers:
        before = stored.get(paper.paper_id)
        url = paper.fulltext_url
        if not url:
            kept[paper.paper_id] = NO_URL
        elif mode == "offline" or (
            mode == "incremental" and _fresh(paper, before, now, freshness, has_body)
        ):
            kept[paper.paper_id] = _kept(before, url)
        elif mode == "incremental" and before is not None and before.fulltext_url == url:
            requests.append(
                FetchRequest(
                    paper.paper_id,
                    url,
                    before.fulltext_etag,
                    before.fulltext_last_modified,
                    before.fulltext_sha256,
                )
            )
        else:
            requests.append(FetchRequest(paper.paper_id, url))
    return FetchPlan(tuple(requests), kept)


def needs_nothing(
    stored: StoredPaper, now: dt.datetime, freshness: dt.timedelta, has_body: Callable[[str], bool]
) -> bool:
    """Whether a stored paper, its seed unchanged, needs no request and no rewrite this run."""
    if stored.fulltext_url is None:
        return stored.fulltext_status == "no_url"
    return (
        stored.fulltext_status in GOOD_STATUSES
        and stored.fulltext_fetched_at is not None
        and now - stored.fulltext_fetched_at <= freshness
        and stored.fulltext_sha256 is not None
        and has_body(stored.fulltext_sha256)
    )


def _fresh(
    paper: PaperRecord,
    before: StoredPaper | None,
    now: dt.datetime,
    freshness: dt.timedelta,
    has_body: Callable[[str], bool],
) -> bool:
    return (
        before is not None
        and before.source_sha256 == paper.seed_sha256
        and before.fulltext_url == paper.fulltext_url
        and before.fulltext_status in GOOD_STATUSES
        and before.fulltext_fetched_at is not None
        and now - before.fulltext_fetched_at <= freshness
        and before.fulltext_sha256 is not None
        and has_body(before.fulltext_sha256)
    )


def _kept(before: StoredPaper | None, url: str) -> FulltextState:
    # a body fetched for another url (the seed moved its full text) is not this paper's text
    if before is None or before.fulltext_url != url:
        return NEVER_REQUESTED
    status = before.fulltext_status
    return FulltextState(
        status=status if status in STATUSES else None,
        sha256=before.fulltext_sha256,
        etag=before.fulltext_etag,
        last_modified=before.fulltext_last_modified,
        fetched_at=before.fulltext_fetched_at,
        checked_at=None,
        error=before.fulltext_error,
        requested=False,
    )


def state_after_fetch(
    result: FetchResult, before: StoredPaper | None, now: dt.datetime
) -> FulltextState:
    """The full-text state a fetch result leaves: a failure keeps the body stored before."""
    if result.outcome in GOOD_STATUSES:
        return FulltextState(
            result.outcome, result.sha256, result.etag, result.last_modified, now, now, None, True
        )
    kept = _kept(before, result.url)
    error = f"{result.error_class}: {result.error_message}"
    return FulltextState(
        result.outcome,
        kept.sha256,
        kept.etag,
        kept.last_modified,
        kept.fetched_at,
        now,
        error,
        True,
    )
