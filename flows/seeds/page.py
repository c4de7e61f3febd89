"""A summary page as blocks: headings, paragraphs and list items under their `##` sections."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import pyromark

from flows.markdown import Span, Walker

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

KNOWN_HEADINGS = ("TL;DR", "Contribution", "Key findings", "Abstract", "Linked entities",
                  "Full-text entities", "Full text", "References")  # fmt: skip

_MD_OPTIONS = pyromark.Options.ENABLE_TABLES | pyromark.Options.ENABLE_STRIKETHROUGH


@dataclass(slots=True)
class Block:
    kind: str  # heading | paragraph | item
    level: int
    start: int  # byte offsets into the utf-8 source
    end: int
    parts: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())


class Page:
    """A summary page's blocks, grouped under its `##` sections, with line numbers."""

    def __init__(self, text: str) -> None:
        self.source = text.encode("utf-8")
        self._line_starts = [0, *(i + 1 for i, b in enumerate(self.source) if b == 0x0A)]
        self.blocks = page_blocks(text)
        self.title = next((b for b in self.blocks if b.kind == "heading" and b.level == 1), None)
        self._sections: dict[str, list[Block]] = {"front": []}
        self.unknown_headings: list[Block] = []  # `##` sections the page format does not have
        current = "front"
        for block in self.blocks:
            if block is self.title:
                continue
            if block.kind == "heading" and block.level == 2:
                current = _SECTION_NAMES.get(block.text.lower().rstrip(":"), "other")
                if current == "other":
                    self.unknown_headings.append(block)
                self._sections.setdefault(current, [])
                continue
            self._sections.setdefault(current, []).append(block)

    def line_of(self, offset: int) -> int:
        """The 1-based line of a byte offset."""
        return bisect.bisect_right(self._line_starts, offset)

    def section(self, name: str) -> list[Block]:
        """The blocks under a known `##` section (front: before the first one)."""
        return self._sections.get(name, [])


def page_blocks(text: str) -> list[Block]:
    """Flatten the Markdown event stream into headings, paragraphs and list items."""
    walker = BlockWalker()
    walker.walk(pyromark.events_with_range(text, options=_MD_OPTIONS))
    walker.blocks.sort(key=lambda b: b.start)
    return walker.blocks


class BlockWalker(Walker):
    """Headings, paragraphs (code blocks and table cells too) and list items, with their text."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.stack: list[Block] = []
        self.item_depth = 0

    def start_Heading(self, value: Any, span: Span) -> None:
        level = int(value["Heading"]["level"][1:])
        self.stack.append(Block("heading", level, span["start"], span["end"]))

    def start_Item(self, value: Any, span: Span) -> None:
        self.item_depth += 1
        self.stack.append(Block("item", self.item_depth, span["start"], span["end"]))

    def start_Paragraph(self, value: Any, span: Span) -> None:
        if self.item_depth == 0:
            self.stack.append(Block("paragraph", 0, span["start"], span["end"]))

    start_CodeBlock = start_TableCell = start_Paragraph

    def start_Link(self, value: Any, span: Span) -> None:
        if self.stack:
            self.stack[-1].urls.append(str(value["Link"]["dest_url"]))

    def end_Heading(self, value: Any, span: Span) -> None:
        if self.stack:
            self.blocks.append(self.stack.pop())

    def end_Item(self, value: Any, span: Span) -> None:
        self.end_Heading(value, span)
        self.item_depth -= 1

    def end_Paragraph(self, value: Any, span: Span) -> None:
        if self.item_depth == 0:
            self.end_Heading(value, span)

    end_CodeBlock = end_TableCell = end_Paragraph

    def on_Text(self, value: Any, span: Span) -> None:
        if self.stack:
            self.stack[-1].parts.append(str(value))

    on_Code = on_InlineMath = on_Text

    def on_DisplayMath(self, value: Any, span: Span) -> None:
        if self.stack:
            self.stack[-1].parts.append(f" {value} ")

    def on_SoftBreak(self, value: Any, span: Span) -> None:
        if self.stack:
            self.stack[-1].parts.append(" ")

    on_HardBreak = on_SoftBreak
