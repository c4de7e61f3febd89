"""Summary page -> PaperRecord: the typed reading of one seed document."""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyromark

from flows.records import EntityRef, Listing, PaperRecord, QuarantineRow, SeedProblem


class SeedParseError(Exception):
    """A document that is not a readable summary page."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


SEED_SUFFIXES = (".md", ".txt")

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
_ENTITY = re.compile(
    r"""\s*(?P<name>[^\[\]{}]+?)\s*
    (?:\((?P<extra>[^()\[\]{}]*)\)\s*)?
    [\[(]\s*(?P<ns>[A-Za-z][A-Za-z0-9 ._-]*?)\s*(?::\s*|\s+)
        (?P<id>[^\s\[\](){}]*\d[^\s\[\](){}]*)\s*[\])]
    \s*(?:\{\s*aka\s+(?P<aka>[^{}]*)\})?
    \s*(?:,|;|$)""",
    re.VERBOSE,
)

_SECTION_NAMES = {
    "tl;dr": "tldr",
    "tldr": "tldr",
    "contribution": "contribution",
    "key findings": "key_findings",
    "abstract": "abstract",
    "linked entities": "linked",
    "full-text entities": "fulltext",
    "full text entities": "fulltext",
    "full text": "full_text",
    "full-text": "full_text",
    "references": "references",
}


@dataclass(slots=True)
class _Block:
    kind: str  # heading | paragraph | item
    level: int
    start: int  # byte offsets into the utf-8 source
    end: int
    parts: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())


def discover_seeds(root: Path) -> list[Path]:
    """Seed documents below root, in a stable order."""
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in SEED_SUFFIXES and not p.name.startswith(".")
    )


def read_seed(path: Path) -> PaperRecord:
    """Read and parse one seed file."""
    return parse_summary(path.read_bytes(), str(path))


def parse_summary(raw: bytes, path: str) -> PaperRecord:
    """Parse a summary page into a PaperRecord, or raise SeedParseError."""
    sha256 = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeedParseError(path, 0, f"not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise SeedParseError(path, 0, "binary content (NUL byte)")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    source = text.encode("utf-8")
    line_starts = [0, *(i + 1 for i, b in enumerate(source) if b == 0x0A)]

    def line_of(offset: int) -> int:
        return bisect.bisect_right(line_starts, offset)

    blocks = _blocks(text)
    title_block = next((b for b in blocks if b.kind == "heading" and b.level == 1), None)
    if title_block is None or not title_block.text:
        raise SeedParseError(path, 1, "not a summary page: no '# title' heading")

    problems: list[SeedProblem] = []
    sections: dict[str, list[_Block]] = {"front": []}
    current = "front"
    for block in blocks:
        if block is title_block:
            continue
        if block.kind == "heading" and block.level == 2:
            current = _SECTION_NAMES.get(block.text.lower().rstrip(":"), "other")
            sections.setdefault(current, [])
            continue
        sections.setdefault(current, []).append(block)

    all_paragraphs = [b for b in blocks if b.kind == "paragraph"]
    source_url = next(
        (m.group(1).rstrip(".,;") for b in all_paragraphs if (m := _SOURCE.match(b.text))), None
    )
    fulltext_url = _first_url(sections.get("full_text", []))
    references = sections.get("references", [])
    references_url = _first_url(references)
    stated_refs = _stated_reference_count(references)

    # a truncated page may have lost its Source line: a file named after a paper id will do
    stem = Path(path).stem
    paper_id = (
        _paper_id(source_url)
        or _paper_id(fulltext_url)
        or (stem if paper_id_source(stem) != "other" else None)
    )
    if not paper_id:
        raise SeedParseError(
            path,
            line_of(title_block.start),
            "not a summary page: no paper id (no Source or full-text URL, and the file name "
            "is not a PMC or arXiv id)",
        )

    authors: tuple[str, ...] = ()
    source_label, doi, journal, published_on = paper_id_source(paper_id), None, None, None
    for block in sections["front"]:
        if block.kind != "paragraph":
            continue
        if m := _AUTHORS.match(block.text):
            authors = _split_authors(m.group(1))
            continue
        fields = _META_SPLIT.split(block.text)
        if len(fields) < 2 and not any(_DOI.match(f) for f in fields):
            continue
        journal_parts: list[str] = []
        for i, value in enumerate(fields):
            if m := _DOI.match(value):
                doi = m.group(1).rstrip(".,;")
            elif _DATE.match(value):
                published_on = _date(value)
                if published_on is None:
                    problems.append(
                        SeedProblem(line_of(block.start), f"invalid date {value!r}", block.text)
                    )
            elif i == 0 and len(fields) > 1:
                source_label = value
            else:
                journal_parts.append(value)
        journal = " · ".join(journal_parts) or None

    entities: list[EntityRef] = []
    for listing in ("linked", "fulltext"):
        for block in sections.get(listing, []):
            if block.kind != "item":
                continue
            raw_item = source[block.start : block.end].decode("utf-8")
            found, bad = _parse_entity_item(raw_item, listing, line_of(block.start))
            entities.extend(found)
            problems.extend(bad)

    return PaperRecord(
        paper_id=paper_id,
        source=source_label,
        title=title_block.text,
        authors=authors,
        doi=doi,
        journal=journal,
        published_on=published_on,
        tldr=_paragraphs(sections.get("tldr", [])),
        contribution=_paragraphs(sections.get("contribution", [])),
        key_findings=tuple(
            b.text for b in sections.get("key_findings", []) if b.kind in ("item", "paragraph")
        ),
        abstract=_paragraphs(sections.get("abstract", [])),
        entities=tuple(entities),
        fulltext_url=fulltext_url,
        stated_reference_count=stated_refs,
        references_url=references_url,
        source_url=source_url,
        seed_path=path,
        seed_sha256=sha256,
        problems=tuple(problems),
    )


def paper_id_source(paper_id: str) -> str:
    """The source a paper id implies when the page does not say: PMC, arXiv or other."""
    if re.fullmatch(r"PMC\d+", paper_id):
        return "PMC"
    if re.fullmatch(r"\d{4}\.\d{4,5}(v\d+)?|[a-z-]+(\.[A-Z]{2})?/\d{7}(v\d+)?", paper_id):
        return "arXiv"
    return "other"


def _blocks(text: str) -> list[_Block]:
    """Flatten the Markdown event stream into headings, paragraphs and list items."""
    blocks: list[_Block] = []
    stack: list[_Block] = []
    item_depth = 0
    # the event stream is typed as a union of TypedDicts; read it as plain data
    events: Any = pyromark.events_with_range(text, options=_MD_OPTIONS)
    for event, span in events:
        if isinstance(event, dict) and "Start" in event:
            tag = event["Start"]
            name = next(iter(tag)) if isinstance(tag, dict) else tag
            if name == "Heading":
                level = int(tag["Heading"]["level"][1:])
                stack.append(_Block("heading", level, span["start"], span["end"]))
            elif name == "Item":
                item_depth += 1
                stack.append(_Block("item", item_depth, span["start"], span["end"]))
            elif name in ("Paragraph", "CodeBlock", "TableCell") and item_depth == 0:
                stack.append(_Block("paragraph", 0, span["start"], span["end"]))
            elif name == "Link" and stack:
                stack[-1].urls.append(str(tag["Link"]["dest_url"]))
        elif isinstance(event, dict) and "End" in event:
            tag = event["End"]
            name = next(iter(tag)) if isinstance(tag, dict) else tag
            if name in ("Heading", "Item") or (
                name in ("Paragraph", "CodeBlock", "TableCell") and item_depth == 0
            ):
                if stack:
                    blocks.append(stack.pop())
                if name == "Item":
                    item_depth -= 1
        elif stack:
            if isinstance(event, dict):
                kind, value = next(iter(event.items()))
                if kind in ("Text", "Code", "InlineMath"):
                    stack[-1].parts.append(str(value))
                elif kind == "DisplayMath":
                    stack[-1].parts.append(f" {value} ")
            elif event in ("SoftBreak", "HardBreak"):
                stack[-1].parts.append(" ")
    blocks.sort(key=lambda b: b.start)
    return blocks


_MD_OPTIONS = pyromark.Options.ENABLE_TABLES | pyromark.Options.ENABLE_STRIKETHROUGH


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
        extra = tuple(x.strip() for x in (em.group("extra") or "").split(",") if x.strip())
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
            )
        )
        pos = em.end()
    return found, []


def _paragraphs(blocks: list[_Block]) -> str:
    return "\n\n".join(b.text for b in blocks if b.text)


def _first_url(blocks: list[_Block]) -> str | None:
    for block in blocks:
        for url in [*block.urls, *_URL.findall("".join(block.parts))]:
            if url.startswith(("http://", "https://")):
                return url.rstrip(".,;")
    return None


def _stated_reference_count(blocks: list[_Block]) -> int | None:
    for block in blocks:
        if m := _REF_COUNT.match(block.text):
            return int(m.group(1).replace(",", ""))
        if _NO_REFS.match(block.text):
            return 0
    return None


def _paper_id(url: str | None) -> str | None:
    if not url:
        return None
    m = _PAPER_PATH.search(urlsplit(url).path)
    if m:
        return m.group(1)
    segment = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    return segment or None


def _split_authors(value: str) -> tuple[str, ...]:
    separator = ";" if ";" in value else ","
    names = [" ".join(n.split()) for n in value.split(separator)]
    if names and names[-1].startswith("and "):
        names[-1] = names[-1][4:]
    return tuple(n for n in names if n)


def _date(value: str) -> dt.date | None:
    m = _DATE.match(value)
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class SeedBatch:
    """The papers read from a batch of seed files, and what was rejected."""

    papers: tuple[PaperRecord, ...]
    rejected: tuple[QuarantineRow, ...]


def parse_batch(paths: Sequence[Path]) -> SeedBatch:
    """Parse seed files; a bad file or line becomes a quarantine row, never an exception."""
    papers: list[PaperRecord] = []
    rejected: list[QuarantineRow] = []
    for path in paths:
        try:
            paper = read_seed(path)
        except SeedParseError as exc:
            rejected.append(
                QuarantineRow(str(path), "parse", exc.reason, True, line=exc.line or None)
            )
            continue
        except OSError as exc:
            rejected.append(QuarantineRow(str(path), "parse", f"cannot read: {exc}", True))
            continue
        papers.append(paper)
        rejected.extend(
            QuarantineRow(
                str(path), "parse", p.reason, False, paper.paper_id, p.line, {"text": p.text}
            )
            for p in paper.problems
        )
    return SeedBatch(tuple(papers), tuple(rejected))


def drop_duplicate_ids(
    papers: Sequence[PaperRecord], seen: dict[str, str]
) -> tuple[list[PaperRecord], list[QuarantineRow]]:
    """Keep the first document of each paper id in a run; later ones are quarantined."""
    kept: list[PaperRecord] = []
    rejected: list[QuarantineRow] = []
    for paper in papers:
        first = seen.setdefault(paper.paper_id, paper.seed_path)
        if first == paper.seed_path:
            kept.append(paper)
        else:
            rejected.append(
                QuarantineRow(
                    paper.seed_path,
                    "parse",
                    f"duplicate paper id {paper.paper_id}: already read from {first}",
                    True,
                    paper.paper_id,
                )
            )
    return kept, rejected
