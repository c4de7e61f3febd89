"""Typed records that travel between stages: each stage's output, read by the stages after it.

No stage imports another stage for its records: seeds, fetch, the full-text parser, entities,
mentions, assemble, quality and load all meet here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from flows.picklable import pickled_as_fields

Stage = Literal["parse", "fetch", "fulltext", "normalise", "validate", "load"]
Listing = Literal["linked", "fulltext"]
EntityType = Literal["gene", "disease", "species", "chemical", "variant", "cell line", "other"]
Mode = Literal["incremental", "full_refresh", "offline"]
Outcome = Literal["fetched", "not_modified", "not_found", "too_large", "bad_content", "failed"]
FulltextStatus = Literal[
    "fetched", "not_modified", "not_found", "too_large", "bad_content", "failed", "no_url"
]
Checkpoint = Literal["before_load", "after_load"]
DatePrecision = Literal["day", "month", "year"]

STATUSES: frozenset[str] = frozenset(get_args(FulltextStatus))
GOOD_STATUSES = frozenset({"fetched", "not_modified"})


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """One rejected document, or one rejected part of a document."""

    document: str
    stage: Stage
    reason: str
    rejected_whole: bool  # true: nothing of the document loads; false: only this part
    paper_id: str | None = None
    line: int | None = None
    payload: object = None


# seeds: summary page -> PaperRecord


@dataclass(frozen=True, slots=True)
class EntityRef:
    """One entity as a summary page lists it, before any normalisation."""

    category: str  # the list's label as written: "Genes", "Diseases", "Species", "Chemicals", ...
    listing: Listing  # "linked" (Linked entities) or "fulltext" (Full-text entities)
    name: str  # the name as written, e.g. "INS", "hepatic steatosis", "Homo sapiens"
    namespace: str  # the identifier's namespace as written: "NCBI Gene", "MESH", "taxon", ...
    identifier: str  # the local id as written: "3630", "D005234", "9606", "11949646"
    extra_names: tuple[str, ...] = ()  # the parenthesised names: ("insulin",), ("human",)
    aliases: tuple[str, ...] = ()  # the names after `aka`, in order
    line: int = 0  # 1-based line of the page where the entity is listed
    rank: str | None = None  # a taxonomy rank among the parenthesised words: "species"


@dataclass(frozen=True, slots=True)
class SeedProblem:
    """A part of a page that could not be read; the rest of the page still loads."""

    line: int
    reason: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class PaperRecord:
    """Everything a summary page says about one paper."""

    paper_id: str  # "PMC12809390", "2006.14810", ...
    source: str  # source label as written: "PMC", "arXiv", ...
    title: str
    authors: tuple[str, ...]
    doi: str | None
    journal: str | None
    published_on: dt.date | None
    published_on_precision: DatePrecision | None  # "year": the page gave 2025, read as 1 Jan
    tldr: str
    contribution: str
    key_findings: tuple[str, ...]
    abstract: str  # all paragraphs, separated by a blank line
    entities: tuple[EntityRef, ...]
    fulltext_url: str | None
    stated_reference_count: int | None
    references_url: str | None
    source_url: str | None
    seed_path: str
    seed_sha256: str
    problems: tuple[SeedProblem, ...] = ()


@dataclass(frozen=True, slots=True)
class KnownSeed:
    """A seed document loaded before, whose full text needs nothing this run."""

    seed_path: str
    paper_id: str
    sha256: str  # the seed's bytes when it was loaded: the same bytes need no parsing


# fetch: source URL -> raw bytes in the raw store


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One page to fetch, with what we know of the copy fetched before."""

    paper_id: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    previous_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class FetchAttempt:
    """One HTTP attempt (a retry or a redirect hop is an attempt of its own)."""

    paper_id: str
    url: str
    attempt: int
    status_code: int | None
    bytes: int
    sha256: str | None
    etag: str | None
    last_modified: str | None
    elapsed_ms: int
    error_class: str | None
    error_message: str | None
    started_at: dt.datetime


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What fetching one page came to; the body itself is in the RawStore under sha256."""

    paper_id: str
    url: str
    outcome: Outcome
    sha256: str | None
    etag: str | None
    last_modified: str | None
    attempts: tuple[FetchAttempt, ...]
    error_class: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class StoredPaper:
    """What the database holds about a paper from earlier runs."""

    paper_id: str
    source_sha256: str | None  # the seed's sha256; None when only the raw layer knows the paper
    content_sha256: str | None
    fulltext_url: str | None
    fulltext_status: str | None
    fulltext_sha256: str | None
    fulltext_etag: str | None
    fulltext_last_modified: str | None
    fulltext_fetched_at: dt.datetime | None
    fulltext_error: str | None = None


@dataclass(frozen=True, slots=True)
class FulltextState:
    """A paper's full text after this run: its status, and the body in use (if any)."""

    status: str | None  # a FulltextStatus; None: never requested
    sha256: str | None  # the body in use, in the raw store; kept from before when a fetch fails
    etag: str | None
    last_modified: str | None
    fetched_at: dt.datetime | None  # when the body in use was fetched or confirmed
    checked_at: dt.datetime | None  # when it was last requested (raw.fetches keeps it)
    error: str | None  # why the last request failed
    requested: bool  # whether this run asked the server

    @property
    def failed(self) -> bool:
        """True when this run asked for the full text and did not get it."""
        return self.requested and self.status not in GOOD_STATUSES


