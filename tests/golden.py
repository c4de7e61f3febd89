"""The golden corpus: a fixed set of seeds and full texts, run through the flow and dumped.

`dump` reads every core, raw and ops table into plain JSON with what differs between runs
masked: run ids become `<run 1>`, `<run 2>` in start order, timestamps `<time>`, the local
server's address `<server>` and the seed folder `<seeds>`; texts longer than 160 characters
show as their length and hash; surrogate keys are left out and
`core.paper_authors.author_id` is shown as the author's name.

    TOMEFLOW_GOLDEN_UPDATE=1 pytest tests/flow/test_golden.py   # rewrite the expected dump
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from tests.helpers import CORE_TABLES
from tests.http_server import ScriptedHTTPServer, markdown, serve, status

# the seeds name the server's address, so their sha256 (and every hash over them) depends on
# it: the golden server listens on one fixed port, below the kernel's ephemeral range
GOLDEN_PORT = 28471
GOLDEN = Path(__file__).parent / "data" / "golden"
EXPECTED = GOLDEN / "expected.json"
GOLDEN_TABLES = (
    *CORE_TABLES,
    "raw.fetches",
    "ops.runs",
    "ops.quarantine",
    "ops.dq_results",
    "ops.run_changes",
)
# surrogate keys and timings: they differ between two equal runs
DROPPED = {"quarantine_id", "fetch_id", "result_id", "change_id", "elapsed_ms"}
LONG_TEXT = 160
HTML_PAGE = "<!DOCTYPE html>\n<html><body><h1>Sign in to read</h1></body></html>\n"


@contextmanager
def golden_server() -> Iterator[ScriptedHTTPServer]:
    """The local server of the golden corpus, on GOLDEN_PORT, serving every full text."""
    try:
        with serve(GOLDEN_PORT) as server:
            serve_corpus(server)
            yield server
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise RuntimeError(f"the golden test needs 127.0.0.1:{GOLDEN_PORT}, which is busy") from exc


def serve_corpus(server: ScriptedHTTPServer) -> None:
    """Route every golden full text, plus the three that fail: 404, 500 and an HTML page."""
    for path in sorted((GOLDEN / "fulltext").glob("*.md")):
        server.route(f"/paper/{path.stem}/full.md", markdown(path.read_text(encoding="utf-8")))
    server.route("/paper/PMC9000005/full.md", status(404))
    server.route("/paper/PMC9000006/full.md", status(500))
    server.route("/paper/PMC9000007/full.md", markdown(HTML_PAGE))


def write_corpus(folder: Path, base_url: str) -> Path:
    """Copy the golden seeds into folder with their URLs pointing at the local server."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((GOLDEN / "seeds").iterdir()):
        raw = path.read_bytes()
        (folder / path.name).write_bytes(
            raw.replace(b"https://tomesphere.com", base_url.encode("ascii"))
        )
    return folder


def dump(url: str, base_url: str, seeds: Path) -> dict[str, list[list[Any]]]:
    """Every golden table as sorted rows of JSON values, with what varies masked."""
    out: dict[str, list[list[Any]]] = {}
    with psycopg.connect(url) as conn:
        runs = [r for (r,) in conn.execute("select run_id from ops.runs order by started_at")]
        labels = {run: f"<run {n}>" for n, run in enumerate(runs, 1)}
        authors = dict(conn.execute("select author_id, name from core.authors").fetchall())
        replacements = ((base_url, "<server>"), (str(seeds), "<seeds>"))

        def mask(column: str, value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, uuid.UUID):
                return labels.get(value, "<uuid>")
            if isinstance(value, dt.datetime):
                return "<time>"
            if column == "flow_run_name":
                return "<name>"
            if isinstance(value, dict):
                return {k: mask(column, v) for k, v in sorted(value.items())}
            if isinstance(value, list):
                return [mask(column, v) for v in value]
            if isinstance(value, str):
                for old, new in replacements:
                    value = value.replace(old, new)
                if len(value) > LONG_TEXT:  # a section's text: its hash keeps the dump small
                    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
                    return f"<{len(value)} chars, sha256 {digest}>"
                return value
            if isinstance(value, (dt.date, tuple)):
                return str(value)
            return value

        for table in GOLDEN_TABLES:
            schema, name = table.split(".")
            columns = [
                c
                for (c,) in conn.execute(
                    """select column_name from information_schema.columns
                       where table_schema = %s and table_name = %s order by ordinal_position""",
                    (schema, name),
                )
                if c not in DROPPED and not (table == "core.authors" and c == "author_id")
            ]
            rows = []
            for row in conn.execute(f"select {', '.join(columns)} from {table}"):
                values = []
                for column, value in zip(columns, row, strict=True):
                    if column == "author_id":
                        value = authors[value]
                    values.append(mask(column, value))
                rows.append(values)
            out[table] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return out


def read_expected() -> dict[str, Any]:
    """The checked-in dump."""
    return json.loads(EXPECTED.read_text(encoding="utf-8"))


def write_expected(document: dict[str, Any]) -> None:
    """Rewrite the checked-in dump (TOMEFLOW_GOLDEN_UPDATE=1)."""
    text = json.dumps(document, indent=1, ensure_ascii=False, sort_keys=True, default=str)
    EXPECTED.write_text(text + "\n", encoding="utf-8")
