"""The Fetcher: one requests session, a small explicit retry loop, bodies into the raw store.

Retries are a loop of ours, not urllib3's ``Retry`` mounted on the adapter. That one retries
inside the connection pool, where attempts are invisible (no per-attempt status, timing, bytes
or error for raw.fetches), and it cannot see failures that show up only while the body
streams (a truncated body). urllib3 still parses Retry-After (see policy.py), so only the
backoff formula is ours.

The session's connections (transport.py) go only to addresses the guard checked, and are cut
at each attempt's wall-clock deadline however slowly the server sends.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Self
from urllib.parse import urljoin

import requests
from urllib3.exceptions import (
    NameResolutionError,
    ReadTimeoutError,
)

from flows.fetch import guard
from flows.fetch.limits import PerHostRateLimiter
from flows.fetch.policy import (
    REDIRECTS,
    FetchPolicy,
    Step,
    finish,
    gives_up,
    is_retried_status,
    out_of_time,
    parse_retry_after,
    retry,
    step_for_status,
    wait_before_retry,
)
from flows.fetch.rawstore import RawStore
from flows.fetch.transport import Scope, Watch, is_guarded, new_session, scoped
from flows.records import FetchAttempt, FetchRequest, FetchResult

logger = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
MAX_WORKERS = 32


@dataclass(slots=True)
class _PaperClock:
    """One paper's deadline, counted from the start of its first attempt."""

    seconds: float
    ends: float | None = None

    def seconds_left(self, now: float) -> float:
        """Seconds left at `now`; the first call starts the clock."""
        # from the first attempt, not from fetch(): time queued behind the host's other
        # papers for a slot is not this paper's to lose
        if self.ends is None:
            self.ends = now + self.seconds
        return self.ends - now


@dataclass(slots=True)
class _Transfer:
    """What an attempt has learnt so far, kept even when it ends in an error."""

    status_code: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    bytes: int = 0
    sha256: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    t0: float = field(default_factory=time.perf_counter)
    deadline: float = math.inf  # on the fetcher's clock
    watch: Watch = field(default_factory=Watch)


