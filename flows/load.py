"""Batch -> PostgreSQL in one transaction: COPY, staging tables, set-based upserts."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from flows.entities import preferred_name
from flows.fetch import FetchResult
from flows.papers import PaperContent, PaperLoad
from flows.plan import StoredPaper
from flows.quality import ExpectationOutcome
from flows.quarantine import QuarantineRow

# loads take this lock for their transaction, so concurrent runs (more workers, a Dask or Ray
# task runner) serialise only the short write step and always see each other's committed rows
LOAD_LOCK = 0x6C6F6164  # "load"

TABLES = (
    "core.papers",
    "core.authors",
    "core.paper_authors",
    "core.key_findings",
    "core.entities",
    "core.paper_entities",
    "core.paper_entity_names",
    "core.entity_aliases",
    "core.sections",
    "core.paper_references",
    "core.captions",
    "core.entity_mentions",
    "raw.fetches",
    "ops.quarantine",
    "ops.dq_results",
)

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


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one batch did to the tables."""

    new: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    fetch_failed: tuple[str, ...] = ()  # papers whose full text this run could not fetch
    rows_written: Mapping[str, int] = field(default_factory=dict)  # table -> rows of this batch


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

    def add(self, result: LoadResult) -> None:
        """Fold one batch's result into the run's counts."""
        self.new += len(result.new)
        self.updated += len(result.updated)
        self.unchanged += len(result.unchanged)
        self.failed += len(result.fetch_failed)
        for table, rows in result.rows_written.items():
            self.rows_written[table] = self.rows_written.get(table, 0) + rows


class PostgresLoader:
    """The one door to PostgreSQL for the pipeline: run log, batch loads, counts."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, application_name="tomeflow")

    def start_run(self, run_id: uuid.UUID, flow_run_name: str | None, seeds: str) -> None:
        """Record a run as started."""
        with self._connect() as conn:
            conn.execute(
                "insert into ops.runs (run_id, flow_run_name, seeds) values (%s, %s, %s)"
                " on conflict (run_id) do update set status = 'running', ended_at = null",
                (run_id, flow_run_name, seeds),
            )

    def finish_run(
        self, run_id: uuid.UUID, status: str, counts: RunCounts, message: str | None = None
    ) -> None:
        """Record a run's end, its status and counts."""
        with self._connect() as conn:
            conn.execute(
                """update ops.runs set ended_at = now(), status = %s, papers_seen = %s,
                   papers_new = %s, papers_updated = %s, papers_unchanged = %s,
                   papers_failed = %s, papers_quarantined = %s, row_counts = %s, message = %s,
                   dq_failed_expectations = %s
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
                    run_id,
                ),
            )

    def row_counts(self) -> dict[str, int]:
        """Rows per table, for the run summary."""
        with self._connect() as conn:
            return {
                table: conn.execute(
                    sql.SQL("select count(*) from {}").format(sql.Identifier(*table.split(".")))
                ).fetchone()[0]  # type: ignore[index]
                for table in TABLES
            }

    def stored_papers(self, paper_ids: Sequence[str], raw_fallback: bool) -> dict[str, StoredPaper]:
        """What is stored about these papers; with raw_fallback, papers only raw.fetches knows."""
        with self._connect() as conn:
            rows = conn.execute(
                """select paper_id, source_sha256, content_sha256, fulltext_url, fulltext_status,
                          fulltext_sha256, fulltext_etag, fulltext_last_modified,
                          fulltext_fetched_at, fulltext_checked_at, fulltext_error
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
                        paper_id, None, None, url, "fetched", sha, etag, modified, at, at, None
                    )
        return stored

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
        with self._connect() as conn, conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (LOAD_LOCK,))
            stored = dict(
                conn.execute(
                    "select paper_id, content_sha256 from core.papers where paper_id = any(%s)",
                    ([p.paper.paper_id for p in loads],),
                ).fetchall()
            )
            write = [
                p
                for p in loads
                if p.content is not None
                and (force or stored.get(p.paper.paper_id) != p.content_sha256)
            ]
            rows = _write_papers(conn, run_id, write) if write else {}
            written = {p.paper.paper_id for p in write}
            rest = [p for p in loads if p.paper.paper_id not in written]
            rows["core.papers"] = len(write) + _write_fulltext_states(conn, run_id, rest)
            rows["raw.fetches"] = _write_fetches(conn, run_id, fetches)
            _write_quarantine(conn, run_id, quarantine)
            _write_dq_results(conn, run_id, dq)
        changed = [
            p.paper.paper_id for p in write if stored.get(p.paper.paper_id) != p.content_sha256
        ]
        return LoadResult(
            new=tuple(i for i in changed if i not in stored),
            updated=tuple(i for i in changed if i in stored),
            unchanged=tuple(p.paper.paper_id for p in loads if p.paper.paper_id not in changed),
            fetch_failed=tuple(p.paper.paper_id for p in loads if p.fulltext_state.failed),
            rows_written=rows,
        )

    def record_rejected_batch(
        self,
        run_id: uuid.UUID,
        quarantine: Sequence[QuarantineRow],
        fetches: Sequence[FetchResult] = (),
        dq: Sequence[ExpectationOutcome] = (),
    ) -> None:
        """For a batch that loads nothing: its quarantine rows, fetch attempts and dq results."""
        with self._connect() as conn, conn.transaction():
            _write_fetches(conn, run_id, fetches)
            _write_quarantine(conn, run_id, quarantine)
            _write_dq_results(conn, run_id, dq)

    def record_dq_results(self, run_id: uuid.UUID, outcomes: Sequence[ExpectationOutcome]) -> None:
        """One ops.dq_results row per evaluated expectation."""
        with self._connect() as conn, conn.transaction():
            _write_dq_results(conn, run_id, outcomes)

    def quarantine_for(self, run_id: uuid.UUID, limit: int) -> tuple[list[QuarantineRow], int]:
        """The first `limit` quarantine rows a run wrote, and how many it wrote in all."""
        with self._connect() as conn:
            rows = conn.execute(
                """select document, stage, reason, rejected_whole, paper_id, line, payload
                   from ops.quarantine where run_id = %s order by quarantine_id limit %s""",
                (run_id, limit),
            ).fetchall()
            (total,) = conn.execute(
                "select count(*) from ops.quarantine where run_id = %s", (run_id,)
            ).fetchone() or (0,)
        return [_quarantine_row(r) for r in rows], int(total)


