"""prefect.yaml's deployment and `tomeflow serve` (flows/deployment.py)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from flows.deployment import PREFECT_YAML, DeploymentNotFound, deployment_spec
from flows.ingest import ingest
from flows.settings import PROJECT_ROOT


def test_the_daily_deployment_is_declared() -> None:
    spec = deployment_spec("ingest-daily")
    assert spec["schedules"] == [{"cron": "0 5 * * *", "timezone": "UTC", "active": True}]
    assert spec["work_pool"]["name"] == "tomeflow"
    path, name = spec["entrypoint"].split(":")
    assert (PROJECT_ROOT / path).is_file() and name == ingest.fn.__name__
    # every parameter it passes is one the flow takes
    assert set(spec["parameters"]) <= set(inspect.signature(ingest.fn).parameters)


def test_an_unknown_deployment_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DeploymentNotFound, match="ingest-daily"):
        deployment_spec("hourly", PREFECT_YAML)
