"""What the benchmark runs against: scratch databases, a counting file server, a Prefect server,
and child processes whose memory is sampled while they run."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg

CI_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
MB = 1024 * 1024


def server_url() -> str:
    """The PostgreSQL server to create scratch databases in.

    TOMEFLOW_TEST_DATABASE_URL, else 127.0.0.1:5432 if it answers, else the embedded server.
    """
    explicit = os.environ.get("TOMEFLOW_TEST_DATABASE_URL")
    if explicit:
        return explicit
    try:
        psycopg.connect(CI_DATABASE, connect_timeout=3).close()
        return CI_DATABASE
    except psycopg.OperationalError:
        from flows.load.db import embedded_database_url
        from flows.settings import PROJECT_ROOT

        return embedded_database_url(PROJECT_ROOT / ".tomeflow" / "test-pgdata", "postgres")


def server_version(url: str) -> str:
    """PostgreSQL's version string, e.g. 15.20."""
    with psycopg.connect(url) as conn:
        row = conn.execute("show server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


@contextmanager
def scratch_database(label: str) -> Iterator[str]:
    """A fresh, empty database, dropped afterwards (also on failure)."""
    admin = server_url()
    name = f"tomeflow_bench_{label}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the full-text server ------------------------------------------------------------------


def _serve_folder(root: str, ports: Any, requests: Synchronized[int]) -> None:
    """Serve root's files as Markdown on a free loopback port, counting every request."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # as real servers do (nginx's tcp_nodelay): with Nagle's algorithm the body's last
        # segment waits for the client's delayed ACK, 40 ms a response, and 8 connections
        # then serve at most 200 papers/s whatever tomeflow does
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            with requests.get_lock():
                requests.value += 1
            path = Path(root, self.path.lstrip("/"))
            body = path.read_bytes() if path.is_file() else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/markdown; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_HEAD(self) -> None:
            with requests.get_lock():
                requests.value += 1
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    ports.put(httpd.server_address[1])
    httpd.serve_forever()


class FileServer:
    """A local HTTP server for the synthetic full texts; it counts the requests it answers."""

    def __init__(self, base_url: str, requests: Synchronized[int]) -> None:
        self.base_url = base_url
        self._requests = requests

    @property
    def requests(self) -> int:
        """Requests answered so far."""
        with self._requests.get_lock():
            return int(self._requests.value)


@contextmanager
def fulltext_server(root: Path) -> Iterator[FileServer]:
    """A server for the files under root, in a process of its own so it costs the run nothing."""
    root.mkdir(parents=True, exist_ok=True)
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    counter: Synchronized[int] = multiprocessing.Value("q", 0)
    server = multiprocessing.Process(
        target=_serve_folder, args=(str(root), ports, counter), daemon=True
    )
    server.start()
    try:
        yield FileServer(f"http://127.0.0.1:{ports.get(timeout=30)}", counter)
    finally:
        server.terminate()
        server.join(10)
        if server.is_alive():
            server.kill()
            server.join()


# --- child processes ----------------------------------------------------------------------


def kill_group(pgid: int) -> None:
    """Kill what is left of a process group the bench started (e.g. an orphaned server)."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class ChildStats:
    """What the parent saw of one child process."""

    returncode: int
    wall: float  # spawn to exit
    cpu: float  # user+sys of the child and of its reaped descendants (wait4)
    peak_rss_mb: float  # sampled every SAMPLE_SECONDS: the child itself
    peak_children_rss_mb: float  # sampled: the sum over its live descendants
    children: tuple[str, ...]  # the names of the descendants seen
    machine_cpu: float  # busy CPU seconds of the whole machine meanwhile (every process)
    peak_load: float  # the highest 1-minute load average seen meanwhile
    postgres_cpu: float = 0.0  # CPU seconds of this machine's PostgreSQL servers meanwhile


SAMPLE_SECONDS = 0.2


class TreeSampler(threading.Thread):
    """Samples a process's RSS and its descendants' summed RSS every SAMPLE_SECONDS."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.peak_children = 0
        self.children: dict[int, str] = {}  # pid -> what it is
        self.peak_load = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop_event.is_set():
            self.peak_load = max(self.peak_load, os.getloadavg()[0])
            try:
                self.peak = max(self.peak, proc.memory_info().rss)
                total = 0
                for kid in proc.children(recursive=True):
                    with suppress(psutil.Error):
                        total += kid.memory_info().rss
                        if kid.pid not in self.children:
                            self.children[kid.pid] = describe(kid.cmdline(), kid.name())
                self.peak_children = max(self.peak_children, total)
            except psutil.Error:
                return
            self._stop_event.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every core, every process) since boot."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def postgres_cpu() -> float:
    """CPU seconds this machine's PostgreSQL servers have used: every postgres process, and
    the backends each postmaster has reaped (its children's times), so that a backend that
    ends between two readings still counts."""
    total = 0.0
    for proc in psutil.process_iter(["name", "ppid"]):
        with suppress(psutil.Error):
            if proc.info["name"] != "postgres":
                continue
            times = proc.cpu_times()
            total += times.user + times.system
            parent = psutil.Process(proc.info["ppid"]) if proc.info["ppid"] else None
            if parent is None or parent.name() != "postgres":  # a postmaster
                total += times.children_user + times.children_system
    return total


def describe(cmdline: Sequence[str], name: str) -> str:
    """A short name for a child process: `python -m uvicorn`, `multiprocessing worker`."""
    text = " ".join(cmdline)
    if "multiprocessing.spawn" in text or "multiprocessing.forkserver" in text:
        return "multiprocessing worker"
    if "resource_tracker" in text:
        return "multiprocessing resource tracker"
    if "-m" in cmdline[:-1]:
        return f"python -m {cmdline[list(cmdline).index('-m') + 1]}"
    return Path(cmdline[0]).name if cmdline else name


def run_sampled(
    cmd: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> ChildStats:
    """Run cmd to its end in a session of its own, output to log, memory sampled from here."""
    with log.open("ab") as out:
        start, busy, pg = time.perf_counter(), machine_busy(), postgres_cpu()
        proc = subprocess.Popen(
            list(cmd),
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            sampler.stop()
            kill_group(proc.pid)  # whatever the child left running
        wall, busy = time.perf_counter() - start, machine_busy() - busy
        time.sleep(0.2)  # the run's backends end once its connections are gone
        pg = postgres_cpu() - pg
        proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildStats(
        returncode=proc.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=sampler.peak / MB,
        peak_children_rss_mb=sampler.peak_children / MB,
        children=tuple(f"{n}x {what}" for what, n in Counter(sampler.children.values()).items()),
        machine_cpu=busy,
        peak_load=sampler.peak_load,
        postgres_cpu=pg,
    )


def tail(path: Path, chars: int = 4000) -> str:
    """The end of a log file."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


def read_json(path: Path) -> dict[str, Any]:
    """A child's result file (empty when it wrote none)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- a Prefect server ---------------------------------------------------------------------


def wait_for_health(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll url until it answers 200; fail early when the server process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"prefect server did not answer {url} within {timeout:.0f} s:\n{tail(log)}")


@contextmanager
def prefect_server(
    prefect: Path, home: Path, env: Mapping[str, str], log: Path
) -> Iterator[tuple[str, float]]:
    """`prefect server start` on a free port with its own PREFECT_HOME; yields (api url, start s).

    Stopped (its whole process group) afterwards, also on failure.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server_env = {**env, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server_env.pop("PREFECT_API_URL", None)
    cmd = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    start = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, env=server_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        api = f"http://127.0.0.1:{port}/api"
        wait_for_health(f"{api}/health", proc, log, timeout=180)
        yield api, time.perf_counter() - start
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        kill_group(proc.pid)
        proc.wait()
