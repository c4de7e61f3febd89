"""The GX quality gate: suites as files, before-load checks on frames, after-load checks in SQL."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import psycopg
import pytest

from flows.quality.frames import batch_frame, prepared
from flows.quality.gate import QualityGate
from flows.quality.results import QualityGateError, QualityReport, SuiteError
from flows.quality.suites import BEFORE_LOAD_SUITES, SUITES_DIR, curie_regex, render_suites
from flows.records import ExpectationOutcome

DATA = Path(__file__).parents[1] / "data" / "quality"
SHA = "ab" * 32
SOCKET_DIR = Path("/var/run/postgresql")

Frames = dict[str, pd.DataFrame]
Mutation = Callable[[pd.DataFrame], pd.DataFrame]


def clean_frames() -> Frames:
    """The clean batch of tests/data/quality/clean_batch.json, as the flow would build it."""
    records = json.loads((DATA / "clean_batch.json").read_text(encoding="utf-8"))
    for paper in records["papers"]:
        if paper["published_on"] is not None:
            paper["published_on"] = dt.date.fromisoformat(paper["published_on"])
    return {kind: batch_frame(kind, rows) for kind, rows in records.items()}


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> QualityGate:
    """One gate for the module: building its GX context is the slow part."""
    return QualityGate(SUITES_DIR, tmp_path_factory.mktemp("docs"))


def suite_expectations(checkpoint: str) -> list[tuple[str, str, str | None, str]]:
    """(suite, expectation type, column, policy) for every expectation of a checkpoint."""
    found = []
    for path in sorted(SUITES_DIR.glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        if suite["meta"]["checkpoint"] != checkpoint:
            continue
        for expectation in suite["expectations"]:
            kwargs = expectation["kwargs"]
            column = kwargs.get("column") or ",".join(kwargs.get("column_list", [])) or None
            found.append(
                (suite["name"], expectation["type"], column, expectation["meta"]["policy"])
            )
    return found


def set_cell(row: int, column: str, value: object) -> Mutation:
    """Set one cell of the frame."""

    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[row, column] = value
        return frame

    return mutate


def duplicate_row(row: int) -> Mutation:
    """Append a copy of one row, so its key appears twice."""

    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([frame, frame.iloc[[row]]], ignore_index=True)

    return mutate


@dataclass(frozen=True)
class Case:
    suite: str
    expectation: str
    column: str | None
    mutate: Mutation
    key: tuple[object, ...]  # key of the row that must fail

    def __str__(self) -> str:
        return f"{self.suite}-{self.expectation.removeprefix('expect_')}-{self.column}"


NOT_NULL = "expect_column_values_to_not_be_null"
REGEX = "expect_column_values_to_match_regex"
BETWEEN = "expect_column_values_to_be_between"
LENGTHS = "expect_column_value_lengths_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
UNIQUE = "expect_column_values_to_be_unique"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"

PMC, ARXIV = "PMC12809390", "2006.14810v2"
NEXT_YEAR = dt.date.today().year + 1

# one case per expectation in every before-load suite: the mutation breaks exactly that row
CASES = [
    Case("papers", NOT_NULL, "paper_id", set_cell(1, "paper_id", None), (None,)),
    Case("papers", REGEX, "paper_id", set_cell(0, "paper_id", "PMC-12809390"), ("PMC-12809390",)),
    Case("papers", UNIQUE, "paper_id", set_cell(1, "paper_id", PMC), (PMC,)),
    Case("papers", NOT_NULL, "source", set_cell(0, "source", None), (PMC,)),
    Case("papers", LENGTHS, "source", set_cell(0, "source", ""), (PMC,)),
    Case("papers", NOT_NULL, "title", set_cell(1, "title", None), (ARXIV,)),
    Case("papers", LENGTHS, "title", set_cell(0, "title", "t" * 1001), (PMC,)),
    Case("papers", REGEX, "doi", set_cell(0, "doi", "doi:10.1038/x"), (PMC,)),
    Case(
        "papers",
        BETWEEN,
        "published_on",
        set_cell(0, "published_on", dt.date(1799, 12, 31)),
        (PMC,),
    ),
    Case("papers", LENGTHS, "abstract", set_cell(1, "abstract", "a" * 20_001), (ARXIV,)),
    Case(
        "papers",
        BETWEEN,
        "stated_reference_count",
        set_cell(0, "stated_reference_count", -1),
        (PMC,),
    ),
    Case(
        "papers",
        BETWEEN,
        "parsed_reference_count",
        set_cell(0, "parsed_reference_count", -1),
        (PMC,),
    ),
    Case("papers", BETWEEN, "reference_count_gap", set_cell(0, "reference_count_gap", 4), (PMC,)),
    Case("papers", IN_SET, "fulltext_status", set_cell(0, "fulltext_status", "downloaded"), (PMC,)),
    Case("authors", NOT_NULL, "paper_id", set_cell(0, "paper_id", None), (None, 1)),
    Case("authors", NOT_NULL, "position", set_cell(1, "position", None), (PMC, None)),
    Case("authors", BETWEEN, "position", set_cell(1, "position", 0), (PMC, 0)),
    Case("authors", NOT_NULL, "name", set_cell(2, "name", None), (ARXIV, 1)),
    Case("authors", LENGTHS, "name", set_cell(2, "name", ""), (ARXIV, 1)),
    Case("authors", COMPOUND_UNIQUE, "paper_id,position", set_cell(1, "position", 1), (PMC, 1)),
    Case("entities", NOT_NULL, "paper_id", set_cell(2, "paper_id", None), (None, "MESH:D003920")),
    Case("entities", NOT_NULL, "curie", set_cell(2, "curie", None), (PMC, None)),
    Case("entities", REGEX, "curie", set_cell(2, "curie", "MESH:X1"), (PMC, "MESH:X1")),
    Case("entities", NOT_NULL, "prefix", set_cell(2, "prefix", None), (PMC, "MESH:D003920")),
    Case("entities", NOT_NULL, "local_id", set_cell(2, "local_id", None), (PMC, "MESH:D003920")),
    Case(
        "entities",
        IN_SET,
        "entity_type",
        set_cell(2, "entity_type", "protein"),
        (PMC, "MESH:D003920"),
    ),
    Case(
        "paper_entities",
        NOT_NULL,
        "paper_id",
        set_cell(0, "paper_id", None),
        (None, "NCBIGene:3630", "linked"),
    ),
    Case("paper_entities", NOT_NULL, "curie", set_cell(0, "curie", None), (PMC, None, "linked")),
    Case(
        "paper_entities",
        REGEX,
        "curie",
        set_cell(4, "curie", "dbsnp:121913529"),
        (PMC, "dbsnp:121913529", "fulltext"),
    ),
    Case(
        "paper_entities",
        NOT_NULL,
        "listing",
        set_cell(0, "listing", None),
        (PMC, "NCBIGene:3630", None),
    ),
    Case(
        "paper_entities",
        IN_SET,
        "listing",
        set_cell(0, "listing", "both"),
        (PMC, "NCBIGene:3630", "both"),
    ),
    Case(
        "paper_entities",
        NOT_NULL,
        "name_as_written",
        set_cell(2, "name_as_written", None),
        (PMC, "MESH:D003920", "linked"),
    ),
    Case(
        "paper_entities",
        LENGTHS,
        "name_as_written",
        set_cell(2, "name_as_written", ""),
        (PMC, "MESH:D003920", "linked"),
    ),
    Case(
        "paper_entities",
        COMPOUND_UNIQUE,
        "paper_id,curie,listing",
        duplicate_row(6),
        (ARXIV, "pubchem.compound:5793", "linked"),
    ),
    Case("sections", NOT_NULL, "paper_id", set_cell(3, "paper_id", None), (None, 0)),
    Case("sections", NOT_NULL, "ordinal", set_cell(3, "ordinal", None), (ARXIV, None)),
    Case("sections", BETWEEN, "ordinal", set_cell(3, "ordinal", -1), (ARXIV, -1)),
    Case("sections", NOT_NULL, "heading", set_cell(1, "heading", None), (PMC, 1)),
    Case("sections", BETWEEN, "level", set_cell(1, "level", 7), (PMC, 1)),
    Case("sections", BETWEEN, "text_length", set_cell(1, "text_length", 2_000_001), (PMC, 1)),
    Case("sections", BETWEEN, "word_count", set_cell(1, "word_count", -1), (PMC, 1)),
    Case("sections", COMPOUND_UNIQUE, "paper_id,ordinal", set_cell(2, "ordinal", 1), (PMC, 1)),
    Case("references", NOT_NULL, "paper_id", set_cell(4, "paper_id", None), (None, 1)),
    Case("references", NOT_NULL, "ordinal", set_cell(4, "ordinal", None), (ARXIV, None)),
    Case("references", BETWEEN, "ordinal", set_cell(4, "ordinal", 0), (ARXIV, 0)),
    Case("references", NOT_NULL, "citation", set_cell(2, "citation", None), (PMC, 3)),
    Case("references", LENGTHS, "citation", set_cell(2, "citation", "c" * 5001), (PMC, 3)),
    Case("references", REGEX, "doi", set_cell(1, "doi", "10.1/x"), (PMC, 2)),
    Case("references", REGEX, "pmid", set_cell(0, "pmid", "PMID20275034"), (PMC, 1)),
    Case("references", REGEX, "pmcid", set_cell(1, "pmcid", "7759123"), (PMC, 2)),
    Case("references", BETWEEN, "year", set_cell(5, "year", 1799), (ARXIV, 2)),
    Case("references", COMPOUND_UNIQUE, "paper_id,ordinal", set_cell(1, "ordinal", 1), (PMC, 1)),
    Case(
        "mentions",
        NOT_NULL,
        "paper_id",
        set_cell(3, "paper_id", None),
        (None, "pubchem.compound:5793", 0),
    ),
    Case("mentions", NOT_NULL, "curie", set_cell(3, "curie", None), (ARXIV, None, 0)),
    Case(
        "mentions",
        REGEX,
        "curie",
        set_cell(3, "curie", "ncbigene:3630"),
        (ARXIV, "ncbigene:3630", 0),
    ),
    Case(
        "mentions",
        NOT_NULL,
        "section_ordinal",
        set_cell(3, "section_ordinal", None),
        (ARXIV, "pubchem.compound:5793", None),
    ),
    Case(
        "mentions",
        BETWEEN,
        "section_ordinal",
        set_cell(3, "section_ordinal", -1),
        (ARXIV, "pubchem.compound:5793", -1),
    ),
    Case(
        "mentions",
        BETWEEN,
        "mention_count",
        set_cell(3, "mention_count", 0),
        (ARXIV, "pubchem.compound:5793", 0),
    ),
    Case(
        "mentions",
        BETWEEN,
        "first_offset",
        set_cell(3, "first_offset", -1),
        (ARXIV, "pubchem.compound:5793", 0),
    ),
    Case(
        "mentions",
        COMPOUND_UNIQUE,
        "paper_id,curie,section_ordinal",
        set_cell(1, "section_ordinal", 1),
        (PMC, "NCBIGene:3630", 1),
    ),
]


def outcome_of(
    report: QualityReport, suite: str, expectation: str, column: str | None
) -> ExpectationOutcome:
    """The one outcome of an expectation in a report."""
    found = [
        o
        for o in report.outcomes
        if (o.suite, o.expectation, o.column) == (suite, expectation, column)
    ]
    assert len(found) == 1, found
    return found[0]


def test_committed_suites_equal_their_rendering() -> None:
    # the curie regex is assembled from flows.entities.CURIE_PATTERNS; run
    # `python -m flows.quality` when this fails
    rendered = render_suites()
    committed = {p.name: p.read_text(encoding="utf-8") for p in SUITES_DIR.glob("*.json")}
    assert rendered == committed


@pytest.mark.parametrize(
    ("curie", "valid"),
    [
        ("NCBIGene:3630", True),
        ("MESH:D003920", True),
        ("MONDO:0013209", True),
        ("dbsnp:rs121913529", True),
        ("cellosaurus:CVCL_0030", True),
        ("pubchem.compound:5793", True),
        ("flybase:FBgn0000490", True),  # unknown prefix: loosely checked
        ("NCBIGene:INS", False),
        ("MESH:X1", False),
        ("MONDO:13209", False),
        ("dbsnp:121913529", False),
        ("cellosaurus:HeLa", False),
        ("ncbigene:3630", False),  # a known prefix may not dodge its pattern by case
        ("FlyBase:FBgn0000490", False),
        ("NCBIGene 3630", False),
        ("flybase:", False),
    ],
)
def test_curie_regex(curie: str, valid: bool) -> None:
    assert (re.search(curie_regex(), curie) is not None) is valid


def test_every_before_load_expectation_has_a_failing_case() -> None:
    in_suites = {(s, e, c) for s, e, c, _ in suite_expectations("before_load")}
    in_cases = [(c.suite, c.expectation, c.column) for c in CASES]
    assert len(in_cases) == len(set(in_cases)), "one case per expectation"
    assert set(in_cases) == in_suites


def test_expectations_are_identified_by_suite_type_and_column() -> None:
    found = [(s, e, c) for s, e, c, _ in suite_expectations("before_load")]
    found += [(s, e, c) for s, e, c, _ in suite_expectations("after_load")]
    assert len(found) == len(set(found))


def test_clean_batch_passes_every_expectation(gate: QualityGate) -> None:
    frames = clean_frames()
    report = gate.validate_batch(frames, batch=1)
    assert report.failed_expectations() == ()
    assert report.row_failures == ()
    assert len(report.outcomes) == len(suite_expectations("before_load"))
    assert {o.checkpoint for o in report.outcomes} == {"before_load"}
    assert {o.batch for o in report.outcomes} == {1}
    for o in report.outcomes:
        if o.element_count is not None:
            assert o.element_count == len(frames[o.suite])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_expectation_fails_on_its_case(gate: QualityGate, case: Case) -> None:
    frames = clean_frames()
    frames[case.suite] = case.mutate(frames[case.suite])
    report = gate.validate_batch(frames, batch=2)

    outcome = outcome_of(report, case.suite, case.expectation, case.column)
    assert outcome.success is False
    assert outcome.unexpected_count is not None and outcome.unexpected_count >= 1
    failures = [
        f
        for f in report.row_failures
        if (f.suite, f.expectation, f.column) == (case.suite, case.expectation, case.column)
    ]
    if outcome.policy == "quarantine":
        assert case.key in {f.key for f in failures}
    else:
        assert failures == []
    # the rest of the batch is untouched by the mutation
    others = [o for o in report.failed_expectations() if o.suite != case.suite]
    assert others == []


def test_row_failure_names_paper_key_and_value(gate: QualityGate) -> None:
    frames = clean_frames()
    frames["papers"] = set_cell(0, "title", "")(frames["papers"])
    frames["mentions"] = set_cell(2, "curie", "MESH:D1")(frames["mentions"])
    report = gate.validate_batch(frames, batch=3)

    by_suite = {f.suite: f for f in report.row_failures}
    assert by_suite.keys() == {"papers", "mentions"}
    title = by_suite["papers"]
    assert (title.paper_id, title.key, title.column, title.value) == (PMC, (PMC,), "title", "")
    assert title.expectation == LENGTHS
    mention = by_suite["mentions"]
    assert mention.paper_id == PMC
    assert mention.key == (PMC, "MESH:D1", 1)
    assert (mention.column, mention.value) == ("curie", "MESH:D1")
    assert report.failed_papers() == {PMC}
    assert report.failure_share(total_rows=20) == pytest.approx(2 / 20)


def test_row_failure_without_paper_id_has_empty_paper(gate: QualityGate) -> None:
    frames = clean_frames()
    frames["authors"] = set_cell(3, "paper_id", None)(frames["authors"])
    report = gate.validate_batch(frames, batch=4)
    assert [(f.paper_id, f.key) for f in report.row_failures] == [("", (None, 1))]


def test_duplicate_rows_both_fail_and_count_once_in_the_share(gate: QualityGate) -> None:
    frames = clean_frames()
    frames["sections"] = duplicate_row(0)(frames["sections"])
    report = gate.validate_batch(frames, batch=5)
    assert [f.key for f in report.row_failures] == [(PMC, 0), (PMC, 0)]
    assert report.failure_share(total_rows=10) == pytest.approx(0.1)


def test_rows_are_found_whatever_the_frame_index(gate: QualityGate) -> None:
    frames = clean_frames()
    # labels repeat after a concatenation without ignore_index; a named index is read by GX
    # in place of the key columns
    frames["authors"] = set_cell(2, "name", "")(frames["authors"]).set_axis([0, 1, 0, 1])
    frames["sections"] = frames["sections"].rename_axis("row")
    report = gate.validate_batch(frames, batch=11)
    assert [(f.suite, f.key) for f in report.row_failures] == [("authors", (ARXIV, 1))]


def test_entity_listed_in_both_listings_is_not_a_duplicate(gate: QualityGate) -> None:
    frames = clean_frames()
    entities = frames["entities"]
    assert entities.duplicated(["paper_id", "curie"]).any()
    assert gate.validate_batch(frames, batch=6).failed_expectations() == ()


@pytest.mark.parametrize(
    ("published_on", "passes"),
    [
        (dt.date(1800, 1, 1), True),
        (dt.date(1799, 12, 31), False),
        (dt.date(NEXT_YEAR, 12, 31), True),
        (dt.date(NEXT_YEAR + 1, 1, 1), False),
        (pd.Timestamp(NEXT_YEAR + 1, 1, 1), False),  # a datetime64 column is compared too
    ],
)
def test_publication_date_bounds(gate: QualityGate, published_on: object, passes: bool) -> None:
    frames = clean_frames()
    papers = frames["papers"]
    if isinstance(published_on, pd.Timestamp):
        papers["published_on"] = pd.to_datetime(papers["published_on"])
    papers.loc[0, "published_on"] = published_on
    report = gate.validate_batch(frames, batch=7)
    outcome = outcome_of(report, "papers", BETWEEN, "published_on")
    assert outcome.success is passes


def test_reference_count_gap_tolerance_is_a_parameter() -> None:
    frames = clean_frames()
    frames["papers"] = set_cell(0, "reference_count_gap", 7)(frames["papers"])
    lenient = QualityGate(SUITES_DIR, None, reference_count_gap_tolerance=10)
    assert lenient.validate_batch(frames, batch=1).failed_expectations() == ()


def test_empty_frames_pass(gate: QualityGate) -> None:
    frames = {kind: pd.DataFrame() for kind in BEFORE_LOAD_SUITES}
    report = gate.validate_batch(frames, batch=8)
    assert report.failed_expectations() == ()
    assert {o.element_count for o in report.outcomes} <= {0, None}


def test_frames_must_be_complete(gate: QualityGate) -> None:
    frames = clean_frames()
    del frames["mentions"]
    with pytest.raises(QualityGateError, match="mentions"):
        gate.validate_batch(frames, batch=9)
    frames = clean_frames()
    frames["sections"] = frames["sections"].drop(columns=["level"])
    with pytest.raises(QualityGateError, match="level"):
        gate.validate_batch(frames, batch=9)


def test_markdown_shows_failures(gate: QualityGate) -> None:
    frames = clean_frames()
    frames["papers"] = set_cell(0, "title", "a|b" * 400)(frames["papers"])
    markdown = gate.validate_batch(frames, batch=10).to_markdown()
    lines = markdown.splitlines()
    assert lines[0].startswith("| suite | expectation | column | success | observed")
    failed = [line for line in lines if "**no**" in line]
    assert len(failed) == 1
    assert failed[0].startswith("| papers | expect_column_value_lengths_to_be_between | title |")
    assert "\\|" in failed[0] and failed[0].endswith("| 1 | 33.33 |")


def test_suite_without_policy_is_rejected(tmp_path: Path) -> None:
    shutil.copytree(SUITES_DIR, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "authors.json"
    suite = json.loads(path.read_text(encoding="utf-8"))
    del suite["expectations"][0]["meta"]["policy"]
    path.write_text(json.dumps(suite), encoding="utf-8")
    with pytest.raises(SuiteError, match="policy"):
        QualityGate(tmp_path, None)


def test_suite_gx_cannot_read_is_rejected(tmp_path: Path) -> None:
    # GX logs and drops an expectation it cannot parse; the gate must not run without it
    shutil.copytree(SUITES_DIR, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "authors.json"
    suite = json.loads(path.read_text(encoding="utf-8"))
    suite["expectations"][0]["kwargs"] = {"colum": "paper_id"}
    path.write_text(json.dumps(suite), encoding="utf-8")
    with pytest.raises(SuiteError, match="rejected"):
        QualityGate(tmp_path, None)


def insert_consistent_tables(url: str, run_id: uuid.UUID) -> dict[str, int]:
    """Two papers with authors, entities, sections and mentions; returns rows per table."""
    with psycopg.connect(url) as conn:
        conn.execute("insert into ops.runs (run_id) values (%s)", (run_id,))
        lineage = (run_id, SHA)
        for paper_id, title in ((PMC, "Insulin"), (ARXIV, "Transformers")):
            conn.execute(
                "insert into core.papers (paper_id, source, title, seed_path, content_sha256,"
                " run_id, source_sha256) values (%s, 'PMC', %s, 'seeds/a.md', 'x', %s, %s)",
                (paper_id, title, *lineage),
            )
        author_id = conn.execute(
            "insert into core.authors (name, run_id, source_sha256) values ('Ada', %s, %s)"
            " returning author_id",
            lineage,
        ).fetchone()[0]  # type: ignore[index]
        for paper_id in (PMC, ARXIV):
            conn.execute(
                "insert into core.paper_authors values (%s, 1, %s, %s, %s)",
                (paper_id, author_id, *lineage),
            )
        for curie, kind in (("NCBIGene:3630", "gene"), ("MESH:D003920", "disease")):
            prefix, local = curie.split(":")
            conn.execute(
                "insert into core.entities (curie, prefix, local_id, entity_type,"
                " preferred_name, run_id, source_sha256) values (%s, %s, %s, %s, %s, %s, %s)",
                (curie, prefix, local, kind, local, *lineage),
            )
            conn.execute(
                "insert into core.paper_entities (paper_id, curie, listing, category,"
                " name_as_written, run_id, source_sha256) values (%s, %s, 'linked', 'Genes',"
                " %s, %s, %s)",
                (PMC, curie, local, *lineage),
            )
        for ordinal in (0, 1):
            conn.execute(
                "insert into core.sections (paper_id, ordinal, heading, level, heading_path,"
                " text, word_count, run_id, source_sha256)"
                " values (%s, %s, 'Intro', 2, '{Intro}', 'insulin', 1, %s, %s)",
                (PMC, ordinal, *lineage),
            )
        conn.execute(
            "insert into core.entity_mentions values (%s, 'NCBIGene:3630', 1, 1, 0, %s, %s)",
            (PMC, *lineage),
        )
    return {
        "core.papers": 2,
        "core.authors": 1,
        "core.paper_authors": 2,
        "core.entities": 2,
        "core.paper_entities": 2,
        "core.sections": 2,
        "core.entity_mentions": 1,
    }


@pytest.fixture
def loaded(db_url: str) -> Iterator[tuple[str, uuid.UUID, dict[str, int]]]:
    """A fresh database holding one consistent run: its url, run id and rows per table."""
    run_id = uuid.uuid4()
    expected = insert_consistent_tables(db_url, run_id)
    yield db_url, run_id, expected


def execute_unchecked(url: str, *statements: str) -> None:
    """Run statements with foreign keys off, to make rows the schema would refuse."""
    with psycopg.connect(url) as conn:
        conn.execute("set session_replication_role = replica")
        for statement in statements:
            conn.execute(statement)


def failed(report: QualityReport) -> set[tuple[str, str]]:
    """(suite, expectation) of every failed outcome."""
    return {(o.suite, o.expectation) for o in report.failed_expectations()}


def test_after_load_passes_on_consistent_tables(
    gate: QualityGate, loaded: tuple[str, uuid.UUID, dict[str, int]]
) -> None:
    url, run_id, expected = loaded
    report = gate.validate_tables(url, run_id, 1, expected)
    assert report.failed_expectations() == ()
    assert report.row_failures == ()
    suites = {o.suite for o in report.outcomes}
    assert {s for s, _, _, _ in suite_expectations("after_load")} == suites
    assert {o.checkpoint for o in report.outcomes} == {"after_load"}
    (counts,) = [o for o in report.outcomes if o.suite == "tables.run_rows"]
    assert (counts.success, counts.unexpected_count) == (True, 0)


def test_the_gate_never_writes_its_context_config_as_yaml(
    loaded: tuple[str, uuid.UUID, dict[str, int]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GX re-serialises an ephemeral context's whole config on every change, for a store
    # nothing reads; the gate skips it, and checks and Data Docs work without it
    from great_expectations.data_context.types.base import BaseYamlConfig

    def refused(self: object) -> str:
        raise AssertionError("the context config was serialised")

    monkeypatch.setattr(BaseYamlConfig, "to_yaml_str", refused)
    url, run_id, expected = loaded
    own = QualityGate(SUITES_DIR, tmp_path / "docs")
    assert own.validate_batch(clean_frames(), 1).failed_expectations() == ()
    assert own.validate_tables(url, run_id, 1, expected).failed_expectations() == ()
    assert own.build_data_docs("run").is_file()


@pytest.mark.skipif(not SOCKET_DIR.is_dir(), reason="no local PostgreSQL socket folder")
def test_after_load_over_a_unix_socket(
    gate: QualityGate, loaded: tuple[str, uuid.UUID, dict[str, int]]
) -> None:
    url, run_id, expected = loaded
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("the test server is not this machine's")
    socket_url = f"postgresql://{parts.username}@{parts.path}?host={SOCKET_DIR}"
    try:
        psycopg.connect(socket_url, connect_timeout=3).close()
    except psycopg.OperationalError:
        pytest.skip("the server does not listen on the socket folder")
    report = gate.validate_tables(socket_url, run_id, 1, expected)
    assert report.failed_expectations() == ()


def test_after_load_fails_on_a_wrong_row_count(
    gate: QualityGate, loaded: tuple[str, uuid.UUID, dict[str, int]]
) -> None:
    url, run_id, expected = loaded
    report = gate.validate_tables(url, run_id, 2, {**expected, "core.papers": 3})
    assert failed(report) == {("tables.run_rows", RUN_ROWS)}
    outcome = report.failed_expectations()[0]
    assert outcome.observed_value == ["core.papers: 2 rows carry this run, 3 were written"]
    assert (outcome.unexpected_count, outcome.element_count) == (1, len(expected))
    # another run wrote none of these rows
    other = gate.validate_tables(url, uuid.uuid4(), 1, {"core.papers": 0})
    assert failed(other) == set()


@dataclass(frozen=True)
class TableCase:
    name: str
    statements: tuple[str, ...]  # "{run}" stands for the run id
    suite: str
    expectation: str
    column: str | None


ROW_COUNT = "expect_table_row_count_to_equal"
RUN_ROWS = "expect_column_values_to_be_in_set"

# one case per after-load expectation except the run row counts (tested on their own); keys
# and not-null columns are enforced by the schema, so those cases drop the constraint first
TABLE_CASES = [
    TableCase(
        "paper-without-title",
        (
            "alter table core.papers alter column title drop not null",
            f"update core.papers set title = null where paper_id = '{ARXIV}'",
        ),
        "tables.papers",
        NOT_NULL,
        "title",
    ),
    TableCase(
        "paper-with-empty-title",
        (
            "alter table core.papers drop constraint papers_title_check",
            f"update core.papers set title = '' where paper_id = '{ARXIV}'",
        ),
        "tables.papers",
        LENGTHS,
        "title",
    ),
    TableCase(
        "paper-without-id",
        (
            "alter table core.papers drop constraint papers_pkey cascade",
            "alter table core.papers alter column paper_id drop not null",
            "insert into core.papers (paper_id, source, title, seed_path, content_sha256, run_id,"
            f" source_sha256) values (null, 'PMC', 'no id', 's', 'x', '{{run}}', '{SHA}')",
        ),
        "tables.papers",
        NOT_NULL,
        "paper_id",
    ),
    TableCase(
        "paper-twice",
        (
            "alter table core.papers drop constraint papers_pkey cascade",
            "insert into core.papers (paper_id, source, title, seed_path, content_sha256, run_id,"
            f" source_sha256) values ('{PMC}', 'PMC', 'again', 's', 'x', '{{run}}', '{SHA}')",
        ),
        "tables.papers",
        UNIQUE,
        "paper_id",
    ),
    TableCase(
        "entity-without-curie",
        (
            "alter table core.entities drop constraint entities_pkey cascade",
            "alter table core.entities alter column curie drop not null",
            "insert into core.entities values (null, 'NCBIGene', '1', 'gene', 'A1BG', null, null,"
            f" null, '{{run}}', '{SHA}')",
        ),
        "tables.entities",
        NOT_NULL,
        "curie",
    ),
    TableCase(
        "entity-twice",
        (
            "alter table core.entities drop constraint entities_pkey cascade",
            "insert into core.entities values ('NCBIGene:3630', 'NCBIGene', '3630', 'gene',"
            f" 'INS', null, null, null, '{{run}}', '{SHA}')",
        ),
        "tables.entities",
        UNIQUE,
        "curie",
    ),
    TableCase(
        "paper-entity-twice",
        (
            "alter table core.paper_entities drop constraint paper_entities_pkey",
            f"insert into core.paper_entities values ('{PMC}', 'MESH:D003920', 'linked',"
            f" 'Diseases', 'x', null, '{{run}}', '{SHA}')",
        ),
        "tables.paper_entities",
        COMPOUND_UNIQUE,
        "paper_id,curie,listing",
    ),
    TableCase(
        "section-twice",
        (
            "alter table core.sections drop constraint sections_pkey cascade",
            f"insert into core.sections values ('{PMC}', 1, 'Again', 2, '{{{{}}}}', 't', 1,"
            f" '{{run}}', '{SHA}')",
        ),
        "tables.sections",
        COMPOUND_UNIQUE,
        "paper_id,ordinal",
    ),
    TableCase(
        "paper-entity-without-entity",
        (
            f"insert into core.paper_entities values ('{PMC}', 'MONDO:0000001', 'linked',"
            f" 'Diseases', 'x', null, '{{run}}', '{SHA}')",
        ),
        "tables.orphan_paper_entities",
        ROW_COUNT,
        None,
    ),
    TableCase(
        "paper-author-without-author",
        (f"insert into core.paper_authors values ('{ARXIV}', 2, 999999, '{{run}}', '{SHA}')",),
        "tables.orphan_paper_authors",
        ROW_COUNT,
        None,
    ),
    TableCase(
        "mention-without-section",
        (
            f"insert into core.entity_mentions values ('{PMC}', 'MESH:D003920', 7, 1, 0,"
            f" '{{run}}', '{SHA}')",
        ),
        "tables.orphan_entity_mentions",
        ROW_COUNT,
        None,
    ),
    TableCase(
        "mention-without-entity",
        (
            f"insert into core.entity_mentions values ('{PMC}', 'MESH:D999999', 1, 1, 0,"
            f" '{{run}}', '{SHA}')",
        ),
        "tables.orphan_entity_mentions",
        ROW_COUNT,
        None,
    ),
    TableCase(
        "papers-drifted-away",  # the run before had far more papers than the tables hold now
        (
            "insert into ops.runs (run_id, started_at, status, metrics) values"
            " (gen_random_uuid(), now() - interval '1 day', 'completed',"
            """ '{{"papers": 100, "papers_with_fulltext": 1, "entities": 1}}')""",
        ),
        "tables.drift",
        RUN_ROWS,
        "drift_check",
    ),
    TableCase(
        "sections-lost",  # an updated paper whose full text now parses to nothing
        (
            "insert into ops.run_changes (run_id, paper_id, change, sections_before,"
            f" sections_after) values ('{{run}}', '{PMC}', 'updated', 5, 0)",
        ),
        "tables.drift_sections",
        RUN_ROWS,
        "sections_check",
    ),
]


def test_every_after_load_expectation_has_a_failing_case() -> None:
    in_suites = {(s, e, c) for s, e, c, _ in suite_expectations("after_load")}
    in_cases = {(c.suite, c.expectation, c.column) for c in TABLE_CASES}
    # the run row counts: test_after_load_fails_on_a_wrong_row_count
    assert in_cases | {("tables.run_rows", RUN_ROWS, "row_count_check")} == in_suites


@pytest.mark.parametrize("case", TABLE_CASES, ids=lambda case: case.name)
def test_after_load_expectation_fails_on_its_case(
    gate: QualityGate, loaded: tuple[str, uuid.UUID, dict[str, int]], case: TableCase
) -> None:
    url, run_id, _ = loaded
    execute_unchecked(url, *(s.format(run=run_id) for s in case.statements))
    # no row counts asked for: the rows the cases add are written by this run too
    report = gate.validate_tables(url, run_id, 3, {})
    assert {(o.suite, o.expectation, o.column) for o in report.failed_expectations()} == {
        (case.suite, case.expectation, case.column)
    }
    if case.expectation == ROW_COUNT:
        assert report.failed_expectations()[0].observed_value == 1


def test_data_docs_show_every_suite(
    tmp_path: Path, loaded: tuple[str, uuid.UUID, dict[str, int]]
) -> None:
    url, run_id, expected = loaded
    docs_gate = QualityGate(SUITES_DIR, tmp_path / "docs")
    docs_gate.validate_batch(clean_frames(), batch=1)
    docs_gate.validate_tables(url, run_id, 1, {"core.papers": expected["core.papers"]})
    index = docs_gate.build_data_docs()
    assert index == tmp_path / "docs" / "index.html"
    html = index.read_text(encoding="utf-8")
    suites = {s for s, _, _, _ in suite_expectations("before_load")}
    suites |= {s for s, _, _, _ in suite_expectations("after_load")}
    for suite in suites:
        # a link to the suite's validation result, not only to the suite itself
        assert f"validations/{suite.replace('.', '/')}/" in html, suite


def test_data_docs_need_a_folder() -> None:
    with pytest.raises(QualityGateError):
        QualityGate(SUITES_DIR, None).build_data_docs()


def test_empty_report() -> None:
    report = QualityReport((), ())
    assert report.failure_share(0) == 0.0
    assert report.to_markdown().count("\n") == 2


def test_whole_number_columns_reach_gx_as_numpy_ints_unless_a_value_is_missing() -> None:
    frame = pd.DataFrame(
        {"ordinal": pd.array([0, 1], dtype="Int64"), "level": pd.array([1, None], dtype="Int64")}
    )
    ready = prepared("sections", frame, ["ordinal", "level"])
    # GX checks int64 bounds vectorised, Int64 value by value: the same verdicts, faster
    assert str(ready["ordinal"].dtype) == "int64" and str(ready["level"].dtype) == "Int64"
    assert ready["ordinal"].tolist() == [0, 1] and str(frame["ordinal"].dtype) == "Int64"
