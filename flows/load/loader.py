"""PostgresLoader: the one door to PostgreSQL the flow is handed (run log, batch loads, counts)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

from flows.load import changes, entities, papers, runlog
from flows.load.fulltext import copy_fulltext, stage_sections
from flows.load.runlog import RunCounts
from flows.records import (
    ExpectationOutcome,
    FetchResult,
    LoadResult,
    PaperLoad,
    QuarantineRow,
    RunChanges,
    StoredPaper,
)
from flows.shards import Shard

# loads take this lock for their transaction, so concurrent runs (more workers, a Dask or Ray
# task runner) serialise only the short write step and always see each other's committed rows
LOAD_LOCK = 0x6C6F6164  # "load"


class PostgresLoader:
    """The one door to PostgreSQL for the pipeline: run log, batch loads, counts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._leases: dict[uuid.UUID, psycopg.Connection[Any]] = {}
        self._lock = threading.Lock()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, application_name="tomeflow")

    def start_run(
        self, run_id: uuid.UUID, flow_run_name: str | None, seeds: str
    ) -> list[uuid.UUID]:
        """Record a run as started; returns the runs it found dead and marked crashed.

        The run holds an advisory lock on a connection of its own until it finishes; a run
        whose process is killed loses it, which is how the next run knows it is gone.
        """
        lease = psycopg.connect(self.url, autocommit=True, application_name="tomeflow-run")
        lease.execute("select pg_advisory_lock(%s)", (runlog.run_key(run_id),))
        with self._lock:
            self._leases[run_id] = lease
        with self._connect() as conn:
            dead = runlog.mark_dead_runs(conn, run_id)
            runlog.start_run(conn, run_id, flow_run_name, seeds)
        return dead

    def finish_run(
        self,
        run_id: uuid.UUID,
        status: str,
        counts: RunCounts,
        message: str | None = None,
        metrics: bool = False,
    ) -> None:
        """Record a run's end, its status and counts (metrics: and the drift figures)."""
        try:
            with self._connect() as conn:
                runlog.finish_run(conn, run_id, status, counts, message, metrics)
        finally:
            with self._lock:
                lease = self._leases.pop(run_id, None)
            if lease is not None:
                lease.close()

    def summarize_new_ranges(self) -> int:
        """Bring the run_id BRIN indexes up to date, so one run's rows are found without
        reading the others' (before the after-load checks); returns the ranges summarised."""
        with psycopg.connect(self.url, autocommit=True, application_name="tomeflow") as conn:
            return runlog.summarize_new_ranges(conn)

    def row_counts(self, run_id: uuid.UUID, exact_below: int) -> runlog.TableRows:
        """Rows per table, and the rows carrying this run's id, for the run summary."""
        with self._connect() as conn:
            return runlog.row_counts(conn, run_id, exact_below)

    def stored_papers(self, paper_ids: Sequence[str], raw_fallback: bool) -> dict[str, StoredPaper]:
        """What is stored about these papers; with raw_fallback, papers only raw.fetches knows."""
        with self._connect() as conn:
            rows = conn.execute(
                """select paper_id, source_sha256, content_sha256, fulltext_url, fulltext_status,
                          fulltext_sha256, fulltext_etag, fulltext_last_modified,
                          fulltext_fetched_at, fulltext_error
                   from core.papers where paper_id = any(%s)""",
                (list(paper_ids),),
            ).fetchall()
            stored = {r[0]: StoredPaper(*r) for r in rows}
            missing = [i for i in paper_ids if i not in stored]
            if raw_fallback and missing:
                # the last body fetched for a paper the tables do not hold (offline replay into
                # a database whose core tables were emptied)
                for paper_id, url, sha, etag, modified, at in conn.execute(
                    """select distinct on (paper_id) paper_id, url, sha256, etag, last_modified,
                              started_at
                       from raw.fetches where paper_id = any(%s) and sha256 is not null
                       order by paper_id, fetch_id desc""",
                    (missing,),
                ):
                    stored[paper_id] = StoredPaper(
                        paper_id, None, None, url, "fetched", sha, etag, modified, at, None
                    )
        return stored

    def stored_seeds(self, seed_paths: Sequence[str]) -> dict[str, StoredPaper]:
        """Stored papers by the seed file they were read from (to spot unchanged seeds)."""
        with self._connect() as conn:
            rows = conn.execute(
                """select seed_path, paper_id, source_sha256, content_sha256, fulltext_url,
                          fulltext_status, fulltext_sha256, fulltext_etag,
                          fulltext_last_modified, fulltext_fetched_at, fulltext_error
                   from core.papers where seed_path = any(%s)""",
                (list(seed_paths),),
            ).fetchall()
        return {r[0]: StoredPaper(*r[1:]) for r in rows}

    def load_batch(
        self,
        run_id: uuid.UUID,
        loads: Sequence[PaperLoad],
        quarantine: Sequence[QuarantineRow] = (),
        fetches: Sequence[FetchResult] = (),
        dq: Sequence[ExpectationOutcome] = (),
        *,
        force: bool = False,
    ) -> LoadResult:
        """Load a batch in one transaction: new and changed papers replace their rows."""
        with self._connect() as conn, conn.transaction(), conn.cursor() as cur:
            # most of the load's work, parsing the sections' search tsvector, before the lock:
            # other batches write meanwhile (papers found unchanged under it are not written);
            # a batch of unchanged papers (new full-text states only) has nothing to stage
            if any(p.content is not None for p in loads):
                stage_sections(cur, run_id, loads)
            asked = time.perf_counter()
            cur.execute("select pg_advisory_xact_lock(%s)", (LOAD_LOCK,))
            waited = time.perf_counter() - asked
            stored = dict(
                cur.execute(
                    "select paper_id, content_sha256 from core.papers where paper_id = any(%s)",
                    ([p.paper_id for p in loads],),
                ).fetchall()
            )
            write = [
                p
                for p in loads
                if p.content is not None and (force or stored.get(p.paper_id) != p.content_sha256)
            ]
            changed = [p.paper_id for p in write if stored.get(p.paper_id) != p.content_sha256]
            rows = write_papers(cur, run_id, write, changed) if write else {}
            written = {p.paper_id for p in write}
            rest = [p for p in loads if p.paper_id not in written]
            rows["core.papers"] = len(write) + papers.write_fulltext_states(cur, run_id, rest)
            rows["raw.fetches"] = runlog.write_fetches(cur, run_id, fetches)
            runlog.write_quarantine(cur, run_id, quarantine)
            runlog.write_dq_results(cur, run_id, dq)
        return LoadResult(
            new=tuple(i for i in changed if i not in stored),
            updated=tuple(i for i in changed if i in stored),
            unchanged=tuple(p.paper_id for p in loads if p.paper_id not in changed),
            fetch_failed=tuple(p.paper_id for p in loads if p.fulltext_state.failed),
            rows_written=rows,
            lock_wait_seconds=waited,
        )

    def record_rejected_batch(
        self,
        run_id: uuid.UUID,
        quarantine: Sequence[QuarantineRow],
        fetches: Sequence[FetchResult] = (),
        dq: Sequence[ExpectationOutcome] = (),
    ) -> LoadResult:
        """For a batch that loads nothing: its quarantine rows, fetch attempts and dq results."""
        with self._connect() as conn, conn.transaction(), conn.cursor() as cur:
            fetch_rows = runlog.write_fetches(cur, run_id, fetches)
            runlog.write_quarantine(cur, run_id, quarantine)
            runlog.write_dq_results(cur, run_id, dq)
        # the fetch log carries the run's id: the after-load count must know these rows
        return LoadResult(rows_written={"raw.fetches": fetch_rows})

    def record_dq_results(self, run_id: uuid.UUID, outcomes: Sequence[ExpectationOutcome]) -> None:
        """One ops.dq_results row per evaluated expectation."""
        with self._connect() as conn, conn.transaction(), conn.cursor() as cur:
            runlog.write_dq_results(cur, run_id, outcomes)

    def record_removed(
        self, run_id: uuid.UUID, seen: Sequence[str], shard: Shard | None = None
    ) -> int:
        """Mark the papers whose seeds the run no longer found as removed (rows kept)."""
        with self._connect() as conn:
            return changes.record_removed(conn, run_id, seen, shard)

    def quarantine_by_stage(
        self, run_id: uuid.UUID, first: int
    ) -> dict[str, tuple[int, tuple[QuarantineRow, ...]]]:
        """Per stage: the run's quarantine rows counted, and the first few."""
        with self._connect() as conn:
            return runlog.quarantine_by_stage(conn, run_id, first)

    def run_changes(self, run_id: uuid.UUID, first: int) -> RunChanges:
        """What a run changed, the first papers spelled out, and the run before's rows."""
        with self._connect() as conn:
            return changes.run_changes(conn, run_id, first)

    def quarantine_for(self, run_id: uuid.UUID, limit: int) -> tuple[list[QuarantineRow], int]:
        """The first `limit` quarantine rows a run wrote, and how many it wrote in all."""
        with self._connect() as conn:
            return runlog.quarantine_for(conn, run_id, limit)


