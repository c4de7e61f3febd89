"""The run log: ops.runs, and what each batch records whether or not it loads.

raw.fetches (every HTTP attempt), ops.quarantine (every rejected document or part) and
ops.dq_results (every expectation evaluated) are written in the batch's transaction.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from flows.load.copy import copy_into
from flows.records import ExpectationOutcome, FetchResult, LoadResult, QuarantineRow
from flows.tables import DQ_RESULTS, FETCHES, QUARANTINE, TABLE_NAMES

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RunCounts:
    """Counts recorded on ops.runs."""

    seen: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    quarantined: int = 0
    dq_failed_expectations: int = 0
    fetch_statuses: dict[str, int] = field(default_factory=dict)
    rows_written: dict[str, int] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    # rows carrying this run's id, per table: what the run wrote, shared rows (entities,
    # aliases) it made or changed, its quarantine and quality rows included
    rows_of_run: dict[str, int] = field(default_factory=dict)
    # tables whose row_counts figure is PostgreSQL's estimate (settings.exact_row_counts_below)
    estimated: frozenset[str] = frozenset()

    def this_run(self, table: str) -> int:
        """Rows of a table the run wrote, as the tables say (else as the batches counted)."""
        return self.rows_of_run.get(table, self.rows_written.get(table, 0))

    def total(self, table: str) -> str:
        """A table's rows as the summary shows them: ~ before PostgreSQL's estimate."""
        n = self.row_counts.get(table, 0)
        return f"~{n}" if table in self.estimated else str(n)

    def add(self, result: LoadResult) -> None:
        """Fold one batch's result into the run's counts."""
        self.new += len(result.new)
        self.updated += len(result.updated)
        self.unchanged += len(result.unchanged)
        self.failed += len(result.fetch_failed)
        for table, rows in result.rows_written.items():
            self.rows_written[table] = self.rows_written.get(table, 0) + rows


def start_run(
    conn: psycopg.Connection[Any], run_id: uuid.UUID, flow_run_name: str | None, seeds: str
) -> None:
    """Record a run as started."""
    conn.execute(
        "insert into ops.runs (run_id, flow_run_name, seeds) values (%s, %s, %s)"
        " on conflict (run_id) do update set status = 'running', ended_at = null",
        (run_id, flow_run_name, seeds),
    )


def run_key(run_id: uuid.UUID) -> int:
    """The advisory-lock key a run holds while it lives (a signed 64-bit integer)."""
    return int.from_bytes(run_id.bytes[:8], "big", signed=True)


def mark_dead_runs(conn: psycopg.Connection[Any], current: uuid.UUID) -> list[uuid.UUID]:
    """Mark `crashed` every run still `running` whose lock is free: its process is gone."""
    dead = []
    for (run_id,) in conn.execute(
        "select run_id from ops.runs where status = 'running' and run_id <> %s", (current,)
    ).fetchall():
        row = conn.execute("select pg_try_advisory_lock(%s)", (run_key(run_id),)).fetchone()
        if not (row and row[0]):
            continue  # alive: its process holds the lock
        conn.execute("select pg_advisory_unlock(%s)", (run_key(run_id),))
        conn.execute(
            """update ops.runs set status = 'crashed', ended_at = now(),
                   message = 'its process ended before the run did (found by run ' || %s || ')'
               where run_id = %s and status = 'running'""",
            (str(current), run_id),
        )
        dead.append(run_id)
    return dead


def finish_run(
    conn: psycopg.Connection[Any],
    run_id: uuid.UUID,
    status: str,
    counts: RunCounts,
    message: str | None,
    metrics: bool = False,
) -> None:
    """Record a run's end, its status and counts.

    metrics: also the figures the drift gate compares (ops.current_metrics), for a run whose
    after-load checks ran: a run that checked nothing is no baseline for the next.
    """
    conn.execute(
        """update ops.runs set ended_at = now(), status = %s, papers_seen = %s,
           papers_new = %s, papers_updated = %s, papers_unchanged = %s,
           papers_failed = %s, papers_quarantined = %s, row_counts = %s, message = %s,
           dq_failed_expectations = %s,
           metrics = case when %s then (select to_jsonb(m) from ops.current_metrics m)
                          else metrics end
           where run_id = %s""",
        (
            status,
            counts.seen,
            counts.new,
            counts.updated,
            counts.unchanged,
            counts.failed,
            counts.quarantined,
            json.dumps(counts.row_counts),
            message,
            counts.dq_failed_expectations,
            metrics,
            run_id,
        ),
    )


@dataclass(frozen=True, slots=True)
class TableRows:
    """Rows per loaded table, those carrying a run's id, and which totals are estimates."""

    totals: dict[str, int]
    of_run: dict[str, int]
    estimated: frozenset[str] = frozenset()


