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

How: the names of every entity of a batch go into one Aho-Corasick automaton, built once per
batch; each paper's text is folded once (flows/folding.py: sections joined by NUL, casefolded,
whitespace runs to one space, hyphens dropped, with a map back to original offsets) and
searched once, and only matches of the paper's own entities count. The search reports
overlapping matches, so a candidate rejected by a boundary or case check never hides a valid
one it overlaps; the longest-wins choice is made afterwards among valid candidates, and each
winning span is assigned to its section by offset. Symbols are in the same automaton
casefolded and are then checked against the original slice folded without casefolding. Word
boundaries are checked on the original text.

The checks run over numpy arrays of a paper's ~500 matches at once (owner, boundary, split
checks; the spans of plain names; sections by offset; counts per section and entity); only
symbol matches and spans that overlap another go through Python one by one.
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from ahocorasick_rs import AhoCorasick, MatchKind

from flows.entities import looks_like_symbol
from flows.folding import HYPHENS, FoldedText, fold_sections, fold_str
from flows.records import EntityType, Mention, NormalisedEntity

_GAP_RUN = re.compile(rf"[\s{re.escape(HYPHENS)}]+")
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
    target: int  # the MatchTarget this spelling belongs to
    curie: int  # its curie, which is what a span counts for
    exact: str | None  # symbols: the spelling the original slice must fold to, case kept


