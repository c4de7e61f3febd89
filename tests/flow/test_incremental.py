"""Incremental runs and what a Prefect user sees: skips, --full-refresh, --only, task runs."""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)

from bench.synth import SynthPaper, make_paper, write_seeds
from flows import resources, watch
from flows.cli import main
from flows.fetch.limits import slot_key
from flows.ingest import ingest
from flows.seeds import batch as seeds_batch
from flows.settings import get_settings
from tests.helpers import query
from tests.http_server import ScriptedHTTPServer, markdown

pytestmark = pytest.mark.usefixtures("prefect_server")

TASKS_PER_BATCH = 7  # parse, the batch itself; in it read state, fetch, assemble, validate, load
TASKS_PER_RUN = 1  # validate-tables


@pytest.fixture
def papers(tmp_path: Path, http_server: ScriptedHTTPServer) -> list[SynthPaper]:
    made = [make_paper(i, http_server.base_url, fulltext_kb=2) for i in range(5)]
    for p in made:
        http_server.route(f"/paper/{p.paper_id}/full.md", markdown(p.fulltext))
    write_seeds(tmp_path / "seeds", made)
    return made


def requests_made(server: ScriptedHTTPServer) -> int:
    return len(server.requests())


def last_run(url: str) -> tuple[object, ...]:
    return query(
        url,
        """select papers_seen, papers_new, papers_updated, papers_unchanged, papers_failed,
                  papers_quarantined, status from ops.runs order by started_at desc limit 1""",
    )[0]


def test_an_unchanged_fresh_paper_costs_no_request(
    tmp_path: Path, tomeflow_env: str, http_server: ScriptedHTTPServer, papers: list[SynthPaper]
) -> None:
    seeds = str(tmp_path / "seeds")
    ingest(seeds=seeds)
    assert last_run(tomeflow_env) == (5, 5, 0, 0, 0, 0, "completed")
    made = requests_made(http_server)
    ingest(seeds=seeds)
    assert requests_made(http_server) == made
    assert last_run(tomeflow_env) == (5, 0, 0, 5, 0, 0, "completed")

    # a changed seed is fetched again (conditionally: its body is stored) and rewritten
    page = tmp_path / "seeds" / f"{papers[0].paper_id}.md"
    page.write_text(page.read_text("utf-8").replace("Synthetic study", "A study"), "utf-8")
    ingest(seeds=seeds)
    assert requests_made(http_server) == made + 1
    assert last_run(tomeflow_env) == (5, 0, 1, 4, 0, 0, "completed")


def test_full_refresh_redoes_everything(
    tmp_path: Path, tomeflow_env: str, http_server: ScriptedHTTPServer, papers: list[SynthPaper]
) -> None:
    seeds = str(tmp_path / "seeds")
    ingest(seeds=seeds)
    made = requests_made(http_server)
    loaded = dict(query(tomeflow_env, "select paper_id, run_id from core.papers"))
    summary = ingest(seeds=seeds, full_refresh=True)
    fresh = http_server.requests()[made:]
    assert len(fresh) == 5
    assert not any("If-None-Match" in r.headers or "If-Modified-Since" in r.headers for r in fresh)
    # the content did not change, so nothing counts as updated, but every row was rewritten
    assert (summary.counts.unchanged, summary.counts.fetch_statuses) == (5, {"fetched": 5})
    rewritten = dict(query(tomeflow_env, "select paper_id, run_id from core.papers"))
    assert set(rewritten.values()) == {summary.run_id} and summary.run_id not in loaded.values()


def test_only_reprocesses_the_named_papers(
    tmp_path: Path,
    tomeflow_env: str,
    http_server: ScriptedHTTPServer,
    papers: list[SynthPaper],
    capsys: pytest.CaptureFixture[str],
) -> None:
    seeds = str(tmp_path / "seeds")
    ingest(seeds=seeds)
    made = requests_made(http_server)
    named = papers[2].paper_id
    assert main(["run", "--seeds", seeds, "--only", named, "PMC404"]) == 0
    out = capsys.readouterr().out
    assert [r.path for r in http_server.requests()[made:]] == [f"/paper/{named}/full.md"]
    assert last_run(tomeflow_env) == (1, 0, 0, 1, 0, 0, "completed")
    assert "--only ids not found among the seeds: PMC404" in out
    run_id = query(tomeflow_env, "select run_id from ops.runs order by started_at desc limit 1")
    assert query(
        tomeflow_env, "select paper_id from core.papers where run_id = %s", run_id[0][0]
    ) == [(named,)]


