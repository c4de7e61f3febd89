"""The run's fetch progress: one Prefect progress artifact, moved along as batches fetch."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable

from prefect.artifacts import create_progress_artifact, update_progress_artifact


class FetchProgress:
    """One progress artifact per run, moved along as batches fetch (several at once, maybe)."""

    def __init__(self, total_papers: int, show: bool = True) -> None:
        self._total = max(total_papers, 1)
        self._visible = show  # False: counts only (a Dask worker's part; the flow shows it)
        self._artifact_id: uuid.UUID | None = None
        self._shown = -1.0
        self._last = -math.inf  # the first update always shows
        self._done: dict[int, float] = {}  # batch number -> papers of it done
        self._lock = threading.Lock()

    def batch(self, number: int, batch_papers: int) -> Callable[[int, int], None]:
        """A callback for Fetcher.fetch_many covering batch `number` of the run."""

        def on_progress(done: int, total: int) -> None:
            self._update(number, batch_papers * done / total)

        return on_progress

    def batch_done(self, number: int, batch_papers: int) -> None:
        """Every paper of a batch is done (it needed no fetching)."""
        self._update(number, float(batch_papers))

    def _update(self, number: int, papers: float) -> None:
        with self._lock:
            self._done[number] = papers
            self._show(sum(self._done.values()))

    def papers_done(self, papers: float) -> None:
        """Show this many papers of the run as done; updates at most twice a second."""
        with self._lock:
            self._show(papers)

    def _show(self, papers: float) -> None:
        if not self._visible:
            return
        percent = 100.0 * papers / self._total
        now = time.monotonic()
        if percent < 100 and (percent - self._shown < 1 or now - self._last < 0.5):
            return
        self._shown, self._last = percent, now
        if self._artifact_id is None:
            created = create_progress_artifact(
                percent, key="ingest-fetch-progress", description="full texts fetched"
            )
            self._artifact_id = created if isinstance(created, uuid.UUID) else None
        else:
            update_progress_artifact(self._artifact_id, percent)
