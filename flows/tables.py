"""Every table tomeflow loads, described once: its columns, their types, and where rows come from.

A `Table` lists the columns tomeflow writes from its records, in the order it writes them,
with each column's PostgreSQL type, the record attribute it is read from, and the pandas dtype
when the before-load checks look at it. Everything else is derived from these declarations:
the COPY column lists and row tuples (`Table.rows`), the staging tables, the frames the
before-load suites validate (flows/quality/frames.py), the tables whose rows carry a run's id
and are counted after load, and the table lists of the run summary and the tests.

Adding a column to `core.paper_references`: one migration (schemas/migrations), one field on
`records.Reference`, one `Column` in `PAPER_REFERENCES` below.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal

from flows.causes import error_cause
from flows.records import NormalisedEntity, PaperLoad


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name, PostgreSQL type, record attribute and before-load dtype."""

    name: str
    type: str
    attr: str = ""  # dotted attribute of the row's record; "" means the column's name
    dtype: str | None = None  # pandas dtype in the before-load frame; None: not validated
    written: bool = True  # false: only the before-load frame has it (a derived check value)
    convert: Callable[[Any], Any] | None = None  # the value as PostgreSQL takes it

    @property
    def source(self) -> str:
        """The attribute path the value is read from."""
        return self.attr or self.name


@dataclass(frozen=True, slots=True)
class Computed:
    """A column PostgreSQL computes from the written ones: the staging table computes it (a
    generated column, before the load lock: flows/load/copy.py) and the load writes it."""

    name: str
    type: str
    expression: str  # SQL over the written columns


# a column whose values reach COPY already as PostgreSQL reads them: written as text
_AS_COPIED = {"jsonb": "text"}


