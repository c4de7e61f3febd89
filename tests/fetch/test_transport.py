"""The attempts' deadlines (flows/fetch/transport.py): one watchdog thread for all of them."""

from __future__ import annotations

import socket
import threading
import time

from flows.fetch.transport import Watch


def _deadline_threads() -> int:
    return sum(t.name == "tomeflow-fetch-deadlines" for t in threading.enumerate())


def test_many_attempts_share_one_watchdog_and_a_stopped_one_is_never_cut() -> None:
    watches = [Watch() for _ in range(2000)]
    for w in watches:
        w.arm(0.05, "transfer took too long")
        assert w.stop() is False
    assert _deadline_threads() == 1
    time.sleep(0.2)  # their deadlines pass: none of them is cut after it stopped
    assert not any(w.cut for w in watches)


def test_an_attempt_still_running_at_its_deadline_has_its_socket_shut() -> None:
    left, right = socket.socketpair()
    with left, right:
        later, sooner = Watch(), Watch()
        later.arm(30, "later")
        sooner.arm(0.1, "sooner")  # armed after, due before: the watchdog wakes for it
        sooner.watch(left)
        started = time.monotonic()
        left.settimeout(5)
        assert left.recv(1) == b""  # shut down under the reader, not timed out
        assert time.monotonic() - started < 2
        assert sooner.cut and not later.cut
        assert sooner.stop() is True and later.stop() is False
