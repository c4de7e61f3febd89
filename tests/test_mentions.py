"""flows/mentions.py: whole-word, case- and hyphen-aware mention counts per section."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.mentions import MatchTarget, Mention, MentionMatcher, targets_from
from flows.records import NormalisedEntity

HYPHENS = ["-", "\u2010", "\u2011", "\u2012", "\u2013", "\u2212"]

TARGETS = [
    MatchTarget("NCBIGene:3630", "gene", ("insulin",), ("INS", "IDDM1")),
    MatchTarget("NCBIGene:7124", "gene", ("tumor necrosis factor",), ("TNF-α",)),
    MatchTarget("NCBIGene:3458", "gene", (), ("IFN-γ",)),
    MatchTarget("NCBIGene:3569", "gene", (), ("IL6",)),
    MatchTarget("MESH:D008103", "disease", ("liver fibrosis",)),
    MatchTarget("MESH:D005355", "disease", ("fibrosis",)),
    MatchTarget("MESH:D008107", "disease", ("liver disease",)),
    MatchTarget("MONDO:0013209", "disease", ("metabolic dysfunction-associated steatotic liver disease",)),
    MatchTarget("MESH:D012859", "disease", ("Sjögren syndrome",)),
    MatchTarget("MONDO:0010030", "disease", ("Sjögren syndrome",)),
    MatchTarget("MESH:D000163", "disease", ("AIDS",)),
    MatchTarget("MESH:D000038", "disease", ("abscess",)),
    MatchTarget("X:fld", "disease", ("fatty liver disease",)),
    MatchTarget("X:afl", "disease", ("alcoholic fatty liver",)),
    MatchTarget("X:dp", "other", ("disease progression",)),
    MatchTarget("UBERON:0001637", "other", ("artery",)),
    MatchTarget("NCBITaxon:9606", "species", ("Homo sapiens", "human")),
    MatchTarget("NCBITaxon:10090", "species", ("mice",)),
    MatchTarget("CHEBI:17234", "chemical", ("Straße",)),
    MatchTarget("dbsnp:rs113488022", "variant", ("V600E",)),
]  # fmt: skip
MATCHER = MentionMatcher.for_entities(TARGETS)


def _found(text: str) -> dict[str, tuple[int, int]]:
    return {m.curie: (m.count, m.first_offset) for m in MATCHER.count_mentions([(0, text)])}


INS = "NCBIGene:3630"
FIB, LIVER_FIB, LIVER_DIS, MASLD = "MESH:D005355", "MESH:D008103", "MESH:D008107", "MONDO:0013209"
MASLD_NAME = "metabolic dysfunction-associated steatotic liver disease"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # gene symbols: case-sensitive whole words
        ("INS", {INS: (1, 0)}),
        ("(INS)", {INS: (1, 1)}),
        ("INSIDE", {}),
        ("pINS", {}),
        ("INS1", {}),
        ("INS-1 cells", {}),  # the insulinoma cell line, not the gene
        ("INS‐1 cells", {}),
        ("INS-positive cells", {INS: (1, 0)}),
        ("pro-INS", {INS: (1, 4)}),
        ("ins", {}),
        ("Ins", {}),
        ("IDDM1", {INS: (1, 0)}),
        ("IDDM12", {}),
        ("IL-6 and IL6", {"NCBIGene:3569": (2, 0)}),  # a hyphen in the text may be left out
        ("IL6R", {}),
        # a gene's full name: case-insensitive, with plurals
        ("insulin", {INS: (1, 0)}),
        ("Insulin and INSULIN", {INS: (2, 0)}),
        ("insulins", {INS: (1, 0)}),
        ("proinsulin", {}),
        ("pro-insulin", {INS: (1, 4)}),
        # greek letters and unicode hyphens in symbols
        ("TNF-α", {"NCBIGene:7124": (1, 0)}),
        ("TNF‐α TNFα TNF α", {"NCBIGene:7124": (3, 0)}),
        ("tnf-α", {}),
        ("TNF-Α", {}),
        ("IFN-γ IFN‑γ", {"NCBIGene:3458": (2, 0)}),
        ("tumour necrosis factor; Tumor Necrosis Factors", {"NCBIGene:7124": (1, 24)}),
        # names: case-insensitive, plurals, whole words
        ("Fibrosis", {FIB: (1, 0)}),
        ("fibroses", {FIB: (1, 0)}),
        ("antifibrosis", {}),
        ("fibrosisX", {}),
        ("2fibrosis", {}),
        ("anti-fibrosis", {FIB: (1, 5)}),
        ("liver diseases", {LIVER_DIS: (1, 0)}),
        ("arteries and an artery", {"UBERON:0001637": (2, 0)}),
        ("abscesses", {"MESH:D000038": (1, 0)}),
        ("human and humans", {"NCBITaxon:9606": (2, 0)}),
        ("HOMO SAPIENS", {"NCBITaxon:9606": (1, 0)}),
        ("humanized", {}),
        ("a mouse", {}),  # only simple plurals: mice -> mouse is not one
        ("AIDS", {"MESH:D000163": (1, 0)}),
        ("first aid", {}),  # no singular made from an upper-case name
        ("V600E v600e", {"dbsnp:rs113488022": (2, 0)}),
        ("V600Es", {}),  # variant names get no plurals
        ("STRASSE", {"CHEBI:17234": (1, 0)}),  # casefold: ß == ss
        # longest match wins where matches overlap
        ("liver fibrosis", {LIVER_FIB: (1, 0)}),
        ("liver fibroses", {LIVER_FIB: (1, 0)}),
        ("fibrosis, fibrosis and liver fibrosis", {FIB: (2, 0), LIVER_FIB: (1, 23)}),
        (MASLD_NAME, {MASLD: (1, 0)}),
        ("liver disease progression", {"X:dp": (1, 6)}),
        # a candidate rejected at a word boundary does not hide one it overlaps
        ("nonalcoholic fatty liver disease", {"X:fld": (1, 13)}),
        ("alcoholic fatty liver disease", {"X:afl": (1, 0)}),  # 21 characters beat 19
        # the same name under two namespaces: both count
        ("Sjögren syndrome", {"MESH:D012859": (1, 0), "MONDO:0010030": (1, 0)}),
        ("SJÖGREN SYNDROMES", {"MESH:D012859": (1, 0), "MONDO:0010030": (1, 0)}),
        ("Sjo\u0308gren syndrome", {"MESH:D012859": (1, 0), "MONDO:0010030": (1, 0)}),
        ("Sjögrens syndrome", {}),
        # whitespace runs are one space
        ("liver\n   fibrosis", {LIVER_FIB: (1, 0)}),
        ("liverfibrosis", {LIVER_FIB: (1, 0)}),  # a gap in a name may be empty in the text
        ("", {}),
    ],
)
def test_matching_rules(text: str, expected: dict[str, tuple[int, int]]) -> None:
    assert _found(text) == expected


@pytest.mark.parametrize("gap", [*HYPHENS, " ", "", " - ", "\n"])
def test_hyphen_variants_are_interchangeable(gap: str) -> None:
    text = f"In metabolic dysfunction{gap}associated steatotic liver disease."
    assert _found(text) == {MASLD: (1, 3)}


def test_two_sections_with_offsets() -> None:
    sections = [
        (0, "Intro: INS and fibrosis."),
        (3, "Nothing to see here."),
        (5, "Liver fibrosis. INS INS, fibrosis"),
    ]
    assert MATCHER.count_mentions(sections) == [
        Mention(FIB, 0, 1, 15),
        Mention(INS, 0, 1, 7),
        Mention(FIB, 5, 1, 25),
        Mention(LIVER_FIB, 5, 1, 0),
        Mention(INS, 5, 2, 16),
    ]


def test_a_section_ordinal_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="given twice"):
        MATCHER.count_mentions([(1, "INS"), (1, "INS")])


def test_no_targets_and_empty_names() -> None:
    assert MentionMatcher.for_entities([]).count_mentions([(0, "INS")]) == []
    odd = MentionMatcher.for_entities([MatchTarget("X:1", "other", ("", "-", " ‐ "), ("",))])
    assert odd.count_mentions([(0, "- ‐ -")]) == []


def test_targets_sharing_a_curie_count_once() -> None:
    matcher = MentionMatcher.for_entities(
        [MatchTarget("X:1", "disease", ("fibrosis",)), MatchTarget("X:1", "disease", ("Fibrosis",))]
    )
    assert matcher.count_mentions([(0, "fibrosis")]) == [Mention("X:1", 0, 1, 0)]


def _entity(curie: str, entity_type: str, listing: str, names: tuple[str, ...]) -> NormalisedEntity:
    return NormalisedEntity(curie, entity_type, listing, names[0], None, None, None, None, names, 1)  # type: ignore[arg-type]


def test_targets_from_entities() -> None:
    entities = [
        _entity("NCBIGene:3630", "gene", "linked", ("INS", "insulin")),
        _entity("NCBIGene:3630", "gene", "fulltext", ("INS", "insulin", "IDDM", "p53 thing")),
        _entity("MESH:D005355", "disease", "fulltext", ("fibrosis", "MASH")),
    ]
    assert targets_from(entities) == [
        MatchTarget("NCBIGene:3630", "gene", ("insulin", "p53 thing"), ("INS", "IDDM")),
        MatchTarget("MESH:D005355", "disease", ("fibrosis", "MASH")),
    ]


# an independent statement of the rules, as regular expressions, for the property tests below
_H = "\\-\u2010\u2011\u2012\u2013\u2212"
_WORD_BEFORE, _WORD_AFTER = r"(?<![^\W_])", r"(?![^\W_])"


def _loose(spelling: str) -> str:
    # hyphens may appear between any two characters; between words any gap or none
    return f"[\\s{_H}]*".join(f"[{_H}]*".join(re.escape(c) for c in w) for w in spelling.split())


def _reference(names: list[str], symbols: list[str]) -> re.Pattern[str]:
    alternatives = []
    if names:
        alternatives.append(f"(?i:{'|'.join(map(_loose, names))})")
    if symbols:
        alternatives.append(f"(?:{'|'.join(map(_loose, symbols))})(?![{_H}]\\d)")
    return re.compile(f"{_WORD_BEFORE}(?:{'|'.join(alternatives)}){_WORD_AFTER}")


PROPERTY_TARGETS = {
    "G": (MatchTarget("G", "gene", ("insulin",), ("INS", "TNF-α")), ["insulin", "insulins"],
          ["INS", "TNF α"]),
    "LF": (MatchTarget("LF", "disease", ("liver fibrosis",)), ["liver fibrosis", "liver fibroses"],
           []),
    "F": (MatchTarget("F", "disease", ("fibrosis",)), ["fibrosis", "fibroses"], []),
    "S": (MatchTarget("S", "disease", ("Sjögren syndrome",)),
          ["Sjögren syndrome", "Sjögren syndromes"], []),
}  # fmt: skip
REFERENCE = {
    key: _reference(names, symbols) for key, (_, names, symbols) in PROPERTY_TARGETS.items()
}
ALL_PROPERTY = MentionMatcher.for_entities([t for t, _, _ in PROPERTY_TARGETS.values()])

_FRAGMENTS = [
    "INS", "ins", "Ins", "insulin", "INSULINS", "TNF", "α", "Α", "liver", "LIVER", "fibrosis",
    "Fibroses", "Sjögren", "SJÖGREN", "syndrome", "s", "1", "x", "(", ".", " ", "  ", "\n",
    *HYPHENS,
]  # fmt: skip
_TEXTS = st.lists(st.sampled_from(_FRAGMENTS), max_size=40).map("".join)


@settings(max_examples=300)
@given(text=_TEXTS)
def test_first_offset_points_at_a_valid_match(text: str) -> None:
    for mention in ALL_PROPERTY.count_mentions([(0, text)]):
        assert mention.count >= 1
        assert REFERENCE[mention.curie].match(text, mention.first_offset), mention


@settings(max_examples=300)
@given(text=_TEXTS, key=st.sampled_from(sorted(PROPERTY_TARGETS)))
def test_one_entity_alone_counts_every_reference_match(text: str, key: str) -> None:
    # alone, an entity's matches never overlap, so longest-wins drops none of them
    target = PROPERTY_TARGETS[key][0]
    found = MentionMatcher.for_entities([target]).count_mentions([(0, text)])
    matches = list(REFERENCE[key].finditer(text))
    expected = [Mention(key, 0, len(matches), matches[0].start())] if matches else []
    assert found == expected


WEIRD = MentionMatcher.for_entities(
    [
        *TARGETS,
        MatchTarget("X:weird", "other", ("ß", "İstanbul", "ﬁbrosis", "Σίσυφος", "a\u0308")),
        MatchTarget("X:sym", "gene", (), ("ǅ", "Σ1", "İ")),
    ]
)


@given(sections=st.lists(st.text(), max_size=3))
def test_count_mentions_never_raises_on_arbitrary_text(sections: list[str]) -> None:
    for mention in WEIRD.count_mentions(enumerate(sections)):
        text = sections[mention.section_ordinal]
        assert mention.count >= 1
        assert 0 <= mention.first_offset < len(text)
