"""Full text through the flow: faults, healing, conditional requests, offline replay."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import pytest

from bench.synth import SynthPaper, make_paper, write_seeds
from flows.fulltext import parse_fulltext
from flows.ingest import ingest
from tests.helpers import CORE_TABLES, query, snapshot
from tests.http_server import Reply, ScriptedHTTPServer, markdown, status

pytestmark = pytest.mark.usefixtures("prefect_server")

RUN_COLUMNS = ("run_id", "loaded_at")


def papers_for(server: ScriptedHTTPServer, count: int) -> list[SynthPaper]:
    """count synthetic papers whose full texts the server serves (2 KB each)."""
    papers = [make_paper(i, server.base_url, fulltext_kb=2) for i in range(count)]
    for p in papers:
        server.route(f"/paper/{p.paper_id}/full.md", markdown(p.fulltext))
    return papers


def path_of(paper: SynthPaper) -> str:
    return f"/paper/{paper.paper_id}/full.md"


def faults() -> dict[str, tuple[list[Reply], str]]:
    """One failing script per kind of fault, with the status the paper should end with."""
    return {
        "not_found": ([status(404)], "not_found"),
        "server_error": ([status(500)], "failed"),
        "html": ([markdown("<!DOCTYPE html><html><body>login</body></html>")], "bad_content"),
        "too_large": ([markdown("# big\n\n" + "x" * 300_000)], "too_large"),
        "reset": ([Reply(reset=True)], "failed"),
    }


def test_a_tenth_failing_loads_the_rest_and_a_rerun_after_healing_fills_them_in(
    tmp_path: Path,
    tomeflow_env: str,
    http_server: ScriptedHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOMEFLOW_MAX_BODY_BYTES", "200000")
    papers = papers_for(http_server, 50)
    # five papers fail for good, in assorted ways; two more fail once and then recover
    broken = dict(zip(papers[:5], faults().items(), strict=True))
    for paper, (_, (script, _)) in broken.items():
        http_server.route(path_of(paper), *script)
    http_server.route(
        path_of(papers[5]),
        status(429, headers={"Retry-After": "0"}),
        markdown(papers[5].fulltext),
    )
    http_server.route(
        path_of(papers[6]), Reply(body=papers[6].fulltext.encode(), truncate_after=100),
        markdown(papers[6].fulltext),
    )  # fmt: skip
    write_seeds(tmp_path / "seeds", papers)

    first = ingest(seeds=str(tmp_path / "seeds"), batch_size=20)
    url = tomeflow_env
    assert (first.counts.new, first.counts.failed) == (50, 5)
    statuses = dict(query(url, "select paper_id, fulltext_status from core.papers"))
    for paper, (kind, (_, expected)) in broken.items():
        assert statuses[paper.paper_id] == expected, kind
    assert sum(s == "fetched" for s in statuses.values()) == 45
    # the failed ones keep their summary rows and say why, in three places
    assert query(
        url,
        "select count(*) from core.papers where fulltext_error is not null and title <> ''",
    ) == [(5,)]
    assert query(url, "select count(*) from analytics.papers_without_fulltext") == [(5,)]
    assert query(
        url, "select count(distinct paper_id) from ops.quarantine where stage = 'fetch'"
    ) == [(5,)]
    # every attempt is in the fetch log: retries of the 500 and the recovered ones included
    attempts = dict(query(url, "select paper_id, count(*) from raw.fetches group by paper_id"))
    assert attempts[papers[1].paper_id] == 3  # 500, retried twice
    assert attempts[papers[5].paper_id] == 2 and attempts[papers[6].paper_id] == 2
    assert query(
        url, "select error_class from raw.fetches where paper_id = %s", papers[5].paper_id
    ) == [("RateLimited",), (None,)]

    hits_before = {p.paper_id: http_server.hits(path_of(p)) for p in papers}
    for paper in broken:
        http_server.heal(path_of(paper), markdown(paper.fulltext))
    second = ingest(seeds=str(tmp_path / "seeds"), batch_size=20)
    assert (second.counts.new, second.counts.updated, second.counts.unchanged) == (0, 5, 45)
    assert second.counts.failed == 0
    # only the five that failed were asked again: fresh full texts cost no request
    for p in papers:
        assert http_server.hits(path_of(p)) - hits_before[p.paper_id] == (1 if p in broken else 0)
    sections = sum(len(parse_fulltext(p.fulltext).sections) for p in papers)
    references = sum(len(parse_fulltext(p.fulltext).references) for p in papers)
    assert query(
        url, "select count(*), count(distinct (paper_id, ordinal)) from core.sections"
    ) == [(sections, sections)]
    assert query(url, "select count(*) from core.paper_references") == [(references,)]
    assert query(url, "select count(*) from core.papers where fulltext_status = 'fetched'") == [
        (50,)
    ]


def test_the_fetch_log_and_papers_record_what_came_back(
    tmp_path: Path, tomeflow_env: str, http_server: ScriptedHTTPServer
) -> None:
    (paper,) = papers_for(http_server, 1)
    http_server.route(
        path_of(paper),
        markdown(
            paper.fulltext,
            headers={"ETag": '"v1"', "Last-Modified": "Mon, 23 Nov 2026 10:00:00 GMT"},
        ),
    )
    write_seeds(tmp_path / "seeds", [paper])
    ingest(seeds=str(tmp_path / "seeds"))
    body = paper.fulltext.encode()
    sha = hashlib.sha256(body).hexdigest()
    assert query(
        tomeflow_env,
        """select url, attempt, status_code, bytes, sha256, etag, last_modified,
                  elapsed_ms >= 0, error_class, run_id is not null from raw.fetches""",
    ) == [
        (http_server.url(path_of(paper)), 1, 200, len(body), sha, '"v1"',
         "Mon, 23 Nov 2026 10:00:00 GMT", True, None, True)
    ]  # fmt: skip
    assert query(
        tomeflow_env,
        """select fulltext_status, fulltext_sha256, fulltext_etag, fulltext_fetched_at is not null,
                  stated_reference_count, parsed_reference_count
           from core.papers""",
    ) == [("fetched", sha, '"v1"', True, paper.fulltext.count("doi:10.5555/ref."),
           len(parse_fulltext(paper.fulltext).references))]  # fmt: skip
    user_agent = http_server.requests(path_of(paper))[0].headers["User-Agent"]
    assert user_agent.startswith("tomeflow/")


def test_a_stale_full_text_is_revalidated_and_a_304_reuses_the_stored_body(
    tmp_path: Path,
    tomeflow_env: str,
    http_server: ScriptedHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (paper,) = papers_for(http_server, 1)
    http_server.route(
        path_of(paper),
        markdown(paper.fulltext, headers={"ETag": '"v1"'}),
        status(304, headers={"ETag": '"v1"'}),
    )
    write_seeds(tmp_path / "seeds", [paper])
    ingest(seeds=str(tmp_path / "seeds"))
    before = snapshot(tomeflow_env, ("core.sections", "core.entity_mentions"))

    monkeypatch.setenv("TOMEFLOW_FRESHNESS_HOURS", "0")  # everything is stale
    from flows.settings import get_settings

    get_settings.cache_clear()
    again = ingest(seeds=str(tmp_path / "seeds"))
    second = http_server.requests(path_of(paper))[1]
    assert second.headers["If-None-Match"] == '"v1"'
    assert (again.counts.unchanged, again.counts.fetch_statuses) == (1, {"not_modified": 1})
    assert query(tomeflow_env, "select fulltext_status from core.papers") == [("not_modified",)]
    assert snapshot(tomeflow_env, ("core.sections", "core.entity_mentions")) == before


def test_offline_replay_rebuilds_identical_tables_without_the_network(
    tmp_path: Path, tomeflow_env: str, http_server: ScriptedHTTPServer
) -> None:
    papers = papers_for(http_server, 4)
    write_seeds(tmp_path / "seeds", papers)
    ingest(seeds=str(tmp_path / "seeds"))
    online = snapshot(tomeflow_env, CORE_TABLES, exclude=RUN_COLUMNS)
    hits = len(http_server.requests())

    # reparse and rewrite every paper from the raw layer
    replay = ingest(seeds=str(tmp_path / "seeds"), offline=True, full_refresh=True)
    assert replay.counts.fetch_statuses == {}
    assert snapshot(tomeflow_env, CORE_TABLES, exclude=RUN_COLUMNS) == online

    # and with the core tables gone, the raw layer alone brings the content back
    fetch_times = ("fulltext_fetched_at", "fulltext_checked_at", *RUN_COLUMNS)
    before = snapshot(tomeflow_env, CORE_TABLES, exclude=fetch_times)
    with psycopg.connect(tomeflow_env) as conn:
        conn.execute("truncate core.papers, core.entities, core.authors restart identity cascade")
    ingest(seeds=str(tmp_path / "seeds"), offline=True)
    assert snapshot(tomeflow_env, CORE_TABLES, exclude=fetch_times) == before
    assert len(http_server.requests()) == hits


def test_fetching_shows_progress_in_the_prefect_ui(
    tmp_path: Path, tomeflow_env: str, http_server: ScriptedHTTPServer
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    papers = papers_for(http_server, 6)
    write_seeds(tmp_path / "seeds", papers)
    ingest(seeds=str(tmp_path / "seeds"), batch_size=2)
    # a rerun with one seed changed: one fetch, five unchanged documents; the bar still ends full
    page = tmp_path / "seeds" / f"{papers[0].paper_id}.md"
    page.write_text(page.read_text("utf-8").replace("Synthetic study", "A study"), "utf-8")
    state = ingest(seeds=str(tmp_path / "seeds"), batch_size=4, return_state=True)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["ingest-fetch-progress"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )
    assert artifacts and artifacts[0].type == "progress"
    assert float(artifacts[0].data) == pytest.approx(100.0)  # type: ignore[arg-type]


def test_a_slow_url_fails_on_its_timeout_and_never_holds_up_the_others(
    tmp_path: Path, tomeflow_env: str, http_server: ScriptedHTTPServer
) -> None:
    papers = papers_for(http_server, 4)
    # answers only after 5 s, past the 1 s read timeout of every attempt (3 of them)
    http_server.route(path_of(papers[0]), markdown(papers[0].fulltext, delay=5.0))
    write_seeds(tmp_path / "seeds", papers)
    summary = ingest(seeds=str(tmp_path / "seeds"))
    assert summary.status == "completed"
    assert summary.counts.fetch_statuses == {"failed": 1, "fetched": 3}
    assert query(
        tomeflow_env,
        "select error_class, count(*) from raw.fetches where paper_id = %s group by 1",
        papers[0].paper_id,
    ) == [("ReadTimeout", 3)]