class Fetcher:
    """Fetches pages into a RawStore; share one per run between threads, then close it."""

    def __init__(
        self,
        policy: FetchPolicy,
        raw_store: RawStore,
        session: requests.Session | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        resolve: guard.Resolver | None = None,
        limiter: PerHostRateLimiter | None = None,
    ) -> None:
        # the keyword-only seams are for tests: sleep waits between retries, clock measures
        # the attempt and paper deadlines, resolve answers dns for every new connection,
        # limiter spaces requests
        self.policy = policy
        self._store = raw_store
        self._sleep = sleep
        self._clock = clock
        self._guard = guard.AddressGuard(
            resolve or guard.resolve_addresses, policy.private_hosts_allowed
        )
        self._limiter = limiter or PerHostRateLimiter(policy.per_host_rate)
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()
        self._accept = ", ".join(sorted(policy.accepted_content_types))
        if session is not None and not is_guarded(session):
            raise ValueError("a Fetcher needs a session from new_session(), which guards addresses")
        self._owns_session = session is None
        self._session = session or new_session(policy.per_host_concurrency)

    def fetch(self, req: FetchRequest) -> FetchResult:
        """Fetch one page; every per-URL problem comes back as an outcome, never raised."""
        attempts: list[FetchAttempt] = []
        try:
            return self._run(req, attempts)
        except Exception as exc:  # a fault in one url must not sink the batch
            logger.exception("fetching %s failed unexpectedly", req.url)
            return _result(req, attempts, finish("failed", type(exc).__name__, str(exc)))

    def fetch_many(
        self,
        reqs: Sequence[FetchRequest],
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[FetchResult]:
        """Fetch pages concurrently within the per-host limits; results in input order."""
        if not reqs:
            return []
        hosts = [guard.host_of(r.url) for r in reqs]
        workers = min(len(reqs), self.policy.per_host_concurrency * len(set(hosts)), MAX_WORKERS)
        # interleave hosts so idle workers are not all queued behind one host's cap
        seen: Counter[str] = Counter()
        rank = []
        for host in hosts:
            rank.append(seen[host])
            seen[host] += 1
        order = sorted(range(len(reqs)), key=lambda i: (rank[i], i))
        results: list[FetchResult | None] = [None] * len(reqs)
        with ThreadPoolExecutor(workers, thread_name_prefix="tomeflow-fetch") as pool:
            futures = {pool.submit(self.fetch, reqs[i]): i for i in order}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if on_progress is not None:
                    on_progress(done, len(reqs))
        return [r for r in results if r is not None]

    def close(self) -> None:
        """Release pooled connections (a session passed in belongs to the caller)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, req: FetchRequest, attempts: list[FetchAttempt]) -> FetchResult:
        refused = guard.refusal(req.url, self.policy.allowed_hosts)
        if refused is not None:
            return _result(req, attempts, finish("failed", *refused))
        url, retries, hops = req.url, 0, 0
        paper = _PaperClock(self.policy.max_paper_seconds)
        # revalidate only when the body a 304 would point at is really in the store
        conditional = bool((req.etag or req.last_modified) and self._stored(req.previous_sha256))
        while True:
            attempt, step = self._attempt(req, url, len(attempts) + 1, conditional, paper)
            attempts.append(attempt)
            if step.action == "finish":
                return _result(req, attempts, step)
            wait = 0.0
            if step.action == "refetch":
                conditional = False
            elif step.action == "redirect":
                target = urljoin(url, step.location)
                hops += 1
                if hops > self.policy.max_redirects:
                    message = f"more than {self.policy.max_redirects} redirects"
                    return _result(req, attempts, finish("failed", "TooManyRedirects", message))
                refused = guard.refusal(target, self.policy.allowed_hosts)
                if refused is not None:
                    message = f"{url} -> {target}: {refused[1]}"
                    return _result(req, attempts, finish("failed", "RedirectNotAllowed", message))
                url = target
            else:
                if gives_up(self.policy, retries):
                    return _result(req, attempts, step)
                retries += 1
                wait = wait_before_retry(self.policy, step, retries)
            # give up now rather than sleep into, or start an attempt at, the paper's deadline
            if out_of_time(paper.seconds_left(self._clock()), wait):
                message = (
                    f"gave up after {len(attempts)} attempts: the next would start past the "
                    f"{self.policy.max_paper_seconds:g}s deadline for one paper "
                    f"(max_paper_seconds); the last ended in {step.error_class or step.action}"
                )
                return _result(req, attempts, finish("failed", "PaperTimeout", message))
            if step.action == "retry":
                logger.info("retrying %s in %.2fs after %s", url, wait, step.error_class)
                self._sleep(wait)

    def _stored(self, sha256: str | None) -> bool:
        try:
            return sha256 is not None and self._store.has(sha256)
        except ValueError:  # a malformed hash from upstream: fetch the page afresh
            return False

    def _slot(self, host: str) -> threading.BoundedSemaphore:
        with self._lock:
            if host not in self._slots:
                self._slots[host] = threading.BoundedSemaphore(self.policy.per_host_concurrency)
            return self._slots[host]

    def _attempt(
        self, req: FetchRequest, url: str, number: int, conditional: bool, paper: _PaperClock
    ) -> tuple[FetchAttempt, Step]:
        host = guard.host_of(url)
        t = _Transfer()
        try:
            with self._slot(host):
                self._limiter.wait(host)
                t.started_at, t.t0 = datetime.now(UTC), time.perf_counter()
                step = self._exchange(req, url, conditional, t, paper)
        except Exception as exc:
            step = self._failure(exc, t, number, url)
        finally:
            t.watch.stop()
        attempt = FetchAttempt(
            paper_id=req.paper_id,
            url=url,
            attempt=number,
            status_code=t.status_code,
            bytes=t.bytes,
            sha256=t.sha256,
            etag=t.etag,
            last_modified=t.last_modified,
            elapsed_ms=round((time.perf_counter() - t.t0) * 1000),
            error_class=step.error_class,
            error_message=step.error_message,
            started_at=t.started_at,
        )
        logger.debug("attempt %d %s -> %s %s", number, url, t.status_code, step.error_class)
        return attempt, step

    def _failure(self, exc: Exception, t: _Transfer, number: int, url: str) -> Step:
        if t.watch.stop() and not isinstance(exc, guard.AddressRefused):
            # the watchdog cut the socket: whatever broke next, the deadline is the cause
            return retry("TransferTimeout", t.watch.reason)
        step = _error_step(exc)
        if step is None:  # recorded as this attempt's error rather than lost
            logger.exception("attempt %d at %s failed unexpectedly", number, url)
            step = finish("failed", type(exc).__name__, str(exc))
        return step

    def _exchange(
        self, req: FetchRequest, url: str, conditional: bool, t: _Transfer, paper: _PaperClock
    ) -> Step:
        now = self._clock()
        left = paper.seconds_left(now)
        limit = self.policy.max_paper_seconds
        if left <= 0:  # the wait for a slot used up the paper's time
            message = f"the paper's {limit:g}s deadline (max_paper_seconds) passed before the start"
            return retry("TransferTimeout", message)
        seconds = min(self.policy.max_transfer_seconds, left)
        if seconds < self.policy.max_transfer_seconds:
            reason = f"cut at the paper's {limit:g}s deadline (max_paper_seconds)"
        else:
            reason = f"no complete response within {seconds:g}s (max_transfer_seconds)"
        t.deadline = now + seconds
        t.watch.arm(seconds, reason)
        headers = {"User-Agent": self.policy.user_agent, "Accept": self._accept}
        if conditional and req.etag:
            headers["If-None-Match"] = req.etag
        if conditional and req.last_modified:
            headers["If-Modified-Since"] = req.last_modified
        timeout = (self.policy.connect_timeout, self.policy.read_timeout)
        with (
            scoped(Scope(self._guard, t.watch)),
            self._session.get(
                url, headers=headers, timeout=timeout, stream=True, allow_redirects=False
            ) as resp,
        ):
            return self._respond(req, resp, conditional, t)

    def _respond(
        self, req: FetchRequest, resp: requests.Response, conditional: bool, t: _Transfer
    ) -> Step:
        if t.watch.cut:
            # http.client ends the headers at end of file: cut headers look complete
            return retry("TransferTimeout", t.watch.reason)
        t.status_code = code = resp.status_code
        t.etag, t.last_modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
        if code == 200:
            return self._take_body(resp, t)
        if code == 304 and conditional and req.previous_sha256:
            if self._stored(req.previous_sha256):
                return Step("finish", "not_modified", sha256=req.previous_sha256)
            return Step("refetch")  # the stored body vanished since we asked
        if code in REDIRECTS and resp.headers.get("Location"):
            return Step("redirect", location=resp.headers["Location"])
        wait = None
        if is_retried_status(code):
            wait = parse_retry_after(self.policy, resp.headers.get("Retry-After"), resp.url)
        return step_for_status(code, resp.reason, wait)

    def _take_body(self, resp: requests.Response, t: _Transfer) -> Step:
        media = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media not in self.policy.accepted_content_types:
            return finish("bad_content", "UnacceptableContentType", f"Content-Type {media!r}")
        limit = self.policy.max_body_bytes
        declared = _content_length(resp)
        if declared is not None and declared > limit:
            return finish("too_large", "BodyTooLarge", f"Content-Length {declared} > {limit}")
        body = bytearray()
        for chunk in resp.iter_content(CHUNK_BYTES):
            body += chunk
            t.bytes = len(body)
            if len(body) > limit:
                return finish("too_large", "BodyTooLarge", f"body passed {limit} bytes")
            # the watchdog cuts a stalled read; this catches a slow body between chunks
            if self._clock() > t.deadline:
                return retry("TransferTimeout", t.watch.reason)
        if t.watch.stop():
            # past the deadline the socket was shut down, and a body without a length that
            # ends there looks whole: it is not taken
            return retry("TransferTimeout", t.watch.reason)
        # urllib3 already enforces Content-Length; this catches a short body it let through.
        # with a content-encoding the header counts compressed bytes, so it cannot be compared
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if declared is not None and len(body) < declared and not encoded:
            return retry("TruncatedBody", f"got {len(body)} of {declared} bytes")
        data = bytes(body)
        if looks_like_html(data):
            return finish("bad_content", "HtmlBody", f"an HTML page labelled {media}")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return finish("bad_content", "NotUtf8", str(exc))
        t.sha256 = self._store.put(data)
        return Step("finish", "fetched", sha256=t.sha256)


def looks_like_html(body: bytes) -> bool:
    """Whether a body is an HTML page (a login wall or error page), whatever its label."""
    head = body[:512].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _result(req: FetchRequest, attempts: list[FetchAttempt], step: Step) -> FetchResult:
    last = attempts[-1] if attempts else None
    etag = last.etag if last else None
    last_modified = last.last_modified if last else None
    if step.outcome == "not_modified":
        etag, last_modified = etag or req.etag, last_modified or req.last_modified
    return FetchResult(
        paper_id=req.paper_id,
        url=req.url,
        outcome=step.outcome,
        sha256=step.sha256,
        etag=etag,
        last_modified=last_modified,
        attempts=tuple(attempts),
        error_class=step.error_class,
        error_message=step.error_message,
    )


def _content_length(resp: requests.Response) -> int | None:
    try:
        return int(resp.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


def _error_step(exc: Exception) -> Step | None:
    """What an exception out of an exchange means; None when it is no known fault."""
    if isinstance(exc, guard.AddressRefused):
        return finish("failed", "PrivateAddress", str(exc))
    if isinstance(exc, requests.exceptions.SSLError):
        return finish("failed", "SSLError", str(exc))
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return retry(_error_class(exc), str(exc))
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return retry("TruncatedBody", str(exc))  # the body broke off mid-stream
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return finish("bad_content", "ContentDecodingError", str(exc))
    if isinstance(exc, requests.RequestException):
        return finish("failed", type(exc).__name__, str(exc))
    return None


def _error_class(exc: requests.RequestException) -> str:
    # requests reports a read timeout during streaming as a plain ConnectionError, and a
    # failed lookup as a ConnectionError around urllib3's MaxRetryError
    cause = exc.args[0] if exc.args else None
    cause = getattr(cause, "reason", cause)
    if isinstance(cause, ReadTimeoutError):
        return "ReadTimeout"
    if isinstance(cause, NameResolutionError):
        return "NameResolutionError"
    return type(exc).__name__
