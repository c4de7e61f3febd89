"""The fetch stage's hand-over (flows/fetch/stage.py): the bodies assemble reads, by name."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import pytest

from flows.fetch.plan import content_hash
from flows.fetch.rawstore import RawBodyMissing, RawStore, StoredBodies
from flows.fetch.stage import bodies_to_read
from flows.records import FulltextState, PaperRecord, StoredPaper
from flows.seeds import parse_summary
from tests.helpers import REAL_SEED

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
PAPER = parse_summary(REAL_SEED.read_bytes(), "seeds/PMC12809390.md")
BODY = b"# a body\n\n" + b"text " * 20_000  # ~100 KB


def fetched(sha: str | None) -> FulltextState:
    return FulltextState("fetched", sha, None, None, NOW, NOW, None, True)


def loaded(paper: PaperRecord, sha: str) -> StoredPaper:
    """What the database holds for a paper loaded with this body, unchanged since."""
    return StoredPaper(paper.paper_id, paper.seed_sha256, content_hash(paper.seed_sha256, sha),
                       None, "fetched", sha, None, None, NOW)  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> RawStore:
    return RawStore(tmp_path / "raw")


def test_the_bodies_of_changed_papers_are_named_and_read_from_the_store(store: RawStore) -> None:
    sha = store.put(BODY)
    bodies = bodies_to_read([PAPER], {PAPER.paper_id: fetched(sha)}, {}, store, force=False)
    assert list(bodies) == [sha] and sha in bodies and bodies[sha] == BODY
    # what travels to the assemble process is the names, not the bytes
    assert len(pickle.dumps(bodies)) < 1_000
    assert pickle.loads(pickle.dumps(bodies))[sha] == BODY


def test_an_unchanged_paper_names_no_body_unless_forced(store: RawStore) -> None:
    sha = store.put(BODY)
    states, before = {PAPER.paper_id: fetched(sha)}, {PAPER.paper_id: loaded(PAPER, sha)}
    assert len(bodies_to_read([PAPER], states, before, store, force=False)) == 0
    assert list(bodies_to_read([PAPER], states, before, store, force=True)) == [sha]
    assert len(bodies_to_read([PAPER], {PAPER.paper_id: fetched(None)}, {}, store, False)) == 0


def test_a_body_not_named_or_gone_is_a_key_error(store: RawStore) -> None:
    sha = store.put(BODY)
    bodies = StoredBodies(store, [sha])
    with pytest.raises(KeyError):
        bodies["ab" * 32]
    store.path_for(sha).unlink()
    with pytest.raises(RawBodyMissing):
        bodies[sha]
    assert bodies.get(sha) is None
