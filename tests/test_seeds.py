"""The summary-page parser: the real seed exactly, and every variation real pages show."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.records import EntityRef, KnownSeed, PaperRecord
from flows.seeds import (
    SeedParseError,
    all_unchanged,
    discover_seeds,
    drop_duplicate_ids,
    parse_batch,
    parse_summary,
)
from flows.seeds import batch as seeds_batch
from flows.settings import PROJECT_ROOT

REAL_SEED = PROJECT_ROOT / "seeds" / "PMC12809390.md"
SEED_TEXT = REAL_SEED.read_text(encoding="utf-8")


def parse(text: str, path: str = "page.md") -> PaperRecord:
    return parse_summary(text.encode("utf-8"), path)


def test_real_seed_every_field() -> None:
    paper = parse_summary(REAL_SEED.read_bytes(), "seeds/PMC12809390.md")
    assert paper.paper_id == "PMC12809390"
    assert paper.source == "PMC"
    assert paper.title == "Blood, sweat, tears and fibrosis: when overtraining injures the liver"
    assert paper.authors == ("Enis Kostallari",)
    assert paper.doi == "10.20517/evcna.2025.56"
    assert paper.journal == "Extracellular Vesicles and Circulating Nucleic Acids"
    assert paper.published_on == dt.date(2025, 11, 10)
    assert paper.tldr.startswith("Excessive exercise can harm the liver")
    assert paper.contribution == (
        "The study reveals that overtraining causes liver fibrosis via myocyte-derived small "
        "extracellular vesicles."
    )
    assert paper.key_findings == (
        "Overtraining promotes liver fibrosis through myocyte-derived small extracellular vesicles.",
        "Excessive exercise may impair mitochondrial function and liver health.",
        "Physical exercise can improve insulin sensitivity and hepatic steatosis in some liver "
        "disease patients.",
    )
    assert paper.abstract.startswith("The crosstalk between the skeletal muscles and the liver")
    assert paper.abstract.endswith("areas to be developed in the future.")
    assert paper.fulltext_url == "https://tomesphere.com/paper/PMC12809390/full.md"
    assert paper.stated_reference_count == 14
    assert paper.references_url == "https://tomesphere.com/paper/PMC12809390/full.md"
    assert paper.source_url == "https://tomesphere.com/paper/PMC12809390"
    assert paper.problems == ()
    assert len(paper.seed_sha256) == 64
    assert len(paper.entities) == 10
    assert paper.entities[0] == EntityRef(
        "Diseases", "linked", "metabolic dysfunction-associated steatotic liver disease",
        "MONDO", "0013209", (), (), 27,
    )  # fmt: skip
    assert paper.entities[1] == EntityRef(
        "Genes", "fulltext", "INS", "NCBI Gene", "3630", ("insulin",),
        ("IDDM", "IDDM1", "IDDM2", "ILPR", "IRDN", "MODY10"), 31,
    )  # fmt: skip
    diseases = [(e.name, e.namespace, e.identifier) for e in paper.entities[2:9]]
    assert diseases == [
        ("hepatic steatosis", "MESH", "D005234"),
        ("metabolic dysfunction", "MESH", "D008659"),
        ("inflammation", "MESH", "D007249"),
        ("liver disease", "MESH", "D008107"),
        ("liver fibrosis", "MESH", "D008103"),
        ("fibrosis", "MESH", "D005355"),
        ("loss of skeletal muscle mass", "MESH", "C536030"),
    ]
    # the rank in "(human, species)" is not a name (issue 12): it is the entity's rank
    assert paper.entities[9] == EntityRef(
        "Species", "fulltext", "Homo sapiens", "taxon", "9606", ("human",), (), 33, "species"
    )


def _arxiv(text: str) -> str:
    return text.replace("PMC12809390", "2006.14810").replace(
        "PMC · DOI: 10.20517/evcna.2025.56", "arXiv · DOI: 10.48550/arXiv.2006.14810"
    )


def _extra_namespaces(text: str) -> str:
    return text.replace(
        "- **Species:**",
        "- **Chemicals:** metformin (PubChem CID 4091), glucose (CHEBI:17234)\n"
        "- **Mutations:** V600E [dbSNP rs113488022]\n"
        "- **Cell lines:** HepG2 [Cellosaurus CVCL_0027]\n"
        "- **Species:**",
    )


def _drop_section(heading: str) -> Callable[[str], str]:
    def drop(text: str) -> str:
        head, _, rest = text.partition(f"## {heading}\n")
        _, _, tail = rest.partition("\n## ")
        return head + "## " + tail

    return drop


def _truncate_after(marker: str) -> Callable[[str], str]:
    return lambda text: text[: text.index(marker) + len(marker)]


def _malformed_entity(text: str) -> str:
    return text.replace(
        "- **Species:** Homo sapiens (human, species) [taxon 9606]",
        "- **Species:** Homo sapiens (human, species) [taxon 9606], a stray fragment\n"
        "- this line has no category",
    )


def _unicode(text: str) -> str:
    return (
        text.replace("Enis Kostallari", "Enis Kostallari, Zoë Ångström-Müller, José Núñez")
        .replace("dysfunction-associated steatotic", "dysfunction‐associated steatotic")
        .replace("2025-11-10", "2025–11–10 · 2025-11-10")
    )


def _noise(text: str) -> str:
    noisy = text.replace("\n## ", "\n\n\n##   ").replace("\n- ", "\n-   ")
    return "\n\n" + noisy.replace("**Authors:**", "**Authors:**   ") + "\n\n\n"


CASES: list[tuple[str, Callable[[str], str], Callable[[PaperRecord], object]]] = [
    ("real seed unchanged", lambda t: t, lambda p: len(p.entities) == 10),
    ("windows line endings", lambda t: t.replace("\n", "\r\n"), lambda p: _same_as_seed(p)),
    ("blank line and spacing noise", _noise, lambda p: _same_as_seed(p)),
    ("byte order mark", lambda t: "\ufeff" + t, lambda p: _same_as_seed(p)),
    (
        "arxiv id",
        _arxiv,
        lambda p: (
            (p.paper_id, p.source, p.doi) == ("2006.14810", "arXiv", "10.48550/arXiv.2006.14810")
        ),
    ),
    (
        "extra namespaces and categories kept",
        _extra_namespaces,
        lambda p: (
            [(e.category, e.namespace, e.identifier) for e in p.entities[9:13]]
            == [
                ("Chemicals", "PubChem CID", "4091"),
                ("Chemicals", "CHEBI", "17234"),
                ("Mutations", "dbSNP", "rs113488022"),
                ("Cell lines", "Cellosaurus", "CVCL_0027"),
            ]
        ),
    ),
    ("missing tl;dr", _drop_section("TL;DR"), lambda p: p.tldr == "" and len(p.key_findings) == 3),
    ("missing key findings", _drop_section("Key findings"), lambda p: p.key_findings == ()),
    ("missing linked entities", _drop_section("Linked entities"), lambda p: len(p.entities) == 9),
    (
        "truncated inside the entities",
        _truncate_after("- **Genes:** INS (insulin) [NCBI Gene 3630]"),
        lambda p: (
            p.paper_id == "PMC12809390"
            and [e.name for e in p.entities]
            == ["metabolic dysfunction-associated steatotic liver disease", "INS"]
            and p.stated_reference_count is None
        ),
    ),
    (
        "malformed entity lines reported, rest kept",
        _malformed_entity,
        lambda p: (
            len(p.entities) == 10
            and [(x.line, x.reason.split(" ")[:3]) for x in p.problems]
            == [(33, ["Species:", "cannot", "read"]), (34, ["entity", "line", "without"])]
        ),
    ),
    (
        "non-ascii punctuation survives",
        _unicode,
        lambda p: (
            p.authors == ("Enis Kostallari", "Zoë Ångström-Müller", "José Núñez")
            and p.entities[0].name == "metabolic dysfunction‐associated steatotic liver disease"
        ),
    ),
]


def _same_as_seed(paper: PaperRecord) -> bool:
    # everything but the bytes' hash and the entities' line numbers
    seed = parse(SEED_TEXT, paper.seed_path)
    unlined = [dataclasses.replace(e, line=0) for e in paper.entities]
    return dataclasses.replace(paper, entities=(), seed_sha256="") == dataclasses.replace(
        seed, entities=(), seed_sha256=""
    ) and unlined == [dataclasses.replace(e, line=0) for e in seed.entities]


@pytest.mark.parametrize(("case", "transform", "check"), CASES, ids=[c[0] for c in CASES])
def test_parser_cases(
    case: str, transform: Callable[[str], str], check: Callable[[PaperRecord], object]
) -> None:
    paper = parse(transform(SEED_TEXT), "seeds/PMC12809390.md")
    assert check(paper), paper


REJECTS = [
    ("empty file", b"", "no '# title' heading"),
    ("not markdown", b"just some words\nand more\n", "no '# title' heading"),
    ("title but no id", b"# A title\n\nSome text.\n", "no paper id"),
    ("no id and a file name that is no id", b"# A title\n\nPMC \xc2\xb7 2020\n", "no paper id"),
    ("not utf-8", b"# Title\n\xff\xfe bad bytes\n", "not UTF-8"),
    ("binary", b"# Title\x00\x01\x02", "binary content"),
]


@pytest.mark.parametrize(("case", "raw", "reason"), REJECTS, ids=[r[0] for r in REJECTS])
def test_rejects_documents_that_are_not_summary_pages(case: str, raw: bytes, reason: str) -> None:
    with pytest.raises(SeedParseError) as err:
        parse_summary(raw, "bad.md")
    assert err.value.path == "bad.md"
    assert reason in err.value.reason


def test_paper_id_falls_back_to_a_file_name_that_is_an_id() -> None:
    truncated = SEED_TEXT[: SEED_TEXT.index("## Full text")]
    assert parse(truncated, "seeds/2006.14810.md").paper_id == "2006.14810"
    with pytest.raises(SeedParseError, match="no paper id"):
        parse(truncated, "seeds/000_3ed6ea222f0b87d2.txt")


def test_parse_batch_quarantines_bad_files_and_keeps_good(tmp_path: Path) -> None:
    good = tmp_path / "good.md"
    good.write_text(_malformed_entity(SEED_TEXT), encoding="utf-8")
    bad = tmp_path / "bad.md"
    bad.write_text("no title here\n", encoding="utf-8")
    batch = parse_batch([bad, good])
    assert [p.paper_id for p in batch.papers] == ["PMC12809390"]
    assert [(q.document, q.stage, q.rejected_whole, q.line) for q in batch.rejected] == [
        (str(bad), "parse", True, 1),
        (str(good), "parse", False, 33),
        (str(good), "parse", False, 34),
    ]


def test_duplicate_ids_keep_the_first_document() -> None:
    first, second = parse(SEED_TEXT, "a.md"), parse(SEED_TEXT, "b.md")
    seen: dict[str, str] = {}
    kept, rejected = drop_duplicate_ids([first, second], seen)
    assert kept == [first]
    assert rejected[0].document == "b.md" and "already read from a.md" in rejected[0].reason


def test_discover_seeds_is_sorted_and_skips_other_files(tmp_path: Path) -> None:
    for name in ("b.md", "a.txt", ".hidden.md", "notes.csv", "sub/c.md"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in discover_seeds(tmp_path)] == [
        "a.txt",
        "b.md",
        "sub/c.md",
    ]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_parses_or_raises_seed_parse_error(text: str) -> None:
    try:
        paper = parse(text)
    except SeedParseError as exc:
        assert exc.reason
    else:
        assert paper.title and paper.paper_id


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(SEED_TEXT.splitlines(keepends=True)), max_size=60))
def test_shuffled_seed_lines_never_crash(lines: list[str]) -> None:
    with contextlib.suppress(SeedParseError):
        parse("".join(lines))


def test_a_known_seed_with_the_same_bytes_is_not_parsed(tmp_path: Path) -> None:
    same, edited = tmp_path / "a.md", tmp_path / "b.md"
    same.write_text(SEED_TEXT, "utf-8")
    edited.write_text(SEED_TEXT.replace("PMC12809390", "PMC2"), "utf-8")
    sha = hashlib.sha256(SEED_TEXT.encode()).hexdigest()
    known = {str(same): KnownSeed(str(same), "PMC12809390", sha),
             str(edited): KnownSeed(str(edited), "PMC2", sha)}  # fmt: skip
    batch = parse_batch([same, edited], known)
    assert batch.unchanged == (known[str(same)],)
    assert [p.paper_id for p in batch.papers] == ["PMC2"]  # its bytes changed: parsed
    assert batch.ids == ((str(same), "PMC12809390"), (str(edited), "PMC2"))


def test_a_batch_of_known_seeds_with_the_same_bytes_is_recognised_as_parse_batch_would(
    tmp_path: Path,
) -> None:
    same, other = tmp_path / "a.md", tmp_path / "b.md"
    same.write_text(SEED_TEXT, "utf-8")
    other.write_text(SEED_TEXT, "utf-8")
    sha = hashlib.sha256(SEED_TEXT.encode()).hexdigest()
    known = {"a.md": KnownSeed("a.md", "PMC12809390", sha), "b.md": KnownSeed("b.md", "PMC1", sha)}
    assert all_unchanged([same, other], known, tmp_path) == parse_batch(
        [same, other], known, tmp_path
    )
    # one seed not known, edited or unreadable: the batch goes to parse_batch
    assert all_unchanged([same, other], {"a.md": known["a.md"]}, tmp_path) is None
    other.write_text(SEED_TEXT + "\n", "utf-8")
    assert all_unchanged([same, other], known, tmp_path) is None
    other.unlink()
    assert all_unchanged([same, other], known, tmp_path) is None


def test_a_duplicate_of_an_unparsed_known_seed_is_still_found(tmp_path: Path) -> None:
    first, second = tmp_path / "a.md", tmp_path / "b.md"
    first.write_text(SEED_TEXT, "utf-8")
    second.write_text(SEED_TEXT + "\n", "utf-8")
    sha = hashlib.sha256(SEED_TEXT.encode()).hexdigest()
    batch = parse_batch([first, second], {str(first): KnownSeed(str(first), "PMC12809390", sha)})
    kept, rejected = drop_duplicate_ids(batch.papers, {}, batch.ids)
    assert kept == [] and [r.document for r in rejected] == [str(second)]


# issue 12: hostile pages, one by one; each failed before its fix


def test_a_source_url_that_is_no_url_does_not_crash_the_parser() -> None:
    text = SEED_TEXT.replace(
        "https://tomesphere.com/paper/PMC12809390", "https://[tomesphere.com/x"
    )
    with pytest.raises(SeedParseError, match="no paper id"):
        parse(text.replace("/PMC12809390/full.md", "/[/full.md"), "notes.md")
    # named after its id, the page still loads; the broken url stays as written
    paper = parse(text, "PMC12809390.md")
    assert paper.paper_id == "PMC12809390" and paper.source_url == "https://[tomesphere.com/x"


def test_a_page_the_parser_chokes_on_is_quarantined_and_the_batch_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = tmp_path / "PMC1.md", tmp_path / "PMC2.md"
    good.write_text(SEED_TEXT, "utf-8")
    bad.write_text("# A title\n\nSource: https://tomesphere.com/paper/PMC2\n", "utf-8")
    real = seeds_batch.parse_summary

    def choke(raw: bytes, path: str) -> PaperRecord:
        if path == str(bad):
            raise RecursionError("maximum recursion depth exceeded")
        return real(raw, path)

    monkeypatch.setattr(seeds_batch, "parse_summary", choke)
    batch = parse_batch([bad, good])
    assert [p.seed_path for p in batch.papers] == [str(good)]
    (row,) = batch.rejected
    assert (row.document, row.stage, row.rejected_whole) == (str(bad), "parse", True)
    assert row.reason == "cannot parse: RecursionError: maximum recursion depth exceeded"


def test_a_rank_among_the_extra_names_is_the_rank_not_a_name() -> None:
    species = parse(SEED_TEXT).entities[-1]
    assert (species.extra_names, species.rank) == (("human",), "species")


@pytest.mark.parametrize(
    ("heading", "reason"),
    [
        ("## Peer Reviews", "unknown section '## Peer Reviews': its text is not read"),
        ("## Linked entitie", "did you mean '## Linked entities'?"),
    ],
)
def test_an_unknown_or_cut_off_section_is_reported(heading: str, reason: str) -> None:
    text = SEED_TEXT.replace("## Linked entities", heading)
    paper = parse(text)
    (problem,) = paper.problems
    assert (
        reason in problem.reason
        and problem.line == SEED_TEXT.splitlines().index("## Linked entities") + 1
    )


@pytest.mark.parametrize(
    ("written", "date", "precision"),
    [
        ("2025-11-10", dt.date(2025, 11, 10), "day"),
        ("2025-11", dt.date(2025, 11, 1), "month"),
        ("2025", dt.date(2025, 1, 1), "year"),
    ],
)
def test_a_partial_date_says_how_much_the_page_gave(
    written: str, date: dt.date, precision: str
) -> None:
    paper = parse(SEED_TEXT.replace("2025-11-10", written))
    assert (paper.published_on, paper.published_on_precision) == (date, precision)


_URL_CHARS = st.text(alphabet="[]%:/?#@!$&'()*+,;=~.-_ aZ09\\\u00e9\u200b", max_size=30)


@settings(max_examples=300, deadline=None)
@given(source=_URL_CHARS, fulltext=_URL_CHARS)
def test_hostile_urls_parse_or_raise_seed_parse_error(source: str, fulltext: str) -> None:
    text = SEED_TEXT.replace("tomesphere.com/paper/PMC12809390/full.md", fulltext, 2)
    text = text.replace("tomesphere.com/paper/PMC12809390", source)
    try:
        paper = parse(text, "notes.md")
    except SeedParseError as exc:
        assert exc.reason
    else:
        assert paper.paper_id
