"""Migrations: up from nothing, down to nothing, and up again; comments on every table."""

from __future__ import annotations

import psycopg
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


def test_a_section_written_without_its_search_gets_it_as_the_generated_column_did(
    empty_db_url: str,
) -> None:
    """0009: search is written by the load (parsed before its lock), or filled by a trigger."""
    upgrade(empty_db_url, "0008")
    expression = query(
        empty_db_url,
        """select generation_expression from information_schema.columns
           where table_schema = 'core' and table_name = 'sections' and column_name = 'search'""",
    )
    upgrade(empty_db_url)
    run, sha = "00000000-0000-0000-0000-000000000001", "a" * 64
    parsed = """select search = setweight(to_tsvector('english', coalesce(heading, '')), 'A')
                || setweight(to_tsvector('english', text), 'B') from core.sections"""
    with psycopg.connect(empty_db_url) as conn:
        conn.execute("insert into ops.runs (run_id) values (%s)", (run,))
        conn.execute(
            """insert into core.papers (paper_id, source, title, seed_path, content_sha256,
                                        run_id, source_sha256)
               values ('PMC1', 'test', 'A paper', 'p.md', %s, %s, %s)""",
            (sha, run, sha),
        )
        conn.execute(
            """insert into core.sections (paper_id, ordinal, heading, level, heading_path, text,
                                          word_count, run_id, source_sha256)
               values ('PMC1', 1, 'Results', 2, '{}', 'Mice were running', 3, %s, %s)""",
            (run, sha),
        )
    assert query(empty_db_url, parsed) == [(True,)]
    with psycopg.connect(empty_db_url) as conn:
        conn.execute("update core.sections set text = 'Insulin resistance'")
    assert query(empty_db_url, parsed) == [(True,)]
    assert query(
        empty_db_url, "select search @@ to_tsquery('english', 'insulin') from core.sections"
    ) == [(True,)]
    downgrade(empty_db_url, "0008")  # a generated column again, with the same expression
    assert query(empty_db_url, parsed) == [(True,)]
    assert (
        query(
            empty_db_url,
            """select generation_expression from information_schema.columns
           where table_schema = 'core' and table_name = 'sections' and column_name = 'search'""",
        )
        == expression
    )
