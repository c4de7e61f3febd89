"""Summary page -> PaperRecord: the typed reading of one seed document."""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from flows.records import DatePrecision, EntityRef, Listing, PaperRecord, SeedProblem
from flows.seeds.page import KNOWN_HEADINGS, Block, Page

_URL = re.compile(r"https?://[^\s<>()\[\]]+")

_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")

_DOI = re.compile(r"^DOI\s*:?\s*(10\.\S+)$", re.IGNORECASE)

_META_SPLIT = re.compile(r"\s+[·•|]\s+")

_REF_COUNT = re.compile(r"^\s*(\d[\d,]*)\s+references?\b", re.IGNORECASE)

_NO_REFS = re.compile(r"^\s*no\s+references\b", re.IGNORECASE)

_SOURCE = re.compile(r"^\s*Source\s*:\s*(\S+)", re.IGNORECASE)

_AUTHORS = re.compile(r"^\s*Authors?\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)

_CATEGORY = re.compile(
    r"^\s*(?:\*\*|__)?\s*([^:*_]+?)\s*(?::\s*(?:\*\*|__)|(?:\*\*|__)\s*:)\s*(.*)$", re.DOTALL
)

_PAPER_PATH = re.compile(r"/paper/(.+?)(?:/full\.md)?/?$")

_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")

# one entity: a name, optional (extra names), an identifier in [..] or (..), optional {aka ...}.
# the identifier group must read "namespace:id" or "namespace id" with a digit in the id, which
# is what tells "(MESH:D005234)" apart from "(insulin)" or "(human, species)".
# ncbi taxonomy ranks, as written among a species' parenthesised names: "(human, species)"
# fmt: off
RANKS = frozenset((
    "superkingdom", "kingdom", "subkingdom", "realm", "domain", "phylum", "subphylum",
    "superclass", "class", "subclass", "infraclass", "cohort", "superorder", "order",
    "suborder", "infraorder", "parvorder", "superfamily", "family", "subfamily", "tribe",
    "subtribe", "genus", "subgenus", "section", "series", "species group", "species subgroup",
    "species", "subspecies", "varietas", "variety", "forma", "forma specialis", "strain",
    "substrain", "isolate", "serogroup", "serotype", "serovar", "biotype", "genotype", "morph",
    "pathogroup", "pathovar", "clade", "no rank",
))
# fmt: on

_ENTITY = re.compile(
    r"""\s*(?P<name>[^\[\]{}]+?)\s*
    (?:\((?P<extra>[^()\[\]{}]*)\)\s*)?
    [\[(]\s*(?P<ns>[A-Za-z][A-Za-z0-9 ._-]*?)\s*(?::\s*|\s+)
        (?P<id>[^\s\[\](){}]*\d[^\s\[\](){}]*)\s*[\])]
    \s*(?:\{\s*aka\s+(?P<aka>[^{}]*)\})?
    \s*(?:,|;|$)""",
    re.VERBOSE,
)


class SeedParseError(Exception):
    """A document that is not a readable summary page."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


def parse_summary(raw: bytes, path: str) -> PaperRecord:
    """Parse a summary page into a PaperRecord, or raise SeedParseError."""
    page = Page(_decode(raw, path))
    if page.title is None or not page.title.text:
        raise SeedParseError(path, 1, "not a summary page: no '# title' heading")
    source_url, fulltext_url = _source_url(page), _first_url(page.section("full_text"))
    paper_id = _paper_id_of(path, source_url, fulltext_url)
    if not paper_id:
        raise SeedParseError(
            path,
            page.line_of(page.title.start),
            "not a summary page: no paper id (no Source or full-text URL, and the file name "
            "is not a PMC or arXiv id)",
        )
    front = _front_matter(page, paper_id_source(paper_id))
    entities, entity_problems = _entities(page)
    heading_problems = [_unknown_heading(page, block) for block in page.unknown_headings]
    references = page.section("references")
    return PaperRecord(
        paper_id=paper_id,
        source=front.source,
        title=page.title.text,
        authors=front.authors,
        doi=front.doi,
        journal=front.journal,
        published_on=front.published_on,
        published_on_precision=front.published_on_precision,
        tldr=_paragraphs(page.section("tldr")),
        contribution=_paragraphs(page.section("contribution")),
        key_findings=tuple(
            b.text for b in page.section("key_findings") if b.kind in ("item", "paragraph")
        ),
        abstract=_paragraphs(page.section("abstract")),
        entities=tuple(entities),
        fulltext_url=fulltext_url,
        stated_reference_count=_stated_reference_count(references),
        references_url=_first_url(references),
        source_url=source_url,
        seed_path=path,
        seed_sha256=hashlib.sha256(raw).hexdigest(),
        problems=(*front.problems, *entity_problems, *heading_problems),
    )


def _unknown_heading(page: Page, block: Block) -> SeedProblem:
    # a renamed or cut-off section would silently empty a field: say so, with a guess
    near = difflib.get_close_matches(block.text, KNOWN_HEADINGS, n=1, cutoff=0.75)
    hint = f"; did you mean '## {near[0]}'?" if near else ""
    reason = f"unknown section '## {block.text}': its text is not read{hint}"
    return SeedProblem(page.line_of(block.start), reason, block.text)


def _decode(raw: bytes, path: str) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeedParseError(path, 0, f"not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise SeedParseError(path, 0, "binary content (NUL byte)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _source_url(page: Page) -> str | None:
    # the url on the page's `Source:` line
    paragraphs = (b for b in page.blocks if b.kind == "paragraph")
    return next(
        (m.group(1).rstrip(".,;") for b in paragraphs if (m := _SOURCE.match(b.text))), None
    )


def _paper_id_of(path: str, source_url: str | None, fulltext_url: str | None) -> str | None:
    # a truncated page may have lost its Source line: a file named after a paper id will do
    stem = Path(path).stem
    return (
        _paper_id(source_url)
        or _paper_id(fulltext_url)
        or (stem if paper_id_source(stem) != "other" else None)
    )


@dataclass(slots=True)
class _Front:
    """What the lines above the first `##` section say."""

    source: str
    authors: tuple[str, ...] = ()
    doi: str | None = None
    journal: str | None = None
    published_on: dt.date | None = None
    published_on_precision: DatePrecision | None = None
    problems: list[SeedProblem] = field(default_factory=list)


def _front_matter(page: Page, default_source: str) -> _Front:
    """Authors and the `source · DOI · journal · date` line."""
    front = _Front(default_source)
    for block in page.section("front"):
        if block.kind != "paragraph":
            continue
        if m := _AUTHORS.match(block.text):
            front.authors = _split_authors(m.group(1))
            continue
        fields = _META_SPLIT.split(block.text)
        if len(fields) < 2 and not any(_DOI.match(f) for f in fields):
            continue
        journal_parts: list[str] = []
        for i, value in enumerate(fields):
            if m := _DOI.match(value):
                front.doi = m.group(1).rstrip(".,;")
            elif _DATE.match(value):
                front.published_on, front.published_on_precision = _date(value)
                if front.published_on is None:
                    line = page.line_of(block.start)
                    front.problems.append(SeedProblem(line, f"invalid date {value!r}", block.text))
            elif i == 0 and len(fields) > 1:
                front.source = value
            else:
                journal_parts.append(value)
        front.journal = " · ".join(journal_parts) or None
    return front


def _entities(page: Page) -> tuple[list[EntityRef], list[SeedProblem]]:
    """The entities of the linked and full-text entity lists, and the lines that cannot be read."""
    entities: list[EntityRef] = []
    problems: list[SeedProblem] = []
    for listing in ("linked", "fulltext"):
        for block in page.section(listing):
            if block.kind != "item":
                continue
            raw_item = page.source[block.start : block.end].decode("utf-8")
            found, bad = _parse_entity_item(raw_item, listing, page.line_of(block.start))
            entities.extend(found)
            problems.extend(bad)
    return entities, problems


def paper_id_source(paper_id: str) -> str:
    """The source a paper id implies when the page does not say: PMC, arXiv or other."""
    if re.fullmatch(r"PMC\d+", paper_id):
        return "PMC"
    if re.fullmatch(r"\d{4}\.\d{4,5}(v\d+)?|[a-z-]+(\.[A-Z]{2})?/\d{7}(v\d+)?", paper_id):
        return "arXiv"
    return "other"


def _parse_entity_item(
    raw_item: str, listing: Listing, line: int
) -> tuple[list[EntityRef], list[SeedProblem]]:
    """Read one `- **Category:** name (id), ...` list item."""
    body = " ".join(_LIST_MARKER.sub("", raw_item, count=1).split())
    m = _CATEGORY.match(body)
    if not m:
        return [], [SeedProblem(line, "entity line without a '**Category:**' label", body)]
    category, rest = m.group(1).strip(), m.group(2).strip()
    found: list[EntityRef] = []
    pos = 0
    while pos < len(rest):
        em = _ENTITY.match(rest, pos)
        if not em or em.end() == pos:
            return found, [
                SeedProblem(
                    line,
                    f"{category}: cannot read an entity (name then [namespace id] or "
                    f"(namespace:id)) at {rest[pos : pos + 60]!r}",
                    body,
                )
            ]
        words = [x.strip() for x in (em.group("extra") or "").split(",") if x.strip()]
        rank = next((x for x in words if x.casefold() in RANKS), None)
        extra = tuple(x for x in words if x.casefold() not in RANKS)
        aka = tuple(x.strip() for x in (em.group("aka") or "").split(",") if x.strip())
        found.append(
            EntityRef(
                category=category,
                listing=listing,
                name=em.group("name").strip(),
                namespace=" ".join(em.group("ns").split()),
                identifier=em.group("id"),
                extra_names=extra,
                aliases=aka,
                line=line,
                rank=rank,
            )
        )
        pos = em.end()
    return found, []


def _paragraphs(blocks: list[Block]) -> str:
    return "\n\n".join(b.text for b in blocks if b.text)


def _first_url(blocks: list[Block]) -> str | None:
    for block in blocks:
        for url in [*block.urls, *_URL.findall("".join(block.parts))]:
            if url.startswith(("http://", "https://")):
                return url.rstrip(".,;")
    return None


def _stated_reference_count(blocks: list[Block]) -> int | None:
    for block in blocks:
        if m := _REF_COUNT.match(block.text):
            return int(m.group(1).replace(",", ""))
        if _NO_REFS.match(block.text):
            return 0
    return None


def _paper_id(url: str | None) -> str | None:
    if not url:
        return None
    try:
        path = urlsplit(url).path
    except ValueError:  # "https://[tomesphere.com/..." is no URL: it names no paper
        return None
    m = _PAPER_PATH.search(path)
    if m:
        return m.group(1)
    segment = path.rstrip("/").rsplit("/", 1)[-1]
    return segment or None


def _split_authors(value: str) -> tuple[str, ...]:
    separator = ";" if ";" in value else ","
    names = [" ".join(n.split()) for n in value.split(separator)]
    if names and names[-1].startswith("and "):
        names[-1] = names[-1][4:]
    return tuple(n for n in names if n)


def _date(value: str) -> tuple[dt.date | None, DatePrecision | None]:
    """The date, and how much of it the page gave (a missing month or day reads as 1)."""
    m = _DATE.match(value)
    if not m:
        return None, None
    precision: DatePrecision = "day" if m.group(3) else "month" if m.group(2) else "year"
    try:
        return dt.date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)), precision
    except ValueError:
        return None, None
