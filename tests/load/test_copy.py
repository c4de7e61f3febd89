"""flows/load/copy.py: COPY with each column written by its declared type's dumper."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from flows.load.copy import copy_rows
from flows.tables import TABLES, Table


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_every_copied_column_has_a_type_psycopg_knows(table: Table) -> None:
    assert len(table.copy_types) == len(table.copy_columns)
    for name in table.copy_types:
        assert psycopg.adapters.types.get_oid(name), name


def test_typed_copy_writes_what_an_untyped_one_does(db_url: str) -> None:
    run = uuid.uuid4()
    row = (7, "a\tb\nc\\d", None, dt.date(2025, 11, 10), ["x", "y, z"], '{"k": [1, 2]}', run, 0.5)
    columns = ("n", "t", "missing", "d", "tags", "doc", "run_id", "share")
    types = ("integer", "text", "text", "date", "text[]", "text", "uuid", "double precision")
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        for name in ("typed", "untyped"):
            cur.execute(
                f"create temp table {name} (n integer, t text, missing text, d date,"
                " tags text[], doc jsonb, run_id uuid, share double precision)"
            )
        assert copy_rows(cur, "typed", columns, [row], types) == 1
        assert copy_rows(cur, "untyped", columns, [row]) == 1
        typed = cur.execute("select * from typed").fetchall()
        untyped = cur.execute("select * from untyped").fetchall()
    assert typed == untyped == [(7, "a\tb\nc\\d", None, dt.date(2025, 11, 10), ["x", "y, z"],
                                 {"k": [1, 2]}, run, 0.5)]  # fmt: skip
