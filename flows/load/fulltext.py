"""Sections, references, captions and mentions: a changed paper's old rows are gone, so COPY in.

Sections are staged first, before the load lock (their search tsvector is parsed there).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

from flows.load.copy import copy_into, insert_staged, stage
from flows.records import PaperLoad
from flows.tables import CAPTIONS, ENTITY_MENTIONS, PAPER_REFERENCES, SECTIONS

FULLTEXT_TABLES = (SECTIONS, PAPER_REFERENCES, CAPTIONS, ENTITY_MENTIONS)


def stage_sections(cur: psycopg.Cursor[Any], run_id: uuid.UUID, loads: Sequence[PaperLoad]) -> int:
    """Stage the papers' sections; their search tsvector is parsed now, before the load lock.

    Parsing the sections' text is most of PostgreSQL's work in a load: done here, batches
    (and runs) parse theirs at the same time, and the lock is held only to write them.
    """
    return stage(cur, SECTIONS, SECTIONS.rows(loads, run_id))


def copy_fulltext(
    cur: psycopg.Cursor[Any], run_id: uuid.UUID, loads: Sequence[PaperLoad]
) -> dict[str, int]:
    """Write the papers' full-text rows (their sections from the staged ones); rows per table."""
    rows = {SECTIONS.name: insert_staged(cur, SECTIONS, [p.paper_id for p in loads])}
    for table in FULLTEXT_TABLES[1:]:
        rows[table.name] = copy_into(cur, table, table.rows(loads, run_id))
    return rows
