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


# expected failures: one line, an exit code, no traceback, no password (issues 12 and 13)

SECRET = "Pw-s3cr3t"


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and SECRET not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", [["run"], ["migrate"]])
def test_a_database_that_refuses_is_one_line_and_exit_2(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", f"postgresql://tomeflow:{SECRET}@127.0.0.1:1/tomeflow")
    get_settings.cache_clear()
    assert main(command) == 2
    line = _one_line_error(capsys)
    assert line.startswith(f"tomeflow {command[0]}: cannot connect to postgresql://tomeflow:***@")
    assert "check DATABASE_URL" in line


@pytest.mark.parametrize("command", [["run"], ["migrate"], ["db", "url"]])
def test_a_url_that_is_not_postgresql_is_refused_before_anything_connects(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", f"mysql://user:{SECRET}@127.0.0.1:5432/test")
    get_settings.cache_clear()
    assert main(command) == 2
    line = _one_line_error(capsys)
    assert "must be a PostgreSQL URL" in line and "mysql://user:***@127.0.0.1:5432/test" in line


def test_a_mistyped_seeds_folder_is_one_line_and_starts_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--seeds", str(tmp_path / "seedz")]) == 2
    assert _one_line_error(capsys) == (
        f"tomeflow run: no seeds folder or file at {tmp_path / 'seedz'} "
        "(--seeds or TOMEFLOW_SEEDS_DIR)"
    )


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no seeds folder"):
        main(["--debug", "run", "--seeds", str(tmp_path / "seedz")])


def test_db_url_never_starts_the_embedded_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "url"]) == 2
    assert "is not running" in _one_line_error(capsys)
    assert not (tmp_path / "home" / "pgdata" / "postmaster.pid").exists()


def test_db_psql_uses_the_psql_pgserver_ships_when_none_is_on_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", "postgresql://tomeflow@db.example:5432/tomeflow")
    monkeypatch.setattr("flows.load.db.shutil.which", lambda name: None)
    get_settings.cache_clear()
    assert main(["db", "psql"]) == 0
    binary = capsys.readouterr().out.split()[0]
    assert binary.endswith("pgserver/pginstall/bin/psql") and Path(binary).is_file()


def test_check_prints_every_problem_and_loads_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = REAL_SEED.read_text("utf-8")
    bad = tmp_path / "PMC2.md"
    bad.write_text(
        text.replace("PMC12809390", "PMC2")
        .replace("[NCBI Gene 3630]", "[NCBI Gene 36x0]")
        .replace("2025-11-10", "1700-01-01"),
        "utf-8",
    )
    assert main(["check", str(REAL_SEED), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:" in out and "36x0" in out and "1700-01-01" in out
    assert str(REAL_SEED) not in out
    assert out.strip().endswith("1 of 2 documents clean, 2 problems")
    assert main(["check", str(REAL_SEED)]) == 0


def test_grant_reader_makes_a_login_and_never_shows_its_password(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uuid

    import psycopg

    from flows.settings import get_settings

    name = f"analyst_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("TOMEFLOW_READER_PASSWORD", "pa55 w;o'rd")
    get_settings.cache_clear()
    try:
        assert main(["db", "grant-reader", name]) == 0
        out = capsys.readouterr()
        assert f"made reader {name}" in out.out
        assert f"-U {name}" in out.out  # the psql command for the reader
        assert "pa55" not in out.out + out.err
        assert main(["db", "grant-reader", name]) == 0  # again: the password is reset
        assert "reset the password" in capsys.readouterr().out
        with psycopg.connect(db_url) as conn:
            row = conn.execute(
                "select pg_has_role(%s, 'tomeflow_reader', 'member')", (name,)
            ).fetchone()
        assert row == (True,)
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f'drop role if exists "{name}"')


def test_grant_reader_refuses_a_bad_name_and_a_missing_password_with_exit_2(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("TOMEFLOW_READER_PASSWORD", raising=False)
    get_settings.cache_clear()
    assert main(["db", "grant-reader", "Robert'); drop"]) == 2
    assert "lower-case letters" in capsys.readouterr().err
    assert main(["db", "grant-reader", "postgres", "--password-file", "/nonexistent"]) == 2
    assert "cannot read /nonexistent" in capsys.readouterr().err
    # pytest's stdin is not a terminal: no prompt, a clear error instead
    assert main(["db", "grant-reader", "analyst_nopw"]) == 2
    assert "TOMEFLOW_READER_PASSWORD" in capsys.readouterr().err
    monkeypatch.setenv("TOMEFLOW_READER_PASSWORD", "x")
    assert main(["db", "grant-reader", "postgres"]) == 2
    assert "is not a tomeflow reader" in capsys.readouterr().err


def test_db_dictionary_writes_the_data_dictionary(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    target = tmp_path / "dictionary.md"
    assert main(["db", "dictionary", "--output", str(target)]) == 0
    assert f"wrote {target}" in capsys.readouterr().out
    assert "### `core.papers` (table)" in target.read_text(encoding="utf-8")


def test_automations_create_needs_a_webhook_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the whole path on a real server: tests/flow/test_automation.py
    monkeypatch.delenv("TOMEFLOW_NOTIFY_WEBHOOK", raising=False)
    assert main(["automations", "create"]) == 2
    assert "TOMEFLOW_NOTIFY_WEBHOOK" in capsys.readouterr().err
    assert main(["automations", "create", "--webhook", "ftp://example.org/x"]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err


def test_run_refuses_a_bad_shard_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "seeds").mkdir()
    assert main(["run", "--seeds", str(tmp_path / "seeds"), "--shard", "3/2"]) == 2
    assert "K must be between 1 and N" in capsys.readouterr().err
    assert main(["run", "--seeds", str(tmp_path / "seeds"), "--shard", "half"]) == 2
    assert "write K/N" in capsys.readouterr().err
