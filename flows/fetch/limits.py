"""Per-host limits: spacing within one process, and slots across runs, workers and machines."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

FETCH_LIMIT_PREFIX = "tomeflow-fetch:"


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

    def taken_over(self, host: str) -> None:
        """The host's fetch slot was just taken, perhaps from another process: its last
        request may have been a moment ago, so the next one here waits a full interval."""
        with self._lock:
            now = self._clock()
            self._next[host] = max(self._next.get(host, now), now + self._interval)


@contextmanager
def host_slots(
    database_url: str, hosts: Sequence[str], slots: int, poll_seconds: float = 0.2
) -> Iterator[None]:
    """Hold one of `slots` fetch slots per host, across every run, worker and machine.

    A slot is a PostgreSQL advisory lock (`tomeflow-fetch:<host>:<n>`) on a connection held
    while the batch fetches: at most `slots` batches fetch from one host at once, so the
    per-host rate of one process is the rate the host sees. A process that dies loses its
    connection and with it its slots, at once: the next run does not wait out a lease.
    """
    import psycopg

    if not hosts:
        yield
        return
    with psycopg.connect(database_url, autocommit=True, application_name="tomeflow-fetch") as conn:
        for host in sorted(set(hosts)):  # one order for all: no two batches wait in a cycle
            _take_slot(conn, host, slots, poll_seconds)
        yield
    # closing the connection released the locks


def slot_key(host: str, slot: int) -> int:
    """The advisory-lock key of one fetch slot of a host (a signed 64-bit integer)."""
    digest = hashlib.blake2b(f"{FETCH_LIMIT_PREFIX}{host}:{slot}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _take_slot(conn: Any, host: str, slots: int, poll_seconds: float) -> None:
    waited = False
    while True:
        for slot in range(slots):
            (taken,) = conn.execute(
                "select pg_try_advisory_lock(%s)", (slot_key(host, slot),)
            ).fetchone()
            if taken:
                return
        if not waited:
            logger.info("waiting for a fetch slot for %s: another batch is fetching from it", host)
            waited = True
        time.sleep(poll_seconds)
