"""Data Docs that work offline and keep the last runs.

Each run's Great Expectations Data Docs go to `runs/<run name>/` under the Data Docs folder;
their CDN links are rewritten to the copies in `static/vendor/` (flows/quality/docs_assets,
see its README), so the pages keep their styles and their lists of results on a machine
without internet. An index page lists the runs kept (TOMEFLOW_DATA_DOCS_KEEP), newest first.
"""

from __future__ import annotations

import html
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

ASSETS = Path(__file__).parent / "docs_assets"
VENDOR = Path("static") / "vendor"

# every CDN file the GX templates name -> its copy under static/vendor
CDN_FILES: Mapping[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "js/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "js/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "css/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "js/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": "css/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": "css/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": "js/bootstrap-table-filter-control.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": "css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": "js/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": "css/bootstrap-prefers-dark.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "css/fontawesome-all.min.css",
}  # fmt: skip
_VEGA = re.compile(r'<script src="https://cdn\.jsdelivr\.net/npm/vega[^"]*"></script>\s*')
_INTEGRITY = re.compile(r'\s+(?:integrity="[^"]*"|crossorigin="[^"]*")')


def run_folder(docs_dir: Path, run_name: str) -> Path:
    """Where one run's Data Docs go."""
    return docs_dir / "runs" / re.sub(r"[^\w.-]+", "_", run_name)


def make_offline(docs_dir: Path, site: Path) -> int:
    """Copy the assets once and point every page of site at them; returns pages rewritten."""
    vendor = docs_dir / VENDOR
    if not (vendor / "css" / "bootstrap.min.css").is_file():
        shutil.copytree(ASSETS, vendor, dirs_exist_ok=True)
    pages = 0
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        rewritten = offline_page(text, os.path.relpath(vendor, page.parent))
        if rewritten != text:
            page.write_text(rewritten, encoding="utf-8")
            pages += 1
    return pages


def offline_page(text: str, vendor: str) -> str:
    """A page's text with its CDN links pointing at vendor (a relative path), vega dropped."""
    text = _VEGA.sub("", text)
    for url, local in CDN_FILES.items():
        text = text.replace(url, f"{vendor}/{local}")
    # subresource-integrity hashes name the CDN's bytes; the copies are checked in instead
    return _INTEGRITY.sub("", text) if vendor in text else text


def keep_last(docs_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` run folders; returns the ones kept, newest first."""
    runs = docs_dir / "runs"
    folders = sorted(
        (p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else (),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return folders[:keep]


def write_index(docs_dir: Path, runs: list[Path]) -> Path:
    """The Data Docs folder's index.html: one link per run kept, newest first."""
    items = "\n".join(
        f'<li class="list-group-item"><a href="runs/{html.escape(p.name)}/index.html">'
        f"{html.escape(p.name)}</a></li>"
        for p in runs
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>tomeflow Data Docs</title>
<link rel="stylesheet" href="{VENDOR.as_posix()}/css/bootstrap.min.css">
</head><body class="container my-4">
<h1 class="h3">tomeflow Data Docs</h1>
<p class="text-muted">The data-quality results of the last {len(runs)} runs, newest first.</p>
<ul class="list-group" id="runs">
{items}
</ul>
</body></html>
"""
    index = docs_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
