"""Quality gates through the flow: bad rows quarantined, results published, the threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.ingest import DataQualityError, ingest
from flows.quality.suites import SUITES_DIR
from flows.settings import get_settings
from tests.helpers import REAL_FULLTEXT, REAL_SEED, query, snapshot, write_seed
from tests.http_server import ScriptedHTTPServer, markdown

pytestmark = pytest.mark.usefixtures("prefect_server")

LONG_NAME = "Dr " + "x" * 1000  # longer than the authors suite allows


def seed_text(paper_id: str) -> str:
    return REAL_SEED.read_text("utf-8").replace("PMC12809390", paper_id)


@pytest.fixture
def seeds(tmp_path: Path, http_server: ScriptedHTTPServer) -> Path:
    folder = tmp_path / "seeds"
    for paper_id in ("PMC1", "PMC2", "PMC3"):
        http_server.route(f"/paper/{paper_id}/full.md", markdown(REAL_FULLTEXT.read_text("utf-8")))
        write_seed(folder, f"{paper_id}.md", seed_text(paper_id), http_server.base_url)
    return folder


DOCS_URL = "http://docs.tomeflow.test/data_docs/"


@pytest.fixture
def with_data_docs(tomeflow_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's runs build Great Expectations Data Docs (with a gate of their own)."""
    monkeypatch.setenv("TOMEFLOW_DATA_DOCS", "true")
    monkeypatch.setenv("TOMEFLOW_DATA_DOCS_URL", DOCS_URL)
    get_settings.cache_clear()


def corrupt(seeds: Path, base_url: str) -> None:
    """PMC2 gets an impossible date (the paper is refused); PMC3 an overlong author name."""
    write_seed(seeds, "PMC2.md", seed_text("PMC2").replace("2025-11-10", "1700-01-01"), base_url)
    write_seed(
        seeds,
        "PMC3.md",
        seed_text("PMC3").replace(
            "**Authors:** Enis Kostallari", f"**Authors:** Enis Kostallari, {LONG_NAME}, Ann Other"
        ),
        base_url,
    )


def artifacts_of(flow_run_id: object) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: str(a.data) for a in found if a.key}


def test_bad_rows_are_quarantined_with_the_expectation_and_the_rest_loads(
    seeds: Path, tomeflow_env: str, http_server: ScriptedHTTPServer, with_data_docs: None
) -> None:
    corrupt(seeds, http_server.base_url)
    summary = ingest(seeds=str(seeds))
    url = tomeflow_env
    assert summary.status == "completed"
    assert {r[0] for r in query(url, "select paper_id from core.papers")} == {"PMC1", "PMC3"}
    # PMC3 loads without the bad author; the others keep their positions
    assert query(
        url,
        """select pa.position, a.name from core.paper_authors pa join core.authors a using (author_id)
           where paper_id = 'PMC3' order by position""",
    ) == [(1, "Enis Kostallari"), (3, "Ann Other")]
    rows = query(
        url,
        """select paper_id, stage, rejected_whole, reason, payload->>'expectation', payload->>'value'
           from ops.quarantine where stage = 'validate' order by paper_id""",
    )
    assert [r[:3] for r in rows] == [("PMC2", "validate", True), ("PMC3", "validate", False)]
    assert rows[0][4] == "expect_column_values_to_be_between" and rows[0][5] == "1700-01-01"
    assert "published_on" in rows[0][3]
    assert rows[1][4] == "expect_column_value_lengths_to_be_between" and rows[1][5] == LONG_NAME

    # every expectation of the run is in ops.dq_results, the two failures with their counts
    (run_id,) = query(url, "select run_id from ops.runs")[0]
    failed = query(
        url,
        """select checkpoint, suite, expectation, column_name, unexpected_count
           from ops.dq_results where run_id = %s and not success order by suite""",
        run_id,
    )
    assert failed == [
        ("before_load", "authors", "expect_column_value_lengths_to_be_between", "name", 1),
        ("before_load", "papers", "expect_column_values_to_be_between", "published_on", 1),
    ]
    suites = {r[0] for r in query(url, "select distinct suite from ops.dq_results")}
    assert suites == {p.stem for p in SUITES_DIR.glob("*.json")}
    assert query(url, "select dq_failed_expectations from ops.runs") == [(2,)]

    # the Prefect UI shows the table and the summary names the Data Docs
    artifacts = artifacts_of(run_id)
    # a table artifact now (issue 13): the UI renders rows, identifiers and values literally
    table = json.loads(artifacts["ingest-data-quality"])
    (dates,) = [r for r in table if (r["suite"], r["column"]) == ("papers", "published_on")]
    assert (dates["checkpoint"], dates["policy"], dates["success"]) == (
        "before_load",
        "quarantine",
        "no (1 of 1 batches)",
    )
    assert "1700-01-01" in dates["offending value"] and dates["unexpected"] == 1
    quarantined = json.loads(artifacts["ingest-quarantine"])
    assert {(r["document"], r["stage"], r["suite"]) for r in quarantined} == {
        ("PMC2.md", "validate", "papers"),
        ("PMC3.md", "validate", "authors"),
    }
    # the summary points at the served Data Docs, not at a path on the worker's disk
    assert DOCS_URL in artifacts["ingest-summary"]
    assert str(summary.data_docs) not in artifacts["ingest-summary"]
    assert "data quality: " in summary.to_text() and "data docs: " in summary.to_text()


