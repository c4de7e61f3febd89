"""Listed entities -> mention counts per section of a paper's full text.

Matching rules:

- Gene symbols, and gene names that look like symbols (no whitespace, with an uppercase
  letter or a digit: "INS", "IDDM1", "TNF-α"), match case-sensitively. Every other name
  (a gene's full name "insulin", disease, species, chemical, variant, cell line and other
  names) matches case-insensitively (Unicode casefold, after NFC normalisation).
- Names match as whole words: a letter, digit or combining mark just before or after the match
  in the original text blocks it, so `INS` matches neither `insulin`, `INSIDE`, `pINS` nor
  `INS1`. A symbol followed by a hyphen and a digit does not match either (`INS-1`, the
  insulinoma cell line, is another name, as `INS1` is); `INS-positive` does match.
- Hyphens (-, U+2010, U+2011, U+2012, U+2013, U+2212), whitespace and nothing are
  interchangeable where a name has a hyphen or a space: "dysfunction-associated" also matches
  "dysfunction associated", "dysfunction‐associated" and "dysfunctionassociated". Runs of
  whitespace in the text count as one space. A hyphen in the text may always be left out, so
  the symbol `IL6` matches "IL-6" and the name "nonalcoholic" matches "non-alcoholic"; a
  space in the text may not ("non alcoholic" needs a name with a gap there).
- Gene, disease, species, chemical and other names also match simple English plurals and
  singulars of their last word when it is lower-case letters: +s, +es after s/x/z/ch/sh,
  -y -> -ies, -sis -> -ses, and back ("fibrosis" ~ "fibroses", "artery" ~ "arteries").
  Symbols, variant and cell-line names get no plural forms.
- Where valid matches overlap, the longest wins (length in the original text), the leftmost
  among equally long ones: "liver fibrosis" counts for liver fibrosis only, not also for
  "fibrosis" or "liver". Every entity with a valid match on exactly the winning span gets the
  mention (the same name under MeSH and MONDO counts for both); an entity counts at most once
  per span.

How: all patterns of a paper go into one Aho-Corasick automaton over a folded copy of each
section (casefolded, whitespace runs to one space, hyphens dropped) with a map from folded to
original offsets. It runs with overlapping matches, so a candidate rejected by a boundary or
case check never hides a valid one it overlaps; the longest-wins choice is made afterwards
among valid candidates. Symbols are in the same automaton casefolded and are then checked
against the original slice folded without casefolding. Word boundaries are checked on the
original text.
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ahocorasick_rs import AhoCorasick, MatchKind

from flows.entities import looks_like_symbol
from flows.records import EntityType, Mention, NormalisedEntity

HYPHENS = "-\u2010\u2011\u2012\u2013\u2212"
_GAP_RUN = re.compile(rf"[\s{re.escape(HYPHENS)}]+")
# the gaps whose folding changes the text's length: runs of two or more, or a lone hyphen
_CHANGING_GAP = re.compile(rf"[\s{re.escape(HYPHENS)}]{{2,}}|[{re.escape(HYPHENS)}]")
# a lone whitespace char folds to a space
_OTHER_SPACE = re.compile(r"[^\S ]")
_PLURAL_TYPES = frozenset({"gene", "disease", "species", "chemical", "other"})
_MAX_GAP_VARIANTS = 6  # 2**6 spellings per name; longer names get only all-space and all-joined


@dataclass(frozen=True, slots=True)
class MatchTarget:
    """One entity to count: case-insensitive names and case-sensitive symbols."""

    curie: str
    entity_type: EntityType
    names: tuple[str, ...]
    symbols: tuple[str, ...] = ()


def targets_from(entities: Iterable[NormalisedEntity]) -> list[MatchTarget]:
    """One MatchTarget per CURIE; genes' symbol-shaped names become symbols."""
    by_curie: dict[str, tuple[EntityType, list[str]]] = {}
    for entity in entities:
        _, names = by_curie.setdefault(entity.curie, (entity.entity_type, []))
        names.extend(entity.names)
    targets = []
    for curie, (entity_type, names) in by_curie.items():
        unique = list(dict.fromkeys(names))
        if entity_type == "gene":
            symbols = tuple(n for n in unique if looks_like_symbol(n))
            plain = tuple(n for n in unique if not looks_like_symbol(n))
            targets.append(MatchTarget(curie, entity_type, plain, symbols))
        else:
            targets.append(MatchTarget(curie, entity_type, tuple(unique)))
    return targets


@dataclass(frozen=True, slots=True)
class _Owner:
    target: int
    exact: str | None  # symbols: the spelling the original slice must fold to, case kept


