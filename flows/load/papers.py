"""core.papers and the rows that hang on a paper: replace changed papers, update the rest."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from flows.load import changes
from flows.load.copy import column_list, execute_each, stage, staging_name
from flows.records import PaperLoad
from flows.tables import KEY_FINDINGS, PAPER_AUTHORS, PAPER_STATES, PAPERS

# the child tables a paper's rows live in; all are replaced when the paper changes
# (entity_mentions first: it references sections)
PAPER_CHILDREN = (
    "entity_mentions",
    "captions",
    "paper_references",
    "sections",
    "paper_authors",
    "key_findings",
    "paper_entities",
    "paper_entity_names",
)


def stage_summaries(
    cur: psycopg.Cursor[Any], run_id: uuid.UUID, loads: Sequence[PaperLoad]
) -> dict[str, int]:
    """Stage the papers' own rows, authors and key findings; returns rows per table."""
    stage(cur, PAPERS, PAPERS.rows(loads, run_id))
    return {
        PAPER_AUTHORS.name: stage(cur, PAPER_AUTHORS, PAPER_AUTHORS.rows(loads, run_id)),
        KEY_FINDINGS.name: stage(cur, KEY_FINDINGS, KEY_FINDINGS.rows(loads, run_id)),
    }


def remember_old_authors(cur: psycopg.Cursor[Any], paper_ids: Sequence[str]) -> None:
    """Note the authors these papers had, to prune the ones no paper keeps."""
    cur.execute(
        """create temp table s_old_authors on commit drop as
           select author_id from core.paper_authors where paper_id = any(%(ids)s)""",
        {"ids": list(paper_ids)},
    )


def delete_paper_rows(cur: psycopg.Cursor[Any], paper_ids: Sequence[str]) -> None:
    """Delete every child row of these papers (their core.papers rows are upserted)."""
    for child in PAPER_CHILDREN:
        cur.execute(
            sql.SQL("delete from {} where paper_id = any(%(ids)s)").format(
                sql.Identifier("core", child)
            ),
            {"ids": list(paper_ids)},
        )


def upsert_papers(cur: psycopg.Cursor[Any], run_id: uuid.UUID) -> None:
    """Insert or replace the staged papers' core.papers rows."""
    columns = PAPERS.copy_columns
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in columns[1:]
    )
    cur.execute(
        sql.SQL(
            """insert into core.papers ({cols}, run_id, loaded_at)
               select {cols}, %(run)s, now() from {staged}
               on conflict (paper_id) do update set {updates},
                   run_id = excluded.run_id, loaded_at = excluded.loaded_at"""
        ).format(
            cols=column_list(columns),
            staged=sql.Identifier(staging_name(PAPERS)),
            updates=updates,
        ),
        {"run": run_id},
    )


def insert_summaries(cur: psycopg.Cursor[Any], run_id: uuid.UUID) -> None:
    """Authors (new names get an id), the papers' author lists and key findings."""
    execute_each(
        cur,
        """insert into core.authors (name, run_id, source_sha256)
           select distinct on (name) name, %(run)s, source_sha256 from s_paper_authors
           order by name, paper_id
           on conflict (name) do nothing;
           insert into core.paper_authors (paper_id, position, author_id, run_id, source_sha256)
           select s.paper_id, s.position, a.author_id, s.run_id, s.source_sha256
           from s_paper_authors s join core.authors a using (name);
           insert into core.key_findings (paper_id, ordinal, finding, run_id, source_sha256)
           select paper_id, ordinal, finding, run_id, source_sha256 from s_key_findings;""",
        {"run": run_id},
    )


def settle_authors(cur: psycopg.Cursor[Any], run_id: uuid.UUID) -> None:
    """Each author these papers list, or listed, names the paper with the lowest id as source.

    Computed from every paper in the database, so it does not depend on batch order.
    """
    cur.execute(
        """update core.authors a set source_sha256 = w.source_sha256, run_id = %(run)s
           from (select distinct on (author_id) author_id, source_sha256
                 from core.paper_authors
                 where author_id in (select author_id from s_old_authors
                                     union select a.author_id from core.authors a
                                           join s_paper_authors s using (name))
                 order by author_id, paper_id) w
           where a.author_id = w.author_id and a.source_sha256 <> w.source_sha256""",
        {"run": run_id},
    )


def prune_authors(cur: psycopg.Cursor[Any]) -> None:
    """Delete the authors these papers had that no paper lists any more."""
    cur.execute(
        """delete from core.authors x using s_old_authors o
           where x.author_id = o.author_id
             and not exists (select 1 from core.paper_authors p where p.author_id = x.author_id)"""
    )


def write_fulltext_states(
    cur: psycopg.Cursor[Any], run_id: uuid.UUID, loads: Sequence[PaperLoad]
) -> int:
    """Record new full-text states of papers whose content is unchanged; returns rows changed."""
    requested = [p for p in loads if p.fulltext_state.requested]
    if not requested:
        return 0
    stage(cur, PAPER_STATES, PAPER_STATES.rows(requested, run_id))
    changes.record_fulltext_states(cur, run_id, staging_name(PAPER_STATES))
    states = [c for c in PAPER_STATES.copy_columns if c != "paper_id"]
    sets = sql.SQL(", ").join(sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in states)
    cur.execute(
        sql.SQL(
            """update core.papers p set {sets}, run_id = %(run)s, loaded_at = now()
               from {staged} s where p.paper_id = s.paper_id
               and ({cols}) is distinct from ({scols})"""
        ).format(
            sets=sets,
            staged=sql.Identifier(staging_name(PAPER_STATES)),
            cols=column_list(states, "p"),
            scols=column_list(states, "s"),
        ),
        {"run": run_id},
    )
    return cur.rowcount