def test_a_run_makes_a_few_task_runs_per_batch_not_per_paper(
    tmp_path: Path, tomeflow_env: str, papers: list[SynthPaper]
) -> None:
    summary = ingest(seeds=str(tmp_path / "seeds"), batch_size=2)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(summary.run_id)
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[summary.run_id]))
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[summary.run_id])
            )
        )
    batches = math.ceil(5 / 2)
    assert len(task_runs) == TASKS_PER_BATCH * batches + TASKS_PER_RUN
    # so a 10,000-paper run in batches of 500 makes 7 * 20 + 1 = 141 task runs
    assert TASKS_PER_BATCH * math.ceil(10_000 / 500) + TASKS_PER_RUN == 141
    # runs of one day told apart: the name carries the time (issue 13)
    assert re.fullmatch(rf"ingest-{dt.datetime.now(dt.UTC):%Y-%m-%d}T\d\d-\d\d-\d\d", flow_run.name)
    assert {"mode:incremental", "papers:5"} <= set(flow_run.tags)
    assert {a.key for a in artifacts} >= {
        "ingest-summary",
        "ingest-data-quality",
        "ingest-fetch-progress",
    }
    summary_md = next(str(a.data) for a in artifacts if a.key == "ingest-summary")
    for heading in ("## Full text", "## Data quality", "## Rows per table", "## Time"):
        assert heading in summary_md


def test_a_rerun_over_unchanged_seeds_starts_no_task_run(
    tmp_path: Path, tomeflow_env: str, papers: list[SynthPaper]
) -> None:
    ingest(seeds=str(tmp_path / "seeds"), batch_size=2)
    summary = ingest(seeds=str(tmp_path / "seeds"), batch_size=2)
    assert summary.counts.unchanged == 5
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[summary.run_id]))
        )
    # its seeds hashed in the flow, its batches done there: nothing for a task to do
    assert task_runs == []


def test_fetching_from_a_host_waits_for_its_slot_across_runs(
    tmp_path: Path, tomeflow_env: str, http_server: ScriptedHTTPServer, papers: list[SynthPaper]
) -> None:
    # another run (here: the test) fetches from the host: this run waits for the slot
    holder = psycopg.connect(tomeflow_env, autocommit=True)
    holder.execute("select pg_advisory_lock(%s)", (slot_key("127.0.0.1", 0),))
    done: list[object] = []
    run = threading.Thread(target=lambda: done.append(ingest(seeds=str(tmp_path / "seeds"))))
    run.start()
    # this test's database only: runs of other tests fetch (and hold slots) at the same time
    waiting = """select count(*) from pg_stat_activity
                 where application_name = 'tomeflow-fetch' and datname = current_database()"""
    deadline = time.monotonic() + 60
    while query(tomeflow_env, waiting) == [(0,)] and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the run to reach the slot, not standing in for it
    assert query(tomeflow_env, waiting) == [(1,)]
    time.sleep(0.5)
    assert requests_made(http_server) == 0  # not one request while the slot is taken
    holder.close()  # the other run ends (or dies): its slot is free at once
    run.join(timeout=120)
    assert done and requests_made(http_server) == 5
    # and the run let its own slot go
    held = """select l.objid from pg_locks l join pg_stat_activity a using (pid)
               where l.locktype = 'advisory' and l.granted and a.datname = current_database()
               and a.application_name = 'tomeflow-fetch'"""
    assert query(tomeflow_env, held) == []


def test_a_run_id_is_the_prefect_flow_run_id(
    tmp_path: Path, tomeflow_env: str, papers: list[SynthPaper]
) -> None:
    summary = ingest(seeds=str(tmp_path / "seeds"))
    (run_id,) = query(tomeflow_env, "select run_id from ops.runs")[0]
    assert run_id == summary.run_id and isinstance(run_id, uuid.UUID)


