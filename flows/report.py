"""Run summary: what a run loaded, for the CLI, the logs and the Prefect artifacts."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flows.load.db import masked, psql_command
from flows.load.runlog import RunCounts
from flows.quality.results import QualityReport
from flows.records import BatchOutcome, ExpectationOutcome, QuarantineRow, RunChanges
from flows.tables import RUN_TABLES

QUARANTINE_SHOWN = 20
CHANGES_SHOWN = 10  # papers the summary spells out what changed in; analytics.run_diff has all
ESTIMATED = (
    "~: PostgreSQL's estimate for a table too big to count on every run "
    "(TOMEFLOW_EXACT_ROW_COUNTS_BELOW)"
)


@dataclass(slots=True)
class ExpectationTally:
    """One expectation across the batches of a run."""

    checkpoint: str
    suite: str
    expectation: str
    column: str | None
    evaluations: int = 0
    failures: int = 0
    unexpected: int = 0
    elements: int = 0
    policy: str = ""
    observed: object = None  # what the first failing evaluation observed

    @property
    def success(self) -> bool:
        """True when it held in every batch."""
        return self.failures == 0

    @property
    def unexpected_percent(self) -> float:
        """Unexpected rows in percent of the rows evaluated."""
        return 100.0 * self.unexpected / self.elements if self.elements else 0.0


@dataclass(slots=True)
class DataQuality:
    """Every expectation a run evaluated, folded across batches."""

    tallies: dict[tuple[str, str, str, str | None], ExpectationTally] = field(default_factory=dict)

    def add(self, outcomes: Iterable[ExpectationOutcome]) -> None:
        """Fold one checkpoint's outcomes in."""
        for o in outcomes:
            key = (o.checkpoint, o.suite, o.expectation, o.column)
            t = self.tallies.get(key)
            if t is None:
                t = self.tallies[key] = ExpectationTally(*key)
            t.evaluations += 1
            t.failures += not o.success
            t.unexpected += o.unexpected_count or 0
            t.elements += o.element_count or 0
            t.policy = o.policy
            if not o.success and t.observed is None:
                t.observed = o.observed_value

    @property
    def failed(self) -> list[ExpectationTally]:
        """The expectations that failed at least once."""
        return [t for t in self.tallies.values() if not t.success]

    @property
    def warnings(self) -> list[ExpectationTally]:
        """The failed expectations whose policy is only to warn."""
        return [t for t in self.failed if t.policy == "warn"]

    def headline(self) -> str:
        """One line: how many expectations held."""
        failed = self.failed
        names = ", ".join(f"{t.suite}.{t.expectation}({t.column or ''})" for t in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        held = len(self.tallies) - len(failed)
        return f"data quality: {held} of {len(self.tallies)} expectations held" + (
            f"; failed: {names}{more}" if failed else ""
        )

    def to_markdown(self) -> str:
        """A table of every expectation: suite, column, success, unexpected rows."""
        lines = [
            "| checkpoint | suite | expectation | column | success | unexpected | of rows |",
            "|---|---|---|---|---|---:|---:|",
        ]
        for t in sorted(self.tallies.values(), key=lambda t: (t.success, t.checkpoint, t.suite)):
            ok = "yes" if t.success else f"**no** ({t.failures} of {t.evaluations} batches)"
            lines.append(
                f"| {t.checkpoint} | {t.suite} | {t.expectation} | {t.column or ''} | {ok} "
                f"| {t.unexpected} | {t.elements} |"
            )
        return "\n".join(lines) + "\n"


@dataclass(slots=True)
class StageTimes:
    """Wall seconds spent in each stage of a run, and when batches were in it."""

    seconds: dict[str, float] = field(default_factory=dict)  # summed over the batches
    spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # epoch from, to

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a block and add it to the stage's total."""
        start, began = time.perf_counter(), time.time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.spans.setdefault(name, []).append((began, time.time()))

    def busy(self) -> dict[str, float]:
        """Per stage, the wall seconds during which a batch was in it (overlaps counted once)."""
        return {name: _covered(spans) for name, spans in self.spans.items()}


def _covered(spans: Iterable[tuple[float, float]]) -> float:
    """The length of the union of these intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one ingest run did."""

    run_id: uuid.UUID
    flow_run_name: str | None
    status: str  # completed or failed
    database: str  # password masked
    psql: str
    counts: RunCounts
    quarantine: tuple[QuarantineRow, ...]  # the first few of the run's quarantine rows
    quarantine_total: int
    data_quality: DataQuality
    data_docs: Path | None
    problems: tuple[str, ...]  # why the run failed, or what the user should know
    stage_seconds: dict[str, float]  # summed over the batches, which overlap
    wall_seconds: float
    # stage -> (rows, the first few) of the run's quarantine rows
    quarantine_by_stage: Mapping[str, tuple[int, tuple[QuarantineRow, ...]]] = field(
        default_factory=dict
    )
    changes: RunChanges = field(default_factory=RunChanges)
    # per stage, the wall seconds during which a batch was in it: batches overlap, so this is
    # at most stage_seconds (a wait inside a stage, such as for the load lock, has none)
    stage_busy_seconds: dict[str, float] = field(default_factory=dict)

    def headline(self) -> str:
        """One line: papers new/updated/unchanged/failed/quarantined."""
        c = self.counts
        changed = "" if c.new or c.updated else " - nothing changed"
        return (
            f"papers: {c.new} new, {c.updated} updated, {c.unchanged} unchanged, "
            f"{c.failed} full text failed, {c.quarantined} quarantined (of {c.seen} documents)"
            f"{changed}"
        )

    def trouble(self) -> str:
        """What went wrong short of failing the run, counted ("" when nothing did)."""
        parts = []
        if self.quarantine_total:
            parts.append(f"{self.quarantine_total} quarantined ({self.counts.quarantined} whole)")
        if self.counts.failed:
            parts.append(f"{self.counts.failed} full texts not fetched")
        if self.data_quality.warnings:
            parts.append(f"{len(self.data_quality.warnings)} data-quality warnings")
        parts += list(self.problems)
        return "; ".join(parts)

    def to_text(self) -> str:
        """The summary the CLI prints: problems first, then this run's rows, then totals."""
        fetches = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.fetch_statuses.items()))
        lines = [
            f"run {self.flow_run_name or ''} ({self.run_id}): {self.status}".replace("  ", " "),
            self.headline(),
            f"full text: {fetches or 'nothing requested'}",
            self.data_quality.headline(),
        ]
        if self.problems:
            lines += ["", "problems:", *(f"  {p}" for p in self.problems)]
        if self.quarantine:
            shown = self.quarantine[:QUARANTINE_SHOWN]
            lines += ["", f"quarantined in this run ({self.quarantine_total}):"]
            lines += [f"  {_where(q)}: [{q.stage}] {q.reason}" for q in shown]
            if self.quarantine_total > len(shown):
                more = self.quarantine_total - len(shown)
                lines.append(f"  ... and {more} more in ops.quarantine")
        lines += ["", self._changes_line(), *self._change_lines()]
        lines += ["", "rows per table:   written now   in all   run before", *self._table_lines()]
        lines.append("")
        if self.data_docs is not None:
            lines.append(f"data docs: {self.data_docs}")
        lines += [f"database: {self.database}", f"look at it:  {self.psql}"]
        return "\n".join(lines)

    def _table_lines(self) -> list[str]:
        width = max((len(t) for t in self.counts.row_counts), default=10)
        c = self.counts
        lines = [
            f"  {t:<{width}}  {c.this_run(t):>8}  {c.total(t):>8}  {self._before(t):>8}"
            for t in self.counts.row_counts
        ]
        return [*lines, f"  {ESTIMATED}"] if c.estimated else lines

    def _before(self, table: str) -> str:
        n = self.changes.rows_before.get(table)
        return "-" if n is None else str(n)

    def _changes_line(self) -> str:
        ch = self.changes
        since = f"the run before ({ch.run_before})" if ch.run_before else "the start (first run)"
        return (
            f"changes since {since}: {ch.added} papers added, {ch.updated} updated, "
            f"{ch.removed} removed from the seeds"
        )

    def _change_lines(self) -> list[str]:
        ch = self.changes
        lines = [
            f"  {c.paper_id}: {c.change}" + (f" ({', '.join(c.details)})" if c.details else "")
            for c in ch.shown
        ]
        more = self._more_changes()
        return [*lines, f"  {more}"] if more else lines

    def _more_changes(self) -> str | None:
        ch = self.changes
        more = ch.added + ch.updated + ch.removed - len(ch.shown)
        return f"... and {more} more in analytics.run_diff" if more > 0 else None

    def to_markdown(self, data_docs_url: str | None = None) -> str:
        """The summary as a Markdown artifact: problems, this run's rows, totals, time."""
        c = self.counts
        rows = "\n".join(
            f"| `{t}` | {c.this_run(t)} | {c.total(t)} | {self._before(t)} |" for t in c.row_counts
        )
        changed = "\n".join(
            f"| `{_code(ch.paper_id)}` | {ch.change} | {_cell(_code(', '.join(ch.details)))} |"
            for ch in self.changes.shown
        )
        if changed:
            rest = self._more_changes()
            tail = f"\n\n{rest}" if rest else ""
            changed = f"| paper | change | what changed |\n|---|---|---|\n{changed}{tail}\n\n"
        fetches = "\n".join(f"| {s} | {n} |" for s, n in sorted(c.fetch_statuses.items()))
        busy = self.stage_busy_seconds
        stages = "\n".join(
            f"| {s} | {t:.2f} | {f'{busy[s]:.2f}' if s in busy else '-'} |"
            for s, t in self.stage_seconds.items()
        )
        parts = [f"# Ingest run `{self.flow_run_name}`: {self.status}\n"]
        trouble = self.trouble()
        if trouble:
            parts.append(
                "## Problems\n\n" + "\n".join(f"- {_code(p)}" for p in trouble.split("; ")) + "\n"
            )
        if self.quarantine:
            listed = "\n".join(
                f"- `{_where(q)}` ({q.stage}): {_code(q.reason)}"
                for q in self.quarantine[:QUARANTINE_SHOWN]
            )
            more = self.quarantine_total - min(len(self.quarantine), QUARANTINE_SHOWN)
            tail = f"\n- ... and {more} more (the ingest-quarantine table)" if more > 0 else ""
            parts.append(f"## Quarantine ({self.quarantine_total})\n\n{listed}{tail}\n")
        parts += [
            "## Papers\n\n| papers | count |\n|---|---|\n"
            f"| seen | {c.seen} |\n| new | {c.new} |\n| updated | {c.updated} |\n"
            f"| unchanged | {c.unchanged} |\n| full text failed | {c.failed} |\n"
            f"| quarantined | {c.quarantined} |\n",
            f"## Full text\n\n| status | papers |\n|---|---|\n{fetches or '| - | 0 |'}\n",
            f"## Data quality\n\n{self.data_quality.headline()}\n\n"
            + (f"Data Docs: {data_docs_url}\n" if data_docs_url else ""),
            f"## Rows per table\n\n{_sentence(self._changes_line())}\n\n{changed}"
            "| table | written in this run | in all | after the run before |\n"
            f"|---|---:|---:|---:|\n{rows}\n" + (f"\n{ESTIMATED}\n" if c.estimated else ""),
            "## Time\n\n| stage | seconds, summed over batches | wall seconds a batch was in it |"
            f"\n|---|---:|---:|\n{stages}\n| total | | {self.wall_seconds:.2f} |\n",
            f"Database: `{self.database}`\n",
        ]
        return "\n".join(parts)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _where(q: QuarantineRow) -> str:
    return f"{q.document}:{q.line}" if q.line else q.document


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    # identifiers shown literally: markdown would make "36x0" a multiplication sign
    return text.replace("`", "'").replace("*", "\\*").replace("_", "\\_")


