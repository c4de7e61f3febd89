"""The analyst's database (migration 0008): a read-only login, search, names, causes, comments."""

from __future__ import annotations

import datetime as dt
import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from flows.causes import ERROR_CAUSES, error_cause
from flows.fetch.rawstore import RawStore
from flows.load.db import with_user
from flows.load.dictionary import DICTIONARY_PATH, SCHEMAS, render, uncommented
from flows.load.loader import PostgresLoader
from flows.load.roles import READER_ROLE, RoleError, grant_reader
from flows.records import FulltextState
from flows.seeds import parse_summary
from flows.settings import PROJECT_ROOT
from tests.helpers import REAL_FULLTEXT, REAL_SEED, assemble_from_store, query

MIGRATION = PROJECT_ROOT / "schemas" / "migrations" / "versions" / "0008_analyst_database.py"


def drop_role(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))


@pytest.fixture
def reader(db_url: str) -> Iterator[str]:
    """A reader login made by grant_reader; its URL (the test server trusts loopback)."""
    name = f"analyst_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert grant_reader(conn, name, 's3cr;et "x') is True
    yield with_user(db_url, name)
    drop_role(db_url, name)


def relations(url: str) -> list[tuple[str, str, str]]:
    return [
        (s, t, k)
        for s, t, k in query(
            url,
            """select n.nspname, c.relname, c.relkind from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'p')""",
            list(SCHEMAS),
        )
    ]


def test_a_reader_selects_every_table_and_view_and_changes_nothing(
    db_url: str, reader: str
) -> None:
    found = relations(db_url)
    assert len(found) >= 30
    tables = [(s, t) for s, t, k in found if k in ("r", "p")]
    with psycopg.connect(reader, autocommit=True) as conn:
        for schema, name in [(s, t) for s, t, _ in found]:
            conn.execute(sql.SQL("select * from {}.{} limit 1").format(
                sql.Identifier(schema), sql.Identifier(name)))  # fmt: skip
        refused = []
        for schema, name in tables:
            target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            for statement in (
                sql.SQL("insert into {} default values").format(target),
                sql.SQL("update {} set run_id = run_id where false").format(target),
                sql.SQL("delete from {}").format(target),
                sql.SQL("truncate {}").format(target),
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
                refused.append(statement)
        assert len(refused) == 4 * len(tables)
        for schema in (*SCHEMAS, "public"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("create table {}.mine (x int)").format(sql.Identifier(schema)))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("create schema mine")
        # analytics and core without a prefix; ops and raw with one
        assert conn.execute("show search_path").fetchone() == ("analytics, core",)
        conn.execute("select count(*) from papers, entity_names, ops.runs, raw.fetches")


def test_a_table_a_later_migration_adds_is_readable_too(db_url: str, reader: str) -> None:
    # default privileges: the owner's future tables in these schemas are granted on creation
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("create table analytics.later (x int)")
    assert query(reader, "select count(*) from analytics.later") == [(0,)]


def test_grant_reader_stores_only_a_scram_hash_and_resets_a_password(db_url: str) -> None:
    name = f"analyst_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            assert grant_reader(conn, name, "first one") is True
            (first,) = conn.execute(
                "select rolpassword from pg_authid where rolname = %s", (name,)
            ).fetchone() or (None,)
            assert grant_reader(conn, name, "second one") is False
            (second,) = conn.execute(
                "select rolpassword from pg_authid where rolname = %s", (name,)
            ).fetchone() or (None,)
            member = conn.execute(
                "select pg_has_role(%s, %s, 'member')", (name, READER_ROLE)
            ).fetchone()
        assert first.startswith("SCRAM-SHA-256$") and second.startswith("SCRAM-SHA-256$")
        assert first != second and "first one" not in first
        assert member == (True,)
    finally:
        drop_role(db_url, name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("postgres", "is not a tomeflow reader"),  # a superuser is never turned into a reader
        (READER_ROLE, "reserved"),
        ("pg_monitor", "reserved"),
        ("Analyst", "lower-case"),
        ("a; drop table x", "lower-case"),
        ("", "lower-case"),
    ],
)
def test_grant_reader_refuses_names_it_must_not_touch(db_url: str, name: str, reason: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn, pytest.raises(RoleError, match=reason):
        grant_reader(conn, name, "whatever")


@pytest.fixture
def real_paper(db_url: str, tmp_path: Path) -> str:
    """The real seed with its real full text, loaded as a batch loads it."""
    store = RawStore(tmp_path / "raw")
    sha = store.put(REAL_FULLTEXT.read_bytes())
    now = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    state = FulltextState("fetched", sha, '"v1"', None, now, now, None, True)
    load, _ = assemble_from_store(
        parse_summary(REAL_SEED.read_bytes(), REAL_SEED.name), state, None, store
    )
    loader = PostgresLoader(db_url)
    run_id = uuid.uuid4()
    loader.start_run(run_id, "test", "seeds")
    loader.load_batch(run_id, [load])
    return db_url


def search(conn: psycopg.Connection[Any], words: str) -> list[tuple[int, float, str]]:
    return conn.execute(
        "select ordinal, rank, snippet from analytics.search_sections(%s)", (words,)
    ).fetchall()


def test_search_uses_its_index_and_ranks_the_best_section_first(real_paper: str) -> None:
    with psycopg.connect(real_paper, autocommit=True) as conn:
        found = search(conn, '"skeletal muscle" insulin')
        phrase = {o for o, *_ in search(conn, '"skeletal muscle"')}
        without = {o for o, *_ in search(conn, '"skeletal muscle" -insulin')}
        insulin = {o for o, *_ in search(conn, "insulin")}
        conn.execute("set enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "explain select * from core.sections "
                "where search @@ websearch_to_tsquery('english', 'insulin resistance')"
            )
        )
    assert len(found) >= 3
    ranks = [r for _, r, _ in found]
    assert ranks == sorted(ranks, reverse=True)
    assert all("<<" in s and ">>" in s for *_, s in found)
    assert {o for o, *_ in found} <= phrase & insulin
    assert without <= phrase and not without & insulin  # -word excludes
    assert "sections_search_idx" in plan


