"""The settings object: every knob from the environment, validated at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.settings import Settings


@pytest.mark.parametrize(
    ("value", "hosts"),
    [
        ("tomesphere.com", ["tomesphere.com"]),
        ("a.org,b.org", ["a.org", "b.org"]),
        (" a.org , b.org ", ["a.org", "b.org"]),
        ("a.org b.org", ["a.org", "b.org"]),
        ('["a.org", "127.0.0.1"]', ["a.org", "127.0.0.1"]),
        ("", []),
    ],
)
def test_allowed_hosts_from_the_environment(
    value: str, hosts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOMEFLOW_ALLOWED_HOSTS", value)
    assert Settings().allowed_hosts == hosts


def test_state_folders_default_under_home_and_can_move(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOMEFLOW_HOME", str(tmp_path / "home"))
    settings = Settings()
    assert settings.raw_dir == tmp_path / "home" / "raw"
    assert settings.data_docs_dir == tmp_path / "home" / "data_docs"
    monkeypatch.setenv("TOMEFLOW_RAW_STORE_DIR", str(tmp_path / "bodies"))
    monkeypatch.setenv("TOMEFLOW_DATA_DOCS_PATH", str(tmp_path / "docs"))
    settings = Settings()
    assert (settings.raw_dir, settings.data_docs_dir) == (tmp_path / "bodies", tmp_path / "docs")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOMEFLOW_BATCH_SIZE", "0"),
        ("TOMEFLOW_PER_HOST_RATE", "-1"),
        ("TOMEFLOW_DQ_MAX_FAILURE_SHARE", "1.5"),
        ("TOMEFLOW_FETCH_HOST_SLOTS", "0"),
    ],
)
def test_bad_values_are_refused_at_start_up(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("TOMEFLOW_").lower()):
        Settings()


def test_the_database_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:s3cret@db:5432/x")
    settings = Settings()
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
