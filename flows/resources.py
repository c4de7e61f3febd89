"""The resources a run is handed, chosen in one place from the settings.

`build_resources(settings)` makes the loader (and migrates its database), the raw store, the
per-host limiter, the run's one HTTP session and the quality gate; the flow takes a
`Resources` and a test hands in its own (a throwaway database, a session-wide gate).
The gate is built on first use: Great Expectations and pandas are imported only when a batch
needs validating, and then in a process of the gate's own (flows/quality/process.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager, suppress
from multiprocessing import current_process, get_context
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import requests

from flows.fetch.limits import PerHostRateLimiter
from flows.fetch.rawstore import RawStore
from flows.fetch.transport import new_session
from flows.load.db import database_url, masked
from flows.load.loader import PostgresLoader
from flows.load.migrate import ensure_schema
from flows.records import KnownSeed
from flows.seeds import discover_seeds, document_name, parse_batch, seeds_root
from flows.settings import Settings

if TYPE_CHECKING:
    from flows.quality.process import Gate, GateSpec


class Resources:
    """Everything a run talks to: PostgreSQL, the raw store, the fetch limits, the gate."""

    # a plain class, not a dataclass: prefect validates flow parameters with pydantic, which
    # would rebuild a dataclass field by field; an arbitrary class is checked by isinstance
    def __init__(
        self,
        settings: Settings,
        loader: PostgresLoader,
        store: RawStore,
        limiter: PerHostRateLimiter,
        make_gate: Callable[[], Gate],
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self.loader = loader
        self.store = store
        self.limiter = limiter
        self.make_gate = make_gate
        # one HTTP session (one connection pool) for every batch of every run
        self.session = session or new_session(settings.per_host_concurrency)
        self._gate: Gate | None = None
        self._gate_building: Future[Gate] | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def cpu_pool(self, bodies: int | None = None) -> ProcessPoolExecutor | None:
        """Processes that assemble batches on the other cores (None: assemble here).

        bodies: how many full texts the batch will parse; too few to pay for starting a
        process (settings.assemble_process_min_bodies) are parsed here.
        """
        if self.settings.assemble_processes < 1:
            return None
        if bodies is not None and bodies < self.settings.assemble_process_min_bodies:
            return None
        with self._lock:
            if self._pool is not None and getattr(self._pool, "_broken", False):
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None  # a dead worker breaks the pool: the next batch gets a new one
            if self._pool is None:
                # (imported here: `tomeflow run` imports this module before it starts the gate's
                # process, which waits for none of the assemble stage's imports)
                from flows.assemble import worker_ready

                # spawn, not fork: this process runs threads (prefect's, the fetchers')
                self._pool = ProcessPoolExecutor(
                    self.settings.assemble_processes,
                    mp_context=get_context("spawn"),
                    initializer=worker_ready,  # flows.assemble imported, the collector settled
                )
            return self._pool

    def close(self) -> None:
        """Release the HTTP connections, the assemble processes and the gate's process."""
        self.session.close()
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        with self._lock:
            building, gate = self._gate_building, self._gate
        if gate is None and building is not None:
            with suppress(Exception):  # a GateProcess is made in a moment (its process starts)
                gate = building.result(timeout=60)
        close = getattr(gate, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return f"Resources(database={masked(self.loader.url)}, raw_store={self.store.root})"

    @property
    def database_url(self) -> str:
        """The database the loader writes to (a secret: mask it before showing it)."""
        return self.loader.url

    def prepare_gate(self) -> None:
        """Start building the gate in a thread, for a batch that will validate once assembled.

        Importing Great Expectations takes seconds of CPU; begun before the batch fetches, it
        runs while the batch waits on the network and on the assemble process.
        """
        with self._lock:
            if self._gate is not None or self._gate_building is not None:
                return
            building = self._gate_building = Future()
        threading.Thread(
            target=self._build_gate, args=(building,), name="tomeflow-gate", daemon=True
        ).start()

    def _build_gate(self, building: Future[Gate]) -> None:
        try:
            building.set_result(self.make_gate())
        except BaseException as exc:  # handed to the batch that asks for the gate
            building.set_exception(exc)

    def gate(self) -> Gate:
        """The quality gate, built the first time a batch needs validating (or prepared)."""
        with self._lock:
            if self._gate is not None:
                return self._gate
            building = self._gate_building
            if building is None:
                self._gate = self.make_gate()
                return self._gate
        gate = building.result()  # raises what building it raised
        with self._lock:
            self._gate = gate
        return gate

    @property
    def gate_built(self) -> bool:
        """Whether any batch has been validated with this gate."""
        return self._gate is not None


@contextmanager
def resources_for(given: Resources | None, settings: Settings) -> Iterator[Resources]:
    """The resources handed in, or ones built from settings (and closed after the run)."""
    if given is not None:
        yield given
        return
    built = build_resources(settings)
    try:
        yield built
    finally:
        built.close()


def gate_spec(settings: Settings) -> GateSpec:
    """How the settings build the quality gate."""
    from flows.quality.process import GateSpec
    from flows.quality.suites import SUITES_DIR

    return GateSpec(
        SUITES_DIR,
        settings.data_docs_dir if settings.data_docs else None,
        settings.reference_count_gap_tolerance,
        settings.drift_max_drop,
    )


def quality_gate(settings: Settings) -> Gate:
    """The quality gate the settings describe: in a process of its own (settings.gate_process;
    the one start_gate_early began, if any), else here (this imports Great Expectations)."""
    from flows.quality.process import GateProcess, take_early

    spec = gate_spec(settings)
    # a daemonic process (a Dask worker, a pool's worker) may not start processes
    if settings.gate_process and not current_process().daemon:
        return take_early(spec) or GateProcess(spec)
    return spec.build()


def start_gate_early(settings: Settings, seeds: Path, batch_size: int, rewrite: bool) -> bool:
    """Start the gate's process before the run when the run's first batch will validate: a
    seed of it is new or changed and parses (or `rewrite`: every paper is rewritten). Great
    Expectations then imports on the other core while the caller imports Prefect and the run
    begins; the run's first gate takes it (quality_gate), close_early stops one no run took.
    Whether the gate was started."""
    from flows.quality.process import start_early

    if not settings.gate_process:
        return False
    try:
        if not rewrite and not first_batch_changed(database_url(settings), seeds, batch_size):
            return False
    except (OSError, psycopg.Error):  # a guess only: the run itself meets it and says so
        return False
    start_early(gate_spec(settings))
    return True


def first_batch_changed(url: str, seeds: Path, batch_size: int) -> bool:
    """Whether the first batch holds a seed the flow will read into a paper: one not in the
    tables with the same bytes, and that parses. A page quarantined whole on every run (no
    title, say) does not count: a batch of it and unchanged seeds validates nothing."""
    root = seeds_root(seeds)
    paths = discover_seeds(seeds)[:batch_size]
    try:
        stored = PostgresLoader(url).stored_seeds([document_name(p, root) for p in paths])
    except psycopg.errors.UndefinedTable:  # a database not migrated yet: every seed is new
        stored = {}
    known = {name: KnownSeed(name, s.paper_id, s.source_sha256)
             for name, s in stored.items() if s.source_sha256}  # fmt: skip
    # the flow's own reading, one file at a time: unchanged bytes hash, others parse, and the
    # first paper read answers (a first run parses one seed here)
    return any(parse_batch([path], known, root).papers for path in paths)


def build_resources(settings: Settings) -> Resources:
    """Resources from settings: the database migrated to head, a store, limits, a lazy gate."""
    url = database_url(settings)
    ensure_schema(url)
    return Resources(
        settings=settings,
        loader=PostgresLoader(url),
        store=RawStore(settings.raw_dir),
        limiter=PerHostRateLimiter(settings.per_host_rate),
        make_gate=lambda: quality_gate(settings),
    )
