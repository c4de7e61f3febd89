"""Seed files -> a batch of PaperRecords: discover them, parse each, drop repeated ids."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flows.records import KnownSeed, PaperRecord, QuarantineRow
from flows.seeds.summary import SeedParseError, parse_summary

logger = logging.getLogger(__name__)

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
    """The papers read from a batch of seed files, what was rejected, what needed no reading."""

    papers: tuple[PaperRecord, ...]
    rejected: tuple[QuarantineRow, ...]
    unchanged: tuple[KnownSeed, ...] = ()  # known seeds whose bytes are the same: not parsed
    ids: tuple[tuple[str, str], ...] = ()  # (seed path, paper id) of both, in path order


def seeds_root(seeds: Path) -> Path:
    """The folder document names are relative to: the seeds folder, or a single seed's own."""
    return seeds.parent if seeds.is_file() else seeds


def document_name(path: Path, root: Path | None) -> str:
    """How a seed document is named in the tables: its path relative to the seeds folder."""
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


def parse_batch(
    paths: Sequence[Path], known: Mapping[str, KnownSeed] | None = None, root: Path | None = None
) -> SeedBatch:
    """Parse seed files; a bad file or line becomes a quarantine row, never an exception.

    A file in `known` whose bytes still hash to what was loaded is not parsed at all. Files
    are named relative to root (the seeds folder) when given.
    """
    papers: list[PaperRecord] = []
    rejected: list[QuarantineRow] = []
    unchanged: list[KnownSeed] = []
    ids: list[tuple[str, str]] = []
    for path in paths:
        name = document_name(path, root)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            rejected.append(QuarantineRow(name, "parse", f"cannot read: {exc}", True))
            continue
        seen_before = (known or {}).get(name)
        if seen_before is not None and _same_bytes(raw, seen_before):
            unchanged.append(seen_before)
            ids.append((seen_before.seed_path, seen_before.paper_id))
            continue
        try:
            paper = parse_summary(raw, name)
        except SeedParseError as exc:
            rejected.append(QuarantineRow(name, "parse", exc.reason, True, line=exc.line or None))
            continue
        except Exception as exc:  # a page the parser chokes on must not sink the batch
            logger.debug("parsing %s failed", path, exc_info=True)
            reason = f"cannot parse: {type(exc).__name__}: {exc}"
            rejected.append(QuarantineRow(name, "parse", reason, True))
            continue
        papers.append(paper)
        ids.append((paper.seed_path, paper.paper_id))
        rejected.extend(
            QuarantineRow(name, "parse", p.reason, False, paper.paper_id, p.line, {"text": p.text})
            for p in paper.problems
        )
    return SeedBatch(tuple(papers), tuple(rejected), tuple(unchanged), tuple(ids))


def all_unchanged(
    paths: Sequence[Path], known: Mapping[str, KnownSeed], root: Path | None = None
) -> SeedBatch | None:
    """The batch as parse_batch would give it when every file is known with the same bytes.

    None as soon as one file is not known, cannot be read or has changed: that batch is parsed.
    A rerun over unchanged seeds hashes them here, with no task to start per batch.
    """
    if len(known) < len(paths):
        return None
    unchanged: list[KnownSeed] = []
    for path in paths:
        seen_before = known.get(document_name(path, root))
        if seen_before is None:
            return None
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        if not _same_bytes(raw, seen_before):
            return None
        unchanged.append(seen_before)
    ids = tuple((k.seed_path, k.paper_id) for k in unchanged)
    return SeedBatch((), (), tuple(unchanged), ids)


def _same_bytes(raw: bytes, seen_before: KnownSeed) -> bool:
    """Whether a seed's bytes are those it was loaded with: then it needs no parsing."""
    return hashlib.sha256(raw).hexdigest() == seen_before.sha256


def drop_duplicate_ids(
    papers: Sequence[PaperRecord], seen: dict[str, str], ids: Sequence[tuple[str, str]] = ()
) -> tuple[list[PaperRecord], list[QuarantineRow]]:
    """Keep the first document of each paper id in a run; later ones are quarantined.

    ids: (seed path, paper id) of every document of the batch in path order, parsed or not;
    without them, the papers' own order.
    """
    order = ids or [(p.seed_path, p.paper_id) for p in papers]
    rejected: list[QuarantineRow] = []
    dropped: set[str] = set()
    for path, paper_id in order:
        first = seen.setdefault(paper_id, path)
        if first != path:
            dropped.add(path)
            rejected.append(
                QuarantineRow(
                    path,
                    "parse",
                    f"duplicate paper id {paper_id}: already read from {first}",
                    True,
                    paper_id,
                )
            )
    return [p for p in papers if p.seed_path not in dropped], rejected