class MentionMatcher:
    """All names of a paper's entities in one automaton; counts mentions per section."""

    def __init__(self, curies: Sequence[str], owners: dict[str, list[_Owner]]) -> None:
        self._curies = list(curies)
        self._patterns = list(owners)
        self._owners = [owners[p] for p in self._patterns]
        self._automaton = AhoCorasick(self._patterns, matchkind=MatchKind.Standard)

    @classmethod
    def for_entities(cls, entities: Sequence[MatchTarget]) -> MentionMatcher:
        """Build the matcher for one paper's targets (targets sharing a CURIE are merged)."""
        curies: list[str] = []
        owners: dict[str, list[_Owner]] = {}
        index: dict[str, int] = {}
        for target in entities:
            t = index.setdefault(target.curie, len(curies))
            if t == len(curies):
                curies.append(target.curie)
            plurals = target.entity_type in _PLURAL_TYPES
            for name in target.names:
                for spelling in _spellings(name, plurals):
                    _add_owner(owners, _fold_str(spelling, casefold=True), _Owner(t, None))
            for symbol in target.symbols:
                for spelling in _spellings(symbol, plurals=False):
                    exact = _fold_str(spelling, casefold=False)
                    _add_owner(owners, _fold_str(spelling, casefold=True), _Owner(t, exact))
        return cls(curies, owners)

    def count_mentions(self, sections: Iterable[tuple[int, str]]) -> list[Mention]:
        """Mentions per (entity, section), in section order then CURIE order."""
        mentions: list[Mention] = []
        seen: set[int] = set()
        for ordinal, text in sections:
            if ordinal in seen:
                raise ValueError(f"section ordinal {ordinal} given twice")
            seen.add(ordinal)
            counts: dict[int, list[int]] = {}  # target -> [count, first offset]
            for start, targets in self._winning_spans(text):
                for t in targets:
                    entry = counts.setdefault(t, [0, start])
                    entry[0] += 1
                    entry[1] = min(entry[1], start)
            mentions.extend(
                Mention(self._curies[t], ordinal, count, first)
                for t, (count, first) in sorted(counts.items(), key=lambda kv: self._curies[kv[0]])
            )
        return mentions

    def _winning_spans(self, text: str) -> list[tuple[int, frozenset[int]]]:
        # valid candidates first, then longest-wins among them, so a rejected candidate never
        # hides a valid one it overlaps
        if not self._patterns or not text:
            return []
        folded, offsets = _fold(text)
        candidates: dict[tuple[int, int], set[int]] = {}
        for p, fs, fe in self._automaton.find_matches_as_indexes(folded, overlapping=True):
            if offsets.splits(fs) or offsets.splits(fe):
                continue  # begins or ends inside a character that folded to several ("ß")
            start, end = offsets.start(fs), offsets.end(fe - 1)
            if not _whole_word(text, start, end):
                continue
            for owner in self._owners[p]:
                if owner.exact is None or _symbol_matches(text, start, end, owner.exact):
                    candidates.setdefault((start, end), set()).add(owner.target)
        taken_starts: list[int] = []
        taken_ends: list[int] = []
        winners: list[tuple[int, frozenset[int]]] = []
        for (start, end), targets in sorted(candidates.items(), key=_longest_then_leftmost):
            i = bisect.bisect_left(taken_starts, start)
            if i > 0 and taken_ends[i - 1] > start:
                continue
            if i < len(taken_starts) and taken_starts[i] < end:
                continue
            taken_starts.insert(i, start)
            taken_ends.insert(i, end)
            winners.append((start, frozenset(targets)))
        return winners


def _longest_then_leftmost(item: tuple[tuple[int, int], set[int]]) -> tuple[int, int]:
    (start, end), _ = item
    return (start - end, start)


def _add_owner(owners: dict[str, list[_Owner]], pattern: str, owner: _Owner) -> None:
    if pattern and owner not in owners.setdefault(pattern, []):
        owners[pattern].append(owner)


def _spellings(name: str, plurals: bool) -> list[str]:
    """Every spelling a name may take in text: plural forms, and each gap as space or nothing."""
    words = [w for w in _GAP_RUN.split(unicodedata.normalize("NFC", name)) if w]
    if not words:
        return []
    lasts = [words[-1], *(_number_forms(words[-1]) if plurals else ())]
    spellings: list[str] = []
    gaps = len(words) - 1
    joins = (
        itertools.product((" ", ""), repeat=gaps)
        if gaps <= _MAX_GAP_VARIANTS
        else [(" ",) * gaps, ("",) * gaps]
    )
    for join in joins:
        head = "".join(w + j for w, j in zip(words, join, strict=False))
        spellings.extend(head + last for last in lasts)
    return list(dict.fromkeys(spellings))


