"""What a run changed, per paper: ops.run_changes, written in the batch's transaction.

Before a batch replaces its changed papers, their old state is noted (the core.papers row,
the CURIEs listed, the sections and references counted, the full-text status); after, each
paper the batch added or updated gets a row naming what changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from flows.records import PaperChange, RunChanges
from flows.shards import Shard

# columns that change on every rewrite, or only follow others: not worth naming as changed
_NOT_FIELDS = ("run_id", "loaded_at", "content_sha256", "source_sha256", "fulltext_fetched_at")

# a core.papers row p's sections and references, counted
_SIZES = """
    (select count(*) from core.sections s where s.paper_id = p.paper_id)::int as sections,
    (select count(*) from core.paper_references r where r.paper_id = p.paper_id)::int as refs
"""

_STATE = f"""
    select p.paper_id, to_jsonb(p) - %(skip)s::text[] as fields,
           coalesce((select array_agg(distinct e.curie order by e.curie)
                     from core.paper_entities e where e.paper_id = p.paper_id),
                    '{{}}'::text[]) as curies,
           {_SIZES}, p.fulltext_status
    from core.papers p where p.paper_id = any(%(ids)s)
"""


def remember_before(cur: psycopg.Cursor[Any], paper_ids: Sequence[str]) -> None:
    """Note these papers' state before the batch rewrites them."""
    cur.execute(
        f"create temp table s_before on commit drop as {_STATE}",
        {"ids": list(paper_ids), "skip": list(_NOT_FIELDS)},
    )


def record(cur: psycopg.Cursor[Any], run_id: uuid.UUID, changed: Iterable[str]) -> int:
    """One ops.run_changes row per paper the batch added or updated; returns how many."""
    ids = list(changed)
    if not ids:
        return 0
    cur.execute(
        f"""insert into ops.run_changes (run_id, paper_id, change, fields, entities_added,
                entities_removed, sections_before, sections_after, references_before,
                references_after, fulltext_before, fulltext_after)
            select %(run)s, a.paper_id,
                   case when b.paper_id is null then 'added' else 'updated' end,
                   case when b.paper_id is null then '{{}}'::text[] else array(
                       select key from jsonb_each(a.fields) n
                       where n.value is distinct from b.fields -> n.key order by key) end,
                   array(select unnest(a.curies) except select unnest(b.curies) order by 1),
                   array(select unnest(b.curies) except select unnest(a.curies) order by 1),
                   b.sections, a.sections, b.refs, a.refs, b.fulltext_status, a.fulltext_status
            from ({_STATE}) a left join s_before b using (paper_id)""",
        {"run": run_id, "ids": ids, "skip": list(_NOT_FIELDS)},
    )
    return cur.rowcount


def record_removed(
    conn: psycopg.Connection[Any],
    run_id: uuid.UUID,
    seen: Iterable[str],
    shard: Shard | None = None,
) -> int:
    """Papers loaded before that the run's seeds no longer give: 'removed' (their rows stay).

    seen: every paper id the run's seeds gave. A paper whose seed document is still there but
    was quarantined whole this run (its id unknown) is not counted removed. shard: the run
    read only this shard's papers, so only they can be found removed.
    """
    in_shard = "true" if shard is None else shard.sql("p.paper_id")
    result = conn.execute(
        """insert into ops.run_changes (run_id, paper_id, change, sections_before,
               references_before, fulltext_before)
           select %(run)s, p.paper_id, 'removed', x.sections, x.refs, p.fulltext_status
           from core.papers p cross join lateral (select """
        + _SIZES
        + """) x
           where not (p.paper_id = any(%(seen)s)) and """
        + in_shard
        + """
             and not exists (
                 select 1 from ops.quarantine q
                 where q.run_id = %(run)s and q.document = p.seed_path and q.rejected_whole)
             and not exists (  -- reported once, until the paper comes back
                 select 1 from ops.run_changes c where c.paper_id = p.paper_id
                 and c.change = 'removed' and c.change_id = (
                     select max(change_id) from ops.run_changes x
                     where x.paper_id = p.paper_id))""",
        {"run": run_id, "seen": list(seen)},
    )
    return result.rowcount


def run_changes(conn: psycopg.Connection[Any], run_id: uuid.UUID, first: int) -> RunChanges:
    """What the run changed (the first `first` papers spelled out) and the run before's rows."""
    counts = dict(
        conn.execute(
            "select change, count(*) from ops.run_changes where run_id = %s group by change",
            (run_id,),
        ).fetchall()
    )
    shown = conn.execute(
        """select paper_id, change, details from ops.run_change_details where run_id = %s
           order by array_position(array['removed', 'updated', 'added'], change), paper_id
           limit %s""",
        (run_id, first),
    ).fetchall()
    before = conn.execute(
        """select b.flow_run_name, b.row_counts from ops.runs r join ops.runs b
             on b.started_at < r.started_at and b.status in ('completed', 'failed')
           where r.run_id = %s order by b.started_at desc limit 1""",
        (run_id,),
    ).fetchone()
    return RunChanges(
        added=int(counts.get("added", 0)),
        updated=int(counts.get("updated", 0)),
        removed=int(counts.get("removed", 0)),
        # an added paper's details would list all it has: "added" says it (run_diff lists them)
        shown=tuple(PaperChange(p, c, () if c == "added" else tuple(d)) for p, c, d in shown),
        run_before=before[0] if before else None,
        rows_before={k: int(v) for k, v in before[1].items()} if before else {},
    )


def record_fulltext_states(cur: psycopg.Cursor[Any], run_id: uuid.UUID, staged: str) -> int:
    """Papers whose content stayed but whose full text was lost or came back: 'updated'.

    staged: the temporary table of new full-text states, not yet written to core.papers. A
    304 after a 200 (not_modified after fetched) is no change; fetched to not_found is.
    """
    cur.execute(
        sql.SQL(
            """insert into ops.run_changes (run_id, paper_id, change, fields, sections_before,
                   sections_after, references_before, references_after, fulltext_before,
                   fulltext_after)
               select %(run)s, p.paper_id, 'updated',
                      array(select key from jsonb_each(to_jsonb(s)) n
                            where key <> all(%(skip)s::text[]) and key <> 'paper_id'
                            and n.value is distinct from to_jsonb(p) -> n.key order by key),
                      x.sections, x.sections, x.refs, x.refs, p.fulltext_status, s.fulltext_status
               from core.papers p join {staged} s using (paper_id)
               cross join lateral (select {sizes}) x
               where {before} is distinct from {after}"""
        ).format(
            staged=sql.Identifier(staged),
            sizes=sql.SQL(_SIZES),
            before=_kind("p"),
            after=_kind("s"),
        ),
        {"run": run_id, "skip": list(_NOT_FIELDS)},
    )
    return cur.rowcount


def _kind(alias: str) -> sql.Composable:
    """A full-text status with fetched and not_modified (a 304) as one: 'fetched'."""
    return sql.SQL(
        "(case when {0}.fulltext_status = 'not_modified' then 'fetched'"
        " else {0}.fulltext_status end)"
    ).format(sql.Identifier(alias))
