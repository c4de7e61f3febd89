"""The ingest flow: seeds -> fetch -> parse -> normalise -> validate -> load -> report."""

from __future__ import annotations

from typing import Any

from prefect.states import State
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows import report, run
from flows.resources import Resources, resources_for
from flows.run import DataQualityError
from flows.settings import Settings, get_settings
from flows.urls import scrubbed

__all__ = ["DataQualityError", "ingest", "task_runner"]


def task_runner(settings: Settings) -> TaskRunner[Any]:
    """Where batches run: threads of this process, or a Dask cluster (flows/cluster.py)."""
    if settings.task_runner == "dask":
        from flows.cluster import dask_task_runner

        return dask_task_runner(settings)
    return ThreadPoolTaskRunner(max_workers=16)  # batches in flight, and their fetchers


# the runner comes from TOMEFLOW_TASK_RUNNER when the flow is imported (a deployment sets it
# in its environment); `tomeflow run --task-runner` picks one per run with .with_options
@run.plain_parameters_flow(
    name="ingest",
    flow_run_name=run.run_name,
    log_prints=False,
    task_runner=task_runner(get_settings()),
)
def ingest(
    seeds: str | None = None,
    batch_size: int | None = None,
    offline: bool = False,
    full_refresh: bool = False,
    only: list[str] | None = None,
    shard: str | None = None,
    resources: Resources | None = None,
) -> report.RunSummary | State[Any]:
    """Read every seed document under `seeds`, fetch full texts and load PostgreSQL.

    offline: no HTTP, full texts come from the raw layer. full_refresh: refetch and rewrite
    every paper. only: process just these paper ids (refetched and rewritten). shard: "K/N",
    just the papers of shard K of N (runs of the N shards together load the whole corpus).
    resources: what the run talks to (default: built from the settings).
    """
    parameters = {"seeds": seeds, "batch_size": batch_size, "offline": offline,
                  "full_refresh": full_refresh, "only": only, "shard": shard}  # fmt: skip
    with resources_for(resources, get_settings()) as res:
        plan, tally = run.begin(res, parameters)
        try:
            run.ingest_batches(plan, res, tally)
            docs = run.check_tables(res, plan, tally)
        except BaseException as exc:  # prefect keeps the message in the run's state and events
            run.fail(res, plan, tally, exc)
            raise scrubbed(exc, res.database_url) from exc.__cause__
        return run.end(res, plan, tally, docs)
