"""docker-compose.yml is valid against the compose specification and wired as documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from flows.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    checker = shutil.which("check-jsonschema") or str(
        Path(sys.executable).parent / "check-jsonschema"
    )
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_topology_and_healthchecks() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {"data-db", "prefect-db", "prefect-server", "worker"} <= set(services)
    for name in ("data-db", "prefect-db", "prefect-server"):
        assert "healthcheck" in services[name], name
    assert services["prefect-server"]["ports"] == ["4200:4200"]
    assert (
        "prefect-db"
        in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    )
    worker_deps = services["worker"]["depends_on"]
    assert worker_deps["prefect-server"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["data-db"]["condition"] == "service_healthy"
    assert set(spec["volumes"]) >= {"data-db", "prefect-db"}


def test_no_password_defaults_silently() -> None:
    # every password is required from .env: `${VAR:?message}` makes compose refuse to start
    text = COMPOSE.read_text()
    assert "POSTGRES_PASSWORD: ${TOMEFLOW_DB_PASSWORD:?" in text
    assert "POSTGRES_PASSWORD: ${PREFECT_DB_PASSWORD:?" in text
    assert ":-postgres" not in text and "PASSWORD: postgres" not in text
    example = (PROJECT_ROOT / ".env.example").read_text()
    assert "TOMEFLOW_DB_PASSWORD=\n" in example and "PREFECT_DB_PASSWORD=\n" in example
