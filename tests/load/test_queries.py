"""docs/queries.sql: every query analysts are given runs, as a reader, with the rows it should.

The golden corpus goes through the real flow once; each named query is then run by a reader
login (search_path analytics, core) exactly as the file has it.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flows.ingest import ingest
from flows.load.db import psql_binary, with_user
from flows.load.roles import grant_reader
from flows.settings import PROJECT_ROOT
from tests.golden import golden_server, write_corpus

QUERIES = PROJECT_ROOT / "docs" / "queries.sql"
# the golden test's server listens on one fixed port: the two never run at once
pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.xdist_group("golden_port")]

INS_PAPERS = ["PMC12809390", "PMC9000005", "PMC9000006", "PMC9000008"]
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "diseases_with_a_gene_by_any_of_its_names": [
        ("INS", "metabolic dysfunction-associated steatotic liver disease", 4, INS_PAPERS),
        ("INS", "hepatic steatosis", 3, ["PMC12809390", "PMC9000005", "PMC9000008"]),
        ("INS", "inflammation", 3, ["PMC12809390", "PMC9000006", "PMC9000008"]),
        ("INS", "liver disease", 3, ["PMC12809390", "PMC9000005", "PMC9000008"]),
        ("INS", "obesity", 3, ["PMC9000005", "PMC9000006", "PMC9000008"]),
        ("INS", "liver fibrosis", 2, ["PMC12809390", "PMC9000006"]),
        ("INS", "type 2 diabetes", 2, ["PMC9000005", "PMC9000006"]),
        ("INS", "fibrosis", 1, ["PMC12809390"]),
        ("INS", "loss of skeletal muscle mass", 1, ["PMC12809390"]),
        ("INS", "metabolic dysfunction", 1, ["PMC12809390"]),
    ],
    "evidence_for_an_entity": [
        ("PMC12809390", True, 9, 5),
        ("PMC9000005", False, 0, 0),  # its full text answered 404
        ("PMC9000006", False, 0, 0),  # 500 on every attempt
        ("PMC9000008", True, 0, 0),  # listed, never mentioned
    ],
    "listed_but_never_mentioned": [
        ("PMC9000008", "NCBIGene:3630", "gene", "INS"),
        ("PMC9000008", "NCBIGene:7157", "gene", "BAD"),  # the page's own (odd) name for TP53
    ],
    "papers_without_full_text_and_why": [
        ("PMC9000005", "not_found", "http_status", False),
        ("PMC9000006", "failed", "http_status", False),
        ("PMC9000007", "bad_content", "bad_content", False),
    ],
}


def named_queries() -> dict[str, str]:
    blocks = re.split(r"^-- name: ", QUERIES.read_text(encoding="utf-8"), flags=re.M)[1:]
    return dict(block.split("\n", 1) for block in blocks)


def test_every_query_analysts_are_given_runs_as_a_reader(tmp_path: Path, tomeflow_env: str) -> None:
    seeds = tmp_path / "seeds"
    with golden_server() as server:
        write_corpus(seeds, server.base_url)
        ingest(seeds=str(seeds), batch_size=5)
    name = f"analyst_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(tomeflow_env, autocommit=True) as conn:
        grant_reader(conn, name, "secret")
    try:
        with psycopg.connect(with_user(tomeflow_env, name)) as conn:
            got = {q: conn.execute(body).fetchall() for q, body in named_queries().items()}
        # and as an analyst runs it: psql, the whole file, stopping at the first error
        shown = subprocess.run(
            [psql_binary(), "-X", "-v", "ON_ERROR_STOP=1", "-f", str(QUERIES),
             with_user(tomeflow_env, name)],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert "metabolic dysfunction-associated steatotic liver disease" in shown.stdout
        assert "<<insulin>> <<resistance>>" in shown.stdout
    finally:
        with psycopg.connect(tomeflow_env, autocommit=True) as conn:
            conn.execute(f'drop role "{name}"')

    assert set(got) >= set(EXPECTED) | {"full_text_search", "what_the_last_run_changed"}
    for query_name, rows in EXPECTED.items():
        assert got[query_name] == rows, query_name
    search = got["full_text_search"]
    assert len(search) == 5
    assert all("<<insulin>> <<resistance>>" in snippet for *_, snippet in search)
    diff = {
        (kind, item): (change, now)
        for kind, item, change, _, now, _ in got["what_the_last_run_changed"]
    }
    assert diff[("table", "core.papers")] == (None, 10)
    papers = {item: change for (kind, item), (change, _) in diff.items() if kind == "paper"}
    assert len(papers) == 10 and set(papers.values()) == {"added"}
    runs = got["runs_and_their_drift_figures"]
    assert [(status, papers_, with_text) for _, status, papers_, with_text in runs] == [
        ("completed", "10", "7")
    ]
