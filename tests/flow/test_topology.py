"""The production topology of docker-compose.yml, without Docker, on loopback.

The same programs the compose services run, as plain subprocesses: a `prefect server start`
backed by its own PostgreSQL database, the one-shot `tomeflow migrate` and `deploy` steps
(work pool + `prefect deploy --all` from prefect.yaml), and a `prefect worker` of the
`tomeflow` process pool. It proves that:

- a worker runs the deployment `ingest/ingest-daily` to Completed, with its artifacts, and
  the papers land in tomeflow's own database under the flow run's id;
- a second run of the deployment finds every paper unchanged and makes no HTTP request;
- `tomeflow serve` registers the same deployment with its daily cron (05:00 UTC), and the
  server's scheduler queues its next runs.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.responses import DeploymentResponse
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings

from bench.synth import make_paper, write_seeds
from flows.settings import PROJECT_ROOT
from tests.conftest import FAST_FETCH
from tests.helpers import query
from tests.http_server import ScriptedHTTPServer, markdown

pytestmark = pytest.mark.topology


def compose_deploy_command(prefect: str) -> list[str]:
    """The deploy service's command in docker-compose.yml, run with this venv's prefect."""
    spec = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    shell, flag, script = spec["services"]["deploy"]["command"]
    return [shell, flag, script.replace("prefect ", f"{prefect} ")]


T = TypeVar("T")

BIN = Path(sys.executable).parent  # the venv's prefect and tomeflow scripts
DEPLOYMENT = "ingest/ingest-daily"
PAPERS = 5
START_DEADLINE = 120.0  # seconds for a server, a worker or `serve` to come up
RUN_DEADLINE = 300.0  # seconds for one flow run, from trigger to a final state
STOP_GRACE = 20.0  # seconds a stopped process gets before it is killed


@dataclass
class Service:
    """A long-running subprocess, alone in its process group, logging to a file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 80) -> str:
        """The last lines of its log."""
        text = self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Fail at once if the process has exited (`running` then prints its log)."""
        code = self.process.poll()
        if code is not None:
            pytest.fail(f"{self.name} exited early with code {code}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process group, give its leader a grace period, then kill what is left."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(STOP_GRACE)
    # sweep what is left of the group: a stuck leader, or a flow-run process a worker spawned
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)


@contextmanager
def running(
    name: str, argv: Sequence[str], env: Mapping[str, str], logs: Path
) -> Iterator[Service]:
    """Run argv from the repository root for the block; print its log if the block fails."""
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        # a session of its own, so that stopping it also stops its children
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(name, process, log)
    try:
        yield service
    except BaseException:
        print(f"----- {name} log ({log}), last lines -----\n{service.tail()}")
        raise
    finally:
        stop(process)


def run_cli(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """Run a one-shot command from the repository root; fail with its output unless it exits 0."""
    result = subprocess.run(
        list(argv),
        env=dict(env),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    command = " ".join([Path(argv[0]).name, *argv[1:]])
    assert result.returncode == 0, (
        f"`{command}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def wait_for(
    what: str, check: Callable[[], T | None], services: Sequence[Service], timeout: float
) -> T:
    """Poll check until it returns something truthy; fail if a service dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        for service in services:
            service.check_alive()
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_dbname(url: str, dbname: str, scheme: str | None = None) -> str:
    """url pointing at another database of the same server, optionally through another driver."""
    parts = urlsplit(url)._replace(path=f"/{dbname}")
    return urlunsplit(parts._replace(scheme=scheme) if scheme else parts)


