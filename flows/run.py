"""A run's beginning and end: its plan, name and tags, its batches, its checks, its final state.

The flow (flows/ingest.py) calls these in order; each is a plain function over the resources
and the run's tally, so the flow body stays a contents list.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, State

from flows import collector, publish, report, watch
from flows.batch import BatchPipeline, RunPlan, batched, read_batch
from flows.fetch.progress import FetchProgress
from flows.resources import Resources
from flows.seeds import discover_seeds
from flows.tasks import validate_tables

PROBLEMS_STATE = "Completed with problems"

P = ParamSpec("P")
R = TypeVar("R")


class PlainParametersFlow(Flow[P, R]):
    """A Prefect flow whose plain parameters go to the API as they are.

    Prefect serialises a run's parameters with FastAPI's jsonable_encoder, which imports
    FastAPI (0.2 CPU-s) into every run process; strings, numbers, booleans, None and lists of
    strings are JSON already and come out of it unchanged. Any other value (a Resources
    object a test passes, say) still goes through Prefect's own.
    """

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The parameters as Prefect stores them with the run."""
        if all(_plain(value) for value in parameters.values()):
            return {key: list(v) if isinstance(v, list) else v for key, v in parameters.items()}
        return super().serialize_parameters(parameters)

    def with_options(self, **options: Any) -> PlainParametersFlow[P, R]:
        """Prefect's with_options, keeping this class (Prefect's builds a plain Flow)."""
        flow = super().with_options(**options)
        flow.__class__ = type(self)
        return flow  # type: ignore[return-value]


def plain_parameters_flow(**options: Any) -> Callable[[Callable[P, R]], PlainParametersFlow[P, R]]:
    """`@flow(**options)`, making a PlainParametersFlow."""
    return lambda fn: PlainParametersFlow(fn, **options)


def _plain(value: object) -> bool:
    if value is None or isinstance(value, str | int | float):  # (bool is an int)
        return True
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


class DataQualityError(RuntimeError):
    """The run loaded what it could, but a quality gate refused a batch or the tables."""

    def __init__(self, summary: report.RunSummary) -> None:
        super().__init__("; ".join(summary.problems))
        self.summary = summary


def run_name() -> str:
    """ingest-<date>T<time>, UTC: runs of one day told apart."""
    return f"ingest-{dt.datetime.now(dt.UTC):%Y-%m-%dT%H-%M-%S}"


def begin(res: Resources, parameters: dict[str, Any]) -> tuple[RunPlan, report.RunTally]:
    """The run's plan from its parameters; it is recorded as running, the dead ones crashed."""
    _send_stage_logs_to_prefect()
    collector.settle()  # what the process imported stays out of the collections of batches
    logger = get_run_logger()
    run_id = uuid.UUID(flow_run.id) if flow_run.id else uuid.uuid4()
    run = RunPlan.from_parameters(res.settings, run_id, **parameters)
    for dead in res.loader.start_run(run.run_id, flow_run.name, str(run.seeds.resolve())):
        logger.warning("run %s had stopped without finishing: marked crashed", dead)
    return run, report.RunTally(started=time.perf_counter())


def ingest_batches(run: RunPlan, res: Resources, tally: report.RunTally) -> None:
    """Every batch of the run's seeds through the pipeline, outcomes folded into the tally."""
    logger = get_run_logger()
    paths = discover_seeds(run.seeds)
    if not paths:
        raise FileNotFoundError(f"no seed documents (*.md, *.txt) under {run.seeds}")
    publish.tag_run(run, len(paths))
    watch.started(len(paths))
    logger.info("%d seed documents under %s, batches of %d, %s",
                len(paths), run.seeds, run.batch_size, run.mode)  # fmt: skip
    seen_ids: dict[str, str] = {}  # paper id -> the document that gave it first
    pipeline = BatchPipeline(
        run, res, FetchProgress(len(paths)), lambda o: tally.add(report.log_batch(logger, o))
    )
    for number, batch_paths in enumerate(batched(paths, run.batch_size), 1):
        pipeline.submit(read_batch(number, batch_paths, run, res, seen_ids))
    pipeline.drain()
    watch.finished()
    if run.only is None and run.seeds.is_dir():
        tally.removed = res.loader.record_removed(run.run_id, list(seen_ids), run.shard)
        if tally.removed:
            logger.info("%d papers loaded before are no longer among the seeds (rows kept)",
                        tally.removed)  # fmt: skip
    if run.only is not None and (missing := sorted(run.only - tally.papers)):
        tally.note(f"--only ids not found among the seeds: {', '.join(missing)}")
        logger.warning(tally.notes[-1])


def check_tables(res: Resources, run: RunPlan, tally: report.RunTally) -> Path | None:
    """Check the rows the run wrote and build the Data Docs; a run that wrote nothing skips both."""
    if tally.wrote_rows or tally.removed:
        with tally.times.stage("validate"):
            res.loader.summarize_new_ranges()  # the checks read this run's rows, not all
            expected = tally.expected_rows()
            tally.add_after_load(validate_tables(res.gate(), res.loader, run.run_id, expected))
        tally.checked = True
    else:
        get_run_logger().info("nothing changed: no rows written, no after-load checks, no docs")
    rows = res.loader.row_counts(run.run_id, res.settings.exact_row_counts_below)
    tally.counts.row_counts, tally.counts.rows_of_run = rows.totals, rows.of_run
    tally.counts.estimated = rows.estimated
    if not (res.settings.data_docs and res.gate_built):
        return None
    with tally.times.stage("report"):
        return res.gate().build_data_docs(
            flow_run.name or str(run.run_id), res.settings.data_docs_keep
        )


def fail(res: Resources, run: RunPlan, tally: report.RunTally, exc: BaseException) -> None:
    """Record the run as failed, with why."""
    res.loader.finish_run(run.run_id, "failed", tally.counts, f"{type(exc).__name__}: {exc}")


def end(
    res: Resources, run: RunPlan, tally: report.RunTally, docs: Path | None
) -> report.RunSummary | State[Any]:
    """Record the run's end, publish its summary; its final state tells the truth.

    Failed (DataQualityError) when a gate refused a batch or the tables; "Completed with
    problems" when documents were quarantined, full texts not fetched or warnings raised;
    plain Completed otherwise.
    """
    logger = get_run_logger()
    res.loader.finish_run(run.run_id, tally.status, tally.counts,
                          "; ".join(tally.problems) or None, tally.checked)  # fmt: skip
    quarantine = res.loader.quarantine_for(run.run_id, publish.TABLE_ROWS)
    stages = res.loader.quarantine_by_stage(run.run_id, publish.NAMES_SHOWN)
    changes = res.loader.run_changes(run.run_id, report.CHANGES_SHOWN)
    summary = tally.summary(run.run_id, flow_run.name, res.database_url, quarantine, docs,
                            time.perf_counter() - tally.started, stages, changes)  # fmt: skip
    publish.publish(summary, logger, res.settings.data_docs_url)
    if tally.failures:
        raise DataQualityError(summary)
    trouble = summary.trouble()
    if trouble:
        return Completed(name=PROBLEMS_STATE, message=trouble, data=summary)
    return summary


def _send_stage_logs_to_prefect() -> None:
    # the stages log through `logging` under "flows": their records go to the run's logs in
    # the UI as prefect's own do (the CLI sets PREFECT_LOGGING_EXTRA_LOGGERS; a worker may not)
    extra = logging.getLogger("prefect.extra").handlers
    ours = logging.getLogger("flows")
    for handler in extra:
        if handler not in ours.handlers:
            ours.addHandler(handler)
    ours.setLevel(logging.INFO)
