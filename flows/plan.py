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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from flows.fetch import FetchRequest, FetchResult
from flows.seeds import PaperRecord

Mode = Literal["incremental", "full_refresh", "offline"]
FulltextStatus = Literal[
    "fetched", "not_modified", "not_found", "too_large", "bad_content", "failed", "no_url"
]
STATUSES: frozenset[str] = frozenset(get_args(FulltextStatus))
GOOD_STATUSES = frozenset({"fetched", "not_modified"})


@dataclass(frozen=True, slots=True)
class StoredPaper:
    """What the database holds about a paper from earlier runs."""

    paper_id: str
    source_sha256: str | None  # the seed's sha256; None when only the raw layer knows the paper
    content_sha256: str | None
    fulltext_url: str | None
    fulltext_status: str | None
    fulltext_sha256: str | None
    fulltext_etag: str | None
    fulltext_last_modified: str | None
    fulltext_fetched_at: dt.datetime | None
    fulltext_checked_at: dt.datetime | None = None
    fulltext_error: str | None = None


@dataclass(frozen=True, slots=True)
class FulltextState:
    """A paper's full text after this run: its status, and the body in use (if any)."""

    status: str | None  # a FulltextStatus; None: never requested
    sha256: str | None  # the body in use, in the raw store; kept from before when a fetch fails
    etag: str | None
    last_modified: str | None
    fetched_at: dt.datetime | None  # when the body in use was fetched or confirmed
    checked_at: dt.datetime | None  # when it was last requested
    error: str | None  # why the last request failed
    requested: bool  # whether this run asked the server

    @property
    def failed(self) -> bool:
        """True when this run asked for the full text and did not get it."""
        return self.requested and self.status not in GOOD_STATUSES


NEVER_REQUESTED = FulltextState(None, None, None, None, None, None, None, False)
NO_URL = FulltextState("no_url", None, None, None, None, None, None, False)


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
        checked_at=before.fulltext_checked_at,
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
