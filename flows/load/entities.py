"""Entities across papers: one row per CURIE, the names papers give them, aliases, preferred names.

core.entities and core.entity_aliases are shared by every paper that lists an entity. A batch
stages its papers' entity rows, then rewrites only the shared rows whose values change; the
CURIEs affected are those the batch's papers list now or listed before.

The preferred name is the one aggregate chosen here rather than before the load: it depends on
the names every paper in the database gives the entity, which only the load transaction sees
whole. The rule itself is flows.entities.preferred_name.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import psycopg

from flows.entities import preferred_name
from flows.load.copy import copy_rows, execute_each, stage
from flows.records import PaperLoad
from flows.tables import PAPER_ENTITIES, PAPER_ENTITY_NAMES


def stage_entities(
    cur: psycopg.Cursor[Any], run_id: uuid.UUID, loads: Sequence[PaperLoad]
) -> dict[str, int]:
    """Stage the papers' entity listings and names; returns rows per table."""
    return {
        PAPER_ENTITIES.name: stage(cur, PAPER_ENTITIES, PAPER_ENTITIES.rows(loads, run_id)),
        PAPER_ENTITY_NAMES.name: stage(
            cur, PAPER_ENTITY_NAMES, PAPER_ENTITY_NAMES.rows(loads, run_id)
        ),
    }


def remember_affected(cur: psycopg.Cursor[Any], paper_ids: Sequence[str]) -> None:
    """Note the CURIEs whose aliases or preferred name may change: listed now or before."""
    cur.execute(
        """create temp table s_affected on commit drop as
           select curie from core.paper_entities where paper_id = any(%(ids)s)
           union select curie from s_paper_entities""",
        {"ids": list(paper_ids)},
    )


def insert_entities(cur: psycopg.Cursor[Any], run_id: uuid.UUID) -> None:
    """New CURIEs get a row; then the papers' listings and names go in."""
    execute_each(
        cur,
        """insert into core.entities (curie, prefix, local_id, entity_type, preferred_name,
               symbol, full_name, common_name, run_id, source_sha256)
           select distinct on (curie) curie, split_part(curie, ':', 1),
               substr(curie, strpos(curie, ':') + 1), entity_type, name_as_written,
               symbol, full_name, common_name, run_id, source_sha256
           from s_paper_entities order by curie, paper_id desc, listing
           on conflict (curie) do nothing;
           insert into core.paper_entities (paper_id, curie, listing, category,
               name_as_written, line, entity_type, symbol, full_name, common_name, run_id,
               source_sha256)
           select paper_id, curie, listing, category, name_as_written, line, entity_type,
               symbol, full_name, common_name, run_id, source_sha256 from s_paper_entities;
           insert into core.paper_entity_names (paper_id, curie, name, kind, run_id,
               source_sha256)
           select paper_id, curie, name, kind, run_id, source_sha256 from s_paper_entity_names;""",
        {"run": run_id},
    )


def settle_entities(cur: psycopg.Cursor[Any], run_id: uuid.UUID) -> None:
    """Each affected CURIE takes its details from the listing paper with the highest id.

    Computed from every paper in the database, not the batch, so the rows do not depend on
    which batches loaded in which order.
    """
    cur.execute(
        """update core.entities e set entity_type = w.entity_type, symbol = w.symbol,
               full_name = w.full_name, common_name = w.common_name, run_id = %(run)s,
               source_sha256 = w.source_sha256
           from (select distinct on (curie) curie, entity_type, symbol, full_name,
                        common_name, source_sha256
                 from core.paper_entities join s_affected using (curie)
                 order by curie, paper_id desc, listing) w
           where e.curie = w.curie
             and (e.entity_type, e.symbol, e.full_name, e.common_name, e.source_sha256)
                 is distinct from
                 (w.entity_type, w.symbol, w.full_name, w.common_name, w.source_sha256)""",
        {"run": run_id},
    )


def refresh_aliases(cur: psycopg.Cursor[Any], run_id: uuid.UUID) -> None:
    """Recompute aliases, their paper counts and preferred names for the affected curies."""
    execute_each(
        cur,
        """create temp table s_aliases on commit drop as
           select n.curie, n.name as alias,
                  (array_agg(n.kind order by array_position(
                      array['name','full_name','common_name','alias'], n.kind)))[1] as kind,
                  count(distinct n.paper_id)::int as paper_count,
                  max(n.source_sha256) as source_sha256
           from core.paper_entity_names n join s_affected a using (curie)
           group by n.curie, n.name;
           delete from core.entity_aliases x using s_affected a
           where x.curie = a.curie and not exists (
               select 1 from s_aliases s where s.curie = x.curie and s.alias = x.alias);
           insert into core.entity_aliases (curie, alias, kind, paper_count, run_id, source_sha256)
           select curie, alias, kind, paper_count, %(run)s, source_sha256 from s_aliases
           on conflict (curie, alias) do update set kind = excluded.kind,
               paper_count = excluded.paper_count, run_id = excluded.run_id,
               source_sha256 = excluded.source_sha256
           where (core.entity_aliases.kind, core.entity_aliases.paper_count)
               is distinct from (excluded.kind, excluded.paper_count);""",
        {"run": run_id},
    )
    _choose_preferred_names(cur)


def _choose_preferred_names(cur: psycopg.Cursor[Any]) -> None:
    rows = cur.execute(
        """select e.curie, e.entity_type, e.symbol, s.alias, s.paper_count
           from core.entities e join s_aliases s using (curie) where s.kind = 'name'"""
    ).fetchall()
    names: dict[str, dict[str, int]] = defaultdict(dict)
    details: dict[str, tuple[str, str | None]] = {}
    for curie, entity_type, symbol, alias, count in rows:
        names[curie][alias] = count
        details[curie] = (entity_type, symbol)
    preferred = [
        (curie, preferred_name(details[curie][0], counts, details[curie][1]))
        for curie, counts in names.items()
    ]
    cur.execute("create temp table s_preferred (curie text, name text) on commit drop")
    copy_rows(cur, "s_preferred", ("curie", "name"), preferred)
    cur.execute(
        """update core.entities e set preferred_name = s.name
           from s_preferred s where e.curie = s.curie and e.preferred_name <> s.name"""
    )


def prune_entities(cur: psycopg.Cursor[Any]) -> None:
    """Delete the affected entities that no paper lists any more."""
    cur.execute(
        """delete from core.entities e using s_affected a
           where e.curie = a.curie
             and not exists (select 1 from core.paper_entities p where p.curie = e.curie)"""
    )
