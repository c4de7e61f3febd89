"""The quality gate in a process of its own: Great Expectations and pandas stay out of the run.

Importing great_expectations costs a process about 160 MB and seconds of CPU, under the GIL
of whatever else that process does. A GateProcess starts one spawned process when it is
made: there, at once and on another core, Great Expectations is imported and the gate built
while the run goes on fetching. The run then hands it each batch's rows to validate (tuples
in the frames' column order; the frames are built there), the after-load checks and the Data
Docs: everything one GX context does, in one process, so that the Data Docs show every
validation of the run. `Gate` is what the run asks of a gate, in its process or in this one.
A caller that knows a run will validate (`tomeflow run`, flows/resources.start_gate_early)
starts the gate's process before the run begins; the run's first gate takes it (take_early).
"""

from __future__ import annotations

import atexit
import gc
import multiprocessing
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from flows.collector import settle
from flows.parent import exit_with_parent
from flows.quality.results import QualityGateError, QualityReport

if TYPE_CHECKING:
    from flows.quality.gate import QualityGate

T = TypeVar("T")


class Gate(Protocol):
    """What a run asks of its quality gate."""

    def validate_rows(
        self, rows: Mapping[str, Sequence[tuple[Any, ...]]], batch: int
    ) -> QualityReport: ...

    def validate_tables(
        self, sqlalchemy_url: str, run_id: uuid.UUID, batch: int, expected: Mapping[str, int]
    ) -> QualityReport: ...

    def build_data_docs(self, run_name: str | None = None, keep: int = 10) -> Path: ...


@dataclass(frozen=True, slots=True)
class GateSpec:
    """How to build the gate (picklable: it travels to the gate's process)."""

    suites_dir: Path
    data_docs_dir: Path | None
    reference_count_gap_tolerance: int
    drift_max_drop: float

    def build(self) -> QualityGate:
        """The gate, here (imports Great Expectations, without what the gate never uses)."""
        from flows.quality import deferred

        deferred.defer()
        from flows.quality.gate import QualityGate

        return QualityGate(
            self.suites_dir,
            self.data_docs_dir,
            reference_count_gap_tolerance=self.reference_count_gap_tolerance,
            drift_max_drop=self.drift_max_drop,
        )


# in the gate's process: its one gate, built by the first call
_gate: QualityGate | None = None


def _built(spec: GateSpec) -> QualityGate:
    global _gate
    if _gate is None:
        _gate = spec.build()
        settle()  # Great Expectations' objects, imported: not walked by every collection
        # when the process ends, the collector leaves Great Expectations' objects (250,000
        # after its import) alone: their teardown took a second, with the run waiting on it
        atexit.register(gc.freeze)
    return _gate


def _start(spec: GateSpec) -> None:
    _built(spec)


def _validate_rows(
    spec: GateSpec, rows: Mapping[str, Sequence[tuple[Any, ...]]], batch: int
) -> QualityReport:
    return _built(spec).validate_rows(rows, batch)


def _validate_tables(
    spec: GateSpec, url: str, run_id: uuid.UUID, batch: int, expected: Mapping[str, int]
) -> QualityReport:
    return _built(spec).validate_tables(url, run_id, batch, expected)


def _build_data_docs(spec: GateSpec, run_name: str | None, keep: int) -> Path:
    return _built(spec).build_data_docs(run_name, keep)


class GateProcess:
    """A Gate whose Great Expectations runs in a spawned process, started when this is made.

    Calls take turns (one process, one GX context); they are safe from several threads. A
    process that dies (killed, out of memory) fails the call that needed it with a
    QualityGateError saying so.
    """

    def __init__(self, spec: GateSpec) -> None:
        self._spec = spec
        # spawn, not fork: the run process has threads (prefect's, the fetchers')
        # it ends with the process that made it, even one killed outright (flows/parent.py)
        self._pool = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent
        )
        self._pool.submit(_start, spec)  # Great Expectations imports there from now on

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return self._pool.submit(fn, self._spec, *args).result()
        except BrokenProcessPool as exc:
            raise QualityGateError(
                "gate", f"the quality gate's process ended unexpectedly ({exc})"
            ) from exc

    def validate_rows(
        self, rows: Mapping[str, Sequence[tuple[Any, ...]]], batch: int
    ) -> QualityReport:
        """Run every before-load suite on this batch's rows."""
        return self._call(_validate_rows, dict(rows), batch)

    def validate_tables(
        self, sqlalchemy_url: str, run_id: uuid.UUID, batch: int, expected: Mapping[str, int]
    ) -> QualityReport:
        """Run the after-load suites on PostgreSQL."""
        return self._call(_validate_tables, sqlalchemy_url, run_id, batch, dict(expected))

    def build_data_docs(self, run_name: str | None = None, keep: int = 10) -> Path:
        """Write the Data Docs of every validation this gate ran; returns index.html."""
        return self._call(_build_data_docs, run_name, keep)

    def close(self) -> None:
        """Stop the gate's process."""
        self._pool.shutdown(cancel_futures=True)

    def __repr__(self) -> str:
        return f"GateProcess(docs={self._spec.data_docs_dir})"


# in the run's process: gates started before the run by a caller that knows it will validate
_early: dict[GateSpec, GateProcess] = {}
_early_lock = threading.Lock()


def start_early(spec: GateSpec) -> None:
    """Start a gate's process now, for the run's gate of this spec to take (take_early)."""
    with _early_lock:
        if spec not in _early:
            _early[spec] = GateProcess(spec)


def take_early(spec: GateSpec) -> GateProcess | None:
    """The gate of this spec started early, now the caller's to close; None if there is none."""
    with _early_lock:
        return _early.pop(spec, None)


def close_early() -> None:
    """Stop the gates started early that no run took."""
    with _early_lock:
        left = list(_early.values())
        _early.clear()
    for gate in left:
        gate.close()
