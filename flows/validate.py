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

import pandas as pd

from flows.papers import PaperContent, PaperLoad
from flows.quality import BEFORE_LOAD_SUITES, QualityGate, QualityReport, RowFailure, batch_frame
from flows.quarantine import QuarantineRow

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BatchVerdict:
    """What the before-load checkpoint decided for one batch."""

    loads: tuple[PaperLoad, ...]  # the papers to load, with rejected rows left out
    rejected: tuple[QuarantineRow, ...]
    report: QualityReport
    rows_checked: int
    failure_share: float
    over_threshold: bool  # true: nothing of this batch may load

    def message(self) -> str:
        """Why the batch was refused, naming the expectations that failed."""
        failed = sorted(
            {
                f"{o.suite}.{o.expectation}({o.column or ''})"
                for o in self.report.failed_expectations()
            }
        )
        return (
            f"{self.failure_share:.0%} of {self.rows_checked} rows failed quality checks: "
            + ", ".join(failed)
        )


def batch_frames(loads: Iterable[PaperLoad]) -> dict[str, pd.DataFrame]:
    """The frames the before-load suites validate, from the papers whose rows will be written."""
    rows: dict[str, list[dict[str, object]]] = defaultdict(list)
    for load in loads:
        if load.content is None:
            continue
        p, c = load.paper, load.content
        refs = len(c.fulltext.references) if c.fulltext is not None else None
        gap = None if refs is None or p.stated_reference_count is None else (
            abs(p.stated_reference_count - refs)
        )  # fmt: skip
        rows["papers"].append(
            {
                "paper_id": p.paper_id,
                "source": p.source,
                "title": p.title,
                "doi": p.doi,
                "published_on": p.published_on,
                "tldr": p.tldr,
                "abstract": p.abstract,
                "stated_reference_count": p.stated_reference_count,
                "parsed_reference_count": refs,
                "reference_count_gap": gap,
                "fulltext_status": load.fulltext_state.status,
            }
        )
        rows["authors"].extend(
            {"paper_id": p.paper_id, "position": pos, "name": name} for pos, name in c.authors
        )
        seen: set[str] = set()
        for e in c.entities:
            rows["paper_entities"].append(
                {"paper_id": p.paper_id, "curie": e.curie, "listing": e.listing,
                 "name_as_written": e.name_as_written}
            )  # fmt: skip
            if e.curie not in seen:
                seen.add(e.curie)
                prefix, local_id = e.curie.split(":", 1)
                rows["entities"].append(
                    {"paper_id": p.paper_id, "curie": e.curie, "prefix": prefix,
                     "local_id": local_id, "entity_type": e.entity_type}
                )  # fmt: skip
        if c.fulltext is not None:
            rows["sections"].extend(
                {"paper_id": p.paper_id, "ordinal": s.ordinal, "heading": s.heading,
                 "level": s.level, "text_length": len(s.text), "word_count": s.word_count}
                for s in c.fulltext.sections
            )  # fmt: skip
            rows["references"].extend(
                {"paper_id": p.paper_id, "ordinal": r.ordinal, "citation": r.citation,
                 "doi": r.doi, "pmid": r.pmid, "pmcid": r.pmcid, "year": r.year}
                for r in c.fulltext.references
            )  # fmt: skip
        rows["mentions"].extend(
            {"paper_id": p.paper_id, "curie": m.curie, "section_ordinal": m.section_ordinal,
             "mention_count": m.count, "first_offset": m.first_offset}
            for m in c.mentions
        )  # fmt: skip
    return {kind: batch_frame(kind, rows[kind]) for kind in BEFORE_LOAD_SUITES}


def check_batch(
    gate: QualityGate, loads: Sequence[PaperLoad], batch: int, max_failure_share: float
) -> BatchVerdict:
    """Validate a batch before load and decide which of its rows may load."""
    frames = batch_frames(loads)
    rows_checked = sum(len(f) for f in frames.values())
    report = gate.validate_batch(frames, batch)
    share = report.failure_share(rows_checked)
    kept, rejected = apply_row_failures(loads, report.row_failures)
    return BatchVerdict(
        tuple(kept), tuple(rejected), report, rows_checked, share, share > max_failure_share
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
    authors = tuple((pos, name) for pos, name in c.authors if not gone("authors", pos))
    return replace(c, authors=authors, entities=entities, fulltext=fulltext, mentions=mentions)
