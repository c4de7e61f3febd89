"""Seed record + full-text state and body -> PaperLoad (flows/assemble.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from flows import assemble as assemble_module
from flows.assemble import assemble_batch
from flows.fetch.plan import content_hash
from flows.fetch.rawstore import RawStore
from flows.fetch.stage import bodies_to_read
from flows.records import Author, FetchedBatch, FulltextState, StoredPaper
from flows.seeds import parse_summary
from tests.helpers import REAL_FULLTEXT, REAL_SEED
from tests.helpers import assemble_from_store as assemble_paper

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
PAPER = parse_summary(REAL_SEED.read_bytes(), "seeds/PMC12809390.md")


@pytest.fixture
def store(tmp_path: Path) -> RawStore:
    return RawStore(tmp_path / "raw")


def fetched(sha: str | None) -> FulltextState:
    return FulltextState("fetched", sha, None, None, NOW, NOW, None, True)


def stored_with(content_sha256: str) -> StoredPaper:
    return StoredPaper(PAPER.paper_id, PAPER.seed_sha256, content_sha256, None, None, None,
                       None, None, None)  # fmt: skip


def test_a_paper_with_its_full_text(store: RawStore) -> None:
    sha = store.put(REAL_FULLTEXT.read_bytes())
    load, rejected = assemble_paper(PAPER, fetched(sha), None, store)
    assert rejected == [] and load.content is not None
    assert load.content_sha256 == content_hash(PAPER.seed_sha256, sha)
    assert load.content.authors == (Author(1, "Enis Kostallari"),)
    assert len(load.content.entities) == 10
    assert load.content.fulltext is not None and len(load.content.fulltext.references) == 14
    assert {m.curie for m in load.content.mentions} >= {"NCBIGene:3630", "MESH:D008103"}


def test_an_unchanged_paper_is_not_read_again_unless_forced(store: RawStore) -> None:
    sha = store.put(REAL_FULLTEXT.read_bytes())
    same = stored_with(content_hash(PAPER.seed_sha256, sha))
    load, _ = assemble_paper(PAPER, fetched(sha), same, store)
    assert load.content is None
    forced, _ = assemble_paper(PAPER, fetched(sha), same, store, force=True)
    assert forced.content is not None


def test_without_a_body_the_summary_still_loads(store: RawStore) -> None:
    load, rejected = assemble_paper(PAPER, fetched(None), None, store)
    assert rejected == [] and load.content is not None and load.content.fulltext is None
    assert load.content.mentions == () and len(load.content.entities) == 10


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_an_unusable_stored_body_is_quarantined_and_read_again_later(
    store: RawStore, damage: str
) -> None:
    sha = store.put(REAL_FULLTEXT.read_bytes())
    if damage == "missing":
        store.path_for(sha).unlink()
    else:
        store.path_for(sha).write_bytes(b"not gzip")
    load, rejected = assemble_paper(PAPER, fetched(sha), None, store)
    ((row),) = rejected
    assert (row.stage, row.paper_id, row.rejected_whole) == ("fulltext", PAPER.paper_id, False)
    assert sha in row.reason
    # the rows claim no body, so the next run that has it rewrites the paper
    assert load.fulltext_state.sha256 is None
    assert load.content_sha256 == content_hash(PAPER.seed_sha256, None)


def test_a_failed_fetch_and_a_bad_identifier_are_quarantined_not_raised(store: RawStore) -> None:
    broken = replace(
        PAPER,
        entities=tuple(
            replace(e, identifier="X12") if e.identifier == "D005234" else e for e in PAPER.entities
        ),
    )
    state = FulltextState("not_found", None, None, None, None, NOW, "NotFound: HTTP 404", True)
    states = {PAPER.paper_id: state}
    bodies = bodies_to_read([broken], states, {}, store, force=False)
    loads, rejected = assemble_batch([broken], FetchedBatch(states, (), bodies), {})
    assert [(r.stage, r.document) for r in rejected] == [
        ("fetch", PAPER.fulltext_url),
        ("normalise", "seeds/PMC12809390.md"),
    ]
    assert "not_found" in rejected[0].reason and "X12" in rejected[1].reason
    assert loads[0].content is not None and len(loads[0].content.entities) == 9


def test_a_full_text_the_parser_chokes_on_leaves_the_summary_loaded(
    store: RawStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = store.put(REAL_FULLTEXT.read_bytes())
    monkeypatch.setattr(
        "flows.assemble.parse_fulltext", lambda text: (_ for _ in ()).throw(MemoryError("big"))
    )
    load, rejected = assemble_paper(PAPER, fetched(sha), None, store)
    (row,) = rejected
    assert (row.stage, row.rejected_whole) == ("fulltext", False)
    assert "cannot parse: MemoryError: big" in row.reason
    assert load.content is not None and load.content.fulltext is None
    assert len(load.content.entities) == 10  # the summary's rows still load


def test_a_paper_that_breaks_a_stage_is_quarantined_and_the_batch_goes_on(
    store: RawStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = replace(PAPER, paper_id="PMC1", seed_path="seeds/PMC1.md")
    real = assemble_module.normalise_entities

    def breaks(paper_id: str, refs: object) -> object:
        if paper_id == "PMC1":
            raise KeyError("boom")
        return real(paper_id, refs)  # type: ignore[arg-type]

    monkeypatch.setattr(assemble_module, "normalise_entities", breaks)
    sha = store.put(REAL_FULLTEXT.read_bytes())
    states = {p.paper_id: fetched(sha) for p in (PAPER, other)}
    bodies = {sha: REAL_FULLTEXT.read_bytes()}
    loads, rejected = assemble_batch([other, PAPER], FetchedBatch(states, (), bodies), {})
    assert [load.paper_id for load in loads] == [PAPER.paper_id]
    (row,) = rejected
    assert (row.document, row.rejected_whole) == ("seeds/PMC1.md", True)
    assert row.reason == "cannot assemble: KeyError: 'boom'"
