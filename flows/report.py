"""Run summary: what a run loaded, for the CLI, the logs and a Prefect artifact."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from prefect.artifacts import create_markdown_artifact

from flows.db import masked, psql_command
from flows.load import RunCounts
from flows.quarantine import QuarantineRow


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one ingest run did."""

    run_id: uuid.UUID
    flow_run_name: str | None
    database: str  # password masked
    psql: str
    counts: RunCounts
    quarantine: tuple[QuarantineRow, ...]

    def headline(self) -> str:
        """One line: papers new/updated/unchanged/quarantined."""
        c = self.counts
        return (
            f"papers: {c.new} new, {c.updated} updated, {c.unchanged} unchanged, "
            f"{c.failed} without full text, {c.quarantined} quarantined (of {c.seen} documents)"
        )

    def to_text(self) -> str:
        """The summary the CLI prints."""
        width = max((len(t) for t in self.counts.row_counts), default=10)
        lines = [
            f"run {self.flow_run_name or ''} ({self.run_id})".replace("  ", " "),
            self.headline(),
            "",
            "rows per table:",
            *(f"  {t:<{width}}  {n:>8}" for t, n in self.counts.row_counts.items()),
        ]
        if self.quarantine:
            lines += ["", f"quarantined in this run ({len(self.quarantine)}):"]
            lines += [f"  {_where(q)}: [{q.stage}] {q.reason}" for q in self.quarantine[:20]]
            if len(self.quarantine) > 20:
                lines.append(f"  ... and {len(self.quarantine) - 20} more in ops.quarantine")
        lines += ["", f"database: {self.database}", f"look at it:  {self.psql}"]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The summary as a Markdown artifact."""
        c = self.counts
        rows = "\n".join(f"| `{t}` | {n} |" for t, n in c.row_counts.items())
        quarantine = "\n".join(
            f"| `{_where(q)}` | {q.stage} | {q.reason} |" for q in self.quarantine[:50]
        )
        return (
            f"# Ingest run `{self.flow_run_name}`\n\n"
            f"| papers | count |\n|---|---|\n| seen | {c.seen} |\n| new | {c.new} |\n"
            f"| updated | {c.updated} |\n| unchanged | {c.unchanged} |\n"
            f"| without full text | {c.failed} |\n| quarantined | {c.quarantined} |\n\n"
            f"## Rows per table\n\n| table | rows |\n|---|---|\n{rows}\n\n"
            + (
                f"## Quarantine ({len(self.quarantine)})\n\n| document | stage | reason |\n"
                f"|---|---|---|\n{quarantine}\n\n"
                if self.quarantine
                else "No quarantined input.\n\n"
            )
            + f"Database: `{self.database}`\n"
        )


def _where(q: QuarantineRow) -> str:
    return f"{q.document}:{q.line}" if q.line else q.document


def summarise(
    run_id: uuid.UUID,
    flow_run_name: str | None,
    url: str,
    counts: RunCounts,
    quarantine: Sequence[QuarantineRow],
) -> RunSummary:
    """Build the run summary."""
    return RunSummary(
        run_id, flow_run_name, masked(url), psql_command(url), counts, tuple(quarantine)
    )


def publish(summary: RunSummary) -> None:
    """Attach the summary to the flow run as a Markdown artifact."""
    create_markdown_artifact(
        key="ingest-summary", markdown=summary.to_markdown(), description=summary.headline()
    )
