"""What a checkpoint found: outcomes, the rows to quarantine, and the gate's errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from flows.records import ExpectationOutcome

_MARKDOWN_OBSERVED_CHARS = 80


class SuiteError(ValueError):
    """A suite file that cannot be used as written."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[SuiteError], tuple[Path, str]]:
        return type(self), (self.path, self.reason)  # it crosses from the gate's process


class QualityGateError(RuntimeError):
    """Input the gate cannot validate, or an expectation GX could not evaluate."""

    def __init__(self, suite: str, reason: str) -> None:
        super().__init__(f"{suite}: {reason}")
        self.suite = suite
        self.reason = reason

    def __reduce__(self) -> tuple[type[QualityGateError], tuple[str, str]]:
        return type(self), (self.suite, self.reason)  # it crosses from the gate's process


@dataclass(frozen=True, slots=True)
class RowFailure:
    """One row that broke a quarantine expectation, with its key and the offending value."""

    suite: str
    paper_id: str  # "" when the row has no paper id
    key: tuple[object, ...]  # the row's values of the suite's key columns, json-able
    expectation: str
    column: str | None
    value: object  # json-able; a list for multi-column expectations


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Everything one checkpoint found."""

    outcomes: tuple[ExpectationOutcome, ...]
    row_failures: tuple[RowFailure, ...]

    @property
    def success(self) -> bool:
        """True when every expectation held."""
        return all(o.success for o in self.outcomes)

    def failed_expectations(self) -> tuple[ExpectationOutcome, ...]:
        """The outcomes of expectations that did not hold."""
        return tuple(o for o in self.outcomes if not o.success)

    def failed_papers(self) -> frozenset[str]:
        """Papers with at least one row rejected by a quarantine expectation."""
        return frozenset(f.paper_id for f in self.row_failures if f.paper_id)

    def failure_share(self, total_rows: int) -> float:
        """Share of total_rows rejected: distinct (suite, key) rows with a RowFailure."""
        if total_rows <= 0:
            return 0.0
        return len({(f.suite, f.key) for f in self.row_failures}) / total_rows

    def to_markdown(self) -> str:
        """A Markdown table of the outcomes, for a Prefect markdown artifact."""
        lines = [
            "| suite | expectation | column | success | observed | unexpected | unexpected % |",
            "| --- | --- | --- | --- | --- | ---: | ---: |",
        ]
        for o in self.outcomes:
            percent = "" if o.unexpected_percent is None else f"{o.unexpected_percent:.2f}"
            count = "" if o.unexpected_count is None else str(o.unexpected_count)
            cells = (
                o.suite,
                o.expectation,
                o.column or "",
                "yes" if o.success else "**no**",
                _short(o.observed_value),
                count,
                percent,
            )
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        return "\n".join(lines) + "\n"


def _short(value: object) -> str:
    text = "" if value is None else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > _MARKDOWN_OBSERVED_CHARS:
        return text[: _MARKDOWN_OBSERVED_CHARS - 1] + "…"
    return text


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
