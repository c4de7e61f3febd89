"""What a run changed (ops.run_changes, analytics.run_diff, the summary) and the drift gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.states import State

from bench.synth import SynthPaper, make_paper, write_seeds
from flows.ingest import ingest
from flows.report import RunSummary
from tests.helpers import query
from tests.http_server import ScriptedHTTPServer, markdown, status

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def corpus(
    tmp_path: Path,
    tomeflow_env: str,
    http_server: ScriptedHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> list[SynthPaper]:
    """Papers served by the local server; every run asks for every full text again."""
    count = getattr(request, "param", 6)
    monkeypatch.setenv("TOMEFLOW_FRESHNESS_HOURS", "0")
    made = [make_paper(i, http_server.base_url, fulltext_kb=1) for i in range(count)]
    for p in made:
        http_server.route(f"/paper/{p.paper_id}/full.md", markdown(p.fulltext))
    write_seeds(tmp_path / "seeds", made)
    return made


def run(seeds: Path) -> State[Any]:
    return ingest(seeds=str(seeds), return_state=True)  # type: ignore[call-overload,no-any-return]


def summary_of(state: State[Any]) -> RunSummary:
    result = state.result(raise_on_failure=False)
    assert isinstance(result, RunSummary), result
    return result


def summary_artifact(state: State[Any]) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    return next(str(a.data) for a in found if a.key == "ingest-summary")


def gone(http_server: ScriptedHTTPServer, paper: SynthPaper) -> None:
    http_server.route(f"/paper/{paper.paper_id}/full.md", status(404))


def test_run_diff_shows_a_removed_a_changed_and_a_lost_full_text(
    tmp_path: Path,
    tomeflow_env: str,
    http_server: ScriptedHTTPServer,
    corpus: list[SynthPaper],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOMEFLOW_DRIFT_MAX_DROP", "0.5")  # this test is about the report
    seeds = tmp_path / "seeds"
    first = run(seeds)
    assert first.is_completed()
    added = query(tomeflow_env, "select count(*) from ops.run_changes where change = 'added'")
    assert added == [(6,)]

    removed, changed, lost = corpus[0], corpus[1], corpus[2]
    (seeds / f"{removed.paper_id}.md").unlink()
    page = seeds / f"{changed.paper_id}.md"
    page.write_text(page.read_text("utf-8").replace("Synthetic study", "A study"), "utf-8")
    gone(http_server, lost)
    second = run(seeds)

    papers = {
        item: (change, details)
        for kind, item, change, details in query(
            tomeflow_env, "select kind, item, change, details from analytics.run_diff"
        )
        if kind == "paper"
    }
    assert set(papers) == {removed.paper_id, changed.paper_id, lost.paper_id}
    assert papers[removed.paper_id] == ("removed", [])
    assert papers[changed.paper_id] == ("updated", ["title"])
    change, details = papers[lost.paper_id]
    assert change == "updated"
    assert "full text: fetched -> not_found" in details
    assert "fulltext_status" in details
    # tables: the rows after the run before beside the rows now; a removed paper's rows stay
    tables = {
        item: (before, now)
        for kind, item, _, before, now in query(
            tomeflow_env, "select kind, item, change, before_rows, now_rows from analytics.run_diff"
        )
        if kind == "table"
    }
    assert tables["core.papers"] == (6, 6)
    assert query(tomeflow_env, "select papers, papers_with_fulltext from ops.current_metrics") == [
        (5, 4)
    ]

    summary = summary_of(second)
    assert (summary.changes.added, summary.changes.updated, summary.changes.removed) == (0, 2, 1)
    text = summary.to_text()
    assert "0 papers added, 2 updated, 1 removed from the seeds" in text
    assert f"{changed.paper_id}: updated (title)" in text
    assert text.index("changes since the run before") < text.index("rows per table")
    artifact = summary_artifact(second)
    tables_section = artifact[artifact.index("## Rows per table") :]
    assert tables_section.split("\n")[2].startswith("Changes since the run before")
    assert "| after the run before |" in tables_section

    # reported once: a third run over the same seeds finds nothing new removed
    run(seeds)
    assert query(tomeflow_env, "select count(*) from ops.run_changes where change = 'removed'") == [
        (1,)
    ]


def test_a_seed_quarantined_whole_is_not_counted_removed(
    tmp_path: Path, tomeflow_env: str, corpus: list[SynthPaper]
) -> None:
    seeds = tmp_path / "seeds"
    run(seeds)
    (seeds / f"{corpus[0].paper_id}.md").write_text("not a summary page\n", "utf-8")
    run(seeds)
    assert query(tomeflow_env, "select count(*) from ops.run_changes where change = 'removed'") == [
        (0,)
    ]
    quarantined = query(tomeflow_env, "select document from ops.quarantine")
    assert quarantined == [(f"{corpus[0].paper_id}.md",)]


@pytest.mark.parametrize("corpus", [20], indirect=True)
def test_losing_a_tenth_of_the_full_texts_trips_the_drift_gate(
    tmp_path: Path, tomeflow_env: str, http_server: ScriptedHTTPServer, corpus: list[SynthPaper]
) -> None:
    seeds = tmp_path / "seeds"
    assert run(seeds).is_completed()
    gone(http_server, corpus[3])
    steady = run(seeds)  # 1 of 20: 5%, the threshold itself, passes
    assert steady.is_completed()
    gone(http_server, corpus[4])
    gone(http_server, corpus[5])  # 2 more of the 19 the last completed run had: 10.5%
    tripped = run(seeds)
    assert tripped.is_failed()
    drift = query(
        tomeflow_env,
        """select d.success, d.observed_value::text from ops.dq_results d
           join ops.runs r using (run_id) where d.suite = 'tables.drift'
           and r.run_id = %s""",
        tripped.state_details.flow_run_id,
    )
    assert drift == [(False, drift[0][1])]
    assert "papers_with_fulltext fell from 19 to 17" in drift[0][1]
    status_row = query(
        tomeflow_env, "select status, message from ops.runs where run_id = %s",
        tripped.state_details.flow_run_id,
    )  # fmt: skip
    assert status_row[0][0] == "failed"
    assert "tables.drift" in status_row[0][1]

    # the baseline is the last completed run: rerunning does not make the loss acceptable
    again = run(seeds)
    assert again.is_failed()


def test_the_summary_counts_the_rows_this_run_wrote_shared_and_ops_rows_included(
    tmp_path: Path, tomeflow_env: str, http_server: ScriptedHTTPServer, corpus: list[SynthPaper]
) -> None:
    # a first run made every entity, wrote one quarantine row (the 404) and its quality rows:
    # "written now" says so, as the tables do, not 0 beside the totals
    gone(http_server, corpus[0])
    seeds = tmp_path / "seeds"
    summary = summary_of(run(seeds))
    c = summary.counts
    for table in ("core.entities", "core.entity_aliases", "ops.quarantine", "ops.dq_results"):
        (carried,) = query(tomeflow_env, f"select count(*) from {table} where run_id = %s",
                           summary.run_id)[0]  # fmt: skip
        assert c.this_run(table) == carried > 0, table
    assert c.this_run("ops.quarantine") == 1
    line = next(s for s in summary.to_text().splitlines() if s.strip().startswith("core.entities"))
    assert line.split()[1:3] == [str(c.this_run("core.entities"))] * 2  # written now, in all
    # a second run changes nothing: nothing is written now, whatever the totals
    again = summary_of(run(seeds))
    assert again.counts.this_run("core.entities") == 0
