"""Source URL -> raw bytes: a polite, bounded HTTP fetcher that records every attempt.

Retries are a small explicit loop, not urllib3's ``Retry`` mounted on the adapter. That one
retries inside the connection pool, where attempts are invisible (no per-attempt status,
timing, bytes or error for raw.fetches), and it cannot see failures that show up only while
the body streams (a truncated body). urllib3 still parses Retry-After (delta-seconds and
HTTP-date), so only the backoff formula is ours.

Which hosts may be fetched (checked for the first URL and for every redirect hop):
  1. the scheme is http or https ("SchemeNotAllowed");
  2. the hostname, whatever the port, is in ``policy.allowed_hosts`` ("HostNotAllowed", or
     "RedirectNotAllowed" for a hop);
  3. before every attempt the host is resolved (an IP literal is its own address); if any
     address is private, loopback, link-local, multicast, reserved or unspecified the fetch
     is refused ("PrivateAddress") unless the host is in ``policy.private_hosts_allowed``,
     which holds the hosts an operator named in TOMEFLOW_ALLOWED_HOSTS.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookiejar import DefaultCookiePolicy
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, ReadTimeoutError
from urllib3.util.retry import Retry

from flows import __version__
from flows.rawstore import RawStore

if TYPE_CHECKING:
    from flows.settings import Settings

logger = logging.getLogger(__name__)

Outcome = Literal["fetched", "not_modified", "not_found", "too_large", "bad_content", "failed"]
DEFAULT_USER_AGENT = f"tomeflow/{__version__} (+https://github.com/tomeflow/tomeflow)"
MARKDOWN_TYPES = frozenset({"text/markdown", "text/plain", "text/x-markdown"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
MAX_WORKERS = 32
_RETRY_AFTER = Retry()  # used only for its Retry-After parser


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """How politely and how defensively to fetch; hosts are names or IPs, without a port."""

    allowed_hosts: frozenset[str]
    user_agent: str = DEFAULT_USER_AGENT
    private_hosts_allowed: frozenset[str] = frozenset()
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_transfer_seconds: float = 300.0  # one attempt's body, against servers that trickle
    max_retries: int = 4
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    retry_after_cap: float = 60.0
    per_host_rate: float = 2.0
    per_host_concurrency: int = 4
    max_body_bytes: int = 20 * 1024 * 1024
    accepted_content_types: frozenset[str] = MARKDOWN_TYPES
    max_redirects: int = 5

    def __post_init__(self) -> None:
        for name in ("allowed_hosts", "private_hosts_allowed"):
            hosts = frozenset(_normal_host(h) for h in getattr(self, name))
            for host in hosts:
                if ":" in host and not _is_ip(host):
                    raise ValueError(f"{name} takes hostnames or IPs without a port: {host!r}")
            object.__setattr__(self, name, hosts)
        types = frozenset(t.strip().lower() for t in self.accepted_content_types)
        object.__setattr__(self, "accepted_content_types", types)
        if self.per_host_rate <= 0 or self.per_host_concurrency < 1 or self.max_retries < 0:
            raise ValueError("per_host_rate > 0, per_host_concurrency >= 1, max_retries >= 0")

    @classmethod
    def from_settings(cls, settings: Settings, seed_hosts: Iterable[str] = ()) -> FetchPolicy:
        """The policy that tomeflow's settings describe.

        The allowlist is TOMEFLOW_ALLOWED_HOSTS when set, else the hosts of the seeds' URLs.
        Only hosts named in the setting may resolve to private addresses.
        """
        named = frozenset(settings.allowed_hosts)
        return cls(
            allowed_hosts=named or frozenset(h for h in seed_hosts if h),
            private_hosts_allowed=named,
            user_agent=settings.user_agent,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_retries=settings.max_retries,
            backoff_factor=settings.backoff_factor,
            backoff_max=settings.backoff_max,
            retry_after_cap=settings.retry_after_cap,
            per_host_rate=settings.per_host_rate,
            per_host_concurrency=settings.per_host_concurrency,
            max_body_bytes=settings.max_body_bytes,
        )


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One page to fetch, with what we know of the copy fetched before."""

    paper_id: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    previous_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class FetchAttempt:
    """One HTTP attempt (a retry or a redirect hop is an attempt of its own)."""

    paper_id: str
    url: str
    attempt: int
    status_code: int | None
    bytes: int
    sha256: str | None
    etag: str | None
    last_modified: str | None
    elapsed_ms: int
    error_class: str | None
    error_message: str | None
    started_at: datetime


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What fetching one page came to; the body itself is in the RawStore under sha256."""

    paper_id: str
    url: str
    outcome: Outcome
    sha256: str | None
    etag: str | None
    last_modified: str | None
    attempts: tuple[FetchAttempt, ...]
    error_class: str | None = None
    error_message: str | None = None


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


@dataclass(frozen=True, slots=True)
class _Step:
    """What one attempt tells the retry loop to do next."""

    action: Literal["finish", "retry", "redirect", "refetch"]
    outcome: Outcome = "failed"
    sha256: str | None = None
    location: str = ""
    retry_after: float | None = None
    error_class: str | None = None
    error_message: str | None = None


class _Halt(Exception):
    """Ends an attempt early with the given step."""

    def __init__(self, step: _Step) -> None:
        super().__init__(step.error_message)
        self.step = step


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


def _finish(outcome: Outcome, error_class: str, message: str) -> _Step:
    return _Step("finish", outcome, error_class=error_class, error_message=message)


def _retry(error_class: str, message: str, retry_after: float | None = None) -> _Step:
    return _Step("retry", retry_after=retry_after, error_class=error_class, error_message=message)


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
        resolve: Callable[[str], set[str]] | None = None,
        limiter: PerHostRateLimiter | None = None,
    ) -> None:
        # the keyword-only seams are for tests: sleep waits between retries, clock times a
        # body transfer, resolve answers dns for the address check, limiter spaces requests
        self.policy = policy
        self._store = raw_store
        self._sleep = sleep
        self._clock = clock
        self._resolve = resolve or _resolve_addresses
        self._limiter = limiter or PerHostRateLimiter(policy.per_host_rate)
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()
        self._accept = ", ".join(sorted(policy.accepted_content_types))
        self._owns_session = session is None
        self._session = session or _new_session(policy.per_host_concurrency)

    def fetch(self, req: FetchRequest) -> FetchResult:
        """Fetch one page; every per-URL problem comes back as an outcome, never raised."""
        attempts: list[FetchAttempt] = []
        try:
            return self._run(req, attempts)
        except Exception as exc:  # a fault in one url must not sink the batch
            logger.exception("fetching %s failed unexpectedly", req.url)
            return _result(req, attempts, _finish("failed", type(exc).__name__, str(exc)))

    def fetch_many(
        self,
        reqs: Sequence[FetchRequest],
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[FetchResult]:
        """Fetch pages concurrently within the per-host limits; results in input order."""
        if not reqs:
            return []
        hosts = [host_of(r.url) for r in reqs]
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
        refusal = self._refusal(req.url)
        if refusal is not None:
            return _result(req, attempts, _finish("failed", *refusal))
        url, retries, hops = req.url, 0, 0
        # revalidate only when the body a 304 would point at is really in the store
        conditional = bool((req.etag or req.last_modified) and self._stored(req.previous_sha256))
        while True:
            attempt, step = self._attempt(req, url, len(attempts) + 1, conditional)
            attempts.append(attempt)
            if step.action == "finish":
                return _result(req, attempts, step)
            if step.action == "refetch":
                conditional = False
            elif step.action == "redirect":
                target = urljoin(url, step.location)
                hops += 1
                if hops > self.policy.max_redirects:
                    message = f"more than {self.policy.max_redirects} redirects"
                    return _result(req, attempts, _finish("failed", "TooManyRedirects", message))
                refusal = self._refusal(target)
                if refusal is not None:
                    message = f"{url} -> {target}: {refusal[1]}"
                    return _result(req, attempts, _finish("failed", "RedirectNotAllowed", message))
                url = target
            else:
                if retries >= self.policy.max_retries:
                    return _result(req, attempts, step)
                retries += 1
                delay = step.retry_after if step.retry_after is not None else self._backoff(retries)
                logger.info("retrying %s in %.2fs after %s", url, delay, step.error_class)
                self._sleep(delay)

    def _backoff(self, retry: int) -> float:
        ceiling = min(self.policy.backoff_max, self.policy.backoff_factor * 2 ** (retry - 1))
        # equal jitter: half fixed, half random, so clients that failed together drift apart
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _refusal(self, url: str) -> tuple[str, str] | None:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            return "InvalidURL", f"{url}: {exc}"
        if parts.scheme not in ("http", "https"):
            return "SchemeNotAllowed", f"{url}: only http and https are fetched"
        if not parts.hostname:
            return "InvalidURL", f"{url}: no host"
        if _normal_host(parts.hostname) not in self.policy.allowed_hosts:
            return "HostNotAllowed", f"{parts.hostname} is not in allowed_hosts"
        return None

    def _check_address(self, host: str) -> None:
        if host in self.policy.private_hosts_allowed:
            return
        try:
            addresses = {host} if _is_ip(host) else self._resolve(host)
        except OSError as exc:
            raise _Halt(_retry("NameResolutionError", f"{host}: {exc}")) from exc
        private = sorted(a for a in addresses if _is_private(a))
        if private:
            message = f"{host} resolves to non-public {', '.join(private)}"
            raise _Halt(_finish("failed", "PrivateAddress", message))

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
        self, req: FetchRequest, url: str, number: int, conditional: bool
    ) -> tuple[FetchAttempt, _Step]:
        host = host_of(url)
        t = _Transfer()
        try:
            self._check_address(host)
            with self._slot(host):
                self._limiter.wait(host)
                t.started_at, t.t0 = datetime.now(UTC), time.perf_counter()
                step = self._exchange(req, url, conditional, t)
        except _Halt as halt:
            step = halt.step
        except requests.exceptions.SSLError as exc:
            step = _finish("failed", "SSLError", str(exc))
        except (requests.ConnectionError, requests.Timeout) as exc:
            step = _retry(_error_class(exc), str(exc))
        except requests.exceptions.ChunkedEncodingError as exc:
            step = _retry("TruncatedBody", str(exc))  # the body broke off mid-stream
        except requests.exceptions.ContentDecodingError as exc:
            step = _finish("bad_content", "ContentDecodingError", str(exc))
        except requests.RequestException as exc:
            step = _finish("failed", type(exc).__name__, str(exc))
        except Exception as exc:  # recorded as this attempt's error rather than lost
            logger.exception("attempt %d at %s failed unexpectedly", number, url)
            step = _finish("failed", type(exc).__name__, str(exc))
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

    def _exchange(self, req: FetchRequest, url: str, conditional: bool, t: _Transfer) -> _Step:
        headers = {"User-Agent": self.policy.user_agent, "Accept": self._accept}
        if conditional and req.etag:
            headers["If-None-Match"] = req.etag
        if conditional and req.last_modified:
            headers["If-Modified-Since"] = req.last_modified
        timeout = (self.policy.connect_timeout, self.policy.read_timeout)
        with self._session.get(
            url, headers=headers, timeout=timeout, stream=True, allow_redirects=False
        ) as resp:
            t.status_code = code = resp.status_code
            t.etag, t.last_modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
            if code == 200:
                return self._take_body(resp, t)
            if code == 304 and conditional and req.previous_sha256:
                if self._stored(req.previous_sha256):
                    return _Step("finish", "not_modified", sha256=req.previous_sha256)
                return _Step("refetch")  # the stored body vanished since we asked
            if code in REDIRECTS and resp.headers.get("Location"):
                return _Step("redirect", location=resp.headers["Location"])
            message = f"HTTP {code} {resp.reason}"
            if code in (404, 410):
                return _finish("not_found", "NotFound", message)
            if code == 429 or code >= 500:
                kind = "RateLimited" if code == 429 else "ServerError"
                return _retry(kind, message, self._retry_after(resp))
            kind = "ClientError" if 400 <= code < 500 else "UnexpectedStatus"
            return _finish("failed", kind, message)

    def _take_body(self, resp: requests.Response, t: _Transfer) -> _Step:
        media = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media not in self.policy.accepted_content_types:
            return _finish("bad_content", "UnacceptableContentType", f"Content-Type {media!r}")
        limit = self.policy.max_body_bytes
        declared = _content_length(resp)
        if declared is not None and declared > limit:
            return _finish("too_large", "BodyTooLarge", f"Content-Length {declared} > {limit}")
        body = bytearray()
        deadline = self._clock() + self.policy.max_transfer_seconds
        for chunk in resp.iter_content(CHUNK_BYTES):
            body += chunk
            t.bytes = len(body)
            if len(body) > limit:
                return _finish("too_large", "BodyTooLarge", f"body passed {limit} bytes")
            if self._clock() > deadline:
                message = f"body took longer than {self.policy.max_transfer_seconds}s"
                return _retry("TransferTimeout", message)
        # urllib3 already enforces Content-Length; this catches a short body it let through.
        # with a content-encoding the header counts compressed bytes, so it cannot be compared
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if declared is not None and len(body) < declared and not encoded:
            return _retry("TruncatedBody", f"got {len(body)} of {declared} bytes")
        data = bytes(body)
        if looks_like_html(data):
            return _finish("bad_content", "HtmlBody", f"an HTML page labelled {media}")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _finish("bad_content", "NotUtf8", str(exc))
        t.sha256 = self._store.put(data)
        return _Step("finish", "fetched", sha256=t.sha256)

    def _retry_after(self, resp: requests.Response) -> float | None:
        value = resp.headers.get("Retry-After")
        if value is None:
            return None
        try:
            seconds = _RETRY_AFTER.parse_retry_after(value)
        except InvalidHeader:
            logger.info("ignoring unreadable Retry-After %r from %s", value, resp.url)
            return None
        return min(seconds, self.policy.retry_after_cap)


def looks_like_html(body: bytes) -> bool:
    """Whether a body is an HTML page (a login wall or error page), whatever its label."""
    head = body[:512].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _result(req: FetchRequest, attempts: list[FetchAttempt], step: _Step) -> FetchResult:
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


def _new_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    # proxies and .netrc from the environment would bypass the address check; no cookie
    # jar keeps every fetch independent of the ones before it
    session.trust_env = False
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = HTTPAdapter(pool_connections=16, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _resolve_addresses(host: str) -> set[str]:
    return {str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def host_of(url: str) -> str:
    """The normalised host of a url ("" when it has none or cannot be read)."""
    try:
        return _normal_host(urlsplit(url).hostname or "")
    except ValueError:
        return ""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # python 3.11 does not classify ::ffff:127.0.0.1 as loopback
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _content_length(resp: requests.Response) -> int | None:
    try:
        return int(resp.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


def _error_class(exc: requests.RequestException) -> str:
    # requests reports a read timeout during streaming as a plain ConnectionError
    if exc.args and isinstance(exc.args[0], ReadTimeoutError):
        return "ReadTimeout"
    return type(exc).__name__
