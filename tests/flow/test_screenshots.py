"""bench/screenshots.py end to end: what Prefect's UI and the Data Docs show of a run with problems.

The script runs the real ingest flow against a real `prefect server start` on loopback, four
synthetic seeds (one quarantined whole, one full text answering 404), then loads each page in
headless Chromium with the network off. This reads what it left: real PNGs of a real size and
more than one colour, and DOMs that show the state "Completed with problems", the WARNING
lines, the two table artifacts' rows and the Data Docs' list of results.

Prefect 3.8's default UI is the v2 one (/v2/): it labels levels "WARNING" and shows a table
artifact 10 rows a page, so the data-quality page holds its first ten expectations only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.screenshots import PROBLEMS_STATE, main, png_facts, text_of
from flows.run import PROBLEMS_STATE as FLOW_PROBLEMS_STATE
from tests.quality.test_docs import chromium  # noqa: F401  (the fixture: chromium's path)

pytestmark = pytest.mark.topology

SHOTS = ("run", "logs", "artifacts", "summary", "quarantine", "data-quality",
         "docs-results", "docs-validation")  # fmt: skip
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QUARANTINED = "PMC9000003.md"  # the seed the script strips of its title
NOT_FOUND = "/paper/PMC9000001/full.md"  # the full text its server answers 404 for
NO_TITLE = "not a summary page: no '# title' heading"
RUN_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.mark.timeout(900)
def test_screenshots_show_a_run_with_problems(tmp_path: Path, chromium: str) -> None:  # noqa: F811
    assert PROBLEMS_STATE == FLOW_PROBLEMS_STATE
    out = tmp_path / "shots"
    assert main(["--out", str(out), "--chromium", chromium]) == 0

    for name in SHOTS:
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE, png
        assert png.stat().st_size > 20_000, png
        width, height, values = png_facts(png)
        # a blank page's pixel data holds a handful of byte values; a drawn one, hundreds
        assert width >= 1400 and height >= 900 and values > 32, (png, width, height, values)
    raw = {name: (out / f"{name}.html").read_text("utf-8") for name in SHOTS}
    dom = {name: text_of(page) for name, page in raw.items()}

    run = dom["run"]
    assert PROBLEMS_STATE in run and "2 quarantined (1 whole); 1 full texts not fetched" in run
    logs = dom["logs"]
    # two lines with the level badge WARNING, each naming its document (publish.warn_problems)
    assert len(re.findall(r">\s*WARNING\s*<", raw["logs"])) == 2
    assert f"WARNING 1 quarantined at parse: {QUARANTINED} ({NO_TITLE}) (ops.quarantine)" in logs
    assert re.search(r"WARNING 1 full texts not fetched: http://\S+" + re.escape(NOT_FOUND), logs)
    for key in ("ingest-summary", "ingest-quarantine", "ingest-data-quality"):
        assert key in dom["artifacts"]
    assert "Problems 2 quarantined (1 whole) 1 full texts not fetched" in dom["summary"]

    quarantine = dom["quarantine"]  # the table's rows: document, paper, stage, line, reason...
    assert f"{QUARANTINED} parse 1 {NO_TITLE}" in quarantine
    assert re.search(re.escape(NOT_FOUND) + r" PMC9000001 fetch full text not fetched \(not_found\)",
                     quarantine)  # fmt: skip
    quality = dom["data-quality"]
    assert re.search(r"data quality: (\d+) of \1 expectations held", quality)
    for suite in ("tables.drift", "tables.entities", "tables.papers"):  # page 1: after_load
        assert f"after_load {suite} expect_" in quality, suite

    rows = re.findall(r'<tr[^>]*data-index="\d+"', raw["docs-results"])
    assert len(rows) >= 2 and "bootstrap-table" in raw["docs-results"]
    assert re.search(rf"after_load-{RUN_ID}-batch-0 tables\.\w+", dom["docs-results"])
    assert "Overview" in dom["docs-validation"] and "Succeeded" in dom["docs-validation"]

    index = (out / "index.md").read_text("utf-8")
    assert all(f"[{name}.png]({name}.png)" in index for name in SHOTS)