def _number_forms(word: str) -> list[str]:
    # simple english plurals and singulars, only for lower-case words (not "AIDS" -> "AID")
    if len(word) < 3 or not (word.isalpha() and word.islower()):
        return []
    forms: list[str] = []
    if word.endswith("sis"):
        forms.append(word[:-3] + "ses")
    elif word.endswith("ses") and len(word) > 4:
        forms += [word[:-3] + "sis", word[:-1]]
    elif word.endswith("ies") and len(word) > 4:
        forms.append(word[:-3] + "y")
    elif word.endswith(("xes", "zes", "ches", "shes")):
        forms.append(word[:-2])
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        forms.append(word[:-1])
    elif word.endswith(("s", "x", "z", "ch", "sh")):
        forms.append(word + "es")
    elif word.endswith("y") and word[-2] not in "aeiou":
        forms.append(word[:-1] + "ies")
    else:
        forms.append(word + "s")
    return forms


class _Offsets(Protocol):
    def start(self, f: int) -> int: ...  # original offset where folded char f begins
    def end(self, f: int) -> int: ...  # original offset just after folded char f
    def splits(self, f: int) -> bool: ...  # f falls inside one original char's folding


@dataclass(frozen=True, slots=True)
class _Listed:
    """Offsets of every folded character (the general path)."""

    starts: list[int]
    ends: list[int]

    def start(self, f: int) -> int:
        return self.starts[f]

    def end(self, f: int) -> int:
        return self.ends[f]

    def splits(self, f: int) -> bool:
        return 0 < f < len(self.starts) and self.starts[f - 1] == self.starts[f]


@dataclass(frozen=True, slots=True)
class _Segmented:
    """Offsets as segments: linear runs of one folded char per original char, and gaps."""

    folded_at: list[int]  # folded offset where each segment begins
    original_at: list[int]  # original offset where it begins
    gap_end: list[int]  # for a gap segment its original end, -1 for a linear one

    def _segment(self, f: int) -> int:
        return bisect.bisect_right(self.folded_at, f) - 1

    def start(self, f: int) -> int:
        i = self._segment(f)
        if self.gap_end[i] >= 0:
            return self.original_at[i]
        return self.original_at[i] + f - self.folded_at[i]

    def end(self, f: int) -> int:
        i = self._segment(f)
        if self.gap_end[i] >= 0:
            return self.gap_end[i]
        return self.original_at[i] + f - self.folded_at[i] + 1

    def splits(self, f: int) -> bool:
        return False  # every folded char stands for whole original chars


def _fold(text: str) -> tuple[str, _Offsets]:
    """Text folded for matching, with the map from folded to original offsets."""
    # the fast path: text whose casefolding keeps one char per char (all ascii text, most
    # other text) needs offsets only where a gap changes length: a whitespace run longer than
    # one char becomes one space, a hyphen-only run disappears
    if text.isascii() or (
        unicodedata.is_normalized("NFC", text) and len(text.casefold()) == len(text)
    ):
        return _fold_segmented(text)
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
    return "".join(parts), _Listed(starts, ends)


def _fold_segmented(text: str) -> tuple[str, _Segmented]:
    folded_at, original_at, gap_end = [0], [0], [-1]
    parts: list[str] = []
    pos = f = 0
    for gap in _CHANGING_GAP.finditer(text):
        parts.append(text[pos : gap.start()])
        f += gap.start() - pos
        if gap.group().strip(HYPHENS):
            parts.append(" ")
            folded_at.append(f)
            original_at.append(gap.start())
            gap_end.append(gap.end())
            f += 1
        folded_at.append(f)
        original_at.append(gap.end())
        gap_end.append(-1)
        pos = gap.end()
    parts.append(text[pos:])
    folded = _OTHER_SPACE.sub(" ", "".join(parts))
    folded = folded.lower() if text.isascii() else folded.casefold()
    return folded, _Segmented(folded_at, original_at, gap_end)


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
    # a cluster is a character and the combining marks after it: normalised and folded as one
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


def _fold_str(text: str, casefold: bool) -> str:
    """A name or a slice folded as _fold folds text: NFC, gaps, and optionally casefold."""
    text = _GAP_RUN.sub(_gap, unicodedata.normalize("NFC", text))
    return text.casefold() if casefold else text


def _gap(m: re.Match[str]) -> str:
    return " " if m.group().strip(HYPHENS) else ""


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or unicodedata.category(ch).startswith("M")


def _whole_word(text: str, start: int, end: int) -> bool:
    before = start > 0 and _is_word_char(text[start - 1])
    after = end < len(text) and _is_word_char(text[end])
    return not (before or after)


def _symbol_matches(text: str, start: int, end: int, exact: str) -> bool:
    # "INS-1" is another name, as "INS1" is: a symbol must not run on into hyphen + digit
    if end + 1 < len(text) and text[end] in HYPHENS and text[end + 1].isdigit():
        return False
    return _fold_str(text[start:end], casefold=False) == exact
