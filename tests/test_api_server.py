"""flows/api_server.py: Prefect's temporary server, started by tomeflow before the flow imports."""

from __future__ import annotations

import json
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


def _fresh(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """script in a fresh process (Prefect not imported), with PYTHONPATH at the project."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], env=env | {"PYTHONPATH": str(PROJECT_ROOT)},
        cwd=cwd, text=True, capture_output=True, timeout=120,
    )  # fmt: skip


def _bare(home: Path) -> dict[str, str]:
    """The environment of a fresh command with no Prefect API set and its own PREFECT_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {"PREFECT_HOME": str(home)}


_SPAWNS = """
    import subprocess, sys

    spawned = []

    class Popen:  # records whether Prefect was imported when the server was spawned
        def __init__(self, args, env):
            spawned.append("prefect" in sys.modules)

        def poll(self):
            return None

        def terminate(self):
            spawned.append("stopped")

        def wait(self, timeout=None):
            return 0

    subprocess.Popen = Popen
    from flows.api_server import start_if_unset

    server = start_if_unset()
    print(spawned, server is not None)
"""


def test_before_prefect_is_imported_the_server_resolves_the_settings_prefect_would_pass_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # settings from the active profile reach the server either way
    (home / "profiles.toml").write_text(
        'active = "work"\n[profiles.work]\nPREFECT_LOGGING_LEVEL = "ERROR"\n'
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS = 45\n",
        encoding="utf-8",
    )
    script = """
        import json, subprocess, sys
        from flows import api_server

        command, env = api_server.server_command(8765), api_server.server_environment()
        imported_before = api_server.prefect_imported()
        from prefect.server.api import server as prefect_server

        seen, real = {}, subprocess.Popen
        subprocess.Popen = lambda args, env, **kw: seen.update(args=args, env=env)
        prefect_server.SubprocessASGIServer(8765)._run_uvicorn_command()
        subprocess.Popen = real
        probe = (
            "import json; from prefect.settings import get_current_settings as s; "
            "print(json.dumps(s().model_dump(mode='json'), sort_keys=True, default=str))"
        )
        views = [
            subprocess.run([sys.executable, "-c", probe], env=e, capture_output=True, text=True,
                           check=True).stdout
            for e in (env, seen["env"])
        ]
        print(json.dumps({
            "imported_before": imported_before,
            "same_command": command == seen["args"],
            "prefect_adds": sorted(set(seen["env"]) - set(env)),
            "same_settings": views[0] == views[1],
            "level": json.loads(views[0])["logging"]["level"],
        }))
    """
    done = _fresh(script, _bare(home), tmp_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["imported_before"] is False  # command and environment built without Prefect
    assert seen["same_command"] is True
    assert seen["prefect_adds"]  # Prefect passes its settings; ours leaves them to the server
    assert seen["same_settings"] is True  # ... which resolves every one of them the same
    assert seen["level"] == "ERROR"


def test_with_prefect_not_yet_imported_the_server_is_spawned_before_it_is(tmp_path: Path) -> None:
    done = _fresh(_SPAWNS, _bare(tmp_path / "home"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[False]", "True"]


def test_an_api_in_the_active_profile_starts_no_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text(
        'active = "work"\n[profiles.work]\nPREFECT_API_URL = "http://127.0.0.1:9/api"\n',
        encoding="utf-8",
    )
    done = _fresh(_SPAWNS, _bare(home), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "False"]


def test_an_api_set_where_the_guess_does_not_look_stops_the_server_started_early(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text("PREFECT_API_URL=http://127.0.0.1:9/api\n", encoding="utf-8")
    done = _fresh(_SPAWNS, _bare(tmp_path / "home"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[False,", "'stopped']", "False"]


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
        from prefect.settings import get_current_settings

        @flow
        def hello() -> int:
            print("heartbeats:", get_current_settings().flows.heartbeat_frequency)
            return 42

        with server.in_use():
            state = hello(return_state=True)
            with get_client(sync_client=True) as client:
                stored = client.read_flow_run(state.state_details.flow_run_id)
                registered = len(client.read_block_types())
            from prefect.blocks.system import Secret

            Secret(value="kept").save("tomeflow-test", overwrite=True)  # registers its type
            kept = Secret.load("tomeflow-test").get()
        print(server.port, state.result(), stored.state.name)
        print("block types registered at start:", registered, "a saved block:", kept)
        print("server code imported:", "prefect.server.api.server" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=_without_api(prefect_home), cwd=PROJECT_ROOT, text=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "heartbeats: None"  # the server stops with the run
    port, result, state = done.stdout.splitlines()[1].split()
    assert (result, state) == ("42", "Completed")  # the run is the server's record
    assert "server code imported: False" in done.stdout
    # no block types registered as it started (the 0.5 s of importing every collection), and a
    # block saved through it still works
    assert "block types registered at start: 0 a saved block: kept" in done.stdout
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
