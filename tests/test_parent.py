"""flows/parent.py: helper processes end with the process that started them, even a killed one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from flows.parent import exit_with_parent
from flows.settings import PROJECT_ROOT
from tests.helpers import process_alive


def _killed_leaves_none(script: str, tmp_path: Path) -> list[int]:
    """Run script (it prints its helpers' pids, then sleeps), SIGKILL it; the helpers left."""
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True,
        cwd=tmp_path, env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin",
                           "GX_ANALYTICS_ENABLED": "false"},
    )  # fmt: skip
    assert parent.stdout is not None
    helpers = [int(pid) for pid in parent.stdout.readline().split()]
    assert helpers and all(process_alive(pid) for pid in helpers)
    parent.kill()  # as the OOM killer or `kill -9` would: no exit handler runs
    parent.wait()
    deadline = time.monotonic() + 20
    while any(process_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in helpers if process_alive(pid)]


def test_a_pool_worker_bound_to_its_parent_ends_when_the_parent_is_killed(
    tmp_path: Path,
) -> None:
    script = """
        import os, time
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context
        from flows.parent import exit_with_parent

        pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=exit_with_parent)
        print(pool.submit(os.getpid).result(), flush=True)
        time.sleep(600)
    """
    assert _killed_leaves_none(script, tmp_path) == []


def test_the_gate_s_and_the_assemble_processes_end_when_the_run_process_is_killed(
    tmp_path: Path,
) -> None:
    script = f"""
        import os, time
        from flows.fetch.limits import PerHostRateLimiter
        from flows.fetch.rawstore import RawStore
        from flows.quality.process import GateProcess, GateSpec
        from flows.quality.suites import (
            DEFAULT_DRIFT_MAX_DROP, DEFAULT_REFERENCE_COUNT_GAP_TOLERANCE, SUITES_DIR,
        )
        from flows.resources import Resources
        from flows.settings import Settings

        settings = Settings(assemble_processes=1, assemble_process_min_bodies=1)
        res = Resources(settings, object(), RawStore({str(tmp_path)!r}), PerHostRateLimiter(1.0),
                        object)
        assemble = res.cpu_pool().submit(os.getpid).result()
        gate = GateProcess(GateSpec(SUITES_DIR, None, DEFAULT_REFERENCE_COUNT_GAP_TOLERANCE,
                                    DEFAULT_DRIFT_MAX_DROP))
        print(assemble, gate._pool.submit(os.getpid).result(), flush=True)
        time.sleep(600)
    """
    assert _killed_leaves_none(script, tmp_path) == []


def slow_start() -> None:
    """An initializer that binds the process to its parent only after a second."""
    time.sleep(1.0)
    exit_with_parent()


def test_a_helper_whose_parent_died_while_it_was_starting_ends_too(tmp_path: Path) -> None:
    script = """
        import time
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context
        from tests.test_parent import slow_start

        pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=slow_start)
        pool.submit(time.sleep, 0)  # starts the worker; its initializer sleeps
        print(*pool._processes, flush=True)  # killed now: before the worker is bound
        time.sleep(600)
    """
    assert _killed_leaves_none(script, tmp_path) == []
