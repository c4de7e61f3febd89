"""The quality gate in a process of its own (flows/quality/process.py)."""

from __future__ import annotations

import gc
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flows.collector import YOUNG_THRESHOLD
from flows.quality.gate import QualityGate
from flows.quality.process import GateProcess, GateSpec
from flows.quality.results import QualityGateError, SuiteError
from flows.quality.suites import (
    BEFORE_LOAD_SUITES,
    DEFAULT_DRIFT_MAX_DROP,
    DEFAULT_REFERENCE_COUNT_GAP_TOLERANCE,
    SUITES_DIR,
)
from flows.quality.verdict import check_batch
from flows.records import PaperLoad
from flows.settings import PROJECT_ROOT
from tests.quality.test_verdict import dated_papers, load  # noqa: F401  (load: a fixture)


def spec(docs: Path | None = None) -> GateSpec:
    return GateSpec(SUITES_DIR, docs, DEFAULT_REFERENCE_COUNT_GAP_TOLERANCE, DEFAULT_DRIFT_MAX_DROP)


@pytest.fixture
def gate_process(tmp_path: Path) -> GateProcess:
    process = GateProcess(spec(tmp_path / "docs"))
    yield process
    process.close()


def test_the_gate_in_its_process_finds_what_the_gate_here_finds(
    load: PaperLoad,  # noqa: F811
    session_gate: QualityGate,
    gate_process: GateProcess,
    tmp_path: Path,
) -> None:
    loads = dated_papers(load, 1700, 2, 6)
    here = check_batch(session_gate, loads, 1, max_failure_share=0.5)
    there = check_batch(gate_process, loads, 1, max_failure_share=0.5)
    assert there == here
    assert there.papers_rejected == 2 and len(there.rejected) == 2
    index = gate_process.build_data_docs("run-1", keep=3)
    assert index == tmp_path / "docs" / "runs" / "run-1" / "index.html"
    assert index.is_file()


def test_the_run_process_never_imports_great_expectations_or_pandas() -> None:
    code = (
        "import sys\n"
        "from flows.quality.process import GateProcess, GateSpec\n"
        "from flows.quality.suites import BEFORE_LOAD_SUITES, SUITES_DIR\n"
        "gate = GateProcess(GateSpec(SUITES_DIR, None, 3, 0.05))\n"
        "report = gate.validate_rows({s: [] for s in BEFORE_LOAD_SUITES}, 1)\n"
        "gate.close()\n"
        "print(report.success, 'great_expectations' in sys.modules, 'pandas' in sys.modules)\n"
    )
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    assert done.stdout.split() == ["True", "False", "False"]


def test_a_gate_process_that_died_fails_the_call_saying_so(gate_process: GateProcess) -> None:
    empty = {suite: [] for suite in BEFORE_LOAD_SUITES}
    assert gate_process.validate_rows(empty, 1).success  # started and answering
    for pid in list(gate_process._pool._processes or {}):  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(QualityGateError, match="quality gate's process ended unexpectedly"):
        gate_process.validate_rows(empty, 2)


def test_the_gate_s_process_settles_its_collector_once_its_gate_is_built(
    gate_process: GateProcess,
) -> None:
    empty = {suite: [] for suite in BEFORE_LOAD_SUITES}
    assert gate_process.validate_rows(empty, 1).success  # built: Great Expectations imported
    pool = gate_process._pool  # type: ignore[attr-defined]
    assert pool.submit(gc.get_threshold).result(timeout=60)[0] == YOUNG_THRESHOLD
    assert pool.submit(gc.get_freeze_count).result(timeout=60) > 100_000  # its imports


def test_the_gate_errors_cross_processes_whole() -> None:
    error = pickle.loads(pickle.dumps(QualityGateError("mentions", "frame lacks columns")))
    assert (error.suite, error.reason) == ("mentions", "frame lacks columns")
    suite = pickle.loads(pickle.dumps(SuiteError(Path("s.json"), "bad")))
    assert (suite.path, suite.reason, str(suite)) == (Path("s.json"), "bad", "s.json: bad")
