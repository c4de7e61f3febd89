"""flows/api_server.py: Prefect's temporary server, started by tomeflow before the flow imports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_SERVER_EPHEMERAL_ENABLED,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    temporary_settings,
)

from flows import api_server
from flows.settings import PROJECT_ROOT


def test_the_server_runs_the_command_and_environment_prefects_own_temporary_server_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.server.api import server as prefect_server

    seen: dict[str, Any] = {}

    def popen(args: list[str], env: dict[str, str], **kwargs: Any) -> None:
        seen.update(args=args, env=env, kwargs=kwargs)

    monkeypatch.setattr(prefect_server.subprocess, "Popen", popen)
    port = 8765
    try:
        prefect_server.SubprocessASGIServer(port)._run_uvicorn_command()
    finally:
        prefect_server.SubprocessASGIServer._instances.pop(port, None)
    assert api_server.server_command(port) == seen["args"]
    assert api_server.server_environment() == seen["env"]
    assert seen["kwargs"] == {}  # its output goes where Prefect's server's goes


def test_a_configured_api_or_a_disabled_ephemeral_mode_starts_nothing() -> None:
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert api_server.start_if_unset() is None
    with temporary_settings(
        updates={PREFECT_SERVER_EPHEMERAL_ENABLED: False}, restore_defaults={PREFECT_API_URL}
    ):
        assert api_server.start_if_unset() is None


def test_a_start_gets_at_least_a_minute_for_a_first_start_s_migrations() -> None:
    with temporary_settings(
        updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 5},
        restore_defaults={PREFECT_API_URL},
    ):
        server = api_server.start_if_unset()
    assert server is not None
    server.stop()
    assert server.timeout == api_server.FIRST_START_SECONDS


def test_a_server_that_does_not_come_up_in_time_is_stopped_and_says_which_setting() -> None:
    server = api_server.TemporaryServer(timeout=0.0)
    with pytest.raises(RuntimeError, match="PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):
        server.wait()
    assert server.process is None


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One PREFECT_HOME for the module's temporary servers: its database migrates once."""
    return tmp_path_factory.mktemp("prefect-home")


def _without_api(prefect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    return env | {
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        # its first start migrates PREFECT_HOME's database: slow on a loaded machine
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.xdist_group("temporary-server")
def test_with_no_api_set_a_flow_runs_against_it_without_importing_the_servers_code(
    prefect_home: Path,
) -> None:
    script = textwrap.dedent(
        """
        import sys
        from flows.api_server import start_if_unset
        server = start_if_unset()
        from prefect import flow
        from prefect.client.orchestration import get_client

        @flow
        def hello() -> int:
            return 42

        with server.in_use():
            state = hello(return_state=True)
            with get_client(sync_client=True) as client:
                stored = client.read_flow_run(state.state_details.flow_run_id)
        print(server.port, state.result(), stored.state.name)
        print("server code imported:", "prefect.server.api.server" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=_without_api(prefect_home), cwd=PROJECT_ROOT, text=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    port, result, state = done.stdout.splitlines()[0].split()
    assert (result, state) == ("42", "Completed")  # the run is the server's record
    assert "server code imported: False" in done.stdout
    assert "starting Prefect's temporary server on http://127.0.0.1:" in done.stderr
    assert "Error" not in done.stderr  # the run's last logs reached it before it stopped
    assert not _listening(int(port))  # stopped when the process ended


@pytest.mark.xdist_group("temporary-server")
def test_tomeflow_run_with_no_api_set_runs_against_the_server_it_started(
    prefect_home: Path, db_url: str, tmp_path: Path
) -> None:
    env = _without_api(prefect_home) | {
        "DATABASE_URL": db_url,
        "TOMEFLOW_HOME": str(tmp_path / "home"),
        "TOMEFLOW_DATA_DOCS": "false",
    }
    seeds = PROJECT_ROOT / "seeds"
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--seeds", str(seeds), "--offline"],
        env=env, cwd=tmp_path, text=True, capture_output=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "starting Prefect's temporary server on http://127.0.0.1:" in done.stderr
    assert "): completed" in done.stdout
    assert "View at" not in done.stderr  # the temporary server serves no UI to link to
    assert "Error" not in done.stderr
