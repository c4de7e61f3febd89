"""Seed files -> a batch of PaperRecords: discover them, parse each, drop repeated ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flows.records import PaperRecord, QuarantineRow
from flows.seeds.summary import SeedParseError, parse_summary

SEED_SUFFIXES = (".md", ".txt")


def discover_seeds(root: Path) -> list[Path]:
    """Seed documents below root, in a stable order."""
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in SEED_SUFFIXES and not p.name.startswith(".")
    )


def read_seed(path: Path) -> PaperRecord:
    """Read and parse one seed file."""
    return parse_summary(path.read_bytes(), str(path))


@dataclass(frozen=True, slots=True)
class SeedBatch:
    """The papers read from a batch of seed files, and what was rejected."""

    papers: tuple[PaperRecord, ...]
    rejected: tuple[QuarantineRow, ...]


def parse_batch(paths: Sequence[Path]) -> SeedBatch:
    """Parse seed files; a bad file or line becomes a quarantine row, never an exception."""
    papers: list[PaperRecord] = []
    rejected: list[QuarantineRow] = []
    for path in paths:
        try:
            paper = read_seed(path)
        except SeedParseError as exc:
            rejected.append(
                QuarantineRow(str(path), "parse", exc.reason, True, line=exc.line or None)
            )
            continue
        except OSError as exc:
            rejected.append(QuarantineRow(str(path), "parse", f"cannot read: {exc}", True))
            continue
        papers.append(paper)
        rejected.extend(
            QuarantineRow(
                str(path), "parse", p.reason, False, paper.paper_id, p.line, {"text": p.text}
            )
            for p in paper.problems
        )
    return SeedBatch(tuple(papers), tuple(rejected))


def drop_duplicate_ids(
    papers: Sequence[PaperRecord], seen: dict[str, str]
) -> tuple[list[PaperRecord], list[QuarantineRow]]:
    """Keep the first document of each paper id in a run; later ones are quarantined."""
    kept: list[PaperRecord] = []
    rejected: list[QuarantineRow] = []
    for paper in papers:
        first = seen.setdefault(paper.paper_id, paper.seed_path)
        if first == paper.seed_path:
            kept.append(paper)
        else:
            rejected.append(
                QuarantineRow(
                    paper.seed_path,
                    "parse",
                    f"duplicate paper id {paper.paper_id}: already read from {first}",
                    True,
                    paper.paper_id,
                )
            )
    return kept, rejected