def row_counts(conn: psycopg.Connection[Any], run_id: uuid.UUID, exact_below: int) -> TableRows:
    """Rows per loaded table, and of those the rows carrying this run's id.

    Every loaded table has a run_id: what the run wrote, the shared rows (entities, aliases)
    it made or changed, its quarantine and quality rows. A table PostgreSQL estimates at fewer
    than `exact_below` rows (or has no estimate for, or no run_id index) is counted exactly, in
    one scan with its run's rows; a bigger one gets PostgreSQL's estimate (at least its run's
    rows), since a count reads the whole table on every run, and its run's rows are counted
    through its run_id index.
    """
    estimates = _estimates(conn)
    estimated = frozenset(t for t, n in estimates.items() if n is not None and n >= exact_below)
    counted = sql.SQL("select {name}, count(*), count(*) filter (where run_id = %(run)s) from {t}")
    of_run_only = sql.SQL("select {name}, null, count(*) from {t} where run_id = %(run)s")
    query = sql.SQL(" union all ").join(
        (of_run_only if table in estimated else counted).format(
            name=sql.Literal(table), t=sql.Identifier(*table.split("."))
        )
        for table in TABLE_NAMES
    )
    rows = {t: (n, int(mine)) for t, n, mine in conn.execute(query, {"run": run_id}).fetchall()}
    found = {t: rows[t] for t in TABLE_NAMES}  # in the tables' order
    of_run = {t: mine for t, (_, mine) in found.items()}
    totals = {
        t: int(n) if n is not None else max(round(estimates[t] or 0), mine)
        for t, (n, mine) in found.items()
    }
    return TableRows(totals, of_run, estimated)


def summarize_new_ranges(conn: psycopg.Connection[Any]) -> int:
    """Summarise the block ranges written since the last summary in the loaded tables' BRIN
    indexes (their run_id indexes); returns how many were summarised. conn: autocommit.

    Until a range is summarised a BRIN index returns it as a possible match, so a query for one
    run's rows, as the after-load checks are, reads every row appended since the table's last
    VACUUM: the whole table where autovacuum is off. Summarising reads just those rows once. It
    waits at most a second for a VACUUM of the table (which summarises too); a role that does
    not own the tables may not summarise. Either way the index is left as it is, with a line.
    """
    conn.execute("set lock_timeout = '1s'")
    indexes = conn.execute(
        """select i.indexrelid, i.indexrelid::regclass::text from pg_index i
             join pg_class c on c.oid = i.indexrelid join pg_am a on a.oid = c.relam
           where a.amname = 'brin' and i.indrelid = any(%s::regclass[]) order by 2""",
        (list(TABLE_NAMES),),
    ).fetchall()
    summarised = 0
    for oid, index in indexes:
        try:
            (n,) = conn.execute(
                "select brin_summarize_new_values(%s::oid::regclass)", (oid,)
            ).fetchone() or (0,)
        except psycopg.Error as exc:  # a lock wait, a statement timeout, a role: no failure
            logger.info("%s not summarised (its run_id checks read more): %s", index, exc)
            continue
        summarised += int(n)
    return summarised