NEVER_REQUESTED = FulltextState(None, None, None, None, None, None, None, False)
NO_URL = FulltextState("no_url", None, None, None, None, None, None, False)


@dataclass(frozen=True, slots=True)
class FetchedBatch:
    """The full-text state of every paper of a batch, the bodies in use, and the fetches made."""

    states: Mapping[str, FulltextState]
    results: tuple[FetchResult, ...]
    # sha256 -> body, for assemble: a StoredBodies, read from the raw store as each is parsed
    bodies: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def stored(self) -> tuple[str, ...]:
        """The bodies this batch wrote to the raw store (to be made durable before the load)."""
        return tuple(r.sha256 for r in self.results if r.outcome == "fetched" and r.sha256)


# full text: raw Markdown -> sections, references, captions


@dataclass(frozen=True, slots=True)
class Section:
    """One heading and the plain text of its body, up to the next heading."""

    ordinal: int  # 0-based, document order
    heading: str  # "" for text before the first heading
    level: int  # 1..6 as written, 0 for text before the first heading
    heading_path: tuple[str, ...]  # headings from the top down to this one, title left out
    text: str
    word_count: int
    char_start: int  # str offset in the input of the heading (or first block when level 0)

    @property
    def text_length(self) -> int:
        """Characters in text."""
        return len(self.text)


@dataclass(frozen=True, slots=True)
class Reference:
    """One entry of the reference list, with the identifiers found in it."""

    ordinal: int  # 1-based, document order, whatever numbers the list shows
    citation: str  # plain text, list marker and `[n]` removed
    doi: str | None
    pmid: str | None
    pmcid: str | None
    url: str | None  # the first http(s) URL, link targets included
    year: int | None


@dataclass(frozen=True, slots=True)
class Caption:
    """A figure or table caption the page marks as one."""

    kind: Literal["figure", "table"]
    label: str  # normalised: "Figure 1", "Table 2", "Supplementary Figure S1"
    text: str  # the caption after its label
    section_ordinal: int


@dataclass(frozen=True, slots=True)
class FullText:
    """A paper's full text as typed records."""

    title: str | None
    sections: tuple[Section, ...]
    references: tuple[Reference, ...]
    captions: tuple[Caption, ...]

    @property
    def word_count(self) -> int:
        """Words in all section texts (headings not counted)."""
        return sum(s.word_count for s in self.sections)


# entities and mentions


@dataclass(frozen=True, slots=True)
class NormalisedEntity:
    """One entity as one listing of one paper names it, with a canonical CURIE."""

    curie: str
    entity_type: EntityType
    listing: Listing
    name_as_written: str
    symbol: str | None  # genes: the name as written, "INS"
    full_name: str | None  # genes: the first extra name, "insulin"
    common_name: str | None  # species: the first extra name that is not a rank, "human"
    rank: str | None  # species: "species", "genus", "strain", ...
    names: tuple[str, ...]  # every name on the page, in order, without duplicates
    line: int
    known_namespace: bool = True  # false: the prefix is a sanitised unknown namespace
    category: str = ""  # the list's label as written: "Genes", "Diseases", ...

    @property
    def prefix(self) -> str:
        """The CURIE's prefix."""
        return self.curie.split(":", 1)[0]

    @property
    def local_id(self) -> str:
        """The CURIE's local identifier."""
        return self.curie.split(":", 1)[1]


@dataclass(frozen=True, slots=True)
class EntityName:
    """One name a paper gives an entity, with the strongest kind it is given as."""

    curie: str
    name: str
    kind: Literal["name", "full_name", "common_name", "alias"]


@dataclass(frozen=True, slots=True)
class Mention:
    """How often an entity is mentioned in one section, and where first."""

    curie: str
    section_ordinal: int
    count: int
    first_offset: int  # character offset of the first match in the section's text