def healthy(api_url: str) -> bool:
    """Whether the Prefect API answers its health check."""
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def base_env(prefect_home: Path) -> dict[str, str]:
    """This process's environment without any Prefect or tomeflow settings, made quiet."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "TOMEFLOW_")) and k != "DATABASE_URL"
    }
    return {
        **inherited,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
        # plain, unwrapped lines in the logs shown on failure
        "PREFECT_CLI_COLORS": "false",
        "PREFECT_CLI_WRAP_LINES": "false",
    }


@contextmanager
def prefect_client(api_url: str) -> Iterator[SyncPrefectClient]:
    """A client of the server under test (not the suite's test harness)."""
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as c:
        yield c


def finished(client: SyncPrefectClient, run_id: uuid.UUID) -> FlowRun | None:
    """The flow run once its state is final, else None."""
    run = client.read_flow_run(run_id)
    return run if run.state is not None and run.state.is_final() else None


def run_deployment(client: SyncPrefectClient, services: Sequence[Service]) -> FlowRun:
    """Trigger the deployment now and wait for the worker to take the run to a final state."""
    deployment = client.read_deployment_by_name(DEPLOYMENT)
    run_id = client.create_flow_run_from_deployment(deployment.id).id
    run = wait_for(
        f"flow run {run_id} to finish", lambda: finished(client, run_id), services, RUN_DEADLINE
    )
    assert run.state is not None and run.state.is_completed(), run.state
    return run


def artifact_keys(client: SyncPrefectClient, run_id: uuid.UUID) -> set[str]:
    """Keys of the artifacts a flow run created."""
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    )
    return {a.key for a in artifacts if a.key}


def run_row(data_url: str, run_id: uuid.UUID) -> dict[str, Any]:
    """tomeflow's ops.runs row of a flow run."""
    rows = query(
        data_url,
        """select status, papers_seen, papers_new, papers_unchanged, papers_failed
           from ops.runs where run_id = %s""",
        run_id,
    )
    assert len(rows) == 1, f"ops.runs has {len(rows)} rows for flow run {run_id}"
    names = ("status", "seen", "new", "unchanged", "failed")
    return dict(zip(names, rows[0], strict=True))


def registered(client: SyncPrefectClient) -> DeploymentResponse | None:
    """The deployment, once it exists."""
    try:
        return client.read_deployment_by_name(DEPLOYMENT)
    except ObjectNotFound:
        return None


def scheduled_runs(client: SyncPrefectClient, deployment_id: uuid.UUID) -> list[FlowRun]:
    """The deployment's flow runs in state Scheduled."""
    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
        )
    )


@pytest.fixture
def databases(pg_server_url: str) -> Iterator[tuple[str, str]]:
    """Fresh databases for Prefect and for tomeflow's data: (asyncpg url, data url)."""
    tag = uuid.uuid4().hex[:8]
    names = (f"tf_topo_prefect_{tag}", f"tf_topo_data_{tag}")
    try:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'create database "{name}"')
        # the prefect server talks to postgresql through asyncpg
        prefect_url = with_dbname(pg_server_url, names[0], scheme="postgresql+asyncpg")
        yield prefect_url, with_dbname(pg_server_url, names[1])
    finally:
        # force: a killed server or worker may leave connections behind
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def seeds(tmp_path: Path, http_server: ScriptedHTTPServer) -> Path:
    """A seed folder of synthetic papers whose full texts the local HTTP server serves."""
    papers = [make_paper(i, http_server.base_url, fulltext_kb=2) for i in range(PAPERS)]
    for paper in papers:
        http_server.route(f"/paper/{paper.paper_id}/full.md", markdown(paper.fulltext))
    write_seeds(tmp_path / "seeds", papers)
    return tmp_path / "seeds"


