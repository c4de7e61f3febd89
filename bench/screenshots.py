"""Screenshots of what a run with problems shows: Prefect's UI and the offline Data Docs.

    python -m bench.screenshots --out DIR

`tomeflow run` ingests four synthetic seeds (two clean, one whose full text answers 404, one
with no title: quarantined whole) into a scratch database (bench/infra.py), reporting to a throwaway
`prefect server start` on loopback, Data Docs on. Headless Chromium, every request off the
machine refused, then saves a PNG and the rendered DOM (.html) of each page: the run's state,
WARNING lines and artifacts, the summary, quarantine and data-quality artifacts in Prefect's
default UI (v2 in 3.8), and the Data Docs served by `tomeflow docs`. DIR/index.md lists them.
Each DOM must show what Prefect's API says (the state, the WARNING lines, the tables' rows):
a check that fails exits 1 and says which. Everything started is torn down at the end.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

from bench.infra import free_port, fulltext_server, kill_group, scratch_database, tail
from bench.synth import make_paper, write_seeds

BIN = Path(sys.executable).parent  # the venv's prefect and tomeflow
PROBLEMS_STATE = "Completed with problems"  # flows.run.PROBLEMS_STATE, without importing prefect
QUARANTINED, NOT_FOUND = 3, 1  # of the four papers: the one with no title, the one whose text 404s
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-US",
    # nothing leaves the machine: all but loopback goes to a proxy that is not there
    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
)  # fmt: skip
BUDGET_MS = 15_000  # virtual time a page gets to run its scripts and fetch its data
MIN_PNG_BYTES = 20_000
PAGE_ROWS = 10  # the v2 UI shows a table artifact 10 rows a page
FAST_FETCH = {"TOMEFLOW_ALLOWED_HOSTS": "127.0.0.1", "TOMEFLOW_PER_HOST_RATE": "1000",
              "TOMEFLOW_MAX_RETRIES": "1", "TOMEFLOW_BACKOFF_FACTOR": "0.01"}  # fmt: skip


class CheckFailed(RuntimeError):
    """Something a page must show is not there, or a step of the run failed."""


def check(ok: object, message: str) -> None:
    if not ok:
        raise CheckFailed(message)


@dataclass(frozen=True)
class Shot:
    """One page: file stem, URL, what it shows, texts its DOM must hold, window size."""

    name: str
    url: str
    shows: str
    expect: tuple[str, ...]
    size: tuple[int, int] = (1400, 1000)


def text_of(dom: str) -> str:
    """The DOM's drawn text, entities decoded and whitespace collapsed, for substring checks."""
    shown = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", shown)).split())


