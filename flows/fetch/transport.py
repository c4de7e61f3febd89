"""The connections a Fetcher makes: only to checked addresses, and cut at the attempt's deadline.

The session's connections are urllib3's with two additions where they are made (see
new_session). The address guard (guard.py): a new connection resolves its host once with the
fetcher's resolver, checks every address and connects to one it checked, while the Host
header, the TLS server name and the certificate check stay the hostname. The attempt's
deadline: a watchdog (one thread for every attempt) shuts the attempt's socket down when
max_transfer_seconds (or what is left of the paper's max_paper_seconds) has passed, because a
socket read timeout starts again with every byte and a server sending one a second never
trips it. Both reach the connection through a context variable the attempt sets on its own
thread (`scoped`).
"""

from __future__ import annotations

import heapq
import itertools
import math
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any, NoReturn

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.timeout import Timeout

from flows.fetch import guard


class Watch:
    """One attempt's wall-clock deadline: when it passes, the attempt's sockets are shut down."""

    def __init__(self) -> None:
        self.reason = ""
        self._lock = threading.Lock()
        self._handles: list[socket.socket] = []
        self._ends = math.inf
        self._cut = False
        self._over = False
        self._late = False

    def arm(self, seconds: float, reason: str) -> None:
        """Start the clock: `seconds` from now every socket watched is shut down."""
        self.reason = reason
        self._ends = time.monotonic() + seconds
        _DEADLINES.add(self._ends, self)

    def seconds_left(self) -> float:
        """Seconds until the deadline (infinite before the watch is armed)."""
        return self._ends - time.monotonic()

    @property
    def cut(self) -> bool:
        """Whether the deadline passed and the sockets were shut down."""
        return self._cut

    def watch(self, sock: socket.socket) -> None:
        """Shut sock down at the deadline, or now if it has passed."""
        try:
            # a duplicate descriptor of the same connection: it outlives urllib3 closing its
            # own and ssl detaching it, and shutting it down ends the connection for both
            handle = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except OSError:
            return  # closed already: nothing left to cut
        with self._lock:
            if not self._over:
                self._handles.append(handle)
                if self._cut:
                    _shut(handle)
                return
        handle.close()

    def stop(self) -> bool:
        """End the watch and release its sockets; whether the deadline had passed by then."""
        with self._lock:
            if not self._over:  # the first call decides, later ones repeat the verdict
                self._over = True
                self._late = self._cut or time.monotonic() >= self._ends
                for handle in self._handles:
                    handle.close()
                self._handles.clear()
            return self._late

    def _expire(self) -> None:
        with self._lock:
            if self._over:
                return
            self._cut = True
            for handle in self._handles:
                _shut(handle)


class _Deadlines:
    """One daemon thread that expires each armed Watch when its deadline passes.

    A threading.Timer per attempt would start (and tear down) a thread for every request; a
    10,000-paper run makes 10,000 of them. A watch that stopped before its deadline is left
    in the heap and skipped when it comes up (or swept when the heap grows).
    """

    SWEEP_AT = 4096  # entries: past this, stopped watches are swept out when one is added

    def __init__(self) -> None:
        self._wake = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, when: float, watch: Watch) -> None:
        """Expire watch at `when` (time.monotonic()) unless it has stopped by then."""
        with self._wake:
            if len(self._heap) >= self.SWEEP_AT:
                self._heap = [entry for entry in self._heap if not entry[2]._over]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (when, next(self._order), watch))
            if self._thread is None or not self._thread.is_alive():  # first use, or forked
                self._thread = threading.Thread(
                    target=self._run, name="tomeflow-fetch-deadlines", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                due = self._next_due()
            due._expire()

    def _next_due(self) -> Watch:
        # called holding self._wake: waits until the earliest live watch is due, pops it
        while True:
            while self._heap and self._heap[0][2]._over:
                heapq.heappop(self._heap)
            wait = self._heap[0][0] - time.monotonic() if self._heap else None
            if wait is not None and wait <= 0:
                return heapq.heappop(self._heap)[2]
            self._wake.wait(wait)


_DEADLINES = _Deadlines()


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):  # the peer may have closed it already
        sock.shutdown(socket.SHUT_RDWR)


