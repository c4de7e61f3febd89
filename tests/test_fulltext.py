"""The full-text parser: exact sections, references and captions for every fixture and variant."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.fulltext import count_words, parse_fulltext
from flows.records import Caption, FullText, Reference, Section

FIXTURES = Path(__file__).parent / "data" / "fulltext"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def parse_fixture(name: str) -> FullText:
    return parse_fulltext(fixture(name))


def one_section(markdown: str) -> str:
    """The text of the only section of a page."""
    doc = parse_fulltext(markdown)
    assert len(doc.sections) == 1, doc.sections
    return doc.sections[0].text


def references_of(entries: str) -> tuple[Reference, ...]:
    return parse_fulltext(f"## References\n\n{entries}\n").references


def check_consistent(doc: FullText, source: str) -> None:
    """Invariants every parse must keep, whatever the input."""
    starts = [s.char_start for s in doc.sections]
    assert starts == sorted(starts)
    for i, section in enumerate(doc.sections):
        assert section.ordinal == i
        assert 0 <= section.char_start <= len(source)
        assert section.word_count == count_words(section.text)
        assert "\x00" not in section.text + section.heading
        if section.level:
            assert section.heading_path[-1] == section.heading
        else:
            assert (section.heading, section.heading_path) == ("", ())
            assert section.text
    assert [r.ordinal for r in doc.references] == list(range(1, len(doc.references) + 1))
    for ref in doc.references:
        assert ref.citation and "\x00" not in ref.citation + (ref.url or "")
        assert ref.year is None or 1800 <= ref.year <= 2100
    for cap in doc.captions:
        assert 0 <= cap.section_ordinal < len(doc.sections)
    assert doc.word_count == sum(s.word_count for s in doc.sections)


def test_every_fixture_says_what_it_exercises_and_parses_consistently() -> None:
    names = sorted(p.name for p in FIXTURES.glob("*.md"))
    assert len(names) >= 14
    for name in names:
        text = fixture(name)
        assert text.startswith("<!-- ") and text.splitlines()[0].endswith(" -->"), name
        doc = parse_fulltext(text)
        check_consistent(doc, text)
        for section in doc.sections:  # a heading's char_start points at the heading itself
            if section.level:
                at = text[section.char_start :]
                assert at.startswith("#") or at.startswith(section.heading.split()[0]), name


REALISTIC_PATHS = [
    ("", 0, ()),
    ("Abstract", 2, ("Abstract",)),
    ("Introduction", 2, ("Introduction",)),
    ("Methods", 2, ("Methods",)),
    ("Animals", 3, ("Methods", "Animals")),
    ("Vesicle isolation", 3, ("Methods", "Vesicle isolation")),
    ("Nanoparticle tracking", 4, ("Methods", "Vesicle isolation", "Nanoparticle tracking")),
    ("Statistics", 3, ("Methods", "Statistics")),
    ("Results", 2, ("Results",)),
    ("Vesicle yield", 3, ("Results", "Vesicle yield")),
    ("Stellate cell activation", 3, ("Results", "Stellate cell activation")),
    ("Discussion", 2, ("Discussion",)),
    ("References", 2, ("References",)),
]


def test_realistic_paper_sections() -> None:
    doc = parse_fixture("realistic_paper.md")
    assert doc.title == (
        "Muscle-derived vesicles and hepatic stellate cell activation in endurance-overloaded mice"
    )
    assert [(s.heading, s.level, s.heading_path) for s in doc.sections] == REALISTIC_PATHS
    front, abstract = doc.sections[0], doc.sections[1]
    assert front.text == (
        "Authors: Ana Martínez-López, Jörg Schäfer, Wei Zhang\n\n"
        "PMC · DOI: 10.5555/tf.2024.0101 · Journal of Synthetic Hepatology · 2024-03-18"
    )
    assert abstract.text.startswith("Endurance exercise improves insulin sensitivity, yet")
    assert abstract.text.endswith("\n\nOverloaded mice showed a three-fold rise in muscle-derived "
                                  "sEVs and activated hepatic stellate cells (HSCs).")  # fmt: skip
    assert abstract.word_count == 47
    assert doc.sections[4].text == (
        "Male C57BL/6J mice (n = 16) were housed at 22 °C on a 12 h light–dark cycle."
    )
    assert doc.sections[7].text == (
        "Groups were compared with Welch's t-test; $p < 0.05$ was considered significant."
    )
    assert doc.sections[9].text == (
        "Table 1. Plasma vesicles and liver enzymes after eight weeks.\n\n"
        "Group | n | sEVs (×10⁹/mL) | ALT (U/L)\n"
        "Sedentary | 8 | 1.2 ± 0.3 | 34 ± 6\n"
        "Endurance overload | 8 | 3.9 ± 0.8 | 71 ± 12"
    )
    assert doc.sections[3].text == "" and doc.sections[3].word_count == 0
    assert doc.sections[-1].text.count("\n") == 13  # fourteen references, one per line
    assert doc.word_count == 452
    source = fixture("realistic_paper.md")
    assert source[doc.sections[0].char_start :].startswith("**Authors:**")
    assert source[doc.sections[1].char_start :].startswith("## Abstract\n")
    assert doc.captions == (
        Caption("table", "Table 1", "Plasma vesicles and liver enzymes after eight weeks.", 9),
        Caption(
            "figure",
            "Figure 1",
            "Collagen deposition in livers of sedentary and overloaded mice (Sirius red, "
            "scale bar 100 µm).",
            10,
        ),
    )


# (ordinal, doi, pmid, pmcid, url, year)
REALISTIC_REFERENCES = [
    (1, "10.5555/jsh.2019.0145", "31012345", "PMC6543210", None, 2019),
    (2, "10.5555/vb.2020.088", None, None, "https://doi.org/10.5555/vb.2020.088", 2020),
    (3, "10.5555/ls.2021.e1007", None, None, "https://doi.org/10.5555/ls.2021.e1007", 2021),
    (4, None, "29876543", None, "https://pubmed.ncbi.nlm.nih.gov/29876543/", 2018),
    (5, None, None, "PMC8765432", "https://www.ncbi.nlm.nih.gov/pmc/articles/PMC8765432/", 2022),
    (6, "10.5555/S0140-6736(20)30183-5", None, None, None, 2020),
    (7, None, None, None, None, 2017),
    (8, None, None, None, "https://www.who.int/news-room/fact-sheets/detail/physical-activity",
     2024),
    (9, "10.5555/asp.12345", None, None, None, 2016),
    (10, "10.5555/2023.05.01.538912v1", None, None,
     "https://www.biorxiv.org/content/10.5555/2023.05.01.538912v1", 2023),
    (11, None, "25456789", None, None, 2015),
    (12, "10.5555/JSH.2014.77", None, "PMC4123456", None, 2014),
    (13, None, None, None, None, 1913),
    (14, "10.5555/fs.2012.4.1", None, None, None, 2012),
]  # fmt: skip


@pytest.mark.parametrize("expected", REALISTIC_REFERENCES, ids=lambda e: f"ref{e[0]}")
def test_realistic_paper_references(expected: tuple[object, ...]) -> None:
    refs = parse_fixture("realistic_paper.md").references
    assert len(refs) == 14
    ref = refs[int(str(expected[0])) - 1]
    assert (ref.ordinal, ref.doi, ref.pmid, ref.pmcid, ref.url, ref.year) == expected


def test_realistic_paper_citations_are_plain_text() -> None:
    refs = parse_fixture("realistic_paper.md").references
    assert refs[0].citation == (
        "Okafor N, Lindqvist E, Tanaka H. Muscle–liver crosstalk in metabolic disease. "
        "J Synth Hepatol. 2019;12(3):145-158. doi:10.5555/jsh.2019.0145. PMID: 31012345. "
        "PMCID: PMC6543210."
    )
    assert refs[2].citation.endswith("2021;3:e1007. doi:10.5555/ls.2021.e1007")  # link text only
    assert refs[6].citation == (
        "Whitfield A. Exercise Physiology of the Liver. 2nd ed. Cambridge: Synthetic Press; 2017."
    )
    assert refs[13].citation == (
        "Nakamura S, et al. Sex differences in α-SMA expression. Fibrosis Synth. 2012;4:1‐9. "
        "doi:10.5555/fs.2012.4.1"
    )


SEED_HEADINGS = [
    ("", ()),
    ("Abstract", ("Abstract",)),
    ("Introduction", ("Introduction",)),
    ("Overtraining and the muscle–liver axis", ("Overtraining and the muscle–liver axis",)),
    ("Myocyte-derived small extracellular vesicles",
     ("Overtraining and the muscle–liver axis", "Myocyte-derived small extracellular vesicles")),
    ("Hepatic stellate cells as targets",
     ("Overtraining and the muscle–liver axis", "Hepatic stellate cells as targets")),
    ("Open questions", ("Open questions",)),
    ("Conclusions", ("Conclusions",)),
    ("Declarations", ("Declarations",)),
    ("Authors' contributions", ("Declarations", "Authors' contributions")),
    ("Conflicts of interest", ("Declarations", "Conflicts of interest")),
    ("References", ("References",)),
]  # fmt: skip


def test_seed_paper_full_text() -> None:
    doc = parse_fixture("PMC12809390.md")
    assert doc.title == "Blood, sweat, tears and fibrosis: when overtraining injures the liver"
    assert [(s.heading, s.heading_path) for s in doc.sections] == SEED_HEADINGS
    assert 800 <= doc.word_count <= 1500
    assert doc.word_count == 1172
    assert doc.sections[0].text == (
        "Authors: Enis Kostallari\n\nPMC · DOI: 10.20517/evcna.2025.56 · Extracellular Vesicles "
        "and Circulating Nucleic Acids · 2025-11-10"
    )
    assert doc.sections[1].text.startswith(
        "The crosstalk between the skeletal muscles and the liver is receiving growing attention"
    )
    body = "\n".join(s.text for s in doc.sections[:-1])
    for mention in ("insulin", "INS", "hepatic steatosis", "liver fibrosis", "fibrosis",
                    "inflammation", "liver disease", "metabolic dysfunction",
                    "loss of skeletal muscle mass", "human"):  # fmt: skip
        assert mention in body, mention
    refs = doc.references
    assert len(refs) == 14
    assert [r.year for r in refs] == [
        2012, 2018, 2019, 2019, 2012, 2013, 2025, 2017, 2021, 2017, 2021, 2014, 2018, 2023
    ]  # fmt: skip
    assert refs[0].doi == "10.5555/nrendo.2012.49" and refs[0].pmid == "22473333"
    assert refs[3].url == "https://doi.org/10.5555/j.jhepr.2019.10.008"
    assert refs[8].pmid == "33128017" and refs[8].doi is None
    assert refs[10].pmcid == "PMC8318330"
    assert refs[13].doi == "10.5555/HEP.0000000000000520"
    assert sum(r.doi is not None for r in refs) == 11
    assert [c.label for c in doc.captions] == ["Figure 1"]
    assert doc.captions[0].section_ordinal == 5
    assert doc.captions[0].text.startswith("Proposed model: overtraining stresses skeletal muscle")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "refs_bulleted.md",
            [
                ("Adams J. First work on hepatic fibrosis. Synth J. 2001;1:1-9. doi:10.5555/a.1",
                 "10.5555/a.1", None, None, 2001),
                ("Baker K, Chen L. Second work. Synth Rev. 2003;4(2):10-20. PMID: 12345678 "
                 "Erratum in: Synth Rev. 2004;5:1.", None, "12345678", None, 2003),
                ("Castro M. Third work, online. 2010.", None, None,
                 "https://example.org/castro", 2010),
            ],
        ),
        (
            "refs_bracketed.md",
            [
                ("Brown A. Title one. Synth J. 1999;1:1-2. PMID: 10000001", None, "10000001",
                 None, 1999),
                ("Cole B. Title two continues on a second line. Synth J. 2005;2:3-4. "
                 "doi:10.5555/c.2", "10.5555/c.2", None, None, 2005),
                ("Diaz C (1987). Title three. https://example.org/three.", None, None,
                 "https://example.org/three", 1987),
                ("Evans D. Title four. 2010.", None, None, None, 2010),
            ],
        ),
        (
            "refs_paragraphs.md",
            [
                ("Fox E. A study of 1850-1860 harvests. Synth Rev. 2011;4:5-6.", None, None,
                 None, 2011),
                ("Gray F. (2012) Title with a link. https://example.org/gray", None, None,
                 "https://example.org/gray", 2012),
                ("Hill G. A Book. Synthetic Press; 1998.", None, None, None, 1998),
            ],
        ),
    ],
)  # fmt: skip
def test_reference_list_styles(name: str, expected: list[tuple[object, ...]]) -> None:
    refs = parse_fixture(name).references
    assert [(r.citation, r.doi, r.pmid, r.url, r.year) for r in refs] == expected
    assert [r.ordinal for r in refs] == list(range(1, len(expected) + 1))


def test_reference_section_stays_a_section_and_ends_at_a_sibling_heading() -> None:
    doc = parse_fixture("refs_paragraphs.md")
    assert [(s.heading, s.heading_path) for s in doc.sections] == [
        ("Works Cited", ("Works Cited",)),
        ("Articles", ("Works Cited", "Articles")),
        ("Books", ("Works Cited", "Books")),
        ("Appendix", ("Appendix",)),
    ]
    assert doc.sections[3].text == "Not a reference, 2020."
    bulleted = parse_fixture("refs_bulleted.md").sections[1]
    assert bulleted.heading_path == ("Back matter", "Bibliography")
    assert bulleted.text.startswith("The following works were consulted.\n\nAdams J.")


@pytest.mark.parametrize(
    ("citation", "doi", "year"),
    [
        ("Smith J. Title. Lancet. 2019;12:45. doi:10.1016/j.x.2019.01.002.",
         "10.1016/j.x.2019.01.002", 2019),
        ("Smith J (2018a). Title. https://doi.org/10.1000/xyz123).", "10.1000/xyz123", 2018),
        ("Smith J. Title. 2020. [link](https://doi.org/10.1000%2Fenc)", "10.1000/enc", 2020),
        ("Smith J. On 1918 influenza. J Hist. 2001 Mar;5:1.", None, 2001),
        # a sici doi is cut at its "<": the price of stopping dois at html-ish brackets
        ("Smith J. J. 1999;1:1. doi:10.1002/(SICI)1097-0258(19980815)17:15<1661::AID>3.0.CO;2-2",
         "10.1002/(SICI)1097-0258(19980815)17:15", 1999),
        ("Smith J. Title. doi:10.5555/2019.12345", "10.5555/2019.12345", None),
        ("Smith J. Title. Pages 1850-1860.", None, 1850),
        ("Smith J. Title. e2019. Vol 1799. Year 2101.", None, None),
        ("Smith J. Title, 2016, [DOI](https://doi.org/10.1234/abc_d).", "10.1234/abc_d", 2016),
        ("No identifiers at all", None, None),
    ],
)  # fmt: skip
def test_reference_doi_and_year(citation: str, doi: str | None, year: int | None) -> None:
    (ref,) = references_of(f"1. {citation}")
    assert (ref.doi, ref.year) == (doi, year)


@pytest.mark.parametrize(
    ("entry", "pmid", "pmcid", "url"),
    [
        ("A. PMID: 123456. PMCID: PMC1234567.", "123456", "PMC1234567", None),
        ("A. pmid 7654321", "7654321", None, None),
        ("A. https://www.ncbi.nlm.nih.gov/pubmed/24681012.", "24681012", None,
         "https://www.ncbi.nlm.nih.gov/pubmed/24681012"),
        ("A. [PubMed](https://pubmed.ncbi.nlm.nih.gov/11111111/) then https://b.example/x",
         "11111111", None, "https://pubmed.ncbi.nlm.nih.gov/11111111/"),
        ("A. Available at <http://example.org/a_(b)>.", None, None, "http://example.org/a_(b)"),
        ("A. NOTPMC123456 and xPMC99999", None, None, None),
        ("A. see (https://example.org/x), 2001.", None, None, "https://example.org/x"),
        ("A. [pdf](https://example.org/a%20b.pdf)", None, None, "https://example.org/a%20b.pdf"),
    ],
)  # fmt: skip
def test_reference_identifiers(
    entry: str, pmid: str | None, pmcid: str | None, url: str | None
) -> None:
    (ref,) = references_of(f"- {entry}")
    assert (ref.pmid, ref.pmcid, ref.url) == (pmid, pmcid, url)


@pytest.mark.parametrize(
    ("heading", "is_references"),
    [
        ("## References", True),
        ("## REFERENCES", True),
        ("### 7. References", True),
        ("# Bibliography", True),
        ("## Literature cited", True),
        ("## Works Cited:", True),
        ("## Reference list", True),
        ("## References and notes", True),
        ("## Notes", False),
        ("## References to prior work in the text", False),
    ],
)
def test_reference_headings(heading: str, is_references: bool) -> None:
    doc = parse_fulltext(f"Intro.\n\n{heading}\n\n1. Smith J. Title. 2001.\n")
    assert len(doc.references) == int(is_references)


def test_a_list_wins_over_loose_paragraphs_and_footnotes_are_references() -> None:
    refs = references_of("14 references follow.\n\n1. A. 2001.\n2. B. 2002.\n\n[^3]: C. 2003.")
    assert [(r.citation, r.year) for r in refs] == [("A. 2001.", 2001), ("B. 2002.", 2002),
                                                   ("C. 2003.", 2003)]  # fmt: skip
    assert [r.citation for r in references_of("Only text, no list.")] == ["Only text, no list."]


def test_references_numbered_from_one_whatever_the_list_shows() -> None:
    refs = references_of("5. E. 2005.\n6. F. 2006.")
    assert [(r.ordinal, r.citation) for r in refs] == [(1, "E. 2005."), (2, "F. 2006.")]


def test_nested_headings() -> None:
    doc = parse_fixture("nested_headings.md")
    assert doc.title == "Part One"  # first H1, but there are two, so it stays a section
    assert [(s.heading, s.level, s.heading_path, s.text) for s in doc.sections] == [
        ("Part One", 1, ("Part One",), "Intro text."),
        ("Chapter A", 2, ("Part One", "Chapter A"), ""),
        ("Deep (skips level 3)", 4, ("Part One", "Chapter A", "Deep (skips level 3)"),
         "Deep text."),
        ("Chapter B", 2, ("Part One", "Chapter B"), ""),
        ("Part Two", 1, ("Part Two",), ""),
        ("Section emphasised code", 3, ("Part Two", "Section emphasised code"), "Text."),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("markdown", "title", "headings"),
    [
        ("# T\n\nmeta\n\n## A\n\n### B\n", "T", [("", ()), ("A", ("A",)), ("B", ("A", "B"))]),
        ("# T\n\n## A\n", "T", [("A", ("A",))]),
        ("banner\n\n# T\n\n## A\n", "T", [("", ()), ("A", ("A",))]),
        ("# Abstract\n\ntext\n\n## A\n", None,
         [("Abstract", ("Abstract",)), ("A", ("Abstract", "A"))]),
        ("## A\n\n# T\n", None, [("A", ("A",)), ("T", ("T",))]),
        ("# T\n\n# U\n", "T", [("T", ("T",)), ("U", ("U",))]),
        ("T\n=\n\nmeta\n", "T", [("", ())]),
        ("#\n\ntext\n", None, [("", ())]),
    ],
)  # fmt: skip
def test_title_decisions(
    markdown: str, title: str | None, headings: list[tuple[str, tuple[str, ...]]]
) -> None:
    doc = parse_fulltext(markdown)
    assert doc.title == title
    assert [(s.heading, s.heading_path) for s in doc.sections] == headings


def test_title_body_becomes_the_level_zero_section() -> None:
    doc = parse_fulltext("banner\n\n# T\n\nmeta\n\n## A\n")
    assert doc.sections[0] == Section(0, "", 0, (), "banner\n\nmeta", 2, 0)
    assert doc.sections[1].char_start == len("banner\n\n# T\n\nmeta\n\n")


def test_tables_and_captions() -> None:
    doc = parse_fixture("tables.md")
    assert doc.sections[0].text == (
        "Table 2: Baseline characteristics.\n\n"
        "Marker | Mean | Note\nALT | 34 | a | b\nAST | 29 | \n\n"
        "Table 3 shows the follow-up values.\n\n"
        "after the table"
    )
    assert doc.captions == (Caption("table", "Table 2", "Baseline characteristics.", 0),)


@pytest.mark.parametrize(
    ("paragraph", "caption"),
    [
        ("**Figure 1.** Liver.", ("figure", "Figure 1", "Liver.")),
        ("**Figure 1**. Liver.", ("figure", "Figure 1", "Liver.")),
        ("Figure 2: Muscle.", ("figure", "Figure 2", "Muscle.")),
        ("Fig. 3 Vesicles", ("figure", "Figure 3", "Vesicles")),
        ("Fig 3B. Panel.", ("figure", "Figure 3B", "Panel.")),
        ("Table 1. Cohort.", ("table", "Table 1", "Cohort.")),
        ("*Table 2* Cohort by sex", ("table", "Table 2", "Cohort by sex")),
        ("TABLE II — Doses.", ("table", "Table II", "Doses.")),
        ("**Supplementary Figure S1 |** Gating.", ("figure", "Supplementary Figure S1", "Gating.")),
        ("![Figure 4: Alt text](f.png)", ("figure", "Figure 4", "Alt text")),
        ("![Figure 5](f.png)", ("figure", "Figure 5", "")),
        ("Figure 1 shows the liver.", None),
        ("Tables 1 and 2 list doses.", None),
        ("As Figure 1. shows", None),
        ("**Important.** Not a caption.", None),
        ("![a photo](p.png)", None),
    ],
)  # fmt: skip
def test_caption_markers(paragraph: str, caption: tuple[str, str, str] | None) -> None:
    doc = parse_fulltext(f"## R\n\n{paragraph}\n")
    found = [(c.kind, c.label, c.text) for c in doc.captions]
    assert found == ([caption] if caption else [])


def test_image_alt_and_caption_paragraph_make_one_caption() -> None:
    doc = parse_fulltext("## R\n\n![Figure 1: short](f.png)\n\n**Figure 1.** The long caption.\n")
    assert [(c.label, c.text) for c in doc.captions] == [("Figure 1", "The long caption.")]


@pytest.mark.parametrize(
    ("markdown", "text"),
    [
        ("*em* **strong** ~~gone~~ `code` [link](http://x)", "em strong gone code link"),
        ("a &amp; b &lt;c&gt; &alpha;&beta; &#8211; &#x3B2; &copy;", "a & b <c> αβ – β ©"),
        ("x<sup>2</sup> H<sub>2</sub>O <b>bold</b> <!-- c --> end", "x2 H2O bold end"),
        ("line<br>break", "line break"),
        ("$x_1$ and $y_1$ with $$\\sum_i x_i$$", "$x_1$ and $y_1$ with $$\\sum_i x_i$$"),
        ("soft\nbreak and hard  \nbreak", "soft break and hard break"),
        ("one\n\ntwo", "one\n\ntwo"),
        ("- a\n- b\n  - c\n\n1. d\n2. e", "a\nb\nc\n\nd\ne"),
        ("- loose\n\n  second para\n- next", "loose second para\nnext"),
        ("> quoted\n\n> again", "quoted\n\nagain"),
        ("```\n  keep   spacing\n```", "  keep   spacing"),
        ("    indented code", "indented code"),
        ("<div>\n<p>one</p><p>two</p>\n<style>p{}</style>\n</div>", "one two"),
        ("![alt text](img.png)", "alt text"),
        ("text[^1]\n\n[^1]: note", "text[^1]\n\n[^1]: note"),
        ("a\u00a0b\u2009c", "a b c"),
        ("---\n\ntext", "text"),
        ("| h |\n|---|\n| `a\\|b` |", "h\na|b"),
    ],
)
def test_plain_text(markdown: str, text: str) -> None:
    assert one_section(f"## S\n\n{markdown}\n") == text


def test_html_fixture() -> None:
    doc = parse_fixture("html.md")
    assert doc.sections[0].text == (
        "Fibrosis & inflammation: TGF-β1, 5 mg, 1–2, β-cells, x2 and next kept.\n\n"
        "Figure 2. Stellate cells & collagen."
    )
    assert doc.captions == (Caption("figure", "Figure 2", "Stellate cells & collagen.", 0),)


def test_math_fixture() -> None:
    assert parse_fixture("math.md").sections[0].text == (
        "The rate $k_{on}$ and $k_{off}$ give $K_d = k_{off}/k_{on}$ for $\\alpha$-SMA.\n\n"
        "$$ E = mc^2 $$\n\n"
        "It cost $5 and $10."
    )


def test_non_ascii_unchanged() -> None:
    text = fixture("non_ascii.md")
    doc = parse_fulltext(text)
    assert doc.title == "Ünïcödé – tëst"
    (section,) = doc.sections
    assert section.heading == "Résumé"
    assert section.text == (
        "Müller‐Lüdenscheidt and Ørsted found TGF‐β1 levels of 10–20 ng/mL in α‐SMA⁺ cells. "
        "肝纤维化 🧪."
    )
    assert section.word_count == 13  # "🧪." has no letter or digit
    assert text[section.char_start :].startswith("## Résumé")  # a str offset, not a byte one


def test_code_and_footnotes() -> None:
    (section,) = parse_fixture("code_and_footnotes.md").sections
    assert section.text == (
        "Run this[^note]:\n\n"
        'if a < b and c > d:\n    print("&amp;")\n\n'
        "indented code\n\n"
        "Quoted text.\n\n"
        "[^note]: A footnote with bold."
    )


def test_no_headings_gives_one_section() -> None:
    doc = parse_fixture("no_headings.md")
    assert doc.title is None
    assert doc.sections == (
        Section(
            0,
            "",
            0,
            (),
            "First paragraph with insulin.\n\nSecond paragraph wrapped over two lines.\n\none\ntwo",
            12,
            fixture("no_headings.md").index("First"),
        ),
    )


@pytest.mark.parametrize(
    ("markdown", "title", "sections", "words"),
    [
        ("", None, 0, 0),
        ("   \n\t\n  ", None, 0, 0),
        ("\ufeff", None, 0, 0),
        ("\r\n\r\n", None, 0, 0),
        ("<!-- only a comment -->", None, 0, 0),
        ("---\ntitle: Front matter\n---\n", None, 0, 0),
        ("# Only a title\n", "Only a title", 0, 0),
        ("plain words", None, 1, 2),
        ("## Empty heading", None, 1, 0),
    ],
)
def test_empty_bodies(markdown: str, title: str | None, sections: int, words: int) -> None:
    doc = parse_fulltext(markdown)
    assert (doc.title, len(doc.sections), doc.word_count) == (title, sections, words)
    assert doc.references == () and doc.captions == ()


@pytest.mark.parametrize("name", ["empty_body.md", "whitespace_body.md"])
def test_empty_body_fixtures(name: str) -> None:
    doc = parse_fixture(name)
    assert doc.sections == () and doc.word_count == 0
    assert doc.title == ("Only a title" if name == "empty_body.md" else None)


def test_front_matter_is_not_body_text() -> None:
    doc = parse_fulltext("---\ntitle: X\nauthor: Y\n---\n\n# Real title\n\nBody.\n")
    assert doc.title == "Real title"
    assert [s.text for s in doc.sections] == ["Body."]


def test_crlf_and_bom_give_the_same_parse_with_offsets_into_the_input() -> None:
    lf = fixture("realistic_paper.md")
    crlf = "\ufeff" + lf.replace("\n", "\r\n")
    a, b = parse_fulltext(lf), parse_fulltext(crlf)
    assert a.title == b.title and a.references == b.references and a.captions == b.captions
    assert [(s.heading, s.heading_path, s.text) for s in a.sections] == [
        (s.heading, s.heading_path, s.text) for s in b.sections
    ]
    for section in b.sections[1:]:
        assert crlf[section.char_start :].startswith("#" * section.level + " " + section.heading)
    assert "\r" not in "".join(s.text for s in b.sections)


def test_lone_surrogates_and_nul_do_not_raise() -> None:
    doc = parse_fulltext(
        "## A\ud800\n\nx\x00y [l](http://a)\n\n## References\n\n- r\x00 [l](http://b)"
    )
    assert [s.heading for s in doc.sections] == ["A?", "References"]
    assert doc.sections[0].text == "x\ufffdy l"
    assert doc.references[0].citation == "r\ufffd l" and doc.references[0].url == "http://b"


def _megabyte_document() -> str:
    # the realistic paper's body, one level deeper, under a "## Part n" per copy
    section = fixture("realistic_paper.md").split("## Abstract\n", 1)[1].split("## References")[0]
    parts = ["# A generated paper\n\n"]
    n = 0
    while sum(map(len, parts)) < 1_000_000:
        n += 1
        parts.append(f"## Part {n}\n\n### Abstract\n" + section.replace("\n#", "\n##"))
    refs = "".join(f"{i}. Author {i}. Title. J. 2001;1:{i}. doi:10.5555/gen.{i}\n"
                   for i in range(1, 501))  # fmt: skip
    return "".join(parts) + "## References\n\n" + refs


def test_a_one_megabyte_document() -> None:
    text = _megabyte_document()
    assert len(text.encode()) > 1_000_000
    doc = parse_fulltext(text)
    parts = sum(1 for s in doc.sections if s.level == 2 and s.heading.startswith("Part "))
    assert len(doc.sections) == parts * 12 + 1
    assert doc.sections[-1].heading == "References"
    assert doc.sections[-2].heading_path == (f"Part {parts}", "Discussion")
    assert len(doc.references) == 500
    assert doc.references[-1].doi == "10.5555/gen.500" and doc.references[-1].year == 2001
    assert len(doc.captions) == 2 * parts
    check_consistent(doc, text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", 0),
        ("one two  three", 3),
        ("a – b — c", 3),
        ("TGF‐β1 α-SMA 10–20 µm", 4),
        ("| x | y |", 2),
        ("__ ... $ 🧪 ** --", 0),
        ("__init__ x_1 e.g. 2001.", 4),
        ("肝纤维化 Ørsted", 2),
        ("line\nbreak\ttab\u00a0nbsp", 4),
    ],
)
def test_count_words(text: str, words: int) -> None:
    assert count_words(text) == words


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_never_raises_on_any_text(text: str) -> None:
    check_consistent(parse_fulltext(text), text)


MARKDOWN_PIECES = [
    "# ", "## ", "### ", "\n", "\n\n", "\r\n", " ", "    ", "text", "β", "- ", "* ", "1. ", "> ",
    "[1] ", "[^1]", "[^1]: ", "**", "*", "_", "`", "```", "$", "$$", "|", "|---|", "<div>",
    "</div>", "<!--", "-->", "&amp;", "&", "[a](http://x.y/(z))", "![Figure 1: a](i.png)",
    "Figure 2.", "Table 1:", "References", "doi:10.1/x)", "PMID: 12", "PMC123456", "(2019)",
    "---", "===", "\\", "<br>", "<script>", "\ufeff", "\x00",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(MARKDOWN_PIECES), max_size=80).map("".join))
def test_never_raises_on_markdown_like_text(text: str) -> None:
    check_consistent(parse_fulltext(text), text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abc xyz019\n", max_size=300))
def test_text_without_markup_keeps_every_word(text: str) -> None:
    doc = parse_fulltext(text)
    assert " ".join(s.text for s in doc.sections).split() == text.split()


WORDS = st.sampled_from(["liver", "cell", "alpha", "β‐cell", "x1", "Ørsted"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=2, max_value=5),
            st.lists(WORDS, min_size=1, max_size=3).map(" ".join),
            st.lists(st.lists(WORDS, min_size=1, max_size=6).map(" ".join), max_size=3),
        ),
        max_size=12,
    )
)
def test_generated_outlines_parse_exactly(
    outline: list[tuple[int, str, list[str]]],
) -> None:
    text = "# Title\n\n" + "".join(
        f"{'#' * level} {heading}\n\n" + "".join(f"{p}\n\n" for p in paragraphs)
        for level, heading, paragraphs in outline
    )
    stack: list[tuple[int, str]] = []
    expected = []
    for level, heading, paragraphs in outline:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
        expected.append((heading, level, tuple(h for _, h in stack), "\n\n".join(paragraphs)))
    doc = parse_fulltext(text)
    assert doc.title == "Title"
    assert [(s.heading, s.level, s.heading_path, s.text) for s in doc.sections] == expected
    check_consistent(doc, text)


def test_an_image_in_a_heading_is_not_a_figure() -> None:
    doc = parse_fulltext("# ![Figure 1: a](i.png)\n\n## B\n\n![Figure 2: b](j.png)\n")
    assert doc.title == "Figure 1: a"
    assert [(c.label, c.section_ordinal) for c in doc.captions] == [("Figure 2", 0)]