def png_facts(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values of its pixel data): a one-colour PNG has a few."""
    data = path.read_bytes() if path.is_file() else b""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return 0, 0, 0
    pos, size, idat = 8, (0, 0), bytearray()
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IHDR":
            size = struct.unpack(">II", data[pos + 8 : pos + 16])
        elif kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return size[0], size[1], len(set(zlib.decompress(bytes(idat))))


@contextmanager
def service(argv: Sequence[str], env: Mapping[str, str], log: Path, health: str) -> Iterator[None]:
    """A server in a session of its own for the block, once health answers 200; stopped after."""
    with log.open("ab") as out:
        proc = subprocess.Popen(list(argv), env=dict(env), cwd=log.parent, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not _answers(health):
            alive = proc.poll() is None and time.monotonic() < deadline
            check(alive, f"`{' '.join(argv[1:3])}` never answered {health}:\n{tail(log)}")
            time.sleep(0.25)
        yield
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        kill_group(proc.pid)
        proc.wait()


def _answers(url: str) -> bool:
    with suppress(httpx.HTTPError):
        return httpx.get(url, timeout=2).status_code == 200
    return False


def run(argv: Sequence[str], env: Mapping[str, str], log: Path) -> None:
    """A one-shot command to its end; CheckFailed with its output unless it exits 0."""
    with log.open("ab") as out:
        done = subprocess.run(list(argv), env=dict(env), cwd=log.parent, stdout=out,
                              stderr=subprocess.STDOUT, timeout=600, check=False)  # fmt: skip
    check(done.returncode == 0, f"`tomeflow {argv[1]}` exited {done.returncode}:\n{tail(log)}")


def write_corpus(work: Path, base_url: str) -> Path:
    """Four seeds: two clean, one whose full text is missing (404), one with no title."""
    papers = [make_paper(i, base_url, fulltext_kb=4) for i in range(4)]
    for i, paper in enumerate(papers):
        if i != NOT_FOUND:  # the file server answers 404 for a file that is not there
            path = work / "fulltext" / "paper" / paper.paper_id / "full.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(paper.fulltext, encoding="utf-8")
    write_seeds(work / "seeds", papers)
    page = work / "seeds" / f"{papers[QUARANTINED].paper_id}.md"
    page.write_text(page.read_text("utf-8").split("\n", 1)[1], encoding="utf-8")  # no "# title"
    return work / "seeds"


def api(url: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
    """GET (or POST body to) the Prefect API."""
    reply = httpx.request("POST" if body else "GET", f"{url}/{path}", json=body, timeout=30)
    reply.raise_for_status()
    return reply.json()


def plan(api_url: str, run_id: str, docs_url: str, docs_dir: Path) -> list[Shot]:
    """The pages to capture, each with what the API and the files say it must show."""
    state = api(api_url, f"flow_runs/{run_id}")["state"]
    check(state["name"] == PROBLEMS_STATE, f"the run ended {state['name']!r}, not {PROBLEMS_STATE}")
    by_run = {"flow_run_id": {"any_": [run_id]}}
    logs = api(api_url, "logs/filter", {"logs": {**by_run, "level": {"ge_": 30}}})
    warnings = [w["message"] for w in logs]
    for kind in ("full texts not fetched", "quarantined at parse"):
        check(any(kind in w for w in warnings), f"no WARNING line says {kind!r}: {warnings}")
    found = {a["key"]: a for a in api(api_url, "artifacts/filter", {"artifacts": by_run})}
    keys = ("ingest-summary", "ingest-quarantine", "ingest-data-quality", "ingest-fetch-progress")
    check(set(keys) <= set(found), f"the run's artifacts {sorted(found)} lack one of {keys}")
    quarantine, quality = (json.loads(found[k]["data"]) for k in keys[1:3])
    stages = sorted((r["stage"], r["whole document"]) for r in quarantine)
    check(stages == [("fetch", "no"), ("parse", "yes")], f"not the quarantine meant: {quarantine}")
    built = sorted(docs_dir.glob("runs/*/index.html"))
    pages = sorted(docs_dir.glob("runs/*/validations/**/*.html"))
    check(built and pages, f"no Data Docs of the run under {docs_dir}")
    ui, run_name = f"{api_url.removesuffix('/api')}/v2", built[0].parent.name
    page, artifact = f"{ui}/runs/flow-run/{run_id}", f"{ui}/artifacts/artifact"
    return [
        Shot("run", f"{page}?tab=Details", f"flow run {run_name}, its state badge "
             f"{PROBLEMS_STATE!r} and message", (PROBLEMS_STATE, run_name, state["message"])),
        Shot("logs", f"{page}?tab=Logs", "its log: WARNING lines for the quarantined document "
             "and the 404", ("WARNING", *warnings), (1400, 1800)),
        Shot("artifacts", f"{page}?tab=Artifacts", "its artifacts: " + ", ".join(keys),
             keys, (1400, 1300)),
        Shot("summary", f"{artifact}/{found['ingest-summary']['id']}",
             "Markdown artifact ingest-summary, problems first", (state["message"],)),
        Shot("quarantine", f"{artifact}/{found['ingest-quarantine']['id']}",
             "table artifact ingest-quarantine: the page with no title (whole), the 404",
             tuple(map(row_text, quarantine)), (2400, 900)),
        Shot("data-quality", f"{artifact}/{found['ingest-data-quality']['id']}",
             f"table artifact ingest-data-quality: page 1 of {len(quality)} expectations",
             (found["ingest-data-quality"]["description"], *map(row_text, quality[:PAGE_ROWS])),
             (2400, 900)),
        Shot("docs-results", f"{docs_url}/runs/{run_name}/index.html", "Data Docs of the run "
             "(offline, `tomeflow docs`): its list of validation results, 10 a page",
             (f"after_load-{run_id}-batch-0",), (2400, 1200)),
        Shot("docs-validation", f"{docs_url}/{quote(str(pages[0].relative_to(docs_dir)))}",
             f"Data Docs: one validation's results ({pages[0].parent.parent.name})",
             ("Overview",), (1400, 1400)),
    ]  # fmt: skip


def row_text(row: Mapping[str, Any]) -> str:
    """A table artifact's row as the UI draws it: its cells in order, numbers as JS prints them."""
    cells = (f"{v:g}" if isinstance(v, float) else str(v) for v in row.values())
    return " ".join(c for c in cells if c)


