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
    assert {"data-db", "prefect-db", "prefect-server", "worker", "docs"} <= set(services)
    for name in ("data-db", "prefect-db", "prefect-server", "worker", "docs"):
        assert "healthcheck" in services[name], name
    assert services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_HOST"] == "prefect-db"
    worker_deps = services["worker"]["depends_on"]
    assert worker_deps["prefect-server"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["data-db"]["condition"] == "service_healthy"
    assert set(spec["volumes"]) >= {"data-db", "prefect-db"}


def test_ports_are_published_on_loopback_unless_configured() -> None:
    # issue 13: the data database and the Prefect API (which has no auth) stay off the network
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published and all(p.startswith("${TOMEFLOW_BIND:-127.0.0.1}:") for p in published)


def test_no_password_defaults_silently_or_travels_in_the_environment() -> None:
    # every password is a compose secret (a file: any characters work, docker inspect shows
    # none); the databases read them from files, tomeflow through TOMEFLOW_DATABASE_PASSWORD_FILE
    text = COMPOSE.read_text()
    spec = yaml.safe_load(text)
    assert set(spec["secrets"]) == {
        "tomeflow_db_password",
        "prefect_db_password",
        "tomeflow_reader_password",
    }
    services = spec["services"]
    assert services["data-db"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    assert services["prefect-db"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith(
        "/run/secrets/"
    )
    for name, service in services.items():
        for key in service.get("environment") or {}:
            if "PASSWORD" in key:
                assert key.endswith("_FILE"), f"{name}: {key} carries a password"
    assert (
        services["worker"]["environment"]["DATABASE_URL"]
        == "postgresql://tomeflow@data-db:5432/tomeflow"
    )
    assert ":-postgres" not in text and "PASSWORD: postgres" not in text


def test_an_operator_can_ship_it() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in ("migrate", "deploy", "worker", "docs"):
        assert services[name]["pull_policy"] == "build", name  # never pulled from a registry
    deploy = " ".join(services["deploy"]["command"])
    assert "--overwrite" not in deploy and "work-pool inspect tomeflow" in deploy
    for name in ("data-db", "prefect-db", "prefect-server", "worker", "docs"):
        service = services[name]
        assert service["restart"] == "unless-stopped", name
        assert service["logging"]["options"]["max-size"], name  # logs rotate
        assert service["deploy"]["resources"]["limits"]["memory"], name
    assert services["docs"]["command"][:2] == ["tomeflow", "docs"]
    deployment = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"][0]
    assert deployment["concurrency_limit"] == 1


def test_analysts_get_a_read_only_login_and_a_psql_to_use_it() -> None:
    # issue 14: `reader` makes the login after the migrations; `psql` (profile tools) uses it
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    reader = services["reader"]
    assert reader["command"][:3] == ["tomeflow", "db", "grant-reader"]
    assert reader["command"][-2:] == ["--password-file", "/run/secrets/tomeflow_reader_password"]
    assert set(reader["secrets"]) == {"tomeflow_db_password", "tomeflow_reader_password"}
    assert reader["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert reader["restart"] == "no"
    psql = services["psql"]
    assert psql["profiles"] == ["tools"]  # not started by `up`
    assert psql["secrets"] == ["tomeflow_reader_password"]
    assert "/run/secrets/tomeflow_reader_password" in " ".join(psql["command"])
    assert "-h data-db" in " ".join(psql["command"])
    assert psql["depends_on"]["reader"]["condition"] == "service_completed_successfully"
    example = (PROJECT_ROOT / ".env.example").read_text()
    assert "secrets/tomeflow_reader_password" in example and "TOMEFLOW_READER=" in example


def test_a_password_file_with_any_characters_reaches_the_database_url(tmp_path: Path) -> None:
    from flows.load.db import database_url, masked
    from flows.settings import Settings

    secret = tmp_path / "pw"
    secret.write_text("p@ss:w/rd#?%\n", "utf-8")
    settings = Settings(DATABASE_URL="postgresql://tomeflow@db:5432/tomeflow",
                        database_password_file=secret)  # fmt: skip
    url = database_url(settings)
    assert url == "postgresql://tomeflow:p%40ss%3Aw%2Frd%23%3F%25@db:5432/tomeflow"
    import psycopg

    assert psycopg.conninfo.conninfo_to_dict(url)["password"] == "p@ss:w/rd#?%"
    assert "p%40ss" not in masked(url)


def test_a_dask_profile_with_a_scheduler_and_two_workers_on_the_app_image() -> None:
    # issue 11: batches of the ingest-dask deployment go to these workers
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    scheduler, worker = services["dask-scheduler"], services["dask-worker"]
    assert scheduler["profiles"] == worker["profiles"] == ["dask"]
    assert scheduler["image"] == worker["image"] == "tomeflow:latest"
    assert scheduler["command"][:2] == ["dask", "scheduler"]
    assert worker["command"][:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["depends_on"]["dask-scheduler"]["condition"] == "service_healthy"
    # the same database settings and secret as the Prefect worker: the batches load there
    assert worker["environment"] == services["worker"]["environment"]
    assert worker["secrets"] == ["tomeflow_db_password"]
    assert "tomeflow-state:/var/lib/tomeflow" in worker["volumes"]
    assert services["worker"]["environment"]["TOMEFLOW_DASK_ADDRESS"].endswith(
        "tcp://dask-scheduler:8786}"
    )
