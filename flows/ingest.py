"""The ingest flow: seeds -> fetch -> parse -> normalise -> validate -> load -> report."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows import report
from flows.batch import BatchPipeline, RunPlan, batched, read_batch
from flows.fetch.progress import FetchProgress
from flows.resources import Resources, resources_for
from flows.seeds import discover_seeds
from flows.settings import get_settings
from flows.tasks import validate_tables
from flows.urls import scrubbed


def _after_load(res: Resources, run: RunPlan, tally: report.RunTally, logger: Any) -> Path | None:
    """Check the rows the run wrote and build the Data Docs; a run that wrote nothing skips both."""
    if tally.wrote_rows:
        with tally.times.stage("validate"):
            expected = tally.expected_rows()
            tally.add_after_load(validate_tables(res.gate(), res.loader, run.run_id, expected))
    else:
        logger.info("nothing changed: no rows written, so no after-load checks and no Data Docs")
    tally.counts.row_counts = res.loader.row_counts()
    if not (res.settings.data_docs and res.gate_built):
        return None
    with tally.times.stage("report"):
        return res.gate().build_data_docs()


class DataQualityError(RuntimeError):
    """The run loaded what it could, but a quality gate refused a batch or the tables."""

    def __init__(self, summary: report.RunSummary) -> None:
        super().__init__("; ".join(summary.problems))
        self.summary = summary


def _run_name() -> str:
    return f"ingest-{dt.datetime.now(dt.UTC):%Y-%m-%d}"


@flow(
    name="ingest",
    flow_run_name=_run_name,
    log_prints=False,
    task_runner=ThreadPoolTaskRunner(max_workers=16),  # type: ignore[arg-type]  # the batches in flight
)
def ingest(
    seeds: str | None = None,
    batch_size: int | None = None,
    offline: bool = False,
    full_refresh: bool = False,
    only: list[str] | None = None,
    resources: Resources | None = None,
) -> report.RunSummary:
    """Read every seed document under `seeds`, fetch full texts and load PostgreSQL.

    offline: no HTTP, full texts come from the raw layer. full_refresh: refetch and rewrite
    every paper. only: process just these paper ids (refetched and rewritten). resources:
    what the run talks to (default: built from the settings).
    """
    with resources_for(resources, get_settings()) as res:
        try:
            return _ingest(res, seeds, batch_size, offline, full_refresh, only)
        except Exception as exc:  # prefect keeps the message in the run's state and events
            raise scrubbed(exc, res.database_url) from exc.__cause__


def _ingest(
    res: Resources,
    seeds: str | None,
    batch_size: int | None,
    offline: bool,
    full_refresh: bool,
    only: list[str] | None,
) -> report.RunSummary:
    started, logger = time.perf_counter(), get_run_logger()
    run_id = uuid.UUID(flow_run.id) if flow_run.id else uuid.uuid4()
    run = RunPlan.from_parameters(
        res.settings, run_id, seeds, batch_size, offline, full_refresh, only
    )
    tally = report.RunTally()
    for dead in res.loader.start_run(run.run_id, flow_run.name, str(run.seeds)):
        logger.warning("run %s had stopped without finishing: marked crashed", dead)
    try:
        paths = discover_seeds(run.seeds)
        if not paths:
            raise FileNotFoundError(f"no seed documents (*.md, *.txt) under {run.seeds}")
        logger.info("%d seed documents under %s, batches of %d, %s",
                    len(paths), run.seeds, run.batch_size, run.mode)  # fmt: skip
        seen_ids: dict[str, str] = {}  # paper id -> the document that gave it first
        pipeline = BatchPipeline(
            run,
            res,
            FetchProgress(len(paths)),
            lambda outcome: tally.add(report.log_batch(logger, outcome)),
        )
        for number, batch_paths in enumerate(batched(paths, run.batch_size), 1):
            pipeline.submit(read_batch(number, batch_paths, run, res, seen_ids))
        pipeline.drain()
        if run.only is not None and (missing := sorted(run.only - tally.papers)):
            tally.note(f"--only ids not found among the seeds: {', '.join(missing)}")
            logger.warning(tally.notes[-1])
        docs = _after_load(res, run, tally, logger)
    except BaseException as exc:
        res.loader.finish_run(run.run_id, "failed", tally.counts, f"{type(exc).__name__}: {exc}")
        raise
    res.loader.finish_run(run.run_id, tally.status, tally.counts, "; ".join(tally.problems) or None)
    quarantine = res.loader.quarantine_for(run.run_id, report.QUARANTINE_SHOWN)
    summary = tally.summary(run.run_id, flow_run.name, res.database_url, quarantine, docs,
                            time.perf_counter() - started)  # fmt: skip
    report.publish(summary, logger)
    if tally.failures:
        raise DataQualityError(summary)
    return summary
