"""Data Docs offline (flows/quality/docs.py): styles and the results list with no network.

The pages are rendered in headless Chromium with every request off the machine refused (a
proxy on a closed loopback port), and their DOM read after the scripts ran. Chromium comes
from the OS packages; the fixture installs it where it is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.quality.gate import QualityGate
from flows.quality.suites import SUITES_DIR
from tests.quality.test_gate import clean_frames, insert_consistent_tables

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # nothing leaves the machine: every request goes to a proxy that is not there
    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
)  # fmt: skip


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium binary, installed from the OS packages when it is missing."""
    found = shutil.which("chromium")
    if found is None and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"],
            capture_output=True, check=False, timeout=900,
        )  # fmt: skip
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium is not installed and apt-get could not install it")
    return found


def render(chromium: str, page: Path, tmp_path: Path, screenshot: Path | None = None) -> str:
    """The page's DOM once its scripts ran, offline; optionally a screenshot of it too."""
    profile = tmp_path / f"profile-{uuid.uuid4().hex[:6]}"
    base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=8000"]
    if screenshot is not None:
        subprocess.run(
            [*base, f"--screenshot={screenshot}", "--window-size=1280,900", page.as_uri()],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    out = subprocess.run(
        [*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    return out.stdout


@pytest.fixture
def built(tmp_path: Path, db_url: str) -> Iterator[tuple[Path, Path]]:
    """Data Docs of three runs, two kept: the folder, and the newest run's index page."""
    folder = tmp_path / "docs"
    run_id = uuid.uuid4()
    expected = insert_consistent_tables(db_url, run_id)
    page = folder
    for n in range(3):
        gate = QualityGate(SUITES_DIR, folder)
        gate.validate_batch(clean_frames(), batch=1)
        gate.validate_tables(db_url, run_id, 1, {"core.papers": expected["core.papers"]})
        page = gate.build_data_docs(f"ingest-2026-12-01T05-00-0{n}", keep=2)
    yield folder, page


def test_no_page_links_to_a_cdn_and_every_asset_is_there(built: tuple[Path, Path]) -> None:
    folder, _ = built
    for page in folder.rglob("*.html"):
        text = page.read_text("utf-8")
        links = re.findall(r'(?:href|src)="([^"]+\.(?:css|js))"', text)
        assert not [u for u in links if u.startswith(("http:", "https:", "//"))], page
        for link in links:
            assert (page.parent / link).resolve().is_file(), f"{page}: {link}"


def test_the_last_runs_are_kept_and_listed(built: tuple[Path, Path]) -> None:
    folder, newest = built
    kept = sorted(p.name for p in (folder / "runs").iterdir())
    assert kept == ["ingest-2026-12-01T05-00-01", "ingest-2026-12-01T05-00-02"]
    assert newest == folder / "runs" / "ingest-2026-12-01T05-00-02" / "index.html"
    index = (folder / "index.html").read_text("utf-8")
    assert index.index("05-00-02") < index.index("05-00-01") and "05-00-00" not in index


def test_the_index_and_a_results_page_render_offline(
    built: tuple[Path, Path], chromium: str, tmp_path: Path
) -> None:
    _, newest = built
    shots = tmp_path / "shots"
    shots.mkdir()
    dom = render(chromium, newest, tmp_path, shots / "index.png")
    # bootstrap-table filled the list of results from its data: rows, one per validation
    rows = re.findall(r'<tr[^>]*data-index="\d+"', dom)
    assert len(rows) >= 2, dom[:2000]
    assert "bootstrap-table" in dom  # the table plugin ran (it wraps the table in its markup)
    result = next((newest.parent / "validations").rglob("*.html"))
    page = render(chromium, result, tmp_path, shots / "result.png")
    assert "Overview" in page and "Succeeded" in page and "must never be null" in page
    # styled: a page with its stylesheets is drawn in bootstrap's colours, not the default
    assert (shots / "index.png").stat().st_size > 20_000
