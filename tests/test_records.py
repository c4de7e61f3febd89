"""The records between stages (flows/records.py): they cross process boundaries intact."""

from __future__ import annotations

import datetime as dt
import pickle
from dataclasses import fields, is_dataclass
from pathlib import Path

from flows import records
from flows.fetch.rawstore import RawStore
from flows.records import FulltextState
from flows.seeds import parse_summary
from tests.helpers import REAL_FULLTEXT, REAL_SEED
from tests.helpers import assemble_from_store as assemble_paper

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


def test_a_real_papers_load_survives_pickling_whole(tmp_path: Path) -> None:
    # what the assemble process sends back: every nested record equal after the round trip
    store = RawStore(tmp_path / "raw")
    sha = store.put(REAL_FULLTEXT.read_bytes())
    paper = parse_summary(REAL_SEED.read_bytes(), "seeds/PMC12809390.md")
    state = FulltextState("fetched", sha, None, None, NOW, NOW, None, True)
    load, _ = assemble_paper(paper, state, None, store)
    assert load.content is not None and load.content.mentions and load.content.fulltext
    again = pickle.loads(pickle.dumps(load, protocol=pickle.HIGHEST_PROTOCOL))
    assert again == load
    assert type(again.content.mentions[0]) is records.Mention  # type: ignore[union-attr]


def test_every_record_pickles_as_its_fields_and_comes_back_equal() -> None:
    classes = [
        c for c in vars(records).values()
        if isinstance(c, type) and is_dataclass(c) and c.__module__ == records.__name__
    ]  # fmt: skip
    assert len(classes) > 20
    for cls in classes:
        values = tuple(f"{cls.__name__}.{f.name}" for f in fields(cls))
        record = cls(*values)
        reduced = record.__reduce__()
        assert reduced == (cls, values), cls.__name__
        assert pickle.loads(pickle.dumps(record)) == record, cls.__name__
