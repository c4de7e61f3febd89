"""Frames for the quality gate and the row-level policy (flows/validate.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from flows.fetch.rawstore import RawStore
from flows.quality.frames import FRAME_DTYPES, batch_frames
from flows.quality.gate import QualityGate
from flows.quality.results import RowFailure
from flows.quality.verdict import apply_row_failures, check_batch
from flows.records import Author, FulltextState, PaperLoad
from flows.seeds import parse_summary
from tests.helpers import REAL_FULLTEXT, REAL_SEED
from tests.helpers import assemble_from_store as assemble_paper

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
PMC = "PMC12809390"


@pytest.fixture
def load(tmp_path: Path) -> PaperLoad:
    store = RawStore(tmp_path / "raw")
    sha = store.put(REAL_FULLTEXT.read_bytes())
    paper = parse_summary(REAL_SEED.read_bytes(), "seeds/PMC12809390.md")
    paper = replace(paper, authors=("Ann One", "Bob Two", "Cy Three"))
    state = FulltextState("fetched", sha, None, None, NOW, NOW, None, True)
    made, _ = assemble_paper(paper, state, None, store)
    return made


def dated_papers(load: PaperLoad, year: int, dated: int, papers: int) -> list[PaperLoad]:
    """`papers` copies of load under their own ids, the first `dated` published in year."""

    def paper(n: int, published: int) -> PaperLoad:
        record = replace(
            load.paper,
            paper_id=f"PMC{n}",
            published_on=dt.date(published, 1, 1),
            seed_path=f"{n}.md",
        )
        return replace(load, paper=record)

    return [paper(n, year if n < dated else 2025) for n in range(papers)]


def failure(suite: str, *key: object, column: str = "x", value: object = "v") -> RowFailure:
    return RowFailure(suite, PMC, (PMC, *key), "expect_something", column, value)


def test_frames_have_the_columns_the_suites_read(load: PaperLoad) -> None:
    frames = batch_frames([load])
    assert {k: list(f.columns) for k, f in frames.items()} == {
        k: list(d) for k, d in FRAME_DTYPES.items()
    }
    assert load.content is not None and load.content.fulltext is not None
    counts = {k: len(f) for k, f in frames.items()}
    assert counts == {
        "papers": 1,
        "authors": 3,
        "entities": 10,
        "paper_entities": 10,
        "sections": len(load.content.fulltext.sections),
        "references": 14,
        "mentions": len(load.content.mentions),
    }
    paper = frames["papers"].iloc[0]
    assert (paper["parsed_reference_count"], paper["reference_count_gap"]) == (14, 0)


def test_an_unchanged_paper_is_not_validated(load: PaperLoad) -> None:
    assert all(len(f) == 0 for f in batch_frames([replace(load, content=None)]).values())


def test_a_failed_paper_row_leaves_out_the_whole_paper(load: PaperLoad) -> None:
    kept, rejected = apply_row_failures([load], [failure("papers", column="title")])
    assert kept == []
    ((row),) = rejected
    assert (row.stage, row.rejected_whole, row.document) == ("validate", True, load.paper.seed_path)
    assert row.payload["suite"] == "papers" and row.payload["column"] == "title"


def test_a_failed_author_keeps_the_others_in_their_places(load: PaperLoad) -> None:
    (kept,), rejected = apply_row_failures([load], [failure("authors", 2)])
    assert kept.content is not None
    assert kept.content.authors == (Author(1, "Ann One"), Author(3, "Cy Three"))
    assert [r.rejected_whole for r in rejected] == [False]


def test_a_failed_section_takes_its_mentions_with_it(load: PaperLoad) -> None:
    assert load.content is not None
    ordinal = load.content.mentions[0].section_ordinal
    (kept,), _ = apply_row_failures([load], [failure("sections", ordinal)])
    assert kept.content is not None and kept.content.fulltext is not None
    assert ordinal not in {s.ordinal for s in kept.content.fulltext.sections}
    assert ordinal not in {m.section_ordinal for m in kept.content.mentions}
    assert len(kept.content.mentions) < len(load.content.mentions)


def test_a_failed_entity_takes_its_listings_and_mentions_with_it(load: PaperLoad) -> None:
    (kept,), _ = apply_row_failures([load], [failure("entities", "NCBIGene:3630")])
    assert kept.content is not None
    assert "NCBIGene:3630" not in {e.curie for e in kept.content.entities}
    assert "NCBIGene:3630" not in {m.curie for m in kept.content.mentions}
    assert len(kept.content.entities) == 9


def test_failed_references_and_mentions_go_alone(load: PaperLoad) -> None:
    assert load.content is not None
    mention = load.content.mentions[0]
    (kept,), rejected = apply_row_failures(
        [load],
        [failure("references", 3), failure("mentions", mention.curie, mention.section_ordinal)],
    )
    assert kept.content is not None and kept.content.fulltext is not None
    assert [r.ordinal for r in kept.content.fulltext.references] == [
        n for n in range(1, 15) if n != 3
    ]
    assert mention not in kept.content.mentions
    assert len(kept.content.mentions) == len(load.content.mentions) - 1
    assert len(rejected) == 2


def test_the_gate_counts_rejected_papers_not_only_rows(
    load: PaperLoad, session_gate: QualityGate
) -> None:
    # 4 of 6 papers dated 1700: a few percent of all the batch's rows, but most of its papers
    loads = dated_papers(load, 1700, 4, 6)
    verdict = check_batch(session_gate, loads, 1, max_failure_share=0.2)
    assert (verdict.papers_checked, verdict.papers_rejected) == (6, 4)
    assert verdict.rows_checked > 100 * 4  # the rows' share alone would stay under 5%
    assert verdict.over_threshold and verdict.failure_share == pytest.approx(4 / 6)
    assert "4 of 6 papers" in verdict.message()
