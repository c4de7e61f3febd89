"""Prefect's temporary API server, started as a command's first step when no API is set.

With no PREFECT_API_URL configured, a flow run starts Prefect's temporary server
(`prefect.server.api.server.SubprocessASGIServer`) when it first needs the API: only after the
run process has imported that module (FastAPI and the whole server API: 2.6 s of CPU here)
does the server's process begin to come up, which takes seconds more. `tomeflow run` starts
the very same server process (the command and environment Prefect uses, pinned by
tests/test_api_server.py against Prefect's own, plus two settings that skip registering block
types, `_QUICK_START_ENV`) before the run imports anything heavy, so it
comes up on the other core while the run imports the flow and reads its seeds; the run then
talks to it as it would to Prefect's, and never imports the server's code itself. Like
Prefect's, it is stopped when the command ends, and its database is PREFECT_HOME's.

Before this process has imported Prefect, no Prefect setting can have been changed in it, so
the server, given this environment and started in the same folder, resolves exactly the
settings Prefect would have passed it: it is spawned then, before the 1.3 s it takes this
process to import Prefect and read its settings, and is stopped again if they say an API is
configured after all (a guess from the environment and the active profile avoids that
start in the usual cases).

A configured API (a running `prefect server start`, as scheduled runs meet it) is used as it
is: nothing is started.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FIRST_START_SECONDS = 60.0  # the least a start is given (Prefect's own default: 20 s)
_PORT_IN_USE = 3  # uvicorn's exit code when its port was taken meanwhile
_EPHEMERAL_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}

# tomeflow's own additions to Prefect's environment, unless set: the server registers no block
# types as it starts. Deciding whether to register imports every installed Prefect collection
# (prefect-dask imports distributed), 0.5 s of a 3.8 s start; a block saved through this server
# still registers its own type (Block.save), and a `prefect server start` registers them all.
_QUICK_START_ENV = {
    "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
    "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
}

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


class TemporaryServer:
    """A Prefect API server process of this command's own, on a free loopback port."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout  # seconds from the spawn to the first answer
        self.began = time.perf_counter()
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = _spawn(self.port)
        self.up = False

    @property
    def api_url(self) -> str:
        """The API's address, as PREFECT_API_URL takes it."""
        return f"http://127.0.0.1:{self.port}/api"

    def wait(self) -> float:
        """Block until the server answers its health check; the seconds spent waiting here.

        Raises RuntimeError when it exits or does not answer within the startup timeout.
        """
        waited = time.perf_counter()
        while not self.up:
            process = self.process
            if process is None:
                raise RuntimeError("Prefect's temporary server was stopped before it came up")
            code = process.poll()
            if code == _PORT_IN_USE:  # another process took the port first: another port
                self.port = _free_port()
                self.process = _spawn(self.port)
                continue
            if code is not None:
                raise RuntimeError(f"Prefect's temporary server exited with code {code}")
            if time.perf_counter() - self.began > self.timeout:
                self.stop()
                raise RuntimeError(
                    f"Prefect's temporary server did not answer within {self.timeout:g} s "
                    "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
                )
            self.up = _healthy(self.api_url)
            if not self.up:
                time.sleep(0.1)
        return time.perf_counter() - waited

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Prefect (this process's and any it starts) talks to this server meanwhile."""
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            PREFECT_UI_URL,
            temporary_settings,
        )

        # said once the run is about to use it: a command that stops before (a database that
        # refuses, say) says only why it stopped
        print(
            f"starting Prefect's temporary server on http://127.0.0.1:{self.port} "
            "(no PREFECT_API_URL set; it stops when the run ends)",
            file=sys.stderr,
            flush=True,
        )
        self.wait()
        before = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = self.api_url  # for processes started meanwhile
        updates = {
            PREFECT_API_URL: self.api_url,
            PREFECT_UI_URL: "",  # no "View at" links: like Prefect's own, it serves no UI
            # no flow-run heartbeats: they tell a server that a run's process died, and this
            # one stops with it; a run's end waited up to a second for the heartbeat thread
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        }
        try:
            with temporary_settings(updates=updates):
                yield
        finally:
            if before is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = before

    def stop(self) -> None:
        """Stop the server as Prefect stops its own: terminate, then kill after 5 s."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_if_unset() -> TemporaryServer | None:
    """Start Prefect's temporary server now when no Prefect API is configured (else None).

    It stops when the process exits, after Prefect's own exit handlers have sent the run's
    last logs and events to it (registered before them, it runs after them), or on stop().
    """
    # with Prefect not imported yet, start it first and check the settings while it comes up
    early = (
        None if prefect_imported() or api_url_guessed() else TemporaryServer(FIRST_START_SECONDS)
    )
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        if early is not None:
            early.stop()  # an API set where the guess does not look (a .env file, say)
        return None
    # at least a minute: the first start on a machine migrates PREFECT_HOME's database (16 s
    # in the benchmark) while this process imports the flow on the other core
    timeout = max(float(settings.server.ephemeral.startup_timeout_seconds), FIRST_START_SECONDS)
    server = early or TemporaryServer(timeout)
    server.timeout = timeout
    atexit.register(server.stop)
    return server


def prefect_imported() -> bool:
    """Whether this process has imported Prefect (and so may have changed its settings)."""
    return "prefect" in sys.modules


def api_url_guessed() -> bool:
    """Whether PREFECT_API_URL is set in the environment or the active profile.

    Only a guess, read without importing Prefect, so that a run meant for a configured API
    starts no server; Prefect's own settings decide afterwards.
    """
    if os.environ.get("PREFECT_API_URL"):
        return True
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        profiles = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no profiles file yet, or one Prefect will complain about
        return False
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    profile = profiles.get("profiles", {}).get(active, {})
    return isinstance(profile, dict) and bool(profile.get("PREFECT_API_URL"))


def server_command(port: int) -> list[str]:
    """The command Prefect runs for its temporary server (Prefect's package found, not imported)."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        raise RuntimeError("Prefect is not installed")
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(spec.origin).parent.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


def server_environment() -> dict[str, str]:
    """The environment Prefect gives its temporary server, or one in which it resolves the same.

    Prefect adds its current settings to the environment. Before this process has imported
    Prefect none of them can have been changed here: the server resolves each from this
    environment and the same files (profile, .env, prefect.toml) as Prefect would have, so
    they are left out and Prefect stays unimported.
    """
    environment = {**os.environ, **_EPHEMERAL_ENV}
    if not prefect_imported():
        return environment
    from prefect.settings import get_current_settings

    return {**environment, **get_current_settings().to_environment_variables(exclude_unset=True)}


def _spawn(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(server_command(port), env={**_QUICK_START_ENV, **server_environment()})


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(api_url: str) -> bool:
    try:
        with _DIRECT.open(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):  # not listening yet, or not answering yet
        return False
