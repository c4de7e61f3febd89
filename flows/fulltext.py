"""Raw full-text Markdown -> sections, references and captions, in one pass over pyromark events.

Decisions, so callers need not read the code:
- sections are flat: each heading starts one and its text stops at the next heading of any
  level; `heading_path` carries the nesting. `level` is the Markdown level as written.
- the title is the first heading when it is an H1 that does not read like a section name
  ("Abstract", "1. Introduction", ...). when it is also the only H1 it is not a section: its
  body (authors, DOI line) joins any text before it in the level-0 section, and it is left
  out of every `heading_path`. with several H1s it stays an ordinary section as well.
- the reference section (references, bibliography, literature/works cited; any level) stays
  in `sections` (its words count) and references are read from it as well, deeper headings
  included. an entry is a list item, a footnote definition or a `[n]` line; loose paragraphs
  count one each only when the section has none of those (so "14 references:" is skipped).
- `char_start` is the str offset in the input of the section's heading, or for the level-0
  section of its first block; offsets of mentions are relative to `section.text`.
- text is plain: paragraphs and blocks split by a blank line, list items and table rows on
  their own lines, cells joined by " | ", whitespace runs (nbsp too) folded to one space
  except inside code blocks, math and footnote markers kept as their source (`$x$`, `[^1]`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pyromark

from flows.records import Caption, FullText, Reference, Section

_OPTIONS = (
    pyromark.Options.ENABLE_TABLES
    | pyromark.Options.ENABLE_FOOTNOTES
    | pyromark.Options.ENABLE_STRIKETHROUGH
    | pyromark.Options.ENABLE_MATH  # without it `$a_1$ and $b_1$` turns into emphasis
    | pyromark.Options.ENABLE_YAML_STYLE_METADATA_BLOCKS  # else front matter reads as a heading
)
_MARKDOWN = pyromark.Markdown(options=_OPTIONS)  # immutable, shareable across threads


@dataclass(slots=True)
class _Draft:
    heading: str
    level: int
    path: tuple[str, ...]
    start: int  # utf-8 byte offset of the heading, -1 for the level-0 section
    body_start: int = -1  # utf-8 byte offset of the first block with text
    chunks: list[tuple[int, str]] = field(default_factory=list)  # (group, line): see _join


_WORD = re.compile(r"(?<!\S)\S*?[^\W_]\S*")  # anchored at token starts, so linear time
_REF_HEADING = re.compile(
    r"(?:[\dIVX]+(?:\.\d+)*\.?\s+)?(?:references?(?: list| cited| and notes)?|notes and references"
    r"|bibliography|literature cited|works cited|cited literature)\s*[:.]?",
    re.IGNORECASE,
)
_NOT_TITLE = re.compile(
    r"(?:[\dIVX]+\.?\s+)?(?:abstract|summary|introduction|background|(?:materials and )?methods"
    r"|results|discussion|conclusions?|references|bibliography|acknowledge?ments)\s*:?",
    re.IGNORECASE,
)
_CAPTION = re.compile(
    r"(?P<supp>(?:supplementary|extended data)\s+)?(?P<kind>fig(?:ure)?s?\b\.?|table)\s*"
    r"(?P<num>[A-Z]?\d{1,3}[A-Za-z]?|[IVX]{1,5})\b(?P<sep>\s*[.:|–—-])?\s*(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL,
)
_REF_LINE = re.compile(r"\[\d{1,4}\]\s")
_REF_MARK = re.compile(r"^(?:\[\d{1,4}\]|\[\^[^\]\s]{1,30}\]:?)\s*")
_DOI = re.compile(r"\b10\.\d{4,9}/[^\s\"<>]+")
_URL = re.compile(r"https?://[^\s\"<>]+", re.IGNORECASE)
_PMID = re.compile(
    r"(?:\bPMID\s*:?\s*|pubmed\.ncbi\.nlm\.nih\.gov/|/pubmed/)(\d{1,9})\b", re.IGNORECASE
)
_PMCID = re.compile(r"(?<![A-Za-z0-9])PMC\d{3,9}\b")
_YEAR = r"(1[89]\d\d|20\d\d|2100)"
_YEARS = (
    re.compile(r"\(\s*" + _YEAR + r"(?!\d)"),  # apa / harvard: "Smith J (2019)"
    re.compile(r"(?<![\w.\-/])" + _YEAR + r"(?:\s+[A-Z][a-z]{2}(?:\s+\d{1,2})?)?\s*;"),  # "2019;12"
    re.compile(r"(?<![\w.\-/])" + _YEAR + r"(?!\d)"),
)
_HTML_DROP = re.compile(
    r"<!--.*?(?:-->|\Z)|<(script|style)\b.*?(?:</\1\s*>|\Z)|<\?.*?(?:\?>|\Z)|<![^<>]*>",
    re.IGNORECASE | re.DOTALL,
)
# [^<>] rather than [^>]: a stray "<" stops the scan, which keeps this linear on hostile input
_HTML_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*)[^<>]*>")
# tags that end a line of text when rendered; other tags vanish without leaving a space
_BREAKING_TAG = re.compile(
    r"address|article|aside|blockquote|br|caption|d[dlt]|div|fig(?:caption|ure)|footer|h[1-6r]"
    r"|header|li|main|nav|ol|p|pre|section|t(?:able|body|[dhr]|head)|ul",
    re.IGNORECASE,
)


def count_words(text: str) -> int:
    """Count whitespace-separated tokens that contain at least one letter or digit."""
    return len(_WORD.findall(text))


def parse_fulltext(text: str) -> FullText:
    """Parse a full-text Markdown page into sections, references and captions; never raises."""
    shift = 1 if text.startswith("\ufeff") else 0  # pulldown-cmark reads a bom as text
    text = text[shift:].replace("\x00", "\ufffd")  # frees nul to mark link targets in refs
    try:
        source = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: one "?" each keeps str offsets unchanged
        source = text.encode("utf-8", "replace")
        text = source.decode("utf-8")

    drafts = [_Draft("", 0, (), -1)]
    sec = drafts[0]
    buf: list[str] = []
    heads: list[tuple[int, str]] = []  # open headings (level, text) above the current one
    caps: dict[tuple[int, str, str], str] = {}  # (draft index, kind, label) -> text
    refs: list[Reference] = []
    pending: list[tuple[bool, str, str]] = []  # (marked, citation, text to mine) this ref section
    unit: list[str] | None = None  # plain lines of the open list item or footnote reference
    unit_mine: list[str] = []
    unit_depth = 0
    cells: list[str] = []
    group = groups = table_group = list_depth = item_depth = quote_depth = 0
    heading_level = head_start = ref_level = h1_count = 0
    block_start = 0
    marked = False
    image_at = -1
    soft = " "

    def emit(line: str, grp: int) -> None:
        if line:
            if sec.body_start < 0:
                sec.body_start = block_start
            sec.chunks.append((grp, line))

    def caption(line: str, is_marked: bool) -> None:
        found = _caption(line, is_marked)
        if found:
            key = (len(drafts) - 1, found[0], found[1])
            if len(found[2]) >= len(caps.get(key, "")):  # an image alt and its caption: keep more
                caps[key] = found[2]

    def leaf(grp: int) -> str:
        raw = "".join(buf)
        buf.clear()
        if not ref_level:
            line = _plain(raw)
            emit(line, grp)
            return line
        lines = _lines(raw)
        if unit is not None:
            unit.extend(p for p, _ in lines)
            unit_mine.extend(m for _, m in lines)
            line = " ".join(p for p, _ in lines if p)
        else:  # one line per reference, wrapped lines joined
            units = _paragraph_units(lines)
            pending.extend((m, _REF_MARK.sub("", t, count=1), mined) for m, t, mined in units)
            line = "\n".join(t for _, t, _ in units if t)
        emit(line, grp)
        return line

    def close_refs() -> None:
        chosen = [u for u in pending if u[0]] or pending  # a list wins over loose paragraphs
        for _, citation, mined in chosen:
            if citation:
                refs.append(_reference(len(refs) + 1, citation, mined))
        pending.clear()

    events: Iterator[tuple[Any, Any]] = _MARKDOWN.events_with_range(text, merge_text=True)
    for event, span in events:
        if type(event) is str:
            if event != "Rule":
                buf.append(soft)
            continue
        ((kind, value),) = event.items()
        if kind == "Text" or kind == "Code" or kind == "Html":  # html: stripped at its block end
            buf.append(value)
        elif kind == "Start":
            tag = value if type(value) is str else next(iter(value))
            if tag == "Paragraph":
                block_start = span["start"]
                marked = False
            elif tag in ("Emphasis", "Strong"):
                marked = marked or not buf
            elif tag == "Link":
                if ref_level and not heading_level:  # mined for ids; "%2F" hides a doi's "/"
                    dest = value["Link"]["dest_url"]
                    buf.append(
                        f"\x00{dest} {unquote(dest)}\x00" if "%" in dest else f"\x00{dest}\x00"
                    )
            elif tag == "Heading":
                if list_depth or item_depth or quote_depth:
                    block_start = span["start"]
                    continue
                if buf:
                    leaf(0)
                heading_level, head_start = int(value["Heading"]["level"][1]), span["start"]
            elif tag == "Item" or tag == "FootnoteDefinition":
                block_start = span["start"]
                if buf:
                    leaf(group)
                item_depth += 1
                if ref_level and unit is None:
                    unit, unit_mine, unit_depth = [], [], item_depth
                if tag == "FootnoteDefinition":
                    buf.append(f"[^{value['FootnoteDefinition']}]: ")
            elif tag == "List":
                if buf:  # an item's own text before its nested list
                    leaf(group)
                if not list_depth:
                    groups += 1
                    group = groups
                list_depth += 1
            elif tag == "CodeBlock":
                if buf:
                    leaf(group)
                block_start = span["start"]
            elif tag == "Table":
                groups += 1
                table_group, block_start = groups, span["start"]
            elif tag in ("TableHead", "TableRow"):
                cells.clear()
            elif tag == "Image":
                image_at = len(buf)
            elif tag == "BlockQuote":
                quote_depth += 1
                block_start = span["start"]
            elif tag == "HtmlBlock":
                block_start = span["start"]
        elif kind == "End":
            tag = value if type(value) is str else next(iter(value))
            if tag == "Paragraph":
                if item_depth:
                    buf.append(soft)  # paragraphs of one item stay on the item's line
                else:
                    caption(leaf(group), marked)
            elif tag == "Heading":
                if not heading_level:
                    leaf(group)
                    continue
                heading = _plain("".join(buf))
                buf.clear()
                while heads and heads[-1][0] >= heading_level:
                    heads.pop()
                heads.append((heading_level, heading))
                h1_count += heading_level == 1
                if ref_level and heading_level <= ref_level:
                    close_refs()
                    ref_level = 0
                if not ref_level and _REF_HEADING.fullmatch(heading):
                    ref_level = heading_level
                soft = "\n" if ref_level else " "
                sec = _Draft(heading, heading_level, tuple(h for _, h in heads), head_start)
                drafts.append(sec)
                heading_level = 0
            elif tag == "Item" or tag == "FootnoteDefinition":
                leaf(group)
                if unit is not None and unit_depth == item_depth:
                    citation = _REF_MARK.sub("", " ".join(p for p in unit if p), count=1)
                    pending.append((True, citation, " ".join(unit_mine)))
                    unit = None
                item_depth -= 1
            elif tag == "List":
                list_depth -= 1
                group = group if list_depth else 0
            elif tag == "CodeBlock":
                emit("".join(buf).rstrip("\n"), group)
                buf.clear()
            elif tag == "TableCell":
                cells.append(_plain("".join(buf)))
                buf.clear()
            elif tag in ("TableHead", "TableRow"):
                emit(" | ".join(cells), table_group)
            elif tag == "Image":
                if image_at >= 0 and not heading_level:  # an image in a heading is no figure
                    caption(_plain("".join(buf[image_at:])), True)
                image_at = -1
            elif tag == "HtmlBlock":
                line = _strip_html("".join(buf))
                buf.clear()
                emit(line, group)
                caption(line, False)
            elif tag == "BlockQuote":
                quote_depth -= 1
            elif tag == "MetadataBlock":
                buf.clear()  # front matter is metadata, not body text
        elif kind == "InlineMath":
            buf.append(f"${value}$")
        elif kind == "DisplayMath":
            buf.append(f"$${value}$$")
        elif kind == "InlineHtml":
            m = _HTML_TAG.match(value)  # the tag goes; a <br> or <p> still ends a word
            buf.append(" " if m and _BREAKING_TAG.fullmatch(m.group(1)) else "")
        elif kind == "FootnoteReference":
            buf.append(f"[^{value}]")
    if buf:
        leaf(group)
    if ref_level:
        close_refs()
    return _assemble(drafts, caps, refs, h1_count, source, len(text), shift)


def _assemble(
    drafts: list[_Draft],
    caps: dict[tuple[int, str, str], str],
    refs: list[Reference],
    h1_count: int,
    source: bytes,
    length: int,
    shift: int,
) -> FullText:
    title = None
    merged = -1  # draft index folded into the level-0 section
    if len(drafts) > 1 and drafts[1].level == 1 and not _NOT_TITLE.fullmatch(drafts[1].heading):
        title = drafts[1].heading or None
        if h1_count == 1:
            first, lead = drafts[1], drafts[0]
            lead.chunks.extend(first.chunks)
            lead.body_start = lead.body_start if lead.body_start >= 0 else first.body_start
            merged = 1
            for d in drafts[2:]:
                d.path = d.path[1:]
    kept = [(i, d) for i, d in enumerate(drafts) if i != merged and (d.level or d.chunks)]
    starts = _char_offsets(source, length, [d.start if d.level else d.body_start for _, d in kept])
    ordinal_of = {i: n for n, (i, _) in enumerate(kept)}
    if merged > 0:
        ordinal_of[merged] = ordinal_of.get(0, 0)
    sections = []
    for n, (_, d) in enumerate(kept):
        body = _join(d.chunks)
        sections.append(
            Section(n, d.heading, d.level, d.path, body, count_words(body), starts[n] + shift)
        )
    captions = tuple(
        Caption("figure" if kind == "figure" else "table", label, text, ordinal_of[i])
        for (i, kind, label), text in caps.items()
        if i in ordinal_of
    )
    return FullText(title, tuple(sections), tuple(refs), captions)


def _plain(raw: str) -> str:
    if "\x00" in raw:
        raw = "".join(raw.split("\x00")[0::2])
    return " ".join(raw.split())


def _lines(raw: str) -> list[tuple[str, str]]:
    """Split a reference-section block into (plain line, line with link targets) pairs."""
    out = []
    for line in raw.split("\n"):
        parts = line.split("\x00")  # link targets sit at the odd indices
        plain = " ".join("".join(parts[0::2]).split())
        if plain or len(parts) > 1:
            out.append((plain, " ".join(parts)))
    return out


def _paragraph_units(lines: list[tuple[str, str]]) -> list[tuple[bool, str, str]]:
    """One paragraph of a reference section: one (marked, line, mined) unit, or one per `[n]`."""
    units: list[tuple[bool, list[str], list[str]]] = []
    for plain, mined in lines:
        if not units or _REF_LINE.match(plain):
            units.append((bool(_REF_LINE.match(plain)), [], []))
        units[-1][1].append(plain)
        units[-1][2].append(mined)
    return [(m, " ".join(p for p in plain if p), " ".join(mined)) for m, plain, mined in units]


def _reference(ordinal: int, citation: str, mined: str) -> Reference:
    """Pick identifiers and a year out of one citation (its text plus its link targets)."""
    doi, url = _DOI.search(mined), _URL.search(mined)
    pmid, pmcid = _PMID.search(mined), _PMCID.search(mined)
    rest = _PMID.sub(" ", _URL.sub(" ", _DOI.sub(" ", mined)))  # their digits are not years
    year = next((int(m.group(1)) for p in _YEARS if (m := p.search(rest))), None)
    return Reference(
        ordinal,
        citation,
        _trim(doi.group()) if doi else None,
        pmid.group(1) if pmid else None,
        pmcid.group() if pmcid else None,
        _trim(url.group()) if url else None,
        year,
    )


def _trim(value: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets a DOI or URL picked up."""
    opened = {")": value.count("("), "]": value.count("["), "}": value.count("{")}
    closed = {c: value.count(c) for c in opened}
    end = len(value)  # an index, not repeated slicing: hostile input can end in 1e6 dots
    while end:
        last = value[end - 1]
        if last in closed and closed[last] > opened[last]:
            closed[last] -= 1
        elif last not in ".,;:'*_":
            break
        end -= 1
    return value[:end]


