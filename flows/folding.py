"""Text folded for mention matching, with a map from folded back to original offsets.

Folding: whitespace runs become one space, hyphens (-, U+2010..U+2013, U+2212) alone are
dropped, a run of both becomes one space, and case is folded (Unicode casefold, after NFC).
A paper's sections are folded once, joined by NUL (which no name contains, so no match crosses
a section boundary), and each folded character keeps the original offsets it stands for.

Text whose casefolding keeps one character per character (all ASCII text, most other text)
takes the fast path: str.translate and numpy, no Python loop per character. Text with
characters that fold to several ("ß" -> "ss") or that NFC recombines takes the general path,
one section at a time.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

HYPHENS = "-\u2010\u2011\u2012\u2013\u2212"
SEPARATOR = "\x00"  # between sections: never in a name, not a word character
_GAP_RUN = re.compile(rf"[\s{re.escape(HYPHENS)}]+")
_SPACE_RUN = re.compile(" {2,}")
_DROPPED = 1  # a hyphen, after the first translate


class _GapTable(dict[int, int]):
    """str.translate table: whitespace to a space, a hyphen to \\x01, anything else kept."""

    def __missing__(self, code: int) -> int:
        ch = chr(code)
        value = 32 if ch.isspace() else _DROPPED if ch in HYPHENS else code
        self[code] = value
        return value


_GAPS = _GapTable()


@dataclass(frozen=True, slots=True)
class FoldedText:
    """Sections joined by NUL, their folded copy, and where each folded char came from."""

    text: str  # the original sections joined by SEPARATOR
    folded: str
    starts: np.ndarray  # original offset where each folded char begins
    ends: np.ndarray  # original offset just after it
    section_starts: tuple[int, ...]  # original offset where each section begins
    one_to_one: bool  # every folded char stands for whole original chars: nothing splits

    def splits(self, f: np.ndarray) -> np.ndarray:
        """Which folded offsets f fall inside one original character's folding."""
        starts = self.starts
        if self.one_to_one or len(starts) < 2:
            return np.zeros(len(f), dtype=bool)
        at = np.clip(f, 1, len(starts) - 1)
        return (f > 0) & (f < len(starts)) & (starts[at - 1] == starts[at])


def fold_sections(texts: Sequence[str]) -> FoldedText:
    """Fold a paper's section texts once, as one string."""
    text = SEPARATOR.join(texts)
    section_starts: list[int] = []
    at = 0
    for part in texts:
        section_starts.append(at)
        at += len(part) + 1
    if _folds_one_to_one(text):
        folded, starts = _fold_fast(text)
        return FoldedText(text, folded, starts, starts + 1, tuple(section_starts), True)
    pieces, all_starts, all_ends = [], [], []
    for i, part in enumerate(texts):
        if i:
            offset = section_starts[i] - 1
            pieces.append(SEPARATOR)
            all_starts.append(np.array([offset]))
            all_ends.append(np.array([offset + 1]))
        base = section_starts[i]
        if _folds_one_to_one(part):
            folded, starts = _fold_fast(part)
            ends = starts + 1
        else:
            folded, starts, ends = _fold_general(part)
        pieces.append(folded)
        all_starts.append(starts + base)
        all_ends.append(ends + base)
    return FoldedText(
        text,
        "".join(pieces),
        np.concatenate(all_starts) if all_starts else np.zeros(0, dtype=np.int64),
        np.concatenate(all_ends) if all_ends else np.zeros(0, dtype=np.int64),
        tuple(section_starts),
        False,
    )


@lru_cache(maxsize=1 << 16)
def fold_str(text: str, casefold: bool) -> str:
    """A name or a slice folded as text is folded: NFC, gaps, and optionally casefold."""
    text = _GAP_RUN.sub(_gap, unicodedata.normalize("NFC", text))
    return text.casefold() if casefold else text


def _gap(m: re.Match[str]) -> str:
    return " " if m.group().strip(HYPHENS) else ""


def _folds_one_to_one(text: str) -> bool:
    # (a \x01 in the text itself would read as a dropped hyphen's mark: the general path)
    if "\x01" in text:
        return False
    return text.isascii() or (
        unicodedata.is_normalized("NFC", text) and len(text.casefold()) == len(text)
    )


# ASCII text folded as bytes: each byte to its gap mark (bytes.translate), as _GAPS maps it
_ASCII_GAPS = bytes(_GAPS[c] for c in range(128)) + bytes(range(128, 256))


def _fold_fast(text: str) -> tuple[str, np.ndarray]:
    """Fold text whose casefolding keeps its length; returns it and each char's origin."""
    return _fold_ascii(text) if text.isascii() else _fold_translated(text)


def _fold_translated(text: str) -> tuple[str, np.ndarray]:
    """_fold_fast for any text whose casefolding keeps its length."""
    marked = text.translate(_GAPS)  # one char per char: gaps marked, nothing dropped yet
    folded = _SPACE_RUN.sub(" ", marked.replace("\x01", ""))
    folded = folded.casefold()  # (ASCII text takes _fold_ascii)
    codes = np.frombuffer(marked.encode("utf-32-le"), dtype=np.uint32)
    kept = np.flatnonzero(codes != _DROPPED)
    spaces = codes[kept] == 32
    repeated = np.zeros(len(kept), dtype=bool)
    repeated[1:] = spaces[1:] & spaces[:-1]  # all but the first space of a run go
    return folded, kept[~repeated]


def _fold_ascii(text: str) -> tuple[str, np.ndarray]:
    """_fold_fast for ASCII text: bytes.translate and numpy, no regular expression."""
    codes = np.frombuffer(text.encode("ascii").translate(_ASCII_GAPS), dtype=np.uint8)
    kept = np.flatnonzero(codes != _DROPPED)
    spaces = codes.take(kept) == 32
    repeated = np.zeros(len(kept), dtype=bool)
    repeated[1:] = spaces[1:] & spaces[:-1]  # all but the first space of a run go
    origin = kept[~repeated]
    return codes.take(origin).tobytes().lower().decode("ascii"), origin


def _fold_general(text: str) -> tuple[str, np.ndarray, np.ndarray]:
    """Fold any text, one cluster at a time (a character and the combining marks after it)."""
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for gap in _GAP_RUN.finditer(text):
        _fold_run(text, pos, gap.start(), parts, starts, ends)
        if gap.group().strip(HYPHENS):  # whitespace in the run; a hyphen alone is dropped
            parts.append(" ")
            starts.append(gap.start())
            ends.append(gap.end())
        pos = gap.end()
    _fold_run(text, pos, len(text), parts, starts, ends)
    return "".join(parts), np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


def _fold_run(
    text: str, begin: int, end: int, parts: list[str], starts: list[int], ends: list[int]
) -> None:
    run = text[begin:end]
    folded = run.casefold()
    if len(folded) == len(run) and (run.isascii() or unicodedata.is_normalized("NFC", run)):
        # the common case: one folded character per original one (casefold never drops one)
        parts.append(folded)
        starts.extend(range(begin, end))
        ends.extend(range(begin + 1, end + 1))
        return
    i = begin
    while i < end:
        j = i + 1
        while j < end and unicodedata.combining(text[j]):
            j += 1
        cluster = unicodedata.normalize("NFC", text[i:j]).casefold()
        parts.append(cluster)
        starts.extend([i] * len(cluster))
        ends.extend([j] * len(cluster))
        i = j
