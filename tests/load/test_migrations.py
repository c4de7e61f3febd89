"""Migrations: up from nothing, down to nothing, and up again; comments on every table."""

from __future__ import annotations

import pytest

from flows.load.migrate import downgrade, upgrade
from tests.helpers import query


def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    tables = query(
        empty_db_url,
        """select table_schema || '.' || table_name from information_schema.tables
           where table_schema in ('core', 'ops', 'raw') order by 1""",
    )
    assert ("core.papers",) in tables and ("ops.quarantine",) in tables
    downgrade(empty_db_url, "base")
    assert query(
        empty_db_url,
        "select count(*) from information_schema.schemata where schema_name in ('core','ops','raw','analytics')",
    ) == [(0,)]
    upgrade(empty_db_url)
    upgrade(empty_db_url)  # at head already: nothing to do


def test_every_table_and_column_has_a_comment(db_url: str) -> None:
    missing = query(
        db_url,
        """select c.table_schema || '.' || c.table_name || '.' || c.column_name
           from information_schema.columns c
           join pg_class t on t.relname = c.table_name
           join pg_namespace n on n.oid = t.relnamespace and n.nspname = c.table_schema
           where c.table_schema in ('core', 'ops', 'raw') and t.relkind = 'r'
             and col_description(t.oid, c.ordinal_position) is null
           order by 1""",
    )
    assert missing == []
    uncommented = query(
        db_url,
        """select n.nspname || '.' || c.relname from pg_class c
           join pg_namespace n on n.oid = c.relnamespace
           where n.nspname in ('core', 'ops', 'raw', 'analytics') and c.relkind in ('r', 'v')
             and obj_description(c.oid, 'pg_class') is null""",
    )
    assert uncommented == []


def test_head_revision_is_what_alembic_calls_head(db_url: str) -> None:
    from alembic.script import ScriptDirectory

    from flows.load.migrate import alembic_config, head_revision

    assert head_revision() == ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()


def test_ensure_schema_migrates_an_empty_database_and_then_costs_one_query(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.load import migrate

    migrate.ensure_schema(empty_db_url)
    assert query(empty_db_url, "select version_num from alembic_version") == [
        (migrate.head_revision(),)
    ]
    monkeypatch.setattr(migrate, "upgrade", lambda *a: pytest.fail("upgraded a current database"))
    migrate.ensure_schema(empty_db_url)
