"""The notification automation of automations/ingest-problems.yaml, on a real Prefect server.

`create_automations` makes the Webhook block and the automation on a `prefect server start`
(PostgreSQL-backed, as in production: automation changes reach the triggers service through
NOTIFY/LISTEN there) whose triggers and actions services run as they do in production. Then
runs of a flow named "ingest" end Failed, Completed and "Completed with problems"; a local
HTTP server records the webhook's calls: one per failed or problem run, each naming its run,
and none for the clean run.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from prefect import flow
from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Completed

from flows.automations import (
    INGEST_PROBLEMS,
    AutomationError,
    create_automations,
    read_spec,
    with_block,
)
from flows.run import PROBLEMS_STATE
from tests.flow.test_topology import (
    BIN,
    START_DEADLINE,
    Service,
    base_env,
    free_port,
    healthy,
    prefect_client,
    running,
    wait_for,
    with_dbname,
)

AUTOMATION = "tomeflow: ingest failed or completed with problems"
HOOK_PATH = "/hooks/ingest"
HOOK_DEADLINE = 60.0  # seconds from a run's end to its webhook call
QUIET_GRACE = 5.0  # seconds a clean run gets to (wrongly) call the webhook
# the triggers service learns of a new automation by NOTIFY at once, and reconciles its
# automations with the database every 5 s anyway: past this, a loaded machine's lag included,
# the automation is live, and a run that ends now is one it must see
LIVE_AFTER = 7.0


@dataclass(frozen=True)
class Call:
    """One request the webhook received."""

    method: str
    path: str
    content_type: str
    body: dict[str, Any]


class Recorder:
    """A webhook receiver on 127.0.0.1 that answers 200 and keeps every request's JSON body."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsed": raw.decode("utf-8", "replace")}
                call = Call(self.command, self.path, self.headers.get("Content-Type", ""), body)
                with recorder._lock:
                    recorder._calls.append(call)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_PATCH = do_GET = do_POST

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}{HOOK_PATH}?token=s3cret"

    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def call_for(self, run_id: uuid.UUID) -> Call | None:
        """The call naming this flow run, if one came."""
        return next((c for c in self.calls() if c.body.get("flow_run_id") == str(run_id)), None)

    @contextmanager
    def serving(self) -> Iterator[Recorder]:
        thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            yield self
        finally:
            self._httpd.shutdown()
            self._httpd.server_close()
            thread.join(5)


@flow(name="ingest")
def stand_in(outcome: str) -> Any:
    """A flow named like tomeflow's, ending the ways the real one can."""
    if outcome == "failed":
        raise RuntimeError('a quality gate refused batch 1: "core.papers" <12 rows>')
    if outcome == "problems":
        return Completed(name=PROBLEMS_STATE, message="2 documents quarantined")
    return "clean"


def run(outcome: str) -> tuple[uuid.UUID, str, State[Any]]:
    """Run the stand-in flow to its end: (flow run id, run name, final state)."""
    state = stand_in(outcome, return_state=True)
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with prefect_client(PREFECT_API_URL.value()) as client:
        name = client.read_flow_run(run_id).name
    return run_id, name, state


def webhook_call(hooks: Recorder, run_id: uuid.UUID, server: Service) -> Call:
    """Wait for the webhook call naming run_id; on a timeout, show what did arrive."""
    try:
        return wait_for(
            f"the webhook call for flow run {run_id}",
            lambda: hooks.call_for(run_id),
            [server],
            HOOK_DEADLINE,
        )
    except pytest.fail.Exception as exc:
        raise AssertionError(f"{exc}; the webhook received: {hooks.calls()}") from None


def stored_event(event: str, run_id: uuid.UUID) -> bool:
    """Whether the server has stored this event of this flow run."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    wanted = EventFilter(
        event=EventNameFilter(name=[event]),
        resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"]),
    )
    with prefect_client(PREFECT_API_URL.value()) as client:
        return bool(client.read_events(wanted, limit=1).events)


@contextmanager
def pointed_at(api_url: str) -> Iterator[None]:
    """This process's flows and clients on api_url; its queued logs and events sent at the end.

    Sent while the server is still up: a log worker left with a dead server's address would
    retry at the interpreter's exit.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        try:
            yield
        finally:
            with suppress(RuntimeError):  # no log worker was started
                APILogWorker.instance().drain()
            EventsWorker.drain_all()


