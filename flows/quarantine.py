"""The record every stage emits for input it rejects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Stage = Literal["parse", "fetch", "fulltext", "normalise", "validate", "load"]


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """One rejected document, or one rejected part of a document."""

    document: str
    stage: Stage
    reason: str
    rejected_whole: bool  # true: nothing of the document loads; false: only this part
    paper_id: str | None = None
    line: int | None = None
    payload: Any = None
