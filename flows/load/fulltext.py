"""Sections, references, captions and mentions: a changed paper's old rows are gone, so COPY in."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

from flows.load.copy import copy_into
from flows.records import PaperLoad
from flows.tables import CAPTIONS, ENTITY_MENTIONS, PAPER_REFERENCES, SECTIONS

FULLTEXT_TABLES = (SECTIONS, PAPER_REFERENCES, CAPTIONS, ENTITY_MENTIONS)


def copy_fulltext(
    cur: psycopg.Cursor[Any], run_id: uuid.UUID, loads: Sequence[PaperLoad]
) -> dict[str, int]:
    """COPY the papers' full-text rows into their tables; returns rows per table."""
    return {t.name: copy_into(cur, t, t.rows(loads, run_id)) for t in FULLTEXT_TABLES}