class MentionMatcher:
    """Every name of a batch's entities in one automaton; counts each paper's own mentions."""

    def __init__(self, targets: Sequence[MatchTarget]) -> None:
        self._targets: dict[MatchTarget, int] = {}
        self._curies: list[str] = []
        curie_index: dict[str, int] = {}
        owners: dict[str, list[_Owner]] = {}
        for target in targets:
            if target in self._targets:
                continue  # papers listing an entity under the same names share one target
            t = self._targets[target] = len(self._targets)
            c = curie_index.setdefault(target.curie, len(self._curies))
            if c == len(self._curies):
                self._curies.append(target.curie)
            plurals = target.entity_type in _PLURAL_TYPES
            for name in target.names:
                for spelling in _spellings(name, plurals):
                    _add_owner(owners, fold_str(spelling, casefold=True), _Owner(t, c, None))
            for symbol in target.symbols:
                for spelling in _spellings(symbol, plurals=False):
                    exact = fold_str(spelling, casefold=False)
                    _add_owner(owners, fold_str(spelling, casefold=True), _Owner(t, c, exact))
        # CURIE order of the rows: each curie's rank among them, and the curies in that order
        self._curies_sorted = sorted(self._curies)
        rank = {curie: r for r, curie in enumerate(self._curies_sorted)}
        self._curie_rank = np.array([rank[c] for c in self._curies], dtype=np.int64)
        self._patterns = list(owners)
        self._owners = [owners[p] for p in self._patterns]
        self._automaton = AhoCorasick(self._patterns, matchkind=MatchKind.Standard)

    @classmethod
    def for_entities(cls, entities: Sequence[MatchTarget]) -> MentionMatcher:
        """A matcher for these targets (targets sharing a CURIE count once per span)."""
        return cls(entities)

    def count_mentions(
        self, sections: Iterable[tuple[int, str]], targets: Iterable[MatchTarget] | None = None
    ) -> list[Mention]:
        """Mentions per (entity, section), in section order then CURIE order.

        targets: the paper's own entities (matches of the batch's other entities do not
        count); None counts every target the matcher was built with.
        """
        listed = list(sections)
        ordinals = [ordinal for ordinal, _ in listed]
        if len(set(ordinals)) != len(ordinals):
            dup = next(o for o in ordinals if ordinals.count(o) > 1)
            raise ValueError(f"section ordinal {dup} given twice")
        if not self._patterns or not listed:
            return []
        allowed = None if targets is None else {self._targets.get(t, -1) for t in targets}
        folded = fold_sections([text for _, text in listed])
        starts, curies = self._winning_spans(folded, allowed)
        if not len(starts):
            return []
        # each winning (span, curie) to its section by offset; then one row per (section,
        # curie), counted, with its first offset, in section order then CURIE order
        section_starts = np.asarray(folded.section_starts)
        section = np.searchsorted(section_starts, starts, side="right") - 1
        offset = starts - section_starts[section]
        key = section * len(self._curies) + self._curie_rank[curies]
        order = np.lexsort((offset, key))
        key, offset = key[order], offset[order]
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        counts = np.diff(np.r_[first, len(key)])
        by_rank = self._curies_sorted
        return [
            Mention(by_rank[k % len(by_rank)], ordinals[k // len(by_rank)], n, at)
            for k, n, at in zip(
                key[first].tolist(), counts.tolist(), offset[first].tolist(), strict=True
            )
        ]

    def _owned(
        self, pattern: int, allowed: set[int] | None
    ) -> tuple[tuple[int, ...], tuple[_Owner, ...]]:
        owners = [o for o in self._owners[pattern] if allowed is None or o.target in allowed]
        plain = tuple(sorted({o.curie for o in owners if o.exact is None}))
        return plain, tuple(o for o in owners if o.exact is not None)

    def _winning_spans(
        self, folded: FoldedText, allowed: set[int] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(span start, curie) of every winning span and each entity it counts for."""
        # valid candidates first, then longest-wins among them, so a rejected candidate never
        # hides a valid one it overlaps
        found = self._automaton.find_matches_as_indexes(folded.folded, overlapping=True)
        if not found:
            return _NO_SPANS
        patterns, fs, fe = np.array(found, dtype=np.int64).reshape(-1, 3).T
        # per pattern, once per paper: the curies its plain names count for, and its symbols
        unique, which = np.unique(patterns, return_inverse=True)
        owned = [self._owned(p, allowed) for p in unique.tolist()]
        keep = np.fromiter((bool(pl or sy) for pl, sy in owned), bool, len(owned))[which]
        # not a match that begins or ends inside a character that folded to several ("ß")
        keep &= ~(folded.splits(fs) | folded.splits(fe))
        index = np.flatnonzero(keep)  # another paper's entity, or a split: gone
        begin, end = folded.starts[fs[index]], folded.ends[fe[index] - 1]
        whole = _whole_words(folded.text, begin, end)  # not a whole word: gone
        index, begin, end = index[whole], begin[whole], end[whole]
        spans, curies = _hits(folded.text, which[index], begin, end, owned)
        if not len(spans):
            return _NO_SPANS
        # one candidate per distinct span, with every entity any of its matches counts for
        width = len(folded.text) + 1
        distinct, of_pair = np.unique(spans[:, 0] * width + spans[:, 1], return_inverse=True)
        wins = _longest_wins(distinct // width, distinct % width)
        taken = wins[of_pair]
        known = len(self._curies)
        pairs = np.unique(spans[taken, 0] * known + curies[taken])  # once per span and curie
        return pairs // known, pairs % known


_NO_SPANS = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


# letters, digits and combining marks: what a name may not run on into (ASCII by table)
_ASCII_WORD = np.array([chr(c).isalnum() for c in range(128)] + [False])


def _whole_words(text: str, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Which spans neither follow nor run on into a word character of the original text."""
    size = len(text)  # > 0: an empty text has no match
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    before = np.where(begin > 0, codes[np.maximum(begin - 1, 0)].astype(np.int64), 32)
    after = np.where(end < size, codes[np.minimum(end, size - 1)].astype(np.int64), 32)
    return ~(_word_chars(before) | _word_chars(after))


def _word_chars(codes: np.ndarray) -> np.ndarray:
    flags = _ASCII_WORD[np.minimum(codes, 128)]
    wide = np.flatnonzero(codes >= 128)
    if len(wide):
        flags[wide] = [_WORD_CHAR[chr(c)] for c in codes[wide].tolist()]
    return flags


def _hits(
    text: str,
    pattern: np.ndarray,
    begin: np.ndarray,
    end: np.ndarray,
    owned: Sequence[tuple[tuple[int, ...], tuple[_Owner, ...]]],
) -> tuple[np.ndarray, np.ndarray]:
    """(span, curie) pairs: each valid match's plain curies, and its symbols that match.

    pattern: each match's index into owned (the paper's distinct patterns).
    """
    # plain names: every curie of the match's pattern, expanded without a loop per match
    sizes = np.array([len(plain) for plain, _ in owned], dtype=np.int64)
    flat = np.array([c for plain, _ in owned for c in plain], dtype=np.int64)
    counts = sizes[pattern]
    match = np.repeat(np.arange(len(pattern)), counts)
    within = np.arange(len(match)) - np.repeat(np.cumsum(counts) - counts, counts)
    curies = flat[np.repeat((np.cumsum(sizes) - sizes)[pattern], counts) + within]
    spans = np.stack([begin[match], end[match]], axis=1)
    # symbols: their case-kept spelling checked on the original slice, match by match
    extra: list[tuple[int, int, int]] = []
    with_symbols = np.flatnonzero(np.array([bool(sy) for _, sy in owned])[pattern])
    for i in with_symbols.tolist():
        b, e = int(begin[i]), int(end[i])
        for owner in owned[int(pattern[i])][1]:
            if _symbol_matches(text, b, e, owner.exact or ""):
                extra.append((b, e, owner.curie))
    if extra:
        more = np.array(extra, dtype=np.int64)
        spans = np.concatenate([spans, more[:, :2]])
        curies = np.concatenate([curies, more[:, 2]])
    return spans, curies


def _longest_wins(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which distinct spans win: the longest first, the leftmost among equally long ones.

    A span that overlaps no other wins outright; only the overlapping ones go through the
    greedy choice, one by one.
    """
    by_start = np.lexsort((ends, starts))
    s, e = starts[by_start], ends[by_start]
    reach = np.maximum.accumulate(e)
    clash = np.zeros(len(s), dtype=bool)
    clash[1:] |= s[1:] < reach[:-1]  # overlaps a span that begins before it
    clash[:-1] |= s[1:] < e[:-1]  # overlaps the next span
    wins = np.ones(len(starts), dtype=bool)
    contested = by_start[clash]
    wins[contested] = False
    taken_starts: list[int] = []
    taken_ends: list[int] = []
    begins, finishes = starts.tolist(), ends.tolist()
    for i in sorted(contested.tolist(), key=lambda i: (begins[i] - finishes[i], begins[i])):
        start, end = begins[i], finishes[i]
        at = bisect.bisect_left(taken_starts, start)
        if at > 0 and taken_ends[at - 1] > start:
            continue
        if at < len(taken_starts) and taken_starts[at] < end:
            continue
        taken_starts.insert(at, start)
        taken_ends.insert(at, end)
        wins[i] = True
    return wins


def _add_owner(owners: dict[str, list[_Owner]], pattern: str, owner: _Owner) -> None:
    if pattern and owner not in owners.setdefault(pattern, []):
        owners[pattern].append(owner)


@lru_cache(maxsize=1 << 16)
def _spellings(name: str, plurals: bool) -> tuple[str, ...]:
    """Every spelling a name may take in text: plural forms, and each gap as space or nothing."""
    words = [w for w in _GAP_RUN.split(unicodedata.normalize("NFC", name)) if w]
    if not words:
        return ()
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
    return tuple(dict.fromkeys(spellings))


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


class _WordChars(dict[str, bool]):
    """Letters, digits and combining marks: what a name may not run on into."""

    def __missing__(self, ch: str) -> bool:
        value = self[ch] = ch.isalnum() or unicodedata.category(ch).startswith("M")
        return value


_WORD_CHAR = _WordChars()


def _symbol_matches(text: str, start: int, end: int, exact: str) -> bool:
    # "INS-1" is another name, as "INS1" is: a symbol must not run on into hyphen + digit
    if end + 1 < len(text) and text[end] in HYPHENS and text[end + 1].isdigit():
        return False
    return fold_str(text[start:end], casefold=False) == exact