def new_session(pool_size: int) -> requests.Session:
    """A session that trusts nothing from the environment, keeps no cookies and guards addresses."""
    session = requests.Session()
    # proxies and .netrc from the environment would bypass the address check; no cookie
    # jar keeps every fetch independent of the ones before it
    session.trust_env = False
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = GuardedAdapter(pool_connections=16, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def is_guarded(session: requests.Session) -> bool:
    """Whether the session's http and https connections go through the address guard."""
    return all(
        isinstance(session.get_adapter(f"{scheme}://"), GuardedAdapter)
        for scheme in ("http", "https")
    )


class GuardedAdapter(HTTPAdapter):
    """An adapter whose connections go only to checked addresses, within the attempt's deadline."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """urllib3's pool manager, making its pools (and so its connections) ours."""
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> NoReturn:
        """Refuse proxies: the connection would go to the proxy, which connects anywhere."""
        raise requests.exceptions.InvalidProxyURL(f"no proxy for fetches: {proxy}")


@dataclass(frozen=True, slots=True)
class Scope:
    """What the connections of the request in flight on this thread answer to."""

    addresses: guard.AddressGuard
    watch: Watch | None = None


_SCOPE: ContextVar[Scope | None] = ContextVar("tomeflow_fetch_scope", default=None)

# a guarded session used outside a Fetcher connects to public addresses only, with no deadline
_OUTSIDE = Scope(guard.AddressGuard())


def _current_scope() -> Scope:
    return _SCOPE.get() or _OUTSIDE


@contextmanager
def scoped(scope: Scope) -> Iterator[None]:
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)


class _GuardedHTTPConnection(HTTPConnection):
    """urllib3's connection, made only to a checked address and cut at the attempt's deadline."""

    _peer = ""  # the checked address the socket is connected to
    _scope: Scope | None = None  # the attempt this connection was last checked for

    def _new_conn(self) -> socket.socket:
        scope = _current_scope()
        sock, self._peer = _connect(self, scope)
        self._scope = scope
        return sock

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        """Send a request; a pooled connection is first checked and watched for this attempt."""
        scope = _current_scope()
        if self.sock is not None and self._scope is not scope:
            # checked when it was made, perhaps under another fetcher's allowlist: its address
            # is checked again (no new lookup), and this attempt's deadline covers it
            scope.addresses.check_peer(self.host, self._peer)
            if scope.watch is not None:
                scope.watch.watch(self.sock)
            self._scope = scope
        super().request(method, url, *args, **kwargs)


class _GuardedHTTPSConnection(_GuardedHTTPConnection, HTTPSConnection):
    """The https one: urllib3 wraps the checked socket in TLS for the hostname, SNI and all."""


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def _connect(conn: HTTPConnection, scope: Scope) -> tuple[socket.socket, str]:
    """A socket to a checked address of the connection's host, and that address."""
    try:
        addresses = scope.addresses.connectable(conn.host)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    configured = Timeout.resolve_default_timeout(conn.timeout)
    error: OSError | None = None
    for address in addresses:
        left = scope.watch.seconds_left() if scope.watch is not None else math.inf
        if left <= 0:
            break
        # the socket is not watched before it exists, so the deadline caps the connect
        timeout = configured if math.isinf(left) else min(configured or left, left)
        try:
            sock = socket.create_connection((address, conn.port), timeout, conn.source_address)
        except OSError as exc:
            error = exc
            continue
        for option in conn.socket_options or ():
            sock.setsockopt(*option)
        sys.audit("http.client.connect", conn, conn.host, conn.port)
        if scope.watch is not None:
            scope.watch.watch(sock)
        return sock, address
    if error is None or isinstance(error, TimeoutError):
        message = f"Connection to {conn.host} timed out. (connect timeout={configured})"
        raise ConnectTimeoutError(conn, message) from error
    raise NewConnectionError(conn, f"Failed to establish a new connection: {error}") from error