def write_papers(
    cur: psycopg.Cursor[Any],
    run_id: uuid.UUID,
    loads: Sequence[PaperLoad],
    changed: Sequence[str] = (),
) -> dict[str, int]:
    """Replace every row of these papers, step by step; returns rows written per table.

    Their sections are staged already (flows/load/fulltext.py `stage_sections`). changed:
    the papers whose content differs from what was loaded (new or updated): what changed in
    each goes to ops.run_changes.
    """
    ids = [p.paper_id for p in loads]
    changes.remember_before(cur, changed)
    rows = papers.stage_summaries(cur, run_id, loads)
    rows |= entities.stage_entities(cur, run_id, loads)
    entities.remember_affected(cur, ids)
    papers.remember_old_authors(cur, ids)
    papers.delete_paper_rows(cur, ids)
    papers.upsert_papers(cur, run_id)
    papers.insert_summaries(cur, run_id)
    entities.insert_entities(cur, run_id)
    # the papers' old rows are gone and their entities are in: COPY straight into the tables
    rows |= copy_fulltext(cur, run_id, loads)
    entities.settle_entities(cur, run_id)
    entities.refresh_aliases(cur, run_id)
    entities.prune_entities(cur)
    papers.settle_authors(cur, run_id)
    papers.prune_authors(cur)
    changes.record(cur, run_id, changed)
    return rows
