"""`tomeflow check FILE...`: every problem a load would find in seed pages, loading nothing.

Each page is parsed, its entities normalised, and its rows put through the before-load
expectations (Great Expectations), as a run would before loading; full texts are not fetched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from flows.assemble import assemble_batch
from flows.quality.suites import SUITES_DIR
from flows.records import NEVER_REQUESTED, FetchedBatch, QuarantineRow
from flows.seeds import parse_batch


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in one document."""

    document: str
    line: int | None
    stage: str
    reason: str
    whole: bool  # the document would be rejected whole

    def __str__(self) -> str:
        where = f"{self.document}:{self.line}" if self.line else self.document
        what = "rejected" if self.whole else "left out"
        return f"{where}: [{self.stage}] {self.reason} ({what})"


def check_files(paths: Sequence[Path], reference_count_gap_tolerance: int = 3) -> list[Finding]:
    """Parse, normalise and validate the pages; every problem found, in document order."""
    from flows.quality.gate import QualityGate
    from flows.quality.verdict import check_batch

    parsed = parse_batch(paths)
    states = {p.paper_id: NEVER_REQUESTED for p in parsed.papers}
    loads, problems = assemble_batch(parsed.papers, FetchedBatch(states, ()), {})
    gate = QualityGate(
        SUITES_DIR, None, reference_count_gap_tolerance=reference_count_gap_tolerance
    )
    # no share can refuse a check: every failing row is reported
    verdict = check_batch(gate, loads, 1, max_failure_share=1.0)
    found = [*parsed.rejected, *problems, *verdict.rejected]
    warnings = [o for o in verdict.report.failed_expectations() if o.policy == "warn"]
    order = {str(p): n for n, p in enumerate(paths)}
    findings = sorted(_findings(found), key=lambda f: (order.get(f.document, -1), f.line or 0))
    findings += [
        Finding(
            "(batch)", None, "validate", f"warning: {o.suite}.{o.expectation}({o.column})", False
        )
        for o in warnings
    ]
    return findings


def _findings(rows: Sequence[QuarantineRow]) -> Iterator[Finding]:
    for row in rows:
        yield Finding(row.document, row.line, row.stage, row.reason, row.rejected_whole)
