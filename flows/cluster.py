"""Batches on a Dask cluster: the task runner, and the resources each worker builds once.

With `TOMEFLOW_TASK_RUNNER=dask` (or `tomeflow run --task-runner dask`) the flow runs on
prefect-dask's DaskTaskRunner: the scheduler at `TOMEFLOW_DASK_ADDRESS`, or a local cluster
of `TOMEFLOW_DASK_WORKERS` processes. Each batch travels to a worker as one task: its read
records go out, a small `BatchOutcome` comes back.

What a worker connects to comes from its own environment, as the flow's does: the flow sends
its settings without the database URL, and the URL with its password taken out, which the
worker compares with its own. No password is pickled, sent or logged; a worker pointed at
another database refuses the batch, naming both (passwords masked).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flows.load.db import database_url, masked, with_user
from flows.resources import Resources, build_resources
from flows.settings import Settings

if TYPE_CHECKING:
    from prefect_dask import DaskTaskRunner

# what each worker decides for itself: its database (from its environment), and no process
# pool of its own (a Dask worker is the process; more cores means more workers)
_LOCAL_ONLY = {"database_url", "assemble_processes", "data_docs"}


def dask_task_runner(settings: Settings) -> DaskTaskRunner:
    """The Dask task runner the settings describe."""
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": settings.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )


def on_dask() -> bool:
    """Whether the running flow's task runner is a Dask one."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    runner = context.task_runner if context is not None else None
    return type(runner).__name__ == "DaskTaskRunner"


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker needs to build the run's resources: no secret in it."""

    settings: dict[str, Any]  # the flow's settings, JSON-able, the database URL left out
    database: str  # the flow's database, its password taken out

    @classmethod
    def of(cls, res: Resources) -> WorkerSpec:
        """The spec of the flow's resources."""
        dump = res.settings.model_dump(mode="json", exclude=_LOCAL_ONLY)
        return cls(dump, _without_password(res.database_url))


_built: dict[str, Resources] = {}
_lock = threading.Lock()


def worker_resources(spec: WorkerSpec) -> Resources:
    """This worker's resources for a spec: built on the first batch, kept for the next."""
    key = repr(spec)
    with _lock:
        if key not in _built:
            # a Dask worker is a daemonic process, which may not start processes of its own
            no_processes = {"assemble_processes": 0, "gate_process": False}
            settings = Settings(**{**spec.settings, **no_processes, "data_docs": False})
            url = database_url(settings)
            if _without_password(url) != spec.database:
                raise RuntimeError(
                    f"this Dask worker's database is {masked(url)}, the flow's is "
                    f"{masked(spec.database)}: give the workers the flow's DATABASE_URL "
                    "(and TOMEFLOW_DATABASE_PASSWORD_FILE)"
                )
            _built[key] = build_resources(settings)
        return _built[key]


def resources_built() -> int:
    """How many runs' resources this worker holds (0: no batch of any run came here)."""
    with _lock:
        return len(_built)


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    user = urlsplit(url).username
    return with_user(url, user) if user else url
