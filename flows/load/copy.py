"""COPY and staging tables, with column lists and types taken from the table declarations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from flows.tables import Table


def copy_rows(
    cur: psycopg.Cursor[Any],
    target: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    types: Sequence[str] = (),
) -> int:
    """COPY rows into target (schema.table or a temp table); returns the row count.

    types: the columns' PostgreSQL types; given, each value is written by its column's dumper
    instead of one looked up by the value's Python type (a third less CPU per row).
    """
    statement = sql.SQL("copy {} ({}) from stdin").format(
        sql.Identifier(*target.split(".")), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    with cur.copy(statement) as copy:
        if types:
            copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def copy_into(cur: psycopg.Cursor[Any], table: Table, rows: Iterable[Sequence[Any]]) -> int:
    """COPY rows straight into a declared table."""
    return copy_rows(cur, table.name, table.copy_columns, rows, table.copy_types)


def staging_name(table: Table) -> str:
    """The temporary table a declared table is staged in: s_<table>."""
    return table.staging or "s_" + table.name.split(".")[1]


def stage(cur: psycopg.Cursor[Any], table: Table, rows: Iterable[Sequence[Any]]) -> int:
    """COPY rows into a temporary copy of a declared table's written columns (s_<table>).

    The table's computed columns are generated columns of the copy: PostgreSQL computes them
    as the rows arrive, and `insert_staged` writes the values as they are.
    """
    types = {c.name: c.type for c in table.columns}
    types |= {"paper_id": "text", "run_id": "uuid", "source_sha256": "text"}
    columns = [
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(types[c])) for c in table.copy_columns
    ]
    columns += [
        sql.SQL("{} {} generated always as ({}) stored").format(
            sql.Identifier(c.name), sql.SQL(c.type), sql.SQL(c.expression)
        )
        for c in table.computed
    ]
    name = staging_name(table)
    cur.execute(
        sql.SQL("create temp table {} ({}) on commit drop").format(
            sql.Identifier(name), sql.SQL(", ").join(columns)
        )
    )
    return copy_rows(cur, name, table.copy_columns, rows, table.copy_types)


def insert_staged(cur: psycopg.Cursor[Any], table: Table, paper_ids: Sequence[str]) -> int:
    """Insert these papers' staged rows (computed columns included) into the table."""
    columns = column_list((*table.copy_columns, *(c.name for c in table.computed)))
    cur.execute(
        sql.SQL("insert into {} ({}) select {} from {} where paper_id = any(%(ids)s)").format(
            sql.Identifier(*table.name.split(".")),
            columns,
            columns,
            sql.Identifier(staging_name(table)),
        ),
        {"ids": list(paper_ids)},
    )
    return cur.rowcount


def execute_each(cur: psycopg.Cursor[Any], statements: str, params: Mapping[str, Any]) -> None:
    """Run ;-separated statements one by one (psycopg binds parameters one statement at a time)."""
    for statement in filter(str.strip, statements.split(";\n")):
        cur.execute(statement, params)


def column_list(columns: Iterable[str], prefix: str = "") -> sql.Composable:
    """`a, b, c` (or `p.a, p.b, p.c`) as SQL identifiers."""
    if prefix:
        return sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(prefix), sql.Identifier(c)) for c in columns
        )
    return sql.SQL(", ").join(map(sql.Identifier, columns))
