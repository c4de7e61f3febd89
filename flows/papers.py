"""PaperRecord + full-text state -> PaperLoad: everything the loader writes for one paper.

This stage reads a paper's stored full-text body, parses it into sections and references,
normalises the listed entities to CURIEs and counts their mentions. A paper whose inputs (the
seed and the body in use) hash to what is already loaded is not re-read at all: it becomes a
PaperLoad without content, and only its full-text state is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from flows.entities import NormalisedEntity, normalise_entities
from flows.fulltext import FullText, parse_fulltext
from flows.mentions import Mention, MentionMatcher, targets_from
from flows.plan import FulltextState, StoredPaper
from flows.quarantine import QuarantineRow
from flows.rawstore import RawBodyCorrupt, RawBodyMissing, RawStore
from flows.seeds import PaperRecord


@dataclass(frozen=True, slots=True)
class PaperContent:
    """What a paper's rows are made of: its authors, entities, full text and mentions."""

    authors: tuple[tuple[int, str], ...]  # (1-based position, name)
    entities: tuple[NormalisedEntity, ...]
    fulltext: FullText | None
    mentions: tuple[Mention, ...]


@dataclass(frozen=True, slots=True)
class PaperLoad:
    """Everything loaded for one paper: the loader's input record."""

    paper: PaperRecord
    fulltext_state: FulltextState
    content_sha256: str  # over every input the rows derive from; equal means unchanged
    content: PaperContent | None  # None: known unchanged, not re-read; only the state is written


def content_hash(seed_sha256: str, fulltext_sha256: str | None) -> str:
    """One hash over every input a paper's rows derive from: the seed and the body in use."""
    return hashlib.sha256(f"{seed_sha256}|{fulltext_sha256 or ''}".encode()).hexdigest()


def assemble_batch(
    papers: Sequence[PaperRecord],
    states: Mapping[str, FulltextState],
    stored: Mapping[str, StoredPaper],
    store: RawStore,
    *,
    force: bool = False,
) -> tuple[list[PaperLoad], list[QuarantineRow]]:
    """Build each paper's PaperLoad; unreadable parts become quarantine rows, never exceptions."""
    loads: list[PaperLoad] = []
    rejected: list[QuarantineRow] = []
    for paper in papers:
        state = states[paper.paper_id]
        if state.failed and paper.fulltext_url:
            rejected.append(
                QuarantineRow(
                    paper.fulltext_url,
                    "fetch",
                    f"full text not fetched ({state.status}): {state.error}",
                    False,
                    paper.paper_id,
                    payload={"kept_earlier_body": state.sha256},
                )
            )
        load, problems = assemble_paper(paper, state, stored.get(paper.paper_id), store, force)
        loads.append(load)
        rejected.extend(problems)
    return loads, rejected


def assemble_paper(
    paper: PaperRecord,
    state: FulltextState,
    before: StoredPaper | None,
    store: RawStore,
    force: bool = False,
) -> tuple[PaperLoad, list[QuarantineRow]]:
    """One paper's PaperLoad, and what could not be read of it."""
    digest = content_hash(paper.seed_sha256, state.sha256)
    if not force and before is not None and before.content_sha256 == digest:
        return PaperLoad(paper, state, digest, None), []

    rejected: list[QuarantineRow] = []
    entities, problems = normalise_entities(paper.paper_id, paper.entities)
    rejected.extend(
        QuarantineRow(
            paper.seed_path,
            "normalise",
            p.reason,
            False,
            paper.paper_id,
            p.line,
            {"identifier": p.curie_or_raw},
        )
        for p in problems
    )
    fulltext: FullText | None = None
    if state.sha256 is not None:
        try:
            fulltext = parse_fulltext(store.get(state.sha256).decode("utf-8"))
        except (RawBodyMissing, RawBodyCorrupt, UnicodeDecodeError) as exc:
            reason = f"stored full text {state.sha256} unusable: {type(exc).__name__}: {exc}"
            rejected.append(
                QuarantineRow(
                    paper.fulltext_url or paper.seed_path, "fulltext", reason, False, paper.paper_id
                )
            )
            # without its body the paper must be re-read once the body is back
            state = replace(state, sha256=None, error=reason)
            digest = content_hash(paper.seed_sha256, None)
    mentions: tuple[Mention, ...] = ()
    if fulltext is not None and entities:
        matcher = MentionMatcher.for_entities(targets_from(entities))
        mentions = tuple(matcher.count_mentions((s.ordinal, s.text) for s in fulltext.sections))
    authors = tuple(enumerate(paper.authors, 1))
    content = PaperContent(authors, tuple(entities), fulltext, mentions)
    return PaperLoad(paper, state, digest, content), rejected
