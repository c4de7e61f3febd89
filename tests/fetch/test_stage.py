"""The fetch stage's hand-over (flows/fetch/stage.py)."""

from __future__ import annotations

import datetime as dt

from flows.fetch.stage import without_bodies
from flows.records import FetchedBatch, FetchResult, FulltextState

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
SHA = "ab" * 32


def test_an_assembled_batch_lets_its_bodies_go_and_keeps_its_fetch_log() -> None:
    state = FulltextState("fetched", SHA, None, None, NOW, NOW, None, True)
    result = FetchResult("PMC1", "http://x/1", "fetched", SHA, None, None, (), body=b"# a body")
    unfetched = FetchResult("PMC2", "http://x/2", "not_found", None, None, None, ())
    batch = FetchedBatch(
        {"PMC1": state}, (result, unfetched), {SHA: b"# a body"}, {"cd" * 32: "unreadable"}
    )
    slim = without_bodies(batch)
    assert slim.bodies == {} and [r.body for r in slim.results] == [None, None]
    assert slim.results == batch.results  # every fetch-log field kept (body is not compared)
    assert slim.states == batch.states and slim.unreadable == batch.unreadable
    assert slim.stored == batch.stored == (SHA,)
