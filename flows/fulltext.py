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
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pyromark

from flows.markdown import Span, Walker
from flows.records import Caption, FullText, Reference, Section
from flows.references import ReferenceList, is_reference_heading

_OPTIONS = (
    pyromark.Options.ENABLE_TABLES
    | pyromark.Options.ENABLE_FOOTNOTES
    | pyromark.Options.ENABLE_STRIKETHROUGH
    | pyromark.Options.ENABLE_MATH  # without it `$a_1$ and $b_1$` turns into emphasis
    | pyromark.Options.ENABLE_YAML_STYLE_METADATA_BLOCKS  # else front matter reads as a heading
)
_MARKDOWN = pyromark.Markdown(options=_OPTIONS)  # immutable, shareable across threads

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


class _WordChars(dict[int, int | None]):
    """str.translate table keeping letters, digits and whitespace; filled in as chars appear."""

    def __missing__(self, code: int) -> int | None:
        ch = chr(code)
        kept = code if ch.isalnum() or ch.isspace() else None
        self[code] = kept
        return kept


_WORD_CHARS = _WordChars()


def count_words(text: str) -> int:
    """Count whitespace-separated tokens that contain at least one letter or digit."""
    # a token of punctuation alone translates to nothing and so splits away; all in C
    return len(text.translate(_WORD_CHARS).split())


@dataclass(slots=True)
class _Draft:
    heading: str
    level: int
    path: tuple[str, ...]
    start: int  # utf-8 byte offset of the heading, -1 for the level-0 section
    body_start: int = -1  # utf-8 byte offset of the first block with text
    chunks: list[tuple[int, str]] = field(default_factory=list)  # (group, line): see _join
    words: int = 0  # words in chunks, counted as they come


def parse_fulltext(text: str) -> FullText:
    """Parse a full-text Markdown page into sections, references and captions; never raises."""
    shift = 1 if text.startswith("\ufeff") else 0  # pulldown-cmark reads a bom as text
    text = text[shift:].replace("\x00", "\ufffd")  # frees nul to mark link targets in refs
    try:
        source = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: one "?" each keeps str offsets unchanged
        source = text.encode("utf-8", "replace")
        text = source.decode("utf-8")
    walker = _FullTextWalker()
    walker.walk(_MARKDOWN.events_with_range(text, merge_text=True))
    walker.finish()
    return _assemble(walker.drafts, walker.caps, walker.refs, walker.h1_count, source,
                     len(text), shift)  # fmt: skip