def test_data_docs_show_every_suite_of_the_run(
    seeds: Path, tomeflow_env: str, with_data_docs: None
) -> None:
    summary = ingest(seeds=str(seeds))
    assert summary.data_docs is not None and summary.data_docs.name == "index.html"
    pages = "".join(p.read_text("utf-8") for p in summary.data_docs.parent.rglob("*.html"))
    for suite in SUITES_DIR.glob("*.json"):
        assert suite.stem in pages, suite.stem


def test_a_batch_over_the_threshold_leaves_the_tables_untouched_and_fails_the_run(
    seeds: Path,
    tomeflow_env: str,
    http_server: ScriptedHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest(seeds=str(seeds))
    before = snapshot(tomeflow_env)

    # the next version of the seeds changes PMC1 and corrupts PMC2; no failure is tolerated
    write_seed(
        seeds,
        "PMC1.md",
        seed_text("PMC1").replace("Enis Kostallari", "E. Kostallari"),
        http_server.base_url,
    )
    corrupt(seeds, http_server.base_url)
    monkeypatch.setenv("TOMEFLOW_DQ_MAX_FAILURE_SHARE", "0")
    get_settings.cache_clear()
    state = ingest(seeds=str(seeds), return_state=True)

    assert state.is_failed()
    assert "expect_column_values_to_be_between(published_on)" in (state.message or "")
    # the refused batch's fetch log carries the run's id too: no false after-load alarm
    assert "after load" not in (state.message or "")
    with pytest.raises(DataQualityError, match="batch 1 not loaded"):
        state.result()
    assert snapshot(tomeflow_env) == before
    url = tomeflow_env
    status, message = query(url, "select status, message from ops.runs order by started_at")[-1]
    assert status == "failed" and "papers.expect_column_values_to_be_between" in message
    # why is on record: the quarantine rows and the dq results of the refused batch
    assert query(
        url,
        "select count(*) from ops.quarantine q join ops.runs r using (run_id) where r.status = 'failed'",
    ) == [(2,)]


def test_the_command_line_prints_what_loaded_and_exits_1_when_the_gate_fails(
    seeds: Path,
    tomeflow_env: str,
    http_server: ScriptedHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    with_data_docs: None,
) -> None:
    from flows.cli import main

    corrupt(seeds, http_server.base_url)
    monkeypatch.setenv("TOMEFLOW_DQ_MAX_FAILURE_SHARE", "0")
    get_settings.cache_clear()
    assert main(["run", "--seeds", str(seeds)]) == 1
    out, err = capsys.readouterr()
    assert "): failed" in out and "batch 1 not loaded" in out and "data docs: " in out
    assert "run failed: batch 1 not loaded" in err
