"""Which papers are fetched, and what state a fetch leaves (flows/plan.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from flows.fetch.plan import plan_fetches, state_after_fetch
from flows.records import (
    NEVER_REQUESTED,
    NO_URL,
    FetchRequest,
    FetchResult,
    FulltextState,
    Mode,
    StoredPaper,
)
from flows.seeds import parse_summary
from tests.helpers import REAL_SEED

NOW = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
WEEK = dt.timedelta(days=7)
PAPER = parse_summary(REAL_SEED.read_bytes(), "seeds/PMC12809390.md")
URL = PAPER.fulltext_url or ""
BODY = "b" * 64

FRESH = StoredPaper(
    paper_id=PAPER.paper_id,
    source_sha256=PAPER.seed_sha256,
    content_sha256="c" * 64,
    fulltext_url=URL,
    fulltext_status="fetched",
    fulltext_sha256=BODY,
    fulltext_etag='"v1"',
    fulltext_last_modified="Mon, 23 Nov 2026 10:00:00 GMT",
    fulltext_fetched_at=NOW - dt.timedelta(days=1),
)
CONDITIONAL = FetchRequest(PAPER.paper_id, URL, '"v1"', "Mon, 23 Nov 2026 10:00:00 GMT", BODY)
PLAIN = FetchRequest(PAPER.paper_id, URL)


def kept_state(stored: StoredPaper) -> FulltextState:
    return FulltextState(
        stored.fulltext_status,
        stored.fulltext_sha256,
        stored.fulltext_etag,
        stored.fulltext_last_modified,
        stored.fulltext_fetched_at,
        None,  # when it was last checked is read from raw.fetches, not kept on the paper
        stored.fulltext_error,
        False,
    )


@pytest.mark.parametrize(
    ("case", "stored", "mode", "body_stored", "expected", "kept"),
    [
        ("new paper", None, "incremental", False, PLAIN, None),
        ("fresh and unchanged", FRESH, "incremental", True, None, kept_state(FRESH)),
        ("fresh but the body is gone", FRESH, "incremental", False, CONDITIONAL, None),
        (
            "stale",
            replace(FRESH, fulltext_fetched_at=NOW - 2 * WEEK),
            "incremental",
            True,
            CONDITIONAL,
            None,
        ),
        (
            "seed changed",
            replace(FRESH, source_sha256="0" * 64),
            "incremental",
            True,
            CONDITIONAL,
            None,
        ),
        (
            "full-text url moved",
            replace(FRESH, fulltext_url="https://x.org/p.md"),
            "incremental",
            True,
            PLAIN,
            None,
        ),
        (
            "last fetch failed",
            replace(FRESH, fulltext_status="failed", fulltext_error="ReadTimeout: ..."),
            "incremental",
            True,
            CONDITIONAL,
            None,
        ),
        ("full refresh", FRESH, "full_refresh", True, PLAIN, None),
        ("offline", FRESH, "offline", True, None, kept_state(FRESH)),
        ("offline, never fetched", None, "offline", False, None, NEVER_REQUESTED),
    ],
)
def test_plan(
    case: str,
    stored: StoredPaper | None,
    mode: Mode,
    body_stored: bool,
    expected: FetchRequest | None,
    kept: FulltextState | None,
) -> None:
    plan = plan_fetches(
        [PAPER],
        {PAPER.paper_id: stored} if stored else {},
        mode,
        NOW,
        WEEK,
        lambda sha: body_stored and sha == BODY,
    )
    assert plan.requests == ((expected,) if expected else ()), case
    assert plan.kept == ({PAPER.paper_id: kept} if kept else {}), case


def test_a_paper_without_a_full_text_url_is_never_requested() -> None:
    paper = replace(PAPER, fulltext_url=None)
    plan = plan_fetches([paper], {}, "full_refresh", NOW, WEEK, lambda sha: True)
    assert (plan.requests, plan.kept) == ((), {PAPER.paper_id: NO_URL})


def result(outcome: str, **kwargs: object) -> FetchResult:
    fields: dict = {
        "paper_id": PAPER.paper_id,
        "url": URL,
        "outcome": outcome,
        "sha256": None,
        "etag": None,
        "last_modified": None,
        "attempts": (),
    }
    fields.update(kwargs)
    return FetchResult(**fields)


def test_a_fetched_body_becomes_the_one_in_use() -> None:
    state = state_after_fetch(result("fetched", sha256="d" * 64, etag='"v2"'), FRESH, NOW)
    assert state == FulltextState("fetched", "d" * 64, '"v2"', None, NOW, NOW, None, True)
    assert not state.failed


def test_a_failed_fetch_keeps_the_body_fetched_before_and_says_why() -> None:
    failed = result("not_found", error_class="NotFound", error_message="HTTP 404 Not Found")
    state = state_after_fetch(failed, FRESH, NOW)
    assert (state.status, state.sha256, state.fetched_at) == (
        "not_found",
        BODY,
        FRESH.fulltext_fetched_at,
    )
    assert (state.checked_at, state.error, state.failed) == (
        NOW,
        "NotFound: HTTP 404 Not Found",
        True,
    )


def test_a_failed_fetch_of_a_moved_url_has_no_body() -> None:
    moved = result("failed", url="https://x.org/p.md", error_class="ReadTimeout", error_message="")
    assert state_after_fetch(moved, FRESH, NOW).sha256 is None