@dataclass(slots=True)
class RunTally:
    """What a run has done so far: batch outcomes folded in as they come back."""

    counts: RunCounts = field(default_factory=RunCounts)
    quality: DataQuality = field(default_factory=DataQuality)
    times: StageTimes = field(default_factory=StageTimes)
    failures: list[str] = field(default_factory=list)  # what fails the run
    notes: list[str] = field(default_factory=list)  # what the user should know
    papers: set[str] = field(default_factory=set)  # the paper ids processed
    removed: int = 0  # papers loaded before whose seeds the run no longer found
    checked: bool = False  # the after-load checks (the drift gate among them) ran
    started: float = 0.0  # perf_counter at the run's start

    def add(self, outcome: BatchOutcome) -> None:
        """Fold one batch's outcome in."""
        c = self.counts
        c.seen += outcome.documents
        c.quarantined += outcome.quarantined
        for status, n in outcome.fetch_statuses.items():
            c.fetch_statuses[status] = c.fetch_statuses.get(status, 0) + n
        if outcome.result is not None:
            c.add(outcome.result)
        if outcome.refused is not None:
            self.failures.append(f"batch {outcome.number} not loaded: {outcome.refused}")
        self.quality.add(outcome.outcomes)
        self.papers.update(outcome.papers)
        for stage, seconds in outcome.seconds.items():
            self.times.seconds[stage] = self.times.seconds.get(stage, 0.0) + seconds
        for stage, span in outcome.spans.items():
            self.times.spans.setdefault(stage, []).append(span)

    @property
    def wrote_rows(self) -> bool:
        """Whether any batch wrote a row to a table that carries the run id."""
        return any(self.counts.rows_written.get(t, 0) for t in RUN_TABLES)

    def expected_rows(self) -> dict[str, int]:
        """Rows the run wrote per table that carries a run id (for the after-load check)."""
        return {t: self.counts.rows_written.get(t, 0) for t in RUN_TABLES}

    def add_after_load(self, report: QualityReport) -> None:
        """Fold the after-load checkpoint in; its failures fail the run."""
        self.quality.add(report.outcomes)
        self.failures += failed_after_load(report)
        self.counts.dq_failed_expectations = len(self.quality.failed)

    def note(self, message: str) -> None:
        """Something the user should know that does not fail the run."""
        self.notes.append(message)

    @property
    def status(self) -> str:
        """completed, or failed when a batch was refused or an after-load check failed."""
        return "failed" if self.failures else "completed"

    @property
    def problems(self) -> list[str]:
        """What failed the run, then what is worth knowing."""
        return [*self.failures, *self.notes]

    def summary(
        self,
        run_id: uuid.UUID,
        flow_run_name: str | None,
        url: str,
        quarantine: tuple[Sequence[QuarantineRow], int],
        data_docs: Path | None,
        wall_seconds: float,
        by_stage: Mapping[str, tuple[int, tuple[QuarantineRow, ...]]] | None = None,
        changes: RunChanges | None = None,
    ) -> RunSummary:
        """The run's summary, once every batch and the after-load check are in."""
        shown, total = quarantine
        summary = summarise(
            run_id, flow_run_name, self.status, url, self.counts, shown, total, self.quality,
            data_docs, self.problems, self.times, wall_seconds,
        )  # fmt: skip
        return replace(
            summary, quarantine_by_stage=dict(by_stage or {}), changes=changes or RunChanges()
        )