@pytest.fixture
def prefect_database(pg_server_url: str) -> Iterator[str]:
    """A fresh database for the Prefect server (asyncpg url), dropped afterwards."""
    name = f"tf_auto_prefect_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield with_dbname(pg_server_url, name, scheme="postgresql+asyncpg")
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.mark.topology
def test_the_automation_calls_the_webhook_for_failed_and_problem_runs_only(
    tmp_path: Path, prefect_database: str
) -> None:
    port = free_port()
    api_url, ui_url = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}"
    server_env = {
        **base_env(tmp_path / "prefect-home"),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_database,
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        "PREFECT_UI_URL": ui_url,  # what the payload's link is built from
    }
    argv = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]

    with (
        Recorder().serving() as hooks,
        running("server", argv, server_env, tmp_path) as server,
    ):
        wait_for("the Prefect API to answer", lambda: healthy(api_url), [server], START_DEADLINE)
        with pointed_at(api_url):
            first = create_automations(hooks.url)
            again = create_automations(hooks.url)
            assert [line.rsplit(": ", 1)[-1] for line in first[1:]] == ["created"]
            assert [line.rsplit(": ", 1)[-1] for line in again[1:]] == ["updated (enabled)"]
            assert "s3cret" not in "".join(first + again)  # the hook's token is never shown
            assert first[0].endswith(": http://127.0.0.1/…"), first
            with prefect_client(api_url) as client:
                automations = client.read_automations()
            assert [a.name for a in automations] == [AUTOMATION]
            assert automations[0].enabled
            time.sleep(LIVE_AFTER)

            # a failed run calls the webhook: the automation does fire
            failed_id, failed_name, failed = run("failed")
            assert failed.is_failed()
            failed_call = webhook_call(hooks, failed_id, server)

            # a clean run first, a problem run after it: once the problem run's call is in,
            # the clean run's events (older) have been through the triggers too
            clean_id, _, clean = run("clean")
            assert clean.is_completed() and clean.name == "Completed"
            problems_id, problems_name, problems = run("problems")
            assert problems.is_completed() and problems.name == PROBLEMS_STATE
            problems_call = webhook_call(hooks, problems_id, server)
            # the clean run's end was an event the automation saw, and let pass
            wait_for(
                "the clean run's Completed event",
                lambda: stored_event("prefect.flow-run.Completed", clean_id),
                [server],
                HOOK_DEADLINE,
            )
            time.sleep(QUIET_GRACE)

    assert hooks.call_for(clean_id) is None, hooks.calls()
    assert len(hooks.calls()) == 2, hooks.calls()
    for call in (failed_call, problems_call):
        assert (call.method, call.path) == ("POST", HOOK_PATH + "?token=s3cret")
        assert call.content_type == "application/json"
    assert failed_call.body == {
        "text": f"tomeflow: ingest run {failed_name} ended Failed",
        "flow": "ingest",
        "flow_run": failed_name,
        "flow_run_id": str(failed_id),
        "state": "Failed",
        "state_type": "FAILED",
        "message": "Flow run encountered an exception: RuntimeError: "
        'a quality gate refused batch 1: "core.papers" <12 rows>',
        "url": f"{ui_url}/runs/flow-run/{failed_id}",
    }
    assert problems_call.body == {
        "text": f"tomeflow: ingest run {problems_name} ended {PROBLEMS_STATE}",
        "flow": "ingest",
        "flow_run": problems_name,
        "flow_run_id": str(problems_id),
        "state": PROBLEMS_STATE,
        "state_type": "COMPLETED",
        "message": "2 documents quarantined",
        "url": f"{ui_url}/runs/flow-run/{problems_id}",
    }


def test_the_file_expects_the_states_the_flow_ends_in() -> None:
    spec = read_spec()
    (automation,) = spec["automations"]
    assert automation["name"] == AUTOMATION
    expect = set(automation["trigger"]["expect"])
    # flows/run.py's name for a run that loaded with problems, as the server spells the event
    assert f"prefect.flow-run.{PROBLEMS_STATE}" in expect
    assert {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"} <= expect
    assert "prefect.flow-run.Completed" not in expect
    assert automation["trigger"]["match_related"] == {
        "prefect.resource.role": "flow",
        "prefect.resource.name": "ingest",
    }


def test_the_webhook_action_gets_the_block_id_and_the_file_stays_untouched() -> None:
    (automation,) = read_spec()["automations"]
    filled = with_block(automation, "0b1d-id")
    assert [a["block_document_id"] for a in filled["actions"]] == ["0b1d-id"]
    assert "block_document_id" not in automation["actions"][0]


def test_a_bad_file_or_url_is_refused_before_any_server_is_asked(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text(yaml.safe_dump({"webhook": {"block": "b"}}), encoding="utf-8")
    with pytest.raises(AutomationError, match="no `automations:` list"):
        read_spec(empty)
    with pytest.raises(AutomationError, match="not an http"):
        create_automations("file:///etc/passwd", INGEST_PROBLEMS)
    # no server named: an error, not automations made on a throwaway ephemeral server
    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        pytest.raises(AutomationError, match="PREFECT_API_URL is not set"),
    ):
        create_automations("https://hooks.example.org/x", INGEST_PROBLEMS)
