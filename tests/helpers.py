"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

from typing import Any

import psycopg

CORE_TABLES = (
    "core.papers",
    "core.authors",
    "core.paper_authors",
    "core.key_findings",
    "core.entities",
    "core.paper_entities",
    "core.paper_entity_names",
    "core.entity_aliases",
)


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one query."""
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params or None).fetchall()


def snapshot(url: str, tables: tuple[str, ...] = CORE_TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order, for before/after comparisons."""
    with psycopg.connect(url) as conn:
        return {t: sorted(conn.execute(f"select * from {t}").fetchall(), key=repr) for t in tables}
