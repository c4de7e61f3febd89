"""What a run is handed (flows/resources.py): the gate prepared in the background."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, cast

import pytest

from flows.fetch.limits import PerHostRateLimiter
from flows.fetch.rawstore import RawStore
from flows.load.loader import PostgresLoader
from flows.resources import Resources
from flows.settings import Settings


def resources_with(make_gate: Any, tmp_path: Path) -> Resources:
    loader = cast(PostgresLoader, object())  # never touched by the gate
    return Resources(Settings(), loader, RawStore(tmp_path), PerHostRateLimiter(1.0), make_gate)


def test_a_prepared_gate_is_built_once_in_another_thread(tmp_path: Path) -> None:
    built: list[str] = []
    release = threading.Event()

    def make_gate() -> object:
        release.wait(5)
        built.append(threading.current_thread().name)
        return object()

    res = resources_with(make_gate, tmp_path)
    res.prepare_gate()
    res.prepare_gate()  # a second batch asking again starts nothing more
    assert not res.gate_built
    release.set()
    gate = res.gate()
    assert res.gate() is gate and res.gate_built
    assert built == ["tomeflow-gate"]


def test_a_gate_that_fails_to_build_fails_the_batch_that_asks_for_it(tmp_path: Path) -> None:
    def make_gate() -> object:
        raise ImportError("great_expectations is broken")

    res = resources_with(make_gate, tmp_path)
    res.prepare_gate()
    with pytest.raises(ImportError, match="broken"):
        res.gate()
    assert not res.gate_built


def test_an_unprepared_gate_is_built_when_first_asked_for(tmp_path: Path) -> None:
    built: list[str] = []
    res = resources_with(lambda: built.append(threading.current_thread().name), tmp_path)
    res.gate()
    assert built == [threading.current_thread().name]


def test_a_batch_with_few_bodies_is_assembled_here_without_starting_a_process(
    tmp_path: Path,
) -> None:
    def with_settings(**values: Any) -> Resources:
        loader = cast(PostgresLoader, object())
        settings = Settings(**values)
        return Resources(settings, loader, RawStore(tmp_path), PerHostRateLimiter(1.0), object)

    res = with_settings(assemble_processes=1, assemble_process_min_bodies=50)
    assert res.cpu_pool(49) is None and res._pool is None  # no process started for a few
    pool = res.cpu_pool(50)
    assert pool is not None and res.cpu_pool() is pool  # no count given: the pool
    res.close()
    assert with_settings(assemble_processes=0).cpu_pool(1000) is None


def test_closing_the_resources_stops_a_prepared_gate_s_process(tmp_path: Path) -> None:
    class ProcessGate:
        closed = False

        def close(self) -> None:
            self.closed = True

    gate = ProcessGate()
    res = resources_with(lambda: gate, tmp_path)
    res.prepare_gate()  # a batch that will validate started it; the run ends before asking
    res.close()
    assert gate.closed


def test_the_settings_choose_where_great_expectations_runs(tmp_path: Path) -> None:
    from flows.quality.gate import QualityGate
    from flows.quality.process import GateProcess
    from flows.resources import quality_gate

    here = quality_gate(Settings(gate_process=False, data_docs=False))
    assert isinstance(here, QualityGate)
    there = quality_gate(Settings(gate_process=True, data_docs=False))
    try:
        assert isinstance(there, GateProcess)
    finally:
        cast(GateProcess, there).close()


def test_a_gate_started_early_is_the_one_the_run_s_gate_takes(tmp_path: Path) -> None:
    from flows.quality import process
    from flows.resources import gate_spec, quality_gate

    settings = Settings(gate_process=True, data_docs_dir=tmp_path / "docs")
    process.start_early(gate_spec(settings))
    process.start_early(gate_spec(settings))  # asked again: still one process
    early = process._early[gate_spec(settings)]
    taken = quality_gate(settings)
    later = quality_gate(settings)  # the next gate is a process of its own
    try:
        assert taken is early and later is not early
        assert process.take_early(gate_spec(settings)) is None
    finally:
        cast(process.GateProcess, taken).close()
        cast(process.GateProcess, later).close()


def test_a_gate_started_early_that_no_run_took_is_stopped(tmp_path: Path) -> None:
    from flows.quality import process
    from flows.resources import gate_spec

    spec = gate_spec(Settings(gate_process=True, data_docs_dir=tmp_path / "docs"))
    process.start_early(spec)
    workers = list(process._early[spec]._pool._processes.values())
    process.close_early()
    assert process.take_early(spec) is None
    assert [w.exitcode for w in workers] == [0]  # ended, and cleanly


def test_no_gate_starts_early_when_the_settings_keep_it_in_the_run_s_process(
    tmp_path: Path,
) -> None:
    from flows.quality import process
    from flows.resources import start_gate_early

    settings = Settings(gate_process=False)
    assert not start_gate_early(settings, tmp_path, 500, rewrite=True)
    assert process._early == {}


def test_a_database_that_does_not_answer_starts_no_gate_early_and_raises_nothing(
    tmp_path: Path, unanswered_port: int
) -> None:
    from flows.quality import process
    from flows.resources import start_gate_early

    (tmp_path / "a.md").write_text("# a seed\n", encoding="utf-8")
    url = f"postgresql://postgres@127.0.0.1:{unanswered_port}/test?connect_timeout=1"
    settings = Settings(gate_process=True, DATABASE_URL=url)
    assert not start_gate_early(settings, tmp_path, 500, rewrite=False)
    assert process._early == {}
