"""PaperRecord + full-text state and body -> PaperLoad: everything the loader writes for one paper.

This stage parses a paper's full text into sections and references, normalises the listed
entities to CURIEs, names them and counts their mentions. A paper whose inputs (the seed and
the body in use) hash to what is already loaded is not re-read at all: it becomes a PaperLoad
without content, and only its full-text state is written. The fetch stage names the bodies to
read (a StoredBodies); each is read from the raw store here, as its paper is parsed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from flows import collector
from flows.entities import entity_names, normalise_entities
from flows.fetch.plan import content_hash, needs_reading
from flows.fetch.rawstore import RawBodyCorrupt
from flows.fulltext import parse_fulltext
from flows.mentions import MentionMatcher, targets_from
from flows.parent import exit_with_parent
from flows.records import (
    Author,
    FetchedBatch,
    FullText,
    FulltextState,
    KeyFinding,
    Mention,
    PaperContent,
    PaperLoad,
    PaperRecord,
    QuarantineRow,
    StoredPaper,
)

logger = logging.getLogger(__name__)


def worker_ready() -> None:
    """An assemble process's initializer: this module imported, the collector settled, and
    the process bound to end with the run's (flows/parent.py)."""
    collector.settle()
    exit_with_parent()


def assemble_batch(
    papers: Sequence[PaperRecord],
    fetched: FetchedBatch,
    stored: Mapping[str, StoredPaper],
    *,
    force: bool = False,
) -> tuple[list[PaperLoad], list[QuarantineRow]]:
    """Build each paper's PaperLoad; unreadable parts become quarantine rows, never exceptions."""
    loads: list[PaperLoad] = []
    rejected: list[QuarantineRow] = []
    matcher = batch_matcher(papers, fetched, stored, force)
    for paper in papers:
        state = fetched.states[paper.paper_id]
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
        try:
            load, problems = assemble_paper(
                paper,
                state,
                stored.get(paper.paper_id),
                fetched.bodies,
                force,
                matcher,
            )
        except Exception as exc:  # one paper that breaks a stage must not sink the batch
            logger.debug("assembling %s failed", paper.paper_id, exc_info=True)
            reason = f"cannot assemble: {type(exc).__name__}: {exc}"
            rejected.append(
                QuarantineRow(paper.seed_path, "normalise", reason, True, paper.paper_id)
            )
            continue
        loads.append(load)
        rejected.extend(problems)
    return loads, rejected


def assemble_paper(
    paper: PaperRecord,
    state: FulltextState,
    before: StoredPaper | None,
    bodies: Mapping[str, bytes],
    force: bool = False,
    matcher: MentionMatcher | None = None,
) -> tuple[PaperLoad, list[QuarantineRow]]:
    """One paper's PaperLoad, and what could not be read of it (matcher: the batch's)."""
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
    fulltext, problem = _read_fulltext(state.sha256, bodies)
    if problem is not None:
        reason = f"stored full text {state.sha256} unusable: {problem}"
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
        targets = targets_from(entities)
        matcher = matcher or MentionMatcher(targets)
        sections = ((s.ordinal, s.text) for s in fulltext.sections)
        mentions = tuple(matcher.count_mentions(sections, targets))
    content = PaperContent(
        authors=tuple(Author(n, name) for n, name in enumerate(paper.authors, 1)),
        entities=tuple(entities),
        fulltext=fulltext,
        mentions=mentions,
        names=entity_names(entities),
        key_findings=tuple(KeyFinding(n, f) for n, f in enumerate(paper.key_findings, 1)),
    )
    return PaperLoad(paper, state, digest, content), rejected


def batch_matcher(
    papers: Sequence[PaperRecord],
    fetched: FetchedBatch,
    stored: Mapping[str, StoredPaper],
    force: bool,
) -> MentionMatcher:
    """One automaton over the entities of every paper of the batch whose text will be read."""
    targets = []
    for paper in papers:
        state = fetched.states[paper.paper_id]
        if state.sha256 is None or not (
            force or needs_reading(paper, state, stored.get(paper.paper_id))
        ):
            continue
        try:
            entities, _ = normalise_entities(paper.paper_id, paper.entities)
        except Exception:  # that paper is quarantined when it is assembled
            continue
        targets.extend(targets_from(entities))
    return MentionMatcher(targets)


def _read_fulltext(
    sha256: str | None, bodies: Mapping[str, bytes]
) -> tuple[FullText | None, str | None]:
    """The parsed body in use, or why it cannot be read (None, None: there is none)."""
    if sha256 is None:
        return None, None
    try:
        body = bodies[sha256]
    except KeyError:  # not named for reading, or RawBodyMissing: gone from the raw store
        return None, f"RawBodyMissing: '{sha256}'"
    except RawBodyCorrupt as exc:
        return None, f"RawBodyCorrupt: {exc}"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"UnicodeDecodeError: {exc}"
    try:
        return parse_fulltext(text), None
    except Exception as exc:  # the parser never raises by design; if it does, the paper loads
        logger.debug("parsing full text %s failed", sha256, exc_info=True)
        return None, f"cannot parse: {type(exc).__name__}: {exc}"
