"""Per-host limits: spacing within one process, and global slots across runs and workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress

FETCH_LIMIT_PREFIX = "tomeflow-fetch-"


class PerHostRateLimiter:
    """Spaces requests to one host at least 1/rate seconds apart; safe to share between threads."""

    # a minimum-interval limiter is all politeness needs; pyrate-limiter is not a dependency.
    # each caller reserves the next free slot under the lock, then sleeps outside it.
    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str) -> float:
        """Block until host may be sent another request; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(host, now))
            self._next[host] = slot + self._interval
        delay = slot - now
        if delay > 0:
            self._sleep(delay)
        return delay


@contextmanager
def host_slots(hosts: Sequence[str], slots: int) -> Iterator[None]:
    """Hold one slot of each host's Prefect global concurrency limit while fetching from it.

    The limit (`tomeflow-fetch-<host>`, created with `slots` slots when missing; an operator
    may change it in the UI) bounds how many batches of all runs and workers fetch from one
    host at once, so the per-host rate of one process is the rate the host sees.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    names = [f"{FETCH_LIMIT_PREFIX}{h}" for h in hosts]
    if not names:
        yield
        return
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                with suppress(ObjectAlreadyExists):  # another run made it first
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=slots)
                    )
    # a crashed run holds its slot until the lease lapses: a minute, not the default five
    with concurrency(names, occupy=1, lease_duration=60, strict=True):
        yield