def capture(chromium: str, shot: Shot, out: Path, profiles: Path) -> None:
    """The page's PNG and DOM from one load (after BUDGET_MS of virtual time), both checked."""
    png, (width, height) = out / f"{shot.name}.png", shot.size
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profiles / shot.name}",
         f"--window-size={width},{height}", f"--virtual-time-budget={BUDGET_MS}",
         f"--screenshot={png}", "--dump-dom", shot.url],
        capture_output=True, text=True, timeout=300, check=False,
    ).stdout  # fmt: skip
    (out / f"{shot.name}.html").write_text(dom, encoding="utf-8")
    facts, size = png_facts(png), png.stat().st_size if png.is_file() else 0
    check(facts[:2] == shot.size and size > MIN_PNG_BYTES and facts[2] > 32,
          f"{png}: no real screenshot ({size} bytes, {facts})")  # fmt: skip
    text = text_of(dom)
    missing = [e for e in shot.expect if " ".join(e.split()) not in text]
    check(not missing, f"{shot.name} ({shot.url}) does not show {missing}; its DOM: {out}")
    if shot.name == "docs-results":  # bootstrap-table filled the list: a row per validation
        rows = len(re.findall(r'<tr[^>]*data-index="\d+"', dom))
        check(rows >= 2 and "bootstrap-table" in dom, f"the Data Docs list has {rows} rows")


def take(out: Path, chromium: str) -> tuple[list[Shot], str]:
    """Everything above, torn down afterwards: the shots taken and the flow run's id."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tf-shots-")))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PREFECT_", "TOMEFLOW_")) and k != "DATABASE_URL"}  # fmt: skip
        env |= {"DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false", "PREFECT_HOME": str(work),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
        db = stack.enter_context(scratch_database("shots"))
        seeds = write_corpus(work, stack.enter_context(fulltext_server(work / "fulltext")).base_url)
        port, docs_port = free_port(), free_port()
        api_url, docs_url = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{docs_port}"
        server = [str(BIN / "prefect"), *f"server start --host 127.0.0.1 --port {port}".split()]
        # the UI's scripts call the API at PREFECT_UI_API_URL, else at port 4200
        server_env = env | {"PREFECT_UI_API_URL": api_url}
        stack.enter_context(service(server, server_env, logs / "server.log", f"{api_url}/health"))
        docs_dir = work / "data-docs"
        tomeflow = {**env, **FAST_FETCH, "PREFECT_API_URL": api_url, "DATABASE_URL": db,
                    "TOMEFLOW_HOME": str(work / "home"), "TOMEFLOW_DATA_DOCS": "true",
                    "TOMEFLOW_DATA_DOCS_PATH": str(docs_dir), "TOMEFLOW_DATA_DOCS_URL": docs_url,
                    "TOMEFLOW_ASSEMBLE_PROCESSES": "0"}  # fmt: skip
        run([str(BIN / "tomeflow"), "migrate"], tomeflow, logs / "migrate.log")
        run([str(BIN / "tomeflow"), "run", "--seeds", str(seeds)], tomeflow, logs / "run.log")
        with psycopg.connect(db) as conn:
            (run_id,) = [str(r) for (r,) in conn.execute("select run_id from ops.runs")]
        docs = [str(BIN / "tomeflow"), "docs", "--port", str(docs_port)]
        stack.enter_context(service(docs, tomeflow, logs / "docs.log", f"{docs_url}/index.html"))
        shots = plan(api_url, run_id, docs_url, docs_dir)
        for shot in shots:
            capture(chromium, shot, out, work / "profiles")
    return shots, run_id


def write_index(out: Path, shots: Sequence[Shot], run_id: str) -> None:
    """DIR/index.md: each screenshot, its DOM and what it shows."""
    lines = ["# Screenshots of a run with problems", "",
             f"`python -m bench.screenshots`: flow run {run_id} of four synthetic seeds: two "
             f"clean, PMC900000{NOT_FOUND} whose full text answers 404, PMC900000{QUARANTINED}.md "
             "with no title (quarantined whole). Headless Chromium, offline; the services' "
             "logs are in logs/.", "", "| screenshot | DOM | shows |", "| --- | --- | --- |",
             *(f"| [{s.name}.png]({s.name}.png) | [{s.name}.html]({s.name}.html) | {s.shows} |"
               for s in shots), ""]  # fmt: skip
    (out / "index.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for PNGs, DOMs, index.md")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if not Path(args.chromium).is_file():
        print(f"screenshots: no chromium at {args.chromium} (--chromium)", file=sys.stderr)
        return 2
    before = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill tears down too
    try:
        shots, run_id = take(out, args.chromium)
    except CheckFailed as exc:
        print(f"screenshots: check failed: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, before)
    write_index(out, shots, run_id)
    print(f"{len(shots)} screenshots with their DOM in {out}, listed in {out / 'index.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
