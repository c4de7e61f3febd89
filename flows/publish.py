"""What a run shows in Prefect: its tags, WARNING lines for each kind of problem, its artifacts.

The summary artifact (Markdown) leads with the problems; the quarantine and the data-quality
results are table artifacts, which the UI renders as tables (wide text wraps, identifiers
stay literal). Everything shown names documents relative to the seeds folder.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from flows.report import RunSummary

if TYPE_CHECKING:
    from flows.batch import RunPlan

NAMES_SHOWN = 3  # documents a WARNING line names before it says how many more
TABLE_ROWS = 500  # rows of a table artifact; ops.quarantine and ops.dq_results hold them all
VALUE_CHARS = 200

Logger = logging.Logger | logging.LoggerAdapter[Any]


def run_tags(run: RunPlan, papers: int) -> list[str]:
    """Tags telling runs apart: the mode, the trigger, the seeds folder and how many papers."""
    from prefect.runtime import deployment

    mode = "only" if run.only else run.mode.replace("_", "-")
    trigger = "deployment" if deployment.id else "cli"
    tags = [f"mode:{mode}", f"trigger:{trigger}", f"seeds:{run.seeds.name}", f"papers:{papers}"]
    return tags + ([f"shard:{run.shard}"] if run.shard else [])


def tag_run(run: RunPlan, papers: int) -> None:
    """Add the run's tags to its flow run (kept beside any a deployment gave it)."""
    if not flow_run.id:
        return
    try:
        run_id = uuid.UUID(str(flow_run.id))
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(run_id)
            tags = [*dict.fromkeys([*(current.tags or []), *run_tags(run, papers)])]
            client.update_flow_run(run_id, tags=tags)
    except Exception as exc:  # tags are a convenience: a run never fails for them
        logging.getLogger(__name__).warning("could not tag the flow run: %s", exc)


def publish(summary: RunSummary, logger: Logger, data_docs_url: str | None = None) -> None:
    """Log the summary and its problems, and attach the artifacts to the flow run."""
    logger.info(summary.headline())
    logger.info(summary.data_quality.headline())
    warn_problems(summary, logger)
    create_markdown_artifact(
        key="ingest-summary",
        markdown=summary.to_markdown(data_docs_url),
        description=summary.trouble() or summary.headline(),
    )
    create_table_artifact(
        key="ingest-quarantine",
        table=quarantine_table(summary),
        description=f"{summary.quarantine_total} quarantined in this run"
        + (f" (the first {TABLE_ROWS})" if summary.quarantine_total > TABLE_ROWS else ""),
    )
    create_table_artifact(
        key="ingest-data-quality",
        table=quality_table(summary),
        description=summary.data_quality.headline(),
    )
    if summary.data_docs is not None:
        logger.info("data docs: %s", data_docs_url or summary.data_docs)


def warn_problems(summary: RunSummary, logger: Logger) -> None:
    """One WARNING line per kind of problem: the first few documents by name, then a count."""
    for stage, (count, first) in summary.quarantine_by_stage.items():
        names = ", ".join(f"{q.document} ({q.reason[:80]})" for q in first)
        more = f" and {count - len(first)} more" if count > len(first) else ""
        what = "full texts not fetched" if stage == "fetch" else f"quarantined at {stage}"
        logger.warning("%d %s: %s%s (ops.quarantine)", count, what, names, more)
    for t in summary.data_quality.warnings:
        logger.warning(
            "data-quality warning: %s.%s(%s) on %d rows",
            t.suite, t.expectation, t.column or "", t.unexpected,
        )  # fmt: skip
    for note in summary.problems:
        logger.warning(note)


def quarantine_table(summary: RunSummary) -> list[dict[str, Any]]:
    """The run's quarantine rows as table rows (the first TABLE_ROWS of them)."""
    rows = []
    for q in summary.quarantine[:TABLE_ROWS]:
        payload = q.payload if isinstance(q.payload, dict) else {}
        rows.append(
            {
                "document": q.document,
                "paper": q.paper_id or "",
                "stage": q.stage,
                "line": q.line or "",
                "reason": q.reason,
                "suite": payload.get("suite", ""),
                "expectation": payload.get("expectation", ""),
                "column": payload.get("column", ""),
                "value": _value(payload.get("value", payload.get("identifier", ""))),
                "whole document": "yes" if q.rejected_whole else "no",
            }
        )
    return rows


def quality_table(summary: RunSummary) -> list[dict[str, Any]]:
    """Every expectation of the run, failures first."""
    tallies = sorted(
        summary.data_quality.tallies.values(), key=lambda t: (t.success, t.checkpoint, t.suite)
    )
    return [
        {
            "checkpoint": t.checkpoint,
            "suite": t.suite,
            "expectation": t.expectation,
            "column": t.column or "",
            "policy": t.policy,
            "success": "yes" if t.success else f"no ({t.failures} of {t.evaluations} batches)",
            "offending value": _value(t.observed),
            "unexpected": t.unexpected,
            "unexpected %": round(t.unexpected_percent, 2),
        }
        for t in tallies
    ]


def _value(value: object) -> str:
    if value in (None, ""):
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"
