"""How politely and how defensively to fetch, and the retry policy as small named predicates.

An attempt ends in a `Step`: finish (with an outcome), retry (after a wait), redirect or
refetch. What is retried, how long to wait and when to give up are separate functions, so a
change to one of them is a change to one function (dlt's retry helpers work the same way).

Two wall-clock deadlines bound what a slow or stalled server can hold: one attempt, from
connecting to the last byte of the body, lasts at most max_transfer_seconds; all attempts of
one paper, retries and the waits between them included, end within max_paper_seconds of the
first attempt's start (an attempt still running then is cut, and no retry starts after it).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from flows import __version__
from flows.fetch.guard import is_ip, normal_host
from flows.records import Outcome

if TYPE_CHECKING:
    from flows.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_USER_AGENT = f"tomeflow/{__version__} (+https://github.com/tomeflow/tomeflow)"
MARKDOWN_TYPES = frozenset({"text/markdown", "text/plain", "text/x-markdown"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
NOT_FOUND_STATUSES = frozenset({404, 410})
_RETRY_AFTER = Retry()  # used only for its Retry-After parser


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """How politely and how defensively to fetch; hosts are names or IPs, without a port."""

    allowed_hosts: frozenset[str]
    user_agent: str = DEFAULT_USER_AGENT
    private_hosts_allowed: frozenset[str] = frozenset()
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_transfer_seconds: float = 300.0  # one attempt, connect to last byte: against trickling
    max_paper_seconds: float = 600.0  # every attempt of one paper, and the waits between them
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
            hosts = frozenset(normal_host(h) for h in getattr(self, name))
            for host in hosts:
                if ":" in host and not is_ip(host):
                    raise ValueError(f"{name} takes hostnames or IPs without a port: {host!r}")
            object.__setattr__(self, name, hosts)
        types = frozenset(t.strip().lower() for t in self.accepted_content_types)
        object.__setattr__(self, "accepted_content_types", types)
        if self.per_host_rate <= 0 or self.per_host_concurrency < 1 or self.max_retries < 0:
            raise ValueError("per_host_rate > 0, per_host_concurrency >= 1, max_retries >= 0")
        if self.max_transfer_seconds <= 0 or self.max_paper_seconds <= 0:
            raise ValueError("max_transfer_seconds and max_paper_seconds must be > 0")

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
class Step:
    """What one attempt tells the retry loop to do next."""

    action: Literal["finish", "retry", "redirect", "refetch"]
    outcome: Outcome = "failed"
    sha256: str | None = None
    location: str = ""
    retry_after: float | None = None
    error_class: str | None = None
    error_message: str | None = None


def finish(outcome: Outcome, error_class: str, message: str) -> Step:
    """End the fetch with this outcome."""
    return Step("finish", outcome, error_class=error_class, error_message=message)


def retry(error_class: str, message: str, retry_after: float | None = None) -> Step:
    """Try again, after retry_after seconds when the server said so."""
    return Step("retry", retry_after=retry_after, error_class=error_class, error_message=message)


def is_retried_status(code: int) -> bool:
    """Rate limiting and server errors are worth another try; other statuses are final."""
    return code == 429 or code >= 500


def step_for_status(code: int, reason: str, retry_after: float | None) -> Step:
    """What a response that is neither a 200, a usable 304 nor a redirect means."""
    message = f"HTTP {code} {reason}"
    if code in NOT_FOUND_STATUSES:
        return finish("not_found", "NotFound", message)
    if is_retried_status(code):
        return retry("RateLimited" if code == 429 else "ServerError", message, retry_after)
    kind = "ClientError" if 400 <= code < 500 else "UnexpectedStatus"
    return finish("failed", kind, message)


def gives_up(policy: FetchPolicy, retries_done: int) -> bool:
    """Whether the retries are spent."""
    return retries_done >= policy.max_retries


def out_of_time(seconds_left: float, wait: float) -> bool:
    """Whether an attempt after `wait` seconds would start at or past the paper's deadline."""
    return wait >= seconds_left


def backoff(policy: FetchPolicy, retry_number: int) -> float:
    """Seconds before retry number `retry_number` (1-based): exponential, capped, jittered."""
    ceiling = min(policy.backoff_max, policy.backoff_factor * 2 ** (retry_number - 1))
    # equal jitter: half fixed, half random, so clients that failed together drift apart
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def wait_before_retry(policy: FetchPolicy, step: Step, retry_number: int) -> float:
    """The server's Retry-After when it gave one, else the backoff."""
    return step.retry_after if step.retry_after is not None else backoff(policy, retry_number)


def parse_retry_after(policy: FetchPolicy, value: str | None, url: str) -> float | None:
    """Seconds a Retry-After header asks for (seconds or HTTP-date), capped; None if unreadable."""
    if value is None:
        return None
    try:
        seconds = _RETRY_AFTER.parse_retry_after(value)
    except InvalidHeader:
        logger.info("ignoring unreadable Retry-After %r from %s", value, url)
        return None
    return min(seconds, policy.retry_after_cap)