def test_a_run_with_nothing_to_write_parses_validates_and_documents_nothing(
    tmp_path: Path,
    tomeflow_env: str,
    http_server: ScriptedHTTPServer,
    papers: list[SynthPaper],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seeds = str(tmp_path / "seeds")
    ingest(seeds=seeds)
    made = requests_made(http_server)
    parsed: list[str] = []
    real_parse = seeds_batch.parse_summary
    monkeypatch.setattr(
        seeds_batch, "parse_summary", lambda raw, path: parsed.append(path) or real_parse(raw, path)
    )
    summary = ingest(seeds=seeds)
    assert requests_made(http_server) == made and parsed == []  # no request, no parsing
    assert summary.headline().endswith("nothing changed")
    assert summary.counts.rows_written == {} and summary.data_quality.tallies == {}
    assert query(
        tomeflow_env, "select count(*) from ops.dq_results where run_id = %s", summary.run_id
    ) == [(0,)]
    # one changed seed: only it is parsed, and only its batch is validated
    page = tmp_path / "seeds" / f"{papers[1].paper_id}.md"
    page.write_text(page.read_text("utf-8").replace("Synthetic study", "A study"), "utf-8")
    summary = ingest(seeds=seeds)
    assert parsed == [page.name] and summary.counts.updated == 1  # named as in the folder
    assert summary.data_quality.tallies and not summary.data_quality.failed


def test_the_gate_is_prepared_only_for_batches_with_new_or_changed_seeds(
    tmp_path: Path,
    tomeflow_env: str,
    papers: list[SynthPaper],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the gate imports Great Expectations and pandas (seconds of CPU): a batch prepares it in
    # the background before it fetches only when it will have rows to validate
    prepared: list[int] = []
    prepare = resources.Resources.prepare_gate
    monkeypatch.setattr(
        resources.Resources, "prepare_gate", lambda res: prepared.append(1) or prepare(res)
    )
    seeds = str(tmp_path / "seeds")
    ingest(seeds=seeds)
    assert prepared == [1]
    ingest(seeds=seeds)  # every seed unchanged and fresh
    monkeypatch.setenv("TOMEFLOW_FRESHNESS_HOURS", "0")
    get_settings.cache_clear()
    summary = ingest(seeds=seeds)  # every full text refetched and the same: no paper to write
    assert summary.counts.unchanged == len(papers) and prepared == [1]
    page = tmp_path / "seeds" / f"{papers[0].paper_id}.md"
    page.write_text(page.read_text("utf-8").replace("Synthetic study", "A study"), "utf-8")
    assert ingest(seeds=seeds).counts.updated == 1 and prepared == [1, 1]


def test_watchers_see_each_stage_reach_every_document(
    tmp_path: Path, tomeflow_env: str, papers: list[SynthPaper]
) -> None:
    seen: dict[str, int] = {}

    class Recorder:
        def started(self, documents: int) -> None:
            seen["documents"] = documents

        def advance(self, stage: str, count: int) -> None:
            seen[stage] = seen.get(stage, 0) + count

        def finished(self) -> None:
            seen["finished"] = 1

    stop = watch.listen(Recorder())
    try:
        ingest(seeds=str(tmp_path / "seeds"), batch_size=2)
    finally:
        stop()
    assert seen == {"documents": 5, **dict.fromkeys(watch.STAGES, 5), "finished": 1}


def test_the_cli_draws_a_bar_per_stage_on_a_terminal() -> None:
    import io

    from rich.console import Console

    out = io.StringIO()
    bars = watch.StageBars(Console(file=out, force_terminal=True, width=100))
    bars.started(4)
    for stage in watch.STAGES:
        bars.advance(stage, 4)
    bars.finished()
    text = out.getvalue()
    assert all(stage in text for stage in watch.STAGES) and "4/4" in text


def test_the_first_batch_changed_until_its_seeds_are_loaded_with_these_bytes(
    tmp_path: Path, tomeflow_env: str, empty_db_url: str, papers: list[SynthPaper]
) -> None:
    seeds = tmp_path / "seeds"
    assert resources.first_batch_changed(empty_db_url, seeds, 500)  # not migrated: all new
    assert resources.first_batch_changed(tomeflow_env, seeds, 500)  # migrated, nothing loaded
    ingest(seeds=str(seeds))
    assert not resources.first_batch_changed(tomeflow_env, seeds, 500)
    last = sorted(seeds.iterdir())[-1]
    last.write_text(last.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert not resources.first_batch_changed(tomeflow_env, seeds, 2)  # changed, in batch 3
    assert resources.first_batch_changed(tomeflow_env, seeds, 500)


def test_a_page_quarantined_whole_on_every_run_starts_no_gate_early(
    tmp_path: Path,
    tomeflow_env: str,
    papers: list[SynthPaper],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.quality import process

    seeds = tmp_path / "seeds"
    ingest(seeds=str(seeds))
    (seeds / "0-broken.md").write_text("a page without its title\n", encoding="utf-8")
    # new bytes, first in the first batch, but the flow reads no paper from them
    assert not resources.first_batch_changed(tomeflow_env, seeds, 500)
    started: list[object] = []
    monkeypatch.setattr(process, "start_early", started.append)
    assert main(["run", "--seeds", str(seeds)]) == 0
    assert started == []  # no gate's process to start and then wait for
    out = capsys.readouterr().out
    assert "0 new, 0 updated" in out and "1 quarantined" in out
    good = sorted(seeds.glob("P*"))[0]
    good.write_text(good.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert resources.first_batch_changed(tomeflow_env, seeds, 500)  # a seed that reads


def test_tomeflow_run_starts_the_gate_before_prefect_and_the_run_takes_it(
    tmp_path: Path,
    tomeflow_env: str,
    papers: list[SynthPaper],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.quality import process

    monkeypatch.setenv("TOMEFLOW_DATA_DOCS", "true")  # the run's own gate (tomeflow_env)
    get_settings.cache_clear()
    started: list[object] = []
    taken: list[object] = []
    start, take = process.start_early, process.take_early
    monkeypatch.setattr(process, "start_early", lambda spec: started.append(start(spec)))
    monkeypatch.setattr(process, "take_early", lambda spec: taken.append(take(spec)) or taken[-1])
    seeds = str(tmp_path / "seeds")
    assert main(["run", "--seeds", seeds]) == 0
    assert len(started) == 1 and [type(t) for t in taken] == [process.GateProcess]
    assert process._early == {}
    assert main(["run", "--seeds", seeds]) == 0  # nothing changed: no gate, early or late
    assert len(started) == 1 and len(taken) == 1 and process._early == {}