def _caption(line: str, marked: bool) -> tuple[str, str, str] | None:
    """(kind, label, text) when a block opens with a figure or table label."""
    m = _CAPTION.match(line)
    if not m:
        return None
    word = m.group("kind").lower()
    # unmarked prose ("Table 1 shows ...") is not a caption: require bold/italic, an image alt,
    # punctuation after the number, or the "Fig." abbreviation that prose rarely opens with
    if not (marked or m.group("sep") or (word.startswith("fig") and word != "figure")):
        return None
    kind = "table" if word == "table" else "figure"
    supp = " ".join(w.capitalize() for w in (m.group("supp") or "").split())
    label = f"{supp} {kind.capitalize()} {m.group('num')}".strip()
    return kind, label, m.group("rest").strip()


def _strip_html(raw: str) -> str:
    """Text of an HTML block: comments, scripts and tags gone, entities decoded."""
    raw = _HTML_DROP.sub(" ", raw)
    raw = _HTML_TAG.sub(lambda m: " " if _BREAKING_TAG.fullmatch(m.group(1)) else "", raw)
    return " ".join(html.unescape(raw).split())


def _join(chunks: list[tuple[int, str]]) -> str:
    """Lines of one list or table (same nonzero group) join by a newline, blocks by a blank line."""
    out: list[str] = []
    previous = 0
    for grp, line in chunks:
        if out:
            out.append("\n" if grp and grp == previous else "\n\n")
        out.append(line)
        previous = grp
    return "".join(out)


def _char_offsets(source: bytes, length: int, byte_offsets: list[int]) -> list[int]:
    """Map utf-8 byte offsets (ascending) to str offsets with one walk over the source."""
    if len(source) == length:  # ascii: bytes and characters line up
        return [max(b, 0) for b in byte_offsets]
    out, at_byte, at_char = [], 0, 0
    for b in byte_offsets:
        b = max(b, at_byte)
        at_char += len(source[at_byte:b].decode("utf-8", "replace"))
        at_byte = b
        out.append(at_char)
    return out