def summarise(
    run_id: uuid.UUID,
    flow_run_name: str | None,
    status: str,
    url: str,
    counts: RunCounts,
    quarantine: Sequence[QuarantineRow],
    quarantine_total: int,
    data_quality: DataQuality,
    data_docs: Path | None,
    problems: Sequence[str],
    times: StageTimes,
    wall_seconds: float,
) -> RunSummary:
    """Build the run summary."""
    return RunSummary(
        run_id=run_id,
        flow_run_name=flow_run_name,
        status=status,
        database=masked(url),
        psql=psql_command(url),
        counts=counts,
        quarantine=tuple(quarantine),
        quarantine_total=quarantine_total,
        data_quality=data_quality,
        data_docs=data_docs,
        problems=tuple(problems),
        stage_seconds=dict(times.seconds),
        wall_seconds=wall_seconds,
        stage_busy_seconds=times.busy(),
    )


def log_batch(
    logger: logging.Logger | logging.LoggerAdapter[Any], outcome: BatchOutcome
) -> BatchOutcome:
    """Log what a batch did (an error when the gate refused it); returns the outcome."""
    if outcome.refused is not None:
        logger.error("batch %d not loaded: %s", outcome.number, outcome.refused)
    statuses = outcome.fetch_statuses
    fetched = statuses.get("fetched", 0) + statuses.get("not_modified", 0)
    logger.info(
        "batch %d: %d papers, %d full texts fetched, %d not, %d quarantine rows",
        outcome.number, len(outcome.papers), fetched, sum(statuses.values()) - fetched,
        outcome.quarantine_rows,
    )  # fmt: skip
    return outcome


def failed_after_load(report: QualityReport) -> list[str]:
    """The after-load expectations that failed, as problems of the run (not those that warn)."""
    return [
        f"after load: {o.suite}.{o.expectation}({o.column or ''}) observed {o.observed_value!r}"
        for o in report.failed_expectations()
        if o.policy != "warn"
    ]
