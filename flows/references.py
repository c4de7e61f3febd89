"""The reference list of a full text: which section it is, its entries, their identifiers.

The reference section (references, bibliography, literature/works cited; any level) is read
into entries: a list item, a footnote definition or a `[n]` line is one entry; loose
paragraphs count one each only when the section has none of those (so "14 references:" is
skipped). Link targets travel with the text between NUL marks, so a DOI or PMID that only a
link shows is still found.
"""

from __future__ import annotations

import re

from flows.records import Reference

REF_HEADING = re.compile(
    r"(?:[\dIVX]+(?:\.\d+)*\.?\s+)?(?:references?(?: list| cited| and notes)?|notes and references"
    r"|bibliography|literature cited|works cited|cited literature)\s*[:.]?",
    re.IGNORECASE,
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


def is_reference_heading(heading: str) -> bool:
    """Whether a heading opens the reference list."""
    return REF_HEADING.fullmatch(heading) is not None


class ReferenceList:
    """The entries of one reference section, collected as its blocks go by."""

    def __init__(self) -> None:
        # (marked, citation, text to mine): marked entries are list items, footnotes, [n] lines
        self._pending: list[tuple[bool, str, str]] = []
        self._unit: list[str] | None = None  # plain lines of the open list item or footnote
        self._unit_mine: list[str] = []
        self.unit_depth = 0

    @property
    def in_unit(self) -> bool:
        """Whether a list item or footnote definition is open."""
        return self._unit is not None

    def open_unit(self, depth: int) -> None:
        """A list item or footnote definition begins at this item depth."""
        self._unit, self._unit_mine, self.unit_depth = [], [], depth

    def block(self, raw: str) -> str:
        """Take one block's raw text (link targets marked); returns its plain text."""
        lines = _lines(raw)
        if self._unit is not None:
            self._unit.extend(p for p, _ in lines)
            self._unit_mine.extend(m for _, m in lines)
            return " ".join(p for p, _ in lines if p)
        units = _paragraph_units(lines)  # one line per reference, wrapped lines joined
        self._pending.extend((m, _REF_MARK.sub("", t, count=1), mined) for m, t, mined in units)
        return "\n".join(t for _, t, _ in units if t)

    def close_unit(self) -> None:
        """The open list item or footnote definition ends: it is one entry."""
        assert self._unit is not None
        citation = _REF_MARK.sub("", " ".join(p for p in self._unit if p), count=1)
        self._pending.append((True, citation, " ".join(self._unit_mine)))
        self._unit = None

    def close(self, first_ordinal: int) -> list[Reference]:
        """The section ends: its entries, numbered from first_ordinal."""
        chosen = [u for u in self._pending if u[0]] or self._pending  # a list beats paragraphs
        refs: list[Reference] = []
        for _, citation, mined in chosen:
            if citation:
                refs.append(reference(first_ordinal + len(refs), citation, mined))
        self._pending.clear()
        return refs


def reference(ordinal: int, citation: str, mined: str) -> Reference:
    """Pick identifiers and a year out of one citation (its text plus its link targets)."""
    doi, url = _DOI.search(mined), _URL.search(mined)
    pmid, pmcid = _PMID.search(mined), _PMCID.search(mined)
    rest = _PMID.sub(" ", _URL.sub(" ", _DOI.sub(" ", mined)))  # their digits are not years
    year = next((int(m.group(1)) for p in _YEARS if (m := p.search(rest))), None)
    return Reference(
        ordinal,
        citation,
        trim(doi.group()) if doi else None,
        pmid.group(1) if pmid else None,
        pmcid.group() if pmcid else None,
        trim(url.group()) if url else None,
        year,
    )


def trim(value: str) -> str:
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
