"""The data dictionary: every schema, table, view, column and function, read from the catalog.

Comments are written by the migrations, so the dictionary is whatever the migrations made:
`tomeflow db dictionary` writes it to docs/data-dictionary.md, and a test checks that the
checked-in file matches a database migrated to head.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

import psycopg

from flows.settings import PROJECT_ROOT

SCHEMAS: tuple[str, ...] = ("analytics", "core", "ops", "raw")
DICTIONARY_PATH = PROJECT_ROOT / "docs" / "data-dictionary.md"

_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view"}

_RELATIONS = """
    select n.nspname, c.relname, c.relkind, coalesce(obj_description(c.oid, 'pg_class'), '')
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm') and not c.relispartition
    order by n.nspname, c.relname
"""

_COLUMNS = """
    select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
           a.attnotnull, coalesce(col_description(c.oid, a.attnum), '')
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm') and not c.relispartition
    order by n.nspname, c.relname, a.attnum
"""

_FUNCTIONS = """
    select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
           pg_get_function_result(p.oid), coalesce(obj_description(p.oid, 'pg_proc'), '')
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = any(%s) order by n.nspname, p.proname
"""

_SCHEMAS = """
    select nspname, coalesce(obj_description(oid, 'pg_namespace'), '') from pg_namespace
    where nspname = any(%s) order by nspname
"""


def uncommented(conn: psycopg.Connection[Any]) -> list[str]:
    """Tables, views and columns without a comment (`schema.table` or `schema.table.column`)."""
    schemas = list(SCHEMAS)
    missing = [f"{s}.{t}" for s, t, _, c in conn.execute(_RELATIONS, (schemas,)) if not c]
    missing += [
        f"{s}.{t}.{col}" for s, t, col, *_, c in conn.execute(_COLUMNS, (schemas,)) if not c
    ]
    return missing


def render(conn: psycopg.Connection[Any]) -> str:
    """The data dictionary as Markdown: schema, table, column, type, comment."""
    schemas = list(SCHEMAS)
    columns = {
        key: list(rows)
        for key, rows in groupby(conn.execute(_COLUMNS, (schemas,)), key=lambda r: (r[0], r[1]))
    }
    relations = conn.execute(_RELATIONS, (schemas,)).fetchall()
    functions = conn.execute(_FUNCTIONS, (schemas,)).fetchall()
    lines = [
        "# tomeflow data dictionary",
        "",
        "Every schema, table, view, column and function tomeflow's migrations make, with the",
        "comment the database holds for it (`\\d+ core.papers` in psql shows the same). This",
        "file is written by `tomeflow db dictionary` from a database migrated to head; do not",
        "edit it by hand: change the comments in a migration and run the command again.",
        "",
        "A reader (`tomeflow db grant-reader NAME`) finds `analytics` and `core` without a",
        "schema prefix; `ops` and `raw` need one.",
        "",
        "| schema | what it holds |",
        "|---|---|",
    ]
    lines += [f"| `{s}` | {_cell(c)} |" for s, c in conn.execute(_SCHEMAS, (schemas,))]
    for schema, in_schema in groupby(relations, key=lambda r: r[0]):
        lines += ["", f"## {schema}"]
        for _, name, kind, comment in in_schema:
            lines += ["", f"### `{schema}.{name}` ({_KINDS[kind]})", "", _text(comment), ""]
            lines += ["| column | type | comment |", "|---|---|---|"]
            lines += [
                f"| `{col}` | {typ}{' not null' if not_null else ''} | {_cell(c)} |"
                for _, _, col, typ, not_null, c in columns.get((schema, name), ())
            ]
    if functions:
        lines += ["", "## Functions"]
        for schema, name, args, result, comment in functions:
            lines += ["", f"### `{schema}.{name}({args})`", "", f"Returns `{result}`.", ""]
            lines.append(_text(comment))
    return "\n".join(lines) + "\n"


def _text(comment: str) -> str:
    return comment or "(no comment)"


def _cell(comment: str) -> str:
    return _text(comment).replace("|", "\\|").replace("\n", " ")
