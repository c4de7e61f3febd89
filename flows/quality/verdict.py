"""A batch of PaperLoads -> GX frames -> the rows that may load, and quarantine rows for the rest.

Policy, row by row: a row that breaks a `quarantine` expectation is left out and becomes an
`ops.quarantine` row naming the suite, the expectation and the offending value. Leaving out a
`papers` row leaves out the whole paper (a previously loaded version of it stays as it was);
leaving out an entity, a section or a paper-entity listing also leaves out the mentions that
hang on it. When the share of rejected rows in a batch passes the threshold, nothing of the
batch loads: the verdict says so and the flow fails the run once the other batches are done.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from flows.entities import entity_names
from flows.quality.results import QualityReport, RowFailure
from flows.quality.suites import BEFORE_LOAD_SUITES
from flows.records import PaperContent, PaperLoad, QuarantineRow
from flows.tables import VALIDATED

if TYPE_CHECKING:
    from flows.quality.process import Gate

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BatchVerdict:
    """What the before-load checkpoint decided for one batch."""

    loads: tuple[PaperLoad, ...]  # the papers to load, with rejected rows left out
    rejected: tuple[QuarantineRow, ...]
    report: QualityReport
    rows_checked: int
    failure_share: float  # the larger of the papers' and the rows' share rejected
    over_threshold: bool  # true: nothing of this batch may load
    papers_checked: int = 0
    papers_rejected: int = 0

    def message(self) -> str:
        """Why the batch was refused, naming the expectations that failed."""
        failed = sorted(
            {
                f"{o.suite}.{o.expectation}({o.column or ''})"
                for o in self.report.failed_expectations()
            }
        )
        papers = f"{self.papers_rejected} of {self.papers_checked} papers"
        return (
            f"{self.failure_share:.0%} failed quality checks ({papers}, rows of "
            f"{self.rows_checked}): " + ", ".join(failed)
        )


# the papers' share of a batch refuses it only from this many papers on: one bad paper in a
# batch of two is quarantined, not taken for a page format gone wrong
MIN_PAPERS_FOR_SHARE = 5


def batch_rows(loads: Sequence[PaperLoad]) -> dict[str, list[tuple[Any, ...]]]:
    """Each before-load suite's rows of the papers written, in its frame's column order."""
    return {suite: list(VALIDATED[suite].frame_rows(loads)) for suite in BEFORE_LOAD_SUITES}


def check_batch(
    gate: Gate, loads: Sequence[PaperLoad], batch: int, max_failure_share: float
) -> BatchVerdict:
    """Validate a batch before load and decide which of its rows may load."""
    rows = batch_rows(loads)
    rows_checked = sum(len(r) for r in rows.values())
    report = gate.validate_rows(rows, batch)
    # rows alone would let a few rejected papers hide among thousands of good mention rows:
    # the share that counts is the larger of the papers' and the rows'
    papers_checked = len(rows["papers"])
    papers_rejected = len({f.paper_id for f in report.row_failures if f.suite == "papers"})
    counted = papers_checked >= MIN_PAPERS_FOR_SHARE
    paper_share = papers_rejected / papers_checked if counted else 0.0
    share = max(report.failure_share(rows_checked), paper_share)
    kept, rejected = apply_row_failures(loads, report.row_failures)
    return BatchVerdict(
        tuple(kept),
        tuple(rejected),
        report,
        rows_checked,
        share,
        share > max_failure_share,
        papers_checked,
        papers_rejected,
    )


def apply_row_failures(
    loads: Sequence[PaperLoad], failures: Sequence[RowFailure]
) -> tuple[list[PaperLoad], list[QuarantineRow]]:
    """Leave out every row a quarantine expectation rejected; one quarantine row per failure."""
    if not failures:
        return list(loads), []
    by_paper: dict[str, dict[str, set[Key]]] = defaultdict(lambda: defaultdict(set))
    for f in failures:
        by_paper[f.paper_id][f.suite].add(_key(f.key))
    documents = {load.paper.paper_id: load.paper.seed_path for load in loads}
    rejected = [
        QuarantineRow(
            documents.get(f.paper_id, f.paper_id or "?"),
            "validate",
            f"{f.suite}: {f.expectation} failed on {f.column} = {f.value!r}",
            f.suite == "papers",
            f.paper_id or None,
            payload={
                "suite": f.suite,
                "expectation": f.expectation,
                "column": f.column,
                "value": f.value,
                "key": list(f.key),
            },
        )
        for f in failures
    ]
    kept: list[PaperLoad] = []
    for load in loads:
        dropped = by_paper.get(load.paper.paper_id)
        if not dropped:
            kept.append(load)
        elif not dropped.get("papers") and load.content is not None:
            kept.append(replace(load, content=_without(load.paper.paper_id, load.content, dropped)))
    return kept, rejected


def _key(values: Iterable[object]) -> Key:
    return tuple(str(v) for v in values)


def _without(paper_id: str, c: PaperContent, dropped: Mapping[str, set[Key]]) -> PaperContent:
    def gone(suite: str, *key: object) -> bool:
        return _key((paper_id, *key)) in dropped.get(suite, set())

    entities = tuple(
        e
        for e in c.entities
        if not gone("entities", e.curie) and not gone("paper_entities", e.curie, e.listing)
    )
    curies = {e.curie for e in entities}
    fulltext = c.fulltext
    if fulltext is not None:
        fulltext = replace(
            fulltext,
            sections=tuple(s for s in fulltext.sections if not gone("sections", s.ordinal)),
            references=tuple(r for r in fulltext.references if not gone("references", r.ordinal)),
        )
    ordinals = {s.ordinal for s in fulltext.sections} if fulltext is not None else set()
    mentions = tuple(
        m
        for m in c.mentions
        if m.curie in curies
        and m.section_ordinal in ordinals
        and not gone("mentions", m.curie, m.section_ordinal)
    )
    authors = tuple(a for a in c.authors if not gone("authors", a.position))
    return replace(
        c,
        authors=authors,
        entities=entities,
        fulltext=fulltext,
        mentions=mentions,
        names=entity_names(entities),
    )
