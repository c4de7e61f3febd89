"""flows/cluster.py: what a Dask worker is sent, and what it refuses (the cluster itself:
tests/flow/test_dask.py)."""

from __future__ import annotations

import pickle

import pytest

from flows.cluster import WorkerSpec, worker_resources
from flows.resources import build_resources
from flows.settings import Settings, get_settings


def test_a_worker_is_sent_the_settings_and_the_database_without_its_password(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_url = db_url.replace("postgres@", "postgres:hunter2@")
    settings = Settings(_env_file=None, database_url=secret_url, batch_size=7)  # type: ignore[call-arg]
    res = build_resources(settings)
    try:
        spec = WorkerSpec.of(res)
    finally:
        res.close()
    assert spec.settings["batch_size"] == 7
    assert "database_url" not in spec.settings
    assert "hunter2" not in repr(spec) and b"hunter2" not in pickle.dumps(spec)
    assert spec.database == db_url  # the same database, the password taken out


def test_a_worker_pointed_at_another_database_refuses_the_batch(
    db_url: str, other_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)  # the worker's own environment
    get_settings.cache_clear()
    spec = WorkerSpec(Settings(_env_file=None).model_dump(mode="json", exclude={"database_url"}),  # type: ignore[call-arg]
                      other_db_url)  # fmt: skip
    with pytest.raises(RuntimeError, match=r"this Dask worker's database is .* the flow's is"):
        worker_resources(spec)