def _estimates(conn: psycopg.Connection[Any]) -> dict[str, float | None]:
    """PostgreSQL's row estimate per loaded table that has an index led by run_id (a table
    without one is read whole to count its run's rows anyway); None where it has none.

    The live rows its statistics count as transactions commit; before any (never written, or
    statistics reset) its last VACUUM or ANALYZE's rows per page times the pages it has now,
    as the planner reckons (pages do not shrink when rows are deleted: the second choice).
    """
    rows = conn.execute(
        """select t.name, coalesce(nullif(s.n_live_tup, 0),
                  case when c.reltuples >= 0 and c.relpages > 0
                       then c.reltuples / c.relpages * (pg_relation_size(c.oid) / b.size) end)
           from unnest(%s::text[]) as t(name) join pg_class c on c.oid = to_regclass(t.name)
           left join pg_stat_user_tables s on s.relid = c.oid
           cross join (select current_setting('block_size')::int as size) b
           where exists (select 1 from pg_index i join pg_attribute a
                           on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
                         where i.indrelid = c.oid and a.attname = 'run_id')""",
        (list(TABLE_NAMES),),
    ).fetchall()
    return {name: (None if n is None else float(n)) for name, n in rows}


def write_fetches(
    cur: psycopg.Cursor[Any], run_id: uuid.UUID, fetches: Sequence[FetchResult]
) -> int:
    """One raw.fetches row per attempt."""
    attempts = (a for f in fetches for a in f.attempts)
    return copy_into(cur, FETCHES, FETCHES.log_rows(attempts, run_id))


def write_quarantine(
    cur: psycopg.Cursor[Any], run_id: uuid.UUID, rows: Sequence[QuarantineRow]
) -> int:
    """One ops.quarantine row per rejected document or part."""
    if not rows:
        return 0
    return copy_into(cur, QUARANTINE, QUARANTINE.log_rows(rows, run_id))


def write_dq_results(
    cur: psycopg.Cursor[Any], run_id: uuid.UUID, outcomes: Sequence[ExpectationOutcome]
) -> int:
    """One ops.dq_results row per evaluated expectation."""
    return copy_into(cur, DQ_RESULTS, DQ_RESULTS.log_rows(outcomes, run_id))


def quarantine_for(
    conn: psycopg.Connection[Any], run_id: uuid.UUID, limit: int
) -> tuple[list[QuarantineRow], int]:
    """The first `limit` quarantine rows a run wrote, and how many it wrote in all."""
    rows = conn.execute(
        """select document, stage, reason, rejected_whole, paper_id, line, payload
           from ops.quarantine where run_id = %s order by quarantine_id limit %s""",
        (run_id, limit),
    ).fetchall()
    (total,) = conn.execute(
        "select count(*) from ops.quarantine where run_id = %s", (run_id,)
    ).fetchone() or (0,)
    return [QuarantineRow(*row) for row in rows], int(total)


def quarantine_by_stage(
    conn: psycopg.Connection[Any], run_id: uuid.UUID, first: int
) -> dict[str, tuple[int, tuple[QuarantineRow, ...]]]:
    """Per stage: how many quarantine rows the run wrote, and the first few of them."""
    out: dict[str, tuple[int, tuple[QuarantineRow, ...]]] = {}
    for stage, count in conn.execute(
        """select stage, count(*) from ops.quarantine where run_id = %s
           group by stage order by min(quarantine_id)""",
        (run_id,),
    ).fetchall():
        rows = conn.execute(
            """select document, stage, reason, rejected_whole, paper_id, line, payload
               from ops.quarantine where run_id = %s and stage = %s
               order by quarantine_id limit %s""",
            (run_id, stage, first),
        ).fetchall()
        out[stage] = (int(count), tuple(QuarantineRow(*r) for r in rows))
    return out
