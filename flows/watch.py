"""Who is watching a run from this process: listeners told how far each stage has got.

The flow tells `started(documents)` once and `advance(stage, papers)` after each stage of
each batch; the CLI listens with progress bars on a terminal (StageBars). With no listener
it costs a list lookup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

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


class StageBars:
    """A progress bar per stage, on a terminal (rich, which Prefect brings)."""

    def __init__(self, console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console,
        )  # fmt: skip
        self.tasks: dict[str, Any] = {}

    def started(self, documents: int) -> None:
        """One bar per stage, each counting the run's documents."""
        self.progress.start()
        self.tasks = {s: self.progress.add_task(s, total=documents) for s in STAGES}

    def advance(self, stage: str, papers: int) -> None:
        """A batch is through a stage."""
        if stage in self.tasks:
            self.progress.advance(self.tasks[stage], papers)

    def finished(self) -> None:
        """The run's batches are done."""
        self.progress.stop()