# assemble: everything the loader writes for one paper


@dataclass(frozen=True, slots=True)
class Author:
    """An author of a paper, at a 1-based position."""

    position: int
    name: str


@dataclass(frozen=True, slots=True)
class KeyFinding:
    """A key finding of a paper, at a 1-based position."""

    ordinal: int
    finding: str


@dataclass(frozen=True, slots=True)
class NumberedCaption:
    """A caption with its 1-based position among the paper's captions."""

    ordinal: int
    kind: str
    label: str
    text: str
    section_ordinal: int


@dataclass(frozen=True, slots=True)
class PaperContent:
    """What a paper's rows are made of: its authors, entities, full text and mentions."""

    authors: tuple[Author, ...]
    entities: tuple[NormalisedEntity, ...]
    fulltext: FullText | None
    mentions: tuple[Mention, ...]
    names: tuple[EntityName, ...] = ()  # every name the paper gives each entity
    key_findings: tuple[KeyFinding, ...] = ()

    @property
    def captions(self) -> tuple[NumberedCaption, ...]:
        """The full text's captions, numbered."""
        if self.fulltext is None:
            return ()
        return tuple(
            NumberedCaption(n, c.kind, c.label, c.text, c.section_ordinal)
            for n, c in enumerate(self.fulltext.captions, 1)
        )


@dataclass(frozen=True, slots=True)
class PaperLoad:
    """Everything loaded for one paper: the loader's input record."""

    paper: PaperRecord
    fulltext_state: FulltextState
    content_sha256: str  # over every input the rows derive from; equal means unchanged
    content: PaperContent | None  # None: known unchanged, not re-read; only the state is written

    @property
    def paper_id(self) -> str:
        """The paper's id."""
        return self.paper.paper_id

    @property
    def fulltext(self) -> FullText | None:
        """The parsed full text, when the paper's content was read and has one."""
        return None if self.content is None else self.content.fulltext

    @property
    def parsed_reference_count(self) -> int | None:
        """References parsed from the full text; None without one."""
        fulltext = self.fulltext
        return None if fulltext is None else len(fulltext.references)

    @property
    def fulltext_word_count(self) -> int | None:
        """Words in the full text; None without one."""
        fulltext = self.fulltext
        return None if fulltext is None else fulltext.word_count

    @property
    def reference_count_gap(self) -> int | None:
        """How far the parsed reference count is from the one the seed states."""
        parsed, stated = self.parsed_reference_count, self.paper.stated_reference_count
        return None if parsed is None or stated is None else abs(stated - parsed)


# quality and load


@dataclass(frozen=True, slots=True)
class ExpectationOutcome:
    """One expectation evaluated on one batch (before load) or on the tables (after load)."""

    checkpoint: Checkpoint
    batch: int
    suite: str
    expectation: str
    column: str | None  # several columns are joined with commas
    success: bool
    observed_value: object  # json-able; up to 20 offending values for row-wise expectations
    unexpected_count: int | None
    unexpected_percent: float | None
    element_count: int | None
    policy: str


@dataclass(frozen=True, slots=True)
class PaperChange:
    """One paper a run added, updated or found removed, and what changed in it."""

    paper_id: str
    change: str  # added, updated or removed
    details: tuple[str, ...]  # "title", "entity added: MESH:D1", "full text: fetched -> ..."


@dataclass(frozen=True, slots=True)
class RunChanges:
    """What a run changed (ops.run_changes), and the row counts of the run before it."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    shown: tuple[PaperChange, ...] = ()  # the first few
    run_before: str | None = None  # its flow run name
    rows_before: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one batch did to the tables."""

    new: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    fetch_failed: tuple[str, ...] = ()  # papers whose full text this run could not fetch
    rows_written: Mapping[str, int] = field(default_factory=dict)  # table -> rows of this batch
    # seconds the load waited for the load lock: another batch's (or run's) load writing
    lock_wait_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one batch did: small enough to send back from a worker."""

    number: int
    documents: int  # seed documents this batch counts as seen
    papers: tuple[str, ...]  # the paper ids it processed
    quarantined: int  # documents rejected whole
    quarantine_rows: int
    fetched: int  # fetch results (requests made for papers)
    fetch_statuses: Mapping[str, int]
    result: LoadResult | None  # None when the gate refused the batch
    refused: str | None  # why the gate refused it
    outcomes: tuple[ExpectationOutcome, ...]
    seconds: Mapping[str, float] = field(default_factory=dict)
    spans: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # epoch from, to


# a batch's records cross to the assemble process and back by the hundred thousand
pickled_as_fields(globals())
