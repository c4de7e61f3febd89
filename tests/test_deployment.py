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


def test_the_scale_out_deployments_are_declared() -> None:
    # issue 11: one on the Dask runner, two shards that together load the whole corpus
    dask = deployment_spec("ingest-dask")
    assert dask["entrypoint"] == "flows/ingest.py:ingest"
    env = dask["work_pool"]["job_variables"]["env"]
    assert env["TOMEFLOW_TASK_RUNNER"] == "dask" and "TOMEFLOW_DASK_ADDRESS" in env
    shards = [deployment_spec(f"ingest-shard-{k}-of-2")["parameters"]["shard"] for k in (1, 2)]
    assert shards == ["1/2", "2/2"]
    for name in ("ingest-dask", "ingest-shard-1-of-2"):
        spec = deployment_spec(name)
        assert set(spec["parameters"]) <= set(inspect.signature(ingest.fn).parameters)
