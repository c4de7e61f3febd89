"""Who is watching a run from this process: listeners told how far each stage has got.

The flow tells `started(documents)` once and `advance(stage, papers)` after each stage of
each batch; the CLI listens with progress bars on a terminal. With no listener it costs a
list lookup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

STAGES = ("parse", "fetch", "assemble", "validate", "load")


class Listener(Protocol):
    """What a watcher of runs implements."""

    def started(self, documents: int) -> None: ...  # a run begins with this many documents
    def advance(self, stage: str, papers: int) -> None: ...  # a stage is done for this many
    def finished(self) -> None: ...  # the run ended


_listeners: list[Listener] = []
_lock = threading.Lock()


def listen(listener: Listener) -> Callable[[], None]:
    """Add a listener; returns the function that removes it."""
    with _lock:
        _listeners.append(listener)

    def remove() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return remove


def started(documents: int) -> None:
    """A run begins."""
    for listener in list(_listeners):
        listener.started(documents)


def advance(stage: str, papers: int) -> None:
    """One batch is through one stage."""
    for listener in list(_listeners):
        listener.advance(stage, papers)


def finished() -> None:
    """The run ended."""
    for listener in list(_listeners):
        listener.finished()
