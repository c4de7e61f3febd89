"""The ingest flow end to end: real Prefect flow, real PostgreSQL, the real seed.

Full texts come from a local HTTP server (tests/http_server.py) serving the fixture
tests/data/fulltext/PMC12809390.md; the seeds' tomesphere.com URLs are rewritten to it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from flows.ingest import ingest
from flows.load import entities as load_entities
from tests.helpers import REAL_FULLTEXT, REAL_SEED, query, snapshot, write_seed
from tests.http_server import ScriptedHTTPServer, markdown

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def seeds(tmp_path: Path, http_server: ScriptedHTTPServer) -> Path:
    folder = tmp_path / "seeds"
    for paper_id in ("PMC12809390", "PMC1", "PMC2"):
        http_server.route(
            f"/paper/{paper_id}/full.md", markdown(REAL_FULLTEXT.read_text(encoding="utf-8"))
        )
    write_seed(
        folder, "PMC12809390.md", REAL_SEED.read_text(encoding="utf-8"), http_server.base_url
    )
    return folder


def test_real_seed_loads_exact_rows(
    seeds: Path, tomeflow_env: str, http_server: ScriptedHTTPServer
) -> None:
    summary = ingest(seeds=str(seeds))
    url = tomeflow_env
    assert (summary.counts.new, summary.counts.quarantined) == (1, 0)

    (paper,) = query(
        url,
        """select paper_id, source, title, doi, journal, published_on, stated_reference_count,
                  fulltext_url, source_url, source_sha256 = content_sha256 or true
           from core.papers""",
    )
    assert paper == (
        "PMC12809390",
        "PMC",
        "Blood, sweat, tears and fibrosis: when overtraining injures the liver",
        "10.20517/evcna.2025.56",
        "Extracellular Vesicles and Circulating Nucleic Acids",
        dt.date(2025, 11, 10),
        14,
        f"{http_server.base_url}/paper/PMC12809390/full.md",
        f"{http_server.base_url}/paper/PMC12809390",
        True,
    )
    assert query(
        url,
        "select a.name, pa.position from core.paper_authors pa join core.authors a using (author_id)",
    ) == [("Enis Kostallari", 1)]
    assert [r[0] for r in query(url, "select ordinal from core.key_findings order by ordinal")] == [
        1,
        2,
        3,
    ]
    assert query(
        url,
        "select curie, entity_type, preferred_name, symbol, full_name, common_name from core.entities order by curie",
    ) == [
        ("MESH:C536030", "disease", "loss of skeletal muscle mass", None, None, None),
        ("MESH:D005234", "disease", "hepatic steatosis", None, None, None),
        ("MESH:D005355", "disease", "fibrosis", None, None, None),
        ("MESH:D007249", "disease", "inflammation", None, None, None),
        ("MESH:D008103", "disease", "liver fibrosis", None, None, None),
        ("MESH:D008107", "disease", "liver disease", None, None, None),
        ("MESH:D008659", "disease", "metabolic dysfunction", None, None, None),
        (
            "MONDO:0013209",
            "disease",
            "metabolic dysfunction-associated steatotic liver disease",
            None,
            None,
            None,
        ),
        ("NCBIGene:3630", "gene", "INS", "INS", "insulin", None),
        ("NCBITaxon:9606", "species", "Homo sapiens", None, None, "human"),
    ]
    assert query(
        url, "select count(*), count(*) filter (where listing = 'linked') from core.paper_entities"
    ) == [(10, 1)]
    assert query(
        url,
        "select alias, kind, paper_count from core.entity_aliases where curie = 'NCBIGene:3630' order by alias",
    ) == [
        ("IDDM", "alias", 1),
        ("IDDM1", "alias", 1),
        ("IDDM2", "alias", 1),
        ("ILPR", "alias", 1),
        ("INS", "name", 1),
        ("IRDN", "alias", 1),
        ("MODY10", "alias", 1),
        ("insulin", "full_name", 1),
    ]
    # every row carries the run that wrote it and its source document's hash
    (run_id,) = query(url, "select run_id from ops.runs")[0]
    sha = query(url, "select source_sha256 from core.papers")[0][0]
    for table in (
        "core.paper_authors",
        "core.key_findings",
        "core.paper_entities",
        "core.entity_aliases",
    ):
        assert query(url, f"select distinct run_id, source_sha256 from {table}") == [(run_id, sha)]
    assert query(url, "select status, papers_seen, papers_new from ops.runs") == [
        ("completed", 1, 1)
    ]


def test_second_run_changes_nothing(seeds: Path, tomeflow_env: str) -> None:
    ingest(seeds=str(seeds))
    before = snapshot(tomeflow_env)
    again = ingest(seeds=str(seeds))
    assert (again.counts.new, again.counts.updated, again.counts.unchanged) == (0, 0, 1)
    assert snapshot(tomeflow_env) == before
    assert query(tomeflow_env, "select papers_unchanged from ops.runs order by started_at") == [
        (0,),
        (1,),
    ]


def test_changed_seed_replaces_the_papers_rows(seeds: Path, tomeflow_env: str) -> None:
    ingest(seeds=str(seeds))
    page = seeds / "PMC12809390.md"
    text = page.read_text(encoding="utf-8")
    text = text.replace(", fibrosis (MESH:D005355)", "").replace(
        "- Excessive exercise may impair mitochondrial function and liver health.\n", ""
    )
    page.write_text(text, encoding="utf-8")

    summary = ingest(seeds=str(seeds))
    assert (summary.counts.updated, summary.counts.unchanged) == (1, 0)
    url = tomeflow_env
    curies = {r[0] for r in query(url, "select curie from core.paper_entities")}
    assert "MESH:D005355" not in curies and len(curies) == 9
    assert query(url, "select count(*) from core.entities where curie = 'MESH:D005355'") == [(0,)]
    assert query(url, "select count(*) from core.key_findings") == [(2,)]
    runs = [r[0] for r in query(url, "select run_id from ops.runs order by started_at")]
    assert query(url, "select distinct run_id from core.paper_entities") == [(runs[1],)]


def test_bad_documents_are_quarantined_and_the_rest_loads(seeds: Path, tomeflow_env: str) -> None:
    text = (seeds / "PMC12809390.md").read_text(encoding="utf-8")
    (seeds / "not-a-summary.md").write_text("just notes, no title\n", encoding="utf-8")
    (seeds / "PMC1.md").write_text(
        text.replace("PMC12809390", "PMC1").replace("(MESH:D005234)", "(MESH:X12)"),
        encoding="utf-8",
    )
    (seeds / "PMC2.md").write_text(
        text.replace("PMC12809390", "PMC2").replace(
            "- **Species:**", "- **Species** broken line\n- **Species:**"
        ),
        encoding="utf-8",
    )
    (seeds / "copy-of-PMC2.md").write_text(text.replace("PMC12809390", "PMC2"), encoding="utf-8")

    summary = ingest(seeds=str(seeds))
    url = tomeflow_env
    assert summary.counts.new == 3 and summary.counts.quarantined == 2
    assert {r[0] for r in query(url, "select paper_id from core.papers")} == {
        "PMC1",
        "PMC2",
        "PMC12809390",
    }
    rows = query(
        url,
        """select regexp_replace(document, '.*/', ''), stage, line, rejected_whole, reason
           from ops.quarantine order by 1, 2""",
    )
    assert [r[:4] for r in rows] == [
        ("PMC1.md", "normalise", 32, False),
        ("PMC2.md", "parse", 33, False),
        ("copy-of-PMC2.md", "parse", None, True),
        ("not-a-summary.md", "parse", 1, True),
    ]
    assert "MESH" in rows[0][4] and "X12" in rows[0][4]
    assert "duplicate paper id PMC2" in rows[2][4]
    # the paper with a bad identifier still loads its other nine entities
    assert query(url, "select count(*) from core.paper_entities where paper_id = 'PMC1'") == [(9,)]


def test_failure_inside_a_load_leaves_no_half_loaded_paper(
    seeds: Path, tomeflow_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed midway")

    monkeypatch.setattr(load_entities, "refresh_aliases", explode)
    with pytest.raises(RuntimeError, match="killed midway"):
        ingest(seeds=str(seeds))
    for table in ("core.papers", "core.paper_authors", "core.paper_entities", "core.entities"):
        assert query(tomeflow_env, f"select count(*) from {table}") == [(0,)]
    assert query(tomeflow_env, "select status, message from ops.runs") == [
        ("failed", "RuntimeError: killed midway")
    ]


def test_a_load_waiting_for_another_to_commit_says_so_apart_from_loading(
    seeds: Path, tomeflow_env: str
) -> None:
    import threading
    import time

    import psycopg

    from flows.batch import LOCK_WAIT
    from flows.load.loader import LOAD_LOCK

    def another_load(held: threading.Event) -> None:
        # holds the load lock until the run's load waits for it, then a little longer
        with psycopg.connect(tomeflow_env) as conn, conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (LOAD_LOCK,))
            held.set()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not query(
                tomeflow_env,
                "select 1 from pg_locks where locktype = 'advisory' and not granted and objid = %s",
                LOAD_LOCK,
            ):
                time.sleep(0.05)
            time.sleep(0.3)

    held = threading.Event()
    holder = threading.Thread(target=another_load, args=(held,))
    holder.start()
    try:
        assert held.wait(30)
        summary = ingest(seeds=str(seeds))
    finally:
        holder.join(90)
    assert summary.counts.new == 1
    assert summary.stage_seconds[LOCK_WAIT] >= 0.3
    assert "load" in summary.stage_seconds
    # the wall seconds a batch was loading: its wait for the lock among them
    busy = summary.stage_busy_seconds
    assert busy["load"] >= 0.3 and LOCK_WAIT not in busy
    assert {"parse", "fetch", "assemble", "validate"} <= set(busy)


def test_a_run_settles_the_collector_of_the_process_it_runs_in(
    seeds: Path, tomeflow_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows import collector

    settled: list[bool] = []
    monkeypatch.setattr(collector, "settle", lambda: settled.append(True))
    ingest(seeds=str(seeds))
    assert settled == [True]  # once, as the run begins: before its first batch


BRIN_INDEXES = """select i.indexrelid::regclass from pg_index i join pg_class c on c.oid = i.indexrelid
                  join pg_am a on a.oid = c.relam where a.amname = 'brin'"""


def test_a_run_that_writes_summarises_the_run_id_indexes_before_its_checks(
    seeds: Path, tomeflow_env: str
) -> None:
    ingest(seeds=str(seeds))
    # as a big table's ranges written since its last VACUUM are (a small one's first range
    # is kept summarised): the after-load checks' run_id lookups would read every row
    query(tomeflow_env, f"select brin_desummarize_range(x.i, 0) from ({BRIN_INDEXES}) x(i)")
    page = seeds / "PMC12809390.md"
    page.write_text(page.read_text(encoding="utf-8").replace("## TL;DR", "## TL;DR\n\nNew."))
    summary = ingest(seeds=str(seeds))
    assert summary.counts.updated == 1
    left = query(tomeflow_env, f"select brin_summarize_new_values(x.i) from ({BRIN_INDEXES}) x(i)")
    assert len(left) >= 9 and {n for (n,) in left} == {0}