def test_entity_names_finds_an_entity_by_any_alias_in_any_case(real_paper: str) -> None:
    lookup = """select curie, preferred_name, kind, papers_using_name, papers
                from analytics.entity_names where name_folded = lower(%s)"""
    assert query(real_paper, lookup, "iddm2") == [("NCBIGene:3630", "INS", "alias", 1, 1)]
    assert query(real_paper, lookup, "Insulin") == [("NCBIGene:3630", "INS", "full_name", 1, 1)]
    assert query(real_paper, lookup, "HUMAN") == [
        ("NCBITaxon:9606", "Homo sapiens", "common_name", 1, 1)
    ]
    # joined to the CURIE-keyed co-occurrence view: from an alias to the diseases beside it
    diseases = query(
        real_paper,
        """select c.disease_curie from analytics.entity_names n
           join analytics.gene_disease_cooccurrence c on c.gene_curie = n.curie
           where n.name_folded = 'iddm1' order by 1""",
    )
    assert ("MESH:D005234",) in diseases and ("MONDO:0013209",) in diseases
    assert len(diseases) == 8


def _migration() -> Any:
    spec = importlib.util.spec_from_file_location("migration_0008", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_names_every_error_cause_as_the_loader_does(db_url: str) -> None:
    # the migration filled raw.fetches.error_cause for rows fetched before it; the loader
    # computes it for new rows (records.error_cause): both must agree, class by class
    classes = [*ERROR_CAUSES, "SomethingNew", None]
    got = query(
        db_url,
        f"select error_class, {_migration().ERROR_CAUSE} from unnest(%s::text[]) as error_class",
        classes,
    )
    assert dict(got) == {c: error_cause(c) for c in classes}


def test_every_table_view_and_column_has_a_comment(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert uncommented(conn) == []


def test_the_checked_in_data_dictionary_is_what_the_migrations_make(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        text = render(conn)
    assert DICTIONARY_PATH.read_text(encoding="utf-8") == text, (
        "docs/data-dictionary.md is stale: run `tomeflow db dictionary` on a migrated database"
    )
    assert "### `analytics.search_sections(query text)`" in text
    assert Path(DICTIONARY_PATH).name == "data-dictionary.md"