def test_worker_runs_the_deployment_and_serve_schedules_it(
    tmp_path: Path,
    databases: tuple[str, str],
    seeds: Path,
    http_server: ScriptedHTTPServer,
) -> None:
    prefect_db, data_db = databases
    api_url = f"http://127.0.0.1:{free_port()}/api"
    env = base_env(tmp_path / "prefect-home")
    server_env = {
        **env,
        "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db,
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        # the recent-deployments pass (every 5 s) schedules a new deployment; should it miss
        # one, the main scheduler loop (60 s by default) is the fallback, so make it short
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    }
    client_env = {**env, "PREFECT_API_URL": api_url}
    tomeflow_env = {
        **client_env,
        **FAST_FETCH,
        "DATABASE_URL": data_db,
        "TOMEFLOW_HOME": str(tmp_path / "tomeflow-home"),
        "TOMEFLOW_SEEDS_DIR": str(seeds),
        # the worker asks for due runs every second rather than every ten
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    prefect, tomeflow = str(BIN / "prefect"), str(BIN / "tomeflow")
    port = str(urlsplit(api_url).port)
    server_argv = [prefect, "server", "start", "--host", "127.0.0.1", "--port", port]

    with running("server", server_argv, server_env, tmp_path) as server:
        wait_for("the Prefect API to answer", lambda: healthy(api_url), [server], START_DEADLINE)

        # what compose's one-shot migrate and deploy services do: their very commands
        run_cli([tomeflow, "migrate"], tomeflow_env)
        deploy = compose_deploy_command(prefect)
        run_cli(deploy, client_env)
        # an operator's change to the pool survives the next `up`: made if missing, not overwritten
        run_cli([prefect, "work-pool", "set-concurrency-limit", "tomeflow", "3"], client_env)
        run_cli(deploy, client_env)
        with prefect_client(api_url) as client:
            assert client.read_work_pool("tomeflow").concurrency_limit == 3

        worker_argv = [prefect, "worker", "start", "--pool", "tomeflow", "--type", "process"]
        with running("worker", worker_argv, tomeflow_env, tmp_path) as worker:
            with prefect_client(api_url) as client:
                first = run_deployment(client, [server, worker])
                assert artifact_keys(client, first.id) >= {"ingest-summary", "ingest-data-quality"}
            assert first.work_pool_name == "tomeflow"
            ids = {p for (p,) in query(data_db, "select paper_id from core.papers")}
            assert ids == {page.stem for page in seeds.glob("*.md")} and len(ids) == PAPERS
            assert query(data_db, "select count(*) from core.sections")[0][0] > 0
            assert query(data_db, "select run_id from ops.runs") == [(first.id,)]
            assert run_row(data_db, first.id) == {
                "status": "completed", "seen": PAPERS, "new": PAPERS, "unchanged": 0, "failed": 0
            }  # fmt: skip

            # the second run finds every full text fresh in the raw layer: no request at all
            requests_before = len(http_server.requests())
            with prefect_client(api_url) as client:
                second = run_deployment(client, [server, worker])
            assert second.id != first.id
            assert len(http_server.requests()) == requests_before
            assert run_row(data_db, second.id) == {
                "status": "completed", "seen": PAPERS, "new": 0, "unchanged": PAPERS, "failed": 0
            }  # fmt: skip

        # `prefect deploy` registered the deployment and the scheduler already queued its runs;
        # delete it, so that the deployment and the runs found next can only come from serve
        with prefect_client(api_url) as client:
            client.delete_deployment(client.read_deployment_by_name(DEPLOYMENT).id)

        with running("serve", [tomeflow, "serve"], tomeflow_env, tmp_path) as serve:
            with prefect_client(api_url) as client:
                alive = [server, serve]
                served = wait_for(
                    "`tomeflow serve` to register the deployment",
                    lambda: registered(client),
                    alive,
                    START_DEADLINE,
                )
                schedules = [
                    (s.schedule.cron, s.schedule.timezone, s.active) for s in served.schedules
                ]
                assert schedules == [("0 5 * * *", "UTC", True)]
                upcoming = wait_for(
                    "the scheduler to queue the served deployment's runs",
                    lambda: scheduled_runs(client, served.id),
                    alive,
                    START_DEADLINE,
                )
            now = dt.datetime.now(dt.UTC)
            starts = [r.expected_start_time for r in upcoming]
            assert all(s is not None and s > now for s in starts), starts
            # every queued run is at 05:00 UTC, as the cron says
            assert {(s.astimezone(dt.UTC).hour, s.minute) for s in starts if s} == {(5, 0)}