class _FullTextWalker(Walker):
    """The state of one pass over a full text's events, and a handler per event."""

    def __init__(self) -> None:
        self.drafts = [_Draft("", 0, (), -1)]
        self.sec = self.drafts[0]
        self.buf: list[str] = []
        self.heads: list[tuple[int, str]] = []  # open headings (level, text) above this one
        self.caps: dict[tuple[int, str, str], str] = {}  # (draft, kind, label) -> text
        self.refs: list[Reference] = []
        self.ref_list: ReferenceList | None = None  # the open reference section
        self.cells: list[str] = []
        self.group = self.groups = self.table_group = 0
        self.list_depth = self.item_depth = self.quote_depth = 0
        self.heading_level = self.head_start = self.ref_level = self.h1_count = 0
        self.block_start = 0
        self.marked = False
        self.image_at = -1
        self.soft = " "

    def finish(self) -> None:
        """The events are done: flush the last block and close an open reference section."""
        if self.buf:
            self.leaf(self.group)
        self.close_refs()

    # what a block turns into

    def emit(self, line: str, group: int) -> None:
        if line:
            sec = self.sec
            if sec.body_start < 0:
                sec.body_start = self.block_start
            sec.chunks.append((group, line))
            sec.words += count_words(line)

    def caption(self, line: str, marked: bool) -> None:
        found = _caption(line, marked)
        if found:
            key = (len(self.drafts) - 1, found[0], found[1])
            if len(found[2]) >= len(self.caps.get(key, "")):  # an image alt and its caption
                self.caps[key] = found[2]

    def leaf(self, group: int) -> str:
        raw = "".join(self.buf)
        self.buf.clear()
        line = _plain(raw) if self.ref_list is None else self.ref_list.block(raw)
        self.emit(line, group)
        return line

    def close_refs(self) -> None:
        if self.ref_list is not None:
            self.refs.extend(self.ref_list.close(len(self.refs) + 1))
            self.ref_list, self.ref_level = None, 0

    # leaves

    def on_Text(self, value: str, span: Span) -> None:
        self.buf.append(value)

    on_Code = on_Html = on_Text  # html: stripped at its block's end

    def on_SoftBreak(self, value: None, span: Span) -> None:
        self.buf.append(self.soft)

    on_HardBreak = on_SoftBreak

    def on_InlineMath(self, value: str, span: Span) -> None:
        self.buf.append(f"${value}$")

    def on_DisplayMath(self, value: str, span: Span) -> None:
        self.buf.append(f"$${value}$$")

    def on_InlineHtml(self, value: str, span: Span) -> None:
        m = _HTML_TAG.match(value)  # the tag goes; a <br> or <p> still ends a word
        self.buf.append(" " if m and _BREAKING_TAG.fullmatch(m.group(1)) else "")

    def on_FootnoteReference(self, value: str, span: Span) -> None:
        self.buf.append(f"[^{value}]")

    # blocks opening

    def start_Paragraph(self, value: Any, span: Span) -> None:
        self.block_start = span["start"]
        self.marked = False

    def start_Emphasis(self, value: Any, span: Span) -> None:
        self.marked = self.marked or not self.buf

    start_Strong = start_Emphasis

    def start_Link(self, value: Any, span: Span) -> None:
        if self.ref_level and not self.heading_level:  # mined for ids; "%2F" hides a "/"
            dest = value["Link"]["dest_url"]
            self.buf.append(f"\x00{dest} {unquote(dest)}\x00" if "%" in dest else f"\x00{dest}\x00")

    def start_Heading(self, value: Any, span: Span) -> None:
        if self.list_depth or self.item_depth or self.quote_depth:
            self.block_start = span["start"]  # a heading inside a container is its text
            return
        if self.buf:
            self.leaf(0)
        self.heading_level, self.head_start = int(value["Heading"]["level"][1]), span["start"]

    def start_Item(self, value: Any, span: Span) -> None:
        self.block_start = span["start"]
        if self.buf:
            self.leaf(self.group)
        self.item_depth += 1
        if self.ref_list is not None and not self.ref_list.in_unit:
            self.ref_list.open_unit(self.item_depth)

    def start_FootnoteDefinition(self, value: Any, span: Span) -> None:
        self.start_Item(value, span)
        self.buf.append(f"[^{value['FootnoteDefinition']}]: ")

    def start_List(self, value: Any, span: Span) -> None:
        if self.buf:  # an item's own text before its nested list
            self.leaf(self.group)
        if not self.list_depth:
            self.groups += 1
            self.group = self.groups
        self.list_depth += 1

    def start_CodeBlock(self, value: Any, span: Span) -> None:
        if self.buf:
            self.leaf(self.group)
        self.block_start = span["start"]

    def start_Table(self, value: Any, span: Span) -> None:
        self.groups += 1
        self.table_group, self.block_start = self.groups, span["start"]

    def start_TableHead(self, value: Any, span: Span) -> None:
        self.cells.clear()

    start_TableRow = start_TableHead

    def start_Image(self, value: Any, span: Span) -> None:
        self.image_at = len(self.buf)

    def start_BlockQuote(self, value: Any, span: Span) -> None:
        self.quote_depth += 1
        self.block_start = span["start"]

    def start_HtmlBlock(self, value: Any, span: Span) -> None:
        self.block_start = span["start"]

    # blocks closing

    def end_Paragraph(self, value: Any, span: Span) -> None:
        if self.item_depth:
            self.buf.append(self.soft)  # paragraphs of one item stay on the item's line
        else:
            self.caption(self.leaf(self.group), self.marked)

    def end_Heading(self, value: Any, span: Span) -> None:
        if not self.heading_level:
            self.leaf(self.group)
            return
        level = self.heading_level
        heading = _plain("".join(self.buf))
        self.buf.clear()
        heads = self.heads
        while heads and heads[-1][0] >= level:
            heads.pop()
        heads.append((level, heading))
        self.h1_count += level == 1
        if self.ref_level and level <= self.ref_level:
            self.close_refs()
        if not self.ref_level and is_reference_heading(heading):
            self.ref_level, self.ref_list = level, ReferenceList()
        self.soft = "\n" if self.ref_level else " "
        self.sec = _Draft(heading, level, tuple(h for _, h in heads), self.head_start)
        self.drafts.append(self.sec)
        self.heading_level = 0

    def end_Item(self, value: Any, span: Span) -> None:
        self.leaf(self.group)
        ref_list = self.ref_list
        if ref_list is not None and ref_list.in_unit and ref_list.unit_depth == self.item_depth:
            ref_list.close_unit()
        self.item_depth -= 1

    end_FootnoteDefinition = end_Item

    def end_List(self, value: Any, span: Span) -> None:
        self.list_depth -= 1
        self.group = self.group if self.list_depth else 0

    def end_CodeBlock(self, value: Any, span: Span) -> None:
        self.emit("".join(self.buf).rstrip("\n"), self.group)
        self.buf.clear()

    def end_TableCell(self, value: Any, span: Span) -> None:
        self.cells.append(_plain("".join(self.buf)))
        self.buf.clear()

    def end_TableHead(self, value: Any, span: Span) -> None:
        self.emit(" | ".join(self.cells), self.table_group)

    end_TableRow = end_TableHead

    def end_Image(self, value: Any, span: Span) -> None:
        if self.image_at >= 0 and not self.heading_level:  # an image in a heading is no figure
            self.caption(_plain("".join(self.buf[self.image_at :])), True)
        self.image_at = -1

    def end_HtmlBlock(self, value: Any, span: Span) -> None:
        line = _strip_html("".join(self.buf))
        self.buf.clear()
        self.emit(line, self.group)
        self.caption(line, False)

    def end_BlockQuote(self, value: Any, span: Span) -> None:
        self.quote_depth -= 1

    def end_MetadataBlock(self, value: Any, span: Span) -> None:
        self.buf.clear()  # front matter is metadata, not body text


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
            lead.words += first.words
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
        sections.append(Section(n, d.heading, d.level, d.path, body, d.words, starts[n] + shift))
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
