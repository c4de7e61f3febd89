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
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

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
        counts: dict[tuple[int, int], list[int]] = {}  # (section, curie) -> [count, first]
        starts = folded.section_starts
        for start, curies in self._winning_spans(folded, allowed):
            section = bisect.bisect_right(starts, start) - 1
            offset = start - starts[section]
            for c in curies:
                entry = counts.get((section, c))
                if entry is None:
                    counts[(section, c)] = [1, offset]
                else:
                    entry[0] += 1
                    entry[1] = min(entry[1], offset)
        curies_ = self._curies
        ordered = sorted(counts.items(), key=lambda kv: (kv[0][0], curies_[kv[0][1]]))
        return [
            Mention(curies_[c], ordinals[section], count, first)
            for (section, c), (count, first) in ordered
        ]

    def _owned(
        self, pattern: int, allowed: set[int] | None
    ) -> tuple[frozenset[int], tuple[_Owner, ...]]:
        owners = [o for o in self._owners[pattern] if allowed is None or o.target in allowed]
        plain = frozenset(o.curie for o in owners if o.exact is None)
        return plain, tuple(o for o in owners if o.exact is not None)

    def _winning_spans(
        self, folded: FoldedText, allowed: set[int] | None
    ) -> list[tuple[int, frozenset[int]]]:
        # valid candidates first, then longest-wins among them, so a rejected candidate never
        # hides a valid one it overlaps
        text = folded.text
        found = self._automaton.find_matches_as_indexes(folded.folded, overlapping=True)
        if not found:
            return []
        patterns, first, last = zip(*found, strict=True)
        # every match's original span at once: numpy indexing, not a lookup per match
        begins = folded.starts[list(first)].tolist()
        finishes = folded.ends[[f - 1 for f in last]].tolist()
        candidates: dict[tuple[int, int], set[int]] = {}
        word, whole, size = _WORD_CHAR, folded.one_to_one, len(text)
        # per pattern, once per paper: the curies its plain names count for, and its symbols
        owned: dict[int, tuple[frozenset[int], tuple[_Owner, ...]]] = {}
        for p, fs, fe, start, end in zip(patterns, first, last, begins, finishes, strict=True):
            entry = owned.get(p)
            if entry is None:
                entry = owned[p] = self._owned(p, allowed)
            plain, symbols = entry
            if not (plain or symbols):
                continue  # another paper's entity
            if not whole and (folded.splits(fs) or folded.splits(fe)):
                continue  # begins or ends inside a character that folded to several ("ß")
            if (start > 0 and word[text[start - 1]]) or (end < size and word[text[end]]):
                continue  # not a whole word
            hits = set(plain)
            for owner in symbols:
                if _symbol_matches(text, start, end, owner.exact or ""):
                    hits.add(owner.curie)
            if hits:
                candidates.setdefault((start, end), set()).update(hits)
        taken_starts: list[int] = []
        taken_ends: list[int] = []
        winners: list[tuple[int, frozenset[int]]] = []
        for (start, end), curies in sorted(candidates.items(), key=_longest_then_leftmost):
            i = bisect.bisect_left(taken_starts, start)
            if i > 0 and taken_ends[i - 1] > start:
                continue
            if i < len(taken_starts) and taken_starts[i] < end:
                continue
            taken_starts.insert(i, start)
            taken_ends.insert(i, end)
            winners.append((start, frozenset(curies)))
        return winners


def _longest_then_leftmost(item: tuple[tuple[int, int], set[int]]) -> tuple[int, int]:
    (start, end), _ = item
    return (start - end, start)


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
