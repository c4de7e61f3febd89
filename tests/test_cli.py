"""The `tomeflow` command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.cli import main
from flows.settings import PROJECT_ROOT

REAL_SEED = PROJECT_ROOT / "seeds" / "PMC12809390.md"


def test_parse_prints_records_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(REAL_SEED)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["paper_id"] == "PMC12809390"
    assert record["published_on"] == "2025-11-10"
    assert len(record["entities"]) == 10


def test_parse_reports_a_rejected_document_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text("no title\n")
    assert main(["parse", str(REAL_SEED), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["paper_id"] == "PMC12809390"
    assert json.loads(err) == {
        "file": str(bad),
        "line": 1,
        "error": "not a summary page: no '# title' heading",
    }


def test_db_url_masks_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", "postgresql://tomeflow:s3cret@db.example:5432/tomeflow")
    get_settings.cache_clear()
    assert main(["db", "url"]) == 0
    assert capsys.readouterr().out.strip() == "postgresql://tomeflow:***@db.example:5432/tomeflow"
    assert main(["db", "psql"]) == 0
    assert capsys.readouterr().out.strip() == "psql -h db.example -p 5432 -U tomeflow tomeflow"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:s3cret@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("postgresql://postgres:@/tomeflow?host=/p", "postgresql://postgres@/tomeflow?host=/p"),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5432/test"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    from flows.load.db import masked

    assert masked(url) == shown