def _copy(
    cur: psycopg.Cursor[Any], table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    statement = sql.SQL("copy {} ({}) from stdin").format(
        sql.Identifier(*table.split(".")), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _execute_each(cur: psycopg.Cursor[Any], statements: str, params: Mapping[str, Any]) -> None:
    # psycopg binds parameters server-side, one statement at a time
    for statement in filter(str.strip, statements.split(";\n")):
        cur.execute(statement, params)


def _stage(cur: psycopg.Cursor[Any], name: str, like: str, columns: Sequence[str]) -> None:
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    cur.execute(
        sql.SQL("create temp table {} on commit drop as select {} from {} with no data").format(
            sql.Identifier(name), cols, sql.Identifier(*like.split("."))
        )
    )


def _stage_and_copy(
    cur: psycopg.Cursor[Any],
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> int:
    """COPY rows into a staging copy of a table (named s_<table>); returns the row count."""
    name = "s_" + table.split(".")[1]
    _stage(cur, name, table, columns)
    return _copy(cur, name, columns, rows)


def _with_content(loads: Iterable[PaperLoad]) -> Iterator[tuple[PaperLoad, PaperContent]]:
    for load in loads:
        if load.content is not None:
            yield load, load.content


FULLTEXT_COLUMNS = (
    "fulltext_status",
    "fulltext_sha256",
    "fulltext_etag",
    "fulltext_last_modified",
    "fulltext_fetched_at",
    "fulltext_checked_at",
    "fulltext_error",
)

PAPER_COLUMNS = (
    "paper_id",
    "source",
    "title",
    "doi",
    "journal",
    "published_on",
    "tldr",
    "contribution",
    "abstract",
    "fulltext_url",
    "stated_reference_count",
    "references_url",
    "source_url",
    "seed_path",
    "content_sha256",
    "source_sha256",
    "parsed_reference_count",
    "fulltext_word_count",
    *FULLTEXT_COLUMNS,
)


def _state_values(load: PaperLoad) -> tuple[Any, ...]:
    s = load.fulltext_state
    return (s.status, s.sha256, s.etag, s.last_modified, s.fetched_at, s.checked_at, s.error)


def _paper_row(load: PaperLoad, content: PaperContent) -> tuple[Any, ...]:
    p, ft = load.paper, content.fulltext
    return (
        p.paper_id, p.source, p.title, p.doi, p.journal, p.published_on, p.tldr, p.contribution,
        p.abstract, p.fulltext_url, p.stated_reference_count, p.references_url, p.source_url,
        p.seed_path, load.content_sha256, p.seed_sha256,
        None if ft is None else len(ft.references), None if ft is None else ft.word_count,
        *_state_values(load),
    )  # fmt: skip


def _write_fulltext_states(
    conn: psycopg.Connection[Any], run_id: uuid.UUID, loads: Sequence[PaperLoad]
) -> int:
    """Record new full-text states of papers whose content is unchanged; returns rows changed."""
    requested = [p for p in loads if p.fulltext_state.requested]
    if not requested:
        return 0
    cur = conn.cursor()
    _stage_and_copy(
        cur,
        "core.papers",
        ("paper_id", *FULLTEXT_COLUMNS),
        ((p.paper.paper_id, *_state_values(p)) for p in requested),
    )
    sets = sql.SQL(", ").join(
        sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in FULLTEXT_COLUMNS
    )
    cols = sql.SQL(", ").join(sql.SQL("p.{}").format(sql.Identifier(c)) for c in FULLTEXT_COLUMNS)
    scols = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in FULLTEXT_COLUMNS)
    cur.execute(
        sql.SQL(
            """update core.papers p set {sets}, run_id = %(run)s, loaded_at = now()
               from s_papers s where p.paper_id = s.paper_id
               and ({cols}) is distinct from ({scols})"""
        ).format(sets=sets, cols=cols, scols=scols),
        {"run": run_id},
    )
    updated = cur.rowcount
    cur.execute("drop table s_papers")
    return updated


def _write_dq_results(
    conn: psycopg.Connection[Any], run_id: uuid.UUID, outcomes: Sequence[ExpectationOutcome]
) -> int:
    with conn.cursor() as cur:
        return _copy(
            cur,
            "ops.dq_results",
            ("run_id", "batch", "checkpoint", "suite", "expectation", "column_name", "success",
             "observed_value", "unexpected_count", "unexpected_percent", "element_count"),
            (
                (run_id, o.batch, o.checkpoint, o.suite, o.expectation, o.column, o.success,
                 json.dumps(o.observed_value, default=str), o.unexpected_count,
                 o.unexpected_percent, o.element_count)
                for o in outcomes
            ),
        )  # fmt: skip


def _write_fetches(
    conn: psycopg.Connection[Any], run_id: uuid.UUID, fetches: Sequence[FetchResult]
) -> int:
    with conn.cursor() as cur:
        return _copy(
            cur,
            "raw.fetches",
            ("run_id", "paper_id", "url", "attempt", "status_code", "bytes", "sha256", "etag",
             "last_modified", "elapsed_ms", "error_class", "error_message", "started_at"),
            (
                (run_id, a.paper_id, a.url, a.attempt, a.status_code, a.bytes, a.sha256, a.etag,
                 a.last_modified, a.elapsed_ms, a.error_class, a.error_message, a.started_at)
                for f in fetches
                for a in f.attempts
            ),
        )  # fmt: skip


def _write_papers(
    conn: psycopg.Connection[Any], run_id: uuid.UUID, loads: Sequence[PaperLoad]
) -> dict[str, int]:
    """Replace every row of these papers; returns rows written per table."""
    ids = [p.paper.paper_id for p in loads]
    cur = conn.cursor()
    rows: dict[str, int] = {}
    _stage_and_copy(
        cur, "core.papers", PAPER_COLUMNS, (_paper_row(*lc) for lc in _with_content(loads))
    )
    cur.execute(
        """create temp table s_authors (paper_id text, position int, name text, source_sha256 text)
           on commit drop"""
    )
    rows["core.paper_authors"] = _copy(
        cur,
        "s_authors",
        ("paper_id", "position", "name", "source_sha256"),
        (
            (load.paper.paper_id, position, name, load.paper.seed_sha256)
            for load, content in _with_content(loads)
            for position, name in content.authors
        ),
    )
    rows["core.key_findings"] = _stage_and_copy(
        cur,
        "core.key_findings",
        ("paper_id", "ordinal", "finding", "source_sha256"),
        (
            (load.paper.paper_id, i, finding, load.paper.seed_sha256)
            for load in loads
            for i, finding in enumerate(load.paper.key_findings, 1)
        ),
    )
    entity_columns = (
        "paper_id", "curie", "prefix", "local_id", "entity_type", "listing", "category",
        "name_as_written", "symbol", "full_name", "common_name", "line", "source_sha256",
    )  # fmt: skip
    cur.execute(
        """create temp table s_entities (paper_id text, curie text, prefix text, local_id text,
           entity_type text, listing text, category text, name_as_written text, symbol text,
           full_name text, common_name text, line int, source_sha256 text) on commit drop"""
    )
    rows["core.paper_entities"] = _copy(
        cur,
        "s_entities",
        entity_columns,
        (
            (
                load.paper.paper_id,
                e.curie,
                *e.curie.split(":", 1),
                e.entity_type,
                e.listing,
                e.category,
                e.name_as_written,
                e.symbol,
                e.full_name,
                e.common_name,
                e.line,
                load.paper.seed_sha256,
            )
            for load, content in _with_content(loads)
            for e in content.entities
        ),
    )
    cur.execute(
        """create temp table s_names (paper_id text, curie text, name text, kind text,
           source_sha256 text) on commit drop"""
    )
    rows["core.paper_entity_names"] = _copy(
        cur,
        "s_names",
        ("paper_id", "curie", "name", "kind", "source_sha256"),
        _entity_names(loads),
    )

    # curies whose aliases or preferred name may change: the ones these papers list now or did
    cur.execute(
        """create temp table s_affected on commit drop as
           select curie from core.paper_entities where paper_id = any(%(ids)s)
           union select curie from s_entities""",
        {"ids": ids},
    )
    cur.execute(
        """create temp table s_old_authors on commit drop as
           select author_id from core.paper_authors where paper_id = any(%(ids)s)""",
        {"ids": ids},
    )
    for child in PAPER_CHILDREN:
        cur.execute(
            sql.SQL("delete from {} where paper_id = any(%(ids)s)").format(
                sql.Identifier("core", child)
            ),
            {"ids": ids},
        )

    cols = sql.SQL(", ").join(map(sql.Identifier, PAPER_COLUMNS))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in PAPER_COLUMNS[1:]
    )
    cur.execute(
        sql.SQL(
            """insert into core.papers ({cols}, run_id, loaded_at)
               select {cols}, %(run)s, now() from s_papers
               on conflict (paper_id) do update set {updates},
                   run_id = excluded.run_id, loaded_at = excluded.loaded_at"""
        ).format(cols=cols, updates=updates),
        {"run": run_id},
    )
    cur.execute("drop table s_papers")
    _execute_each(
        cur,
        """insert into core.authors (name, run_id, source_sha256)
           select distinct on (name) name, %(run)s, source_sha256 from s_authors
           order by name, paper_id
           on conflict (name) do nothing;
           insert into core.paper_authors (paper_id, position, author_id, run_id, source_sha256)
           select s.paper_id, s.position, a.author_id, %(run)s, s.source_sha256
           from s_authors s join core.authors a using (name);
           insert into core.key_findings (paper_id, ordinal, finding, run_id, source_sha256)
           select paper_id, ordinal, finding, %(run)s, source_sha256 from s_key_findings;""",
        {"run": run_id},
    )
    # one row per curie; when papers of the batch disagree on its details the highest
    # paper id wins, so the result does not depend on the order of the seeds
    _execute_each(
        cur,
        """insert into core.entities (curie, prefix, local_id, entity_type, preferred_name,
               symbol, full_name, common_name, run_id, source_sha256)
           select distinct on (curie) curie, prefix, local_id, entity_type, name_as_written,
               symbol, full_name, common_name, %(run)s, source_sha256
           from s_entities order by curie, paper_id desc, listing
           on conflict (curie) do update set
               entity_type = excluded.entity_type, symbol = excluded.symbol,
               full_name = excluded.full_name, common_name = excluded.common_name,
               run_id = excluded.run_id, source_sha256 = excluded.source_sha256
           where (core.entities.entity_type, core.entities.symbol, core.entities.full_name,
                  core.entities.common_name)
               is distinct from (excluded.entity_type, excluded.symbol, excluded.full_name,
                  excluded.common_name);
           insert into core.paper_entities (paper_id, curie, listing, category,
               name_as_written, line, run_id, source_sha256)
           select paper_id, curie, listing, category, name_as_written, line, %(run)s,
               source_sha256 from s_entities;
           insert into core.paper_entity_names (paper_id, curie, name, kind, run_id,
               source_sha256)
           select paper_id, curie, name, kind, %(run)s, source_sha256 from s_names;""",
        {"run": run_id},
    )
    # the papers' old rows are gone and their entities are in: COPY straight into the tables
    rows.update(_copy_fulltext(cur, run_id, loads))
    _refresh_aliases(cur, run_id)
    cur.execute(
        """delete from core.entities e using s_affected a
           where e.curie = a.curie
             and not exists (select 1 from core.paper_entities p where p.curie = e.curie);
           delete from core.authors x using s_old_authors o
           where x.author_id = o.author_id
             and not exists (select 1 from core.paper_authors p where p.author_id = x.author_id);"""
    )
    return rows


SECTION_COLUMNS = ("paper_id", "ordinal", "heading", "level", "heading_path", "text",
                   "word_count", "run_id", "source_sha256")  # fmt: skip
REFERENCE_COLUMNS = ("paper_id", "ordinal", "citation", "doi", "pmid", "pmcid", "url", "year",
                     "run_id", "source_sha256")  # fmt: skip
CAPTION_COLUMNS = ("paper_id", "ordinal", "kind", "label", "caption", "section_ordinal",
                   "run_id", "source_sha256")  # fmt: skip
MENTION_COLUMNS = ("paper_id", "curie", "section_ordinal", "mention_count", "first_offset",
                   "run_id", "source_sha256")  # fmt: skip


def _copy_fulltext(
    cur: psycopg.Cursor[Any], run_id: uuid.UUID, loads: Sequence[PaperLoad]
) -> dict[str, int]:
    """COPY the papers' sections, references, captions and mentions into their tables."""
    # the full text's sha256 is the source of these rows, not the seed's
    texts = [
        (load.paper.paper_id, content.fulltext, content.mentions, load.fulltext_state.sha256)
        for load, content in _with_content(loads)
    ]
    return {
        "core.sections": _copy(
            cur,
            "core.sections",
            SECTION_COLUMNS,
            (
                (pid, s.ordinal, s.heading, s.level, list(s.heading_path), s.text, s.word_count,
                 run_id, sha)
                for pid, ft, _, sha in texts if ft is not None
                for s in ft.sections
            ),
        ),
        "core.paper_references": _copy(
            cur,
            "core.paper_references",
            REFERENCE_COLUMNS,
            (
                (pid, r.ordinal, r.citation, r.doi, r.pmid, r.pmcid, r.url, r.year, run_id, sha)
                for pid, ft, _, sha in texts if ft is not None
                for r in ft.references
            ),
        ),
        "core.captions": _copy(
            cur,
            "core.captions",
            CAPTION_COLUMNS,
            (
                (pid, n, cap.kind, cap.label, cap.text, cap.section_ordinal, run_id, sha)
                for pid, ft, _, sha in texts if ft is not None
                for n, cap in enumerate(ft.captions, 1)
            ),
        ),
        "core.entity_mentions": _copy(
            cur,
            "core.entity_mentions",
            MENTION_COLUMNS,
            (
                (pid, m.curie, m.section_ordinal, m.count, m.first_offset, run_id, sha)
                for pid, _, mentions, sha in texts
                for m in mentions
            ),
        ),
    }  # fmt: skip


def _entity_names(loads: Sequence[PaperLoad]) -> Iterable[tuple[str, str, str, str, str]]:
    # every name a paper gives an entity, once per (paper, curie, name), the strongest kind
    # first: the listed name, then a gene's full name or a species' common name, then aliases
    for load, content in _with_content(loads):
        seen: set[tuple[str, str]] = set()
        for e in sorted(content.entities, key=lambda e: e.listing):
            kinds = [(e.name_as_written, "name")]
            if e.full_name:
                kinds.append((e.full_name, "full_name"))
            if e.common_name:
                kinds.append((e.common_name, "common_name"))
            kinds.extend((n, "alias") for n in e.names)
            for name, kind in kinds:
                if (e.curie, name) not in seen:
                    seen.add((e.curie, name))
                    yield load.paper.paper_id, e.curie, name, kind, load.paper.seed_sha256


def _refresh_aliases(cur: psycopg.Cursor[Any], run_id: uuid.UUID) -> None:
    """Recompute aliases, their paper counts and preferred names for the affected curies."""
    _execute_each(
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
    _copy(cur, "s_preferred", ("curie", "name"), preferred)
    cur.execute(
        """update core.entities e set preferred_name = s.name
           from s_preferred s where e.curie = s.curie and e.preferred_name <> s.name"""
    )


def _write_quarantine(
    conn: psycopg.Connection[Any], run_id: uuid.UUID, rows: Sequence[QuarantineRow]
) -> None:
    if not rows:
        return
    with conn.cursor() as cur:
        _copy(
            cur,
            "ops.quarantine",
            (
                "run_id",
                "document",
                "paper_id",
                "stage",
                "line",
                "reason",
                "payload",
                "rejected_whole",
            ),
            (
                (
                    run_id,
                    r.document,
                    r.paper_id,
                    r.stage,
                    r.line,
                    r.reason,
                    None if r.payload is None else json.dumps(r.payload, default=str),
                    r.rejected_whole,
                )
                for r in rows
            ),
        )


def _quarantine_row(row: tuple[Any, ...]) -> QuarantineRow:
    document, stage, reason, whole, paper_id, line, payload = row
    return QuarantineRow(document, stage, reason, whole, paper_id, line, payload)