def _getter(paths: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    get = attrgetter(*paths)
    if len(paths) == 1:
        return lambda item: (get(item),)
    return get


Lineage = Literal["paper", "run", "none"]


@dataclass(frozen=True)
class Table:
    """A loaded table: where its rows come from and the columns tomeflow writes."""

    name: str
    columns: tuple[Column, ...]
    # the records one paper contributes rows from; None: rows come from elsewhere (the run
    # log's records) or the loader derives them in SQL from other tables
    items: Callable[[PaperLoad], Iterable[Any]] | None = None
    # "paper": rows are (paper_id, ..., run_id, source_sha256); "run": (run_id, ...);
    # "none": the columns alone (the loader adds the run where it writes them)
    lineage: Lineage = "paper"
    source: Callable[[PaperLoad], str | None] | None = None  # the document rows are read from
    counted: bool = True  # rows carry the run that wrote them; counted after load
    suite: str | None = None  # the before-load suite that validates these rows
    frame_items: Callable[[PaperLoad], Iterable[Any]] | None = None  # default: items
    needs_content: bool = True  # false: unchanged papers (no content read) have rows too
    frame_by_paper: bool = False  # the before-load frame starts with the paper id anyway
    staging: str = ""  # the temporary table it is staged in; default s_<table>
    computed: tuple[Computed, ...] = ()  # columns PostgreSQL computes (not in copy_columns)
    _get: Callable[[Any], tuple[Any, ...]] = field(init=False, repr=False)
    _frame_get: Callable[[Any], tuple[Any, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        written = tuple(c.source for c in self.columns if c.written)
        object.__setattr__(self, "_get", _getter(written))
        checked = tuple(c.source for c in self.columns if c.dtype is not None)
        if checked:
            object.__setattr__(self, "_frame_get", _getter(checked))

    @property
    def copy_types(self) -> tuple[str, ...]:
        """The types COPY writes copy_columns' values as (jsonb values are JSON text already)."""
        lineage = {"paper_id": "text", "run_id": "uuid", "source_sha256": "text"}
        declared = {c.name: _AS_COPIED.get(c.type, c.type) for c in self.columns if c.written}
        return tuple(declared.get(name) or lineage[name] for name in self.copy_columns)

    @property
    def copy_columns(self) -> tuple[str, ...]:
        """The columns rows are written to, in row order."""
        names = tuple(c.name for c in self.columns if c.written)
        if self.lineage == "paper":
            return ("paper_id", *names, "run_id", "source_sha256")
        if self.lineage == "run":
            return ("run_id", *names)
        return names

    @property
    def frame_dtypes(self) -> dict[str, str]:
        """The before-load frame's columns and dtypes (paper_id first)."""
        head = {"paper_id": "str"} if self._frame_has_paper_id else {}
        return head | {c.name: c.dtype for c in self.columns if c.dtype is not None}

    @property
    def _frame_has_paper_id(self) -> bool:
        return self.lineage == "paper" or self.frame_by_paper

    def rows(self, loads: Iterable[PaperLoad], run_id: uuid.UUID) -> Iterator[tuple[Any, ...]]:
        """The row tuples these papers contribute, in copy_columns order."""
        if self.items is None:
            raise TypeError(f"{self.name} has no rows of its own records")
        get, source, convert = self._get, self.source, self._converter()
        for load in loads:
            if load.content is None and self.needs_content:
                continue
            if self.lineage == "paper":
                paper_id = load.paper_id
                sha = source(load) if source is not None else None
                for item in self.items(load):
                    yield (paper_id, *convert(get(item)), run_id, sha)
            else:
                for item in self.items(load):
                    yield convert(get(item))

    def log_rows(self, records: Iterable[Any], run_id: uuid.UUID) -> Iterator[tuple[Any, ...]]:
        """The row tuples of run-log records (fetch attempts, quarantine rows, outcomes)."""
        get, convert = self._get, self._converter()
        for record in records:
            yield (run_id, *convert(get(record)))

    def frame_rows(self, loads: Iterable[PaperLoad]) -> Iterator[tuple[Any, ...]]:
        """The before-load frame's row tuples, in frame_dtypes order."""
        items = self.frame_items or self.items
        if items is None or self.suite is None:
            raise TypeError(f"{self.name} is not validated before load")
        get = self._frame_get
        for load in loads:
            if load.content is None:
                continue
            if self._frame_has_paper_id:
                paper_id = load.paper_id
                for item in items(load):
                    yield (paper_id, *get(item))
            else:
                for item in items(load):
                    yield get(item)

    def _converter(self) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
        written = [c for c in self.columns if c.written]
        converts = [(i, c.convert) for i, c in enumerate(written) if c.convert is not None]
        if not converts:
            return _same

        def convert(values: tuple[Any, ...]) -> tuple[Any, ...]:
            out = list(values)
            for i, f in converts:
                out[i] = f(out[i])
            return tuple(out)

        return convert


def _same(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return values


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def _seed(load: PaperLoad) -> str:
    return load.paper.seed_sha256


def _body(load: PaperLoad) -> str | None:
    # sections, references, captions and mentions are read from the full text, not the seed
    return load.fulltext_state.sha256


def _content(load: PaperLoad) -> Any:
    assert load.content is not None
    return load.content


def _sections(load: PaperLoad) -> Any:
    fulltext = _content(load).fulltext
    return () if fulltext is None else fulltext.sections


def _references(load: PaperLoad) -> Any:
    fulltext = _content(load).fulltext
    return () if fulltext is None else fulltext.references


def _unique_entities(load: PaperLoad) -> Iterator[NormalisedEntity]:
    # one row per curie of a paper, as the first listing has it
    seen: set[str] = set()
    for entity in _content(load).entities:
        if entity.curie not in seen:
            seen.add(entity.curie)
            yield entity


FULLTEXT_STATE = (
    Column("fulltext_status", "text", "fulltext_state.status", dtype="str"),
    Column("fulltext_sha256", "text", "fulltext_state.sha256"),
    Column("fulltext_etag", "text", "fulltext_state.etag"),
    Column("fulltext_last_modified", "text", "fulltext_state.last_modified"),
    Column("fulltext_fetched_at", "timestamptz", "fulltext_state.fetched_at"),
    Column("fulltext_error", "text", "fulltext_state.error"),
)

# the full-text state of a paper whose content is unchanged: only these columns are updated
PAPER_STATES = Table(
    "core.papers",
    (Column("paper_id", "text", "paper.paper_id"), *FULLTEXT_STATE),
    items=lambda load: (load,),
    lineage="none",
    counted=False,
    needs_content=False,
    staging="s_paper_states",
)

PAPERS = Table(
    "core.papers",
    (
        Column("paper_id", "text", "paper.paper_id", dtype="str"),
        Column("source", "text", "paper.source", dtype="str"),
        Column("title", "text", "paper.title", dtype="str"),
        Column("doi", "text", "paper.doi", dtype="str"),
        Column("journal", "text", "paper.journal"),
        Column("published_on", "date", "paper.published_on", dtype="object"),
        Column("published_on_precision", "text", "paper.published_on_precision"),
        Column("tldr", "text", "paper.tldr", dtype="str"),
        Column("contribution", "text", "paper.contribution"),
        Column("abstract", "text", "paper.abstract", dtype="str"),
        Column("fulltext_url", "text", "paper.fulltext_url"),
        Column("stated_reference_count", "integer", "paper.stated_reference_count", "Int64"),
        Column("references_url", "text", "paper.references_url"),
        Column("source_url", "text", "paper.source_url"),
        Column("seed_path", "text", "paper.seed_path"),
        Column("content_sha256", "text"),
        Column("source_sha256", "text", "paper.seed_sha256"),
        Column("parsed_reference_count", "integer", dtype="Int64"),
        Column("reference_count_gap", "integer", dtype="Int64", written=False),
        Column("fulltext_word_count", "integer"),
        *FULLTEXT_STATE,
    ),
    items=lambda load: (load,),
    lineage="none",
    suite="papers",
)

AUTHORS = Table("core.authors", (Column("name", "text"),), lineage="none", counted=False)

# staged by name: the loader turns each name into its core.authors author_id
PAPER_AUTHORS = Table(
    "core.paper_authors",
    (Column("position", "integer", dtype="Int64"), Column("name", "text", dtype="str")),
    items=lambda load: _content(load).authors,
    source=_seed,
    suite="authors",
)

KEY_FINDINGS = Table(
    "core.key_findings",
    (Column("ordinal", "integer"), Column("finding", "text")),
    items=lambda load: _content(load).key_findings,
    source=_seed,
)

# one row per curie, derived by the loader from the listings of every paper (the paper with
# the highest id wins); the before-load frame has one row per curie and paper
ENTITIES = Table(
    "core.entities",
    (
        Column("curie", "text", dtype="str"),
        Column("prefix", "text", dtype="str"),
        Column("local_id", "text", dtype="str"),
        Column("entity_type", "text", dtype="str"),
    ),
    lineage="none",
    counted=False,
    suite="entities",
    frame_items=_unique_entities,
    frame_by_paper=True,
)

PAPER_ENTITIES = Table(
    "core.paper_entities",
    (
        Column("curie", "text", dtype="str"),
        Column("listing", "text", dtype="str"),
        Column("category", "text"),
        Column("name_as_written", "text", dtype="str"),
        Column("line", "integer"),
        Column("entity_type", "text"),
        Column("symbol", "text"),
        Column("full_name", "text"),
        Column("common_name", "text"),
    ),
    items=lambda load: _content(load).entities,
    source=_seed,
    suite="paper_entities",
)

PAPER_ENTITY_NAMES = Table(
    "core.paper_entity_names",
    (Column("curie", "text"), Column("name", "text"), Column("kind", "text")),
    items=lambda load: _content(load).names,
    source=_seed,
)

ENTITY_ALIASES = Table(
    "core.entity_aliases",
    (Column("curie", "text"), Column("alias", "text"), Column("kind", "text")),
    lineage="none",
    counted=False,
)

SECTIONS = Table(
    "core.sections",
    (
        Column("ordinal", "integer", dtype="Int64"),
        Column("heading", "text", dtype="str"),
        Column("level", "integer", dtype="Int64"),
        Column("heading_path", "text[]", convert=list),
        Column("text", "text"),
        Column("text_length", "integer", dtype="Int64", written=False),
        Column("word_count", "integer", dtype="Int64"),
    ),
    items=_sections,
    source=_body,
    suite="sections",
    # the search tsvector (migration 0009): parsing the text is most of a load's work
    computed=(Computed("search", "tsvector", "core.section_search(heading, text)"),),
)

PAPER_REFERENCES = Table(
    "core.paper_references",
    (
        Column("ordinal", "integer", dtype="Int64"),
        Column("citation", "text", dtype="str"),
        Column("doi", "text", dtype="str"),
        Column("pmid", "text", dtype="str"),
        Column("pmcid", "text", dtype="str"),
        Column("url", "text"),
        Column("year", "integer", dtype="Int64"),
    ),
    items=_references,
    source=_body,
    suite="references",
)

CAPTIONS = Table(
    "core.captions",
    (
        Column("ordinal", "integer"),
        Column("kind", "text"),
        Column("label", "text"),
        Column("caption", "text", "text"),
        Column("section_ordinal", "integer"),
    ),
    items=lambda load: _content(load).captions,
    source=_body,
)

ENTITY_MENTIONS = Table(
    "core.entity_mentions",
    (
        Column("curie", "text", dtype="str"),
        Column("section_ordinal", "integer", dtype="Int64"),
        Column("mention_count", "integer", "count", dtype="Int64"),
        Column("first_offset", "integer", dtype="Int64"),
    ),
    items=lambda load: _content(load).mentions,
    source=_body,
    suite="mentions",
)

# the run log's tables: written from the fetcher's, the stages' and the gate's records
FETCHES = Table(
    "raw.fetches",
    (
        Column("paper_id", "text"),
        Column("url", "text"),
        Column("attempt", "integer"),
        Column("status_code", "integer"),
        Column("bytes", "bigint"),
        Column("sha256", "text"),
        Column("etag", "text"),
        Column("last_modified", "text"),
        Column("elapsed_ms", "integer"),
        Column("error_class", "text"),
        Column("error_cause", "text", "error_class", convert=error_cause),
        Column("error_message", "text"),
        Column("started_at", "timestamptz"),
    ),
    lineage="run",
)

QUARANTINE = Table(
    "ops.quarantine",
    (
        Column("document", "text"),
        Column("paper_id", "text"),
        Column("stage", "text"),
        Column("line", "integer"),
        Column("reason", "text"),
        Column("payload", "jsonb", convert=_json),
        Column("rejected_whole", "boolean"),
    ),
    lineage="run",
    counted=False,
)

DQ_RESULTS = Table(
    "ops.dq_results",
    (
        Column("batch", "integer"),
        Column("checkpoint", "text"),
        Column("suite", "text"),
        Column("expectation", "text"),
        Column("column_name", "text", "column"),
        Column("success", "boolean"),
        Column("observed_value", "jsonb", convert=_json),
        Column("unexpected_count", "bigint"),
        Column("unexpected_percent", "double precision"),
        Column("element_count", "bigint"),
    ),
    lineage="run",
    counted=False,
)

# every loaded table, in the order the summary lists them
TABLES: tuple[Table, ...] = (
    PAPERS,
    AUTHORS,
    PAPER_AUTHORS,
    KEY_FINDINGS,
    ENTITIES,
    PAPER_ENTITIES,
    PAPER_ENTITY_NAMES,
    ENTITY_ALIASES,
    SECTIONS,
    PAPER_REFERENCES,
    CAPTIONS,
    ENTITY_MENTIONS,
    FETCHES,
    QUARANTINE,
    DQ_RESULTS,
)
TABLE_NAMES: tuple[str, ...] = tuple(t.name for t in TABLES)
CORE_TABLES: tuple[str, ...] = tuple(n for n in TABLE_NAMES if n.startswith("core."))
# tables whose rows each carry the run that wrote them: the after-load checkpoint counts them.
# core.authors, core.entities and core.entity_aliases are shared by papers: a run rewrites a
# shared row only when its values change, so their run ids are not counted
RUN_TABLES: tuple[str, ...] = tuple(t.name for t in TABLES if t.counted)
# the before-load suites and the table each validates
VALIDATED: dict[str, Table] = {t.suite: t for t in TABLES if t.suite is not None}
