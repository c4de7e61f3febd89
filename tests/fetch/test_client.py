"""The fetcher against a scripted local server: every fault a real crawl meets, one by one."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.fetch.client import Fetcher, looks_like_html, new_session
from flows.fetch.limits import PerHostRateLimiter
from flows.fetch.policy import FetchPolicy
from flows.fetch.rawstore import RawStore
from flows.records import FetchRequest, FetchResult
from flows.settings import Settings
from tests.http_server import (
    Reply,
    ScriptedHTTPServer,
    markdown,
    offline_internet,
    redirect,
    serve,
    status,
    tls_context,
)

BODY = "# Blood, sweat, tears and fibrosis\n\nOvertraining injures the liver.\n"
SHA = hashlib.sha256(BODY.encode()).hexdigest()
HTML = "\n  <!DOCTYPE html>\n<html><body>Please log in</body></html>\n"
LOOPBACK = frozenset({"127.0.0.1"})
PUBLIC = "93.184.216.34"  # a public address; offline_internet lets a local server play it


class FakeTime:
    """A clock that moves only when something sleeps on it; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@pytest.fixture
def server() -> Iterator[ScriptedHTTPServer]:
    with serve() as scripted:
        yield scripted


@pytest.fixture
def store(tmp_path: Path) -> RawStore:
    return RawStore(tmp_path / "raw")


@pytest.fixture
def sleeps() -> list[float]:
    return []


MakeFetcher = Callable[..., Fetcher]


@pytest.fixture
def make_fetcher(store: RawStore, sleeps: list[float]) -> Iterator[MakeFetcher]:
    """Fetchers with tiny timeouts and a sleep that records instead of waiting."""
    made: list[Fetcher] = []

    def make(raw_store: RawStore | None = None, fetcher_kwargs: dict | None = None, **policy):
        settings: dict = {
            "allowed_hosts": LOOPBACK,
            "private_hosts_allowed": LOOPBACK,
            "connect_timeout": 0.5,
            "read_timeout": 0.2,
            "max_retries": 2,
            "backoff_factor": 0.01,
            "backoff_max": 0.04,
            "per_host_rate": 1000.0,
        }
        settings.update(policy)
        kwargs = {"sleep": sleeps.append, **(fetcher_kwargs or {})}
        fetcher = Fetcher(FetchPolicy(**settings), raw_store or store, **kwargs)
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()


def request(url: str, paper_id: str = "PMC1", **kwargs: str | None) -> FetchRequest:
    return FetchRequest(paper_id=paper_id, url=url, **kwargs)


def statuses(result: FetchResult) -> list[int | None]:
    return [a.status_code for a in result.attempts]


def test_fetched_body_is_stored_and_every_attempt_logged(
    server: ScriptedHTTPServer, store: RawStore, make_fetcher: MakeFetcher
) -> None:
    headers = {"ETag": '"v1"', "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"}
    url = server.route("/paper/PMC1/full.md", markdown(BODY, headers=headers))
    fetcher = make_fetcher(user_agent="tomeflow-test/1 (+mailto:team@example.org)")
    result = fetcher.fetch(request(url))
    assert (result.outcome, result.sha256, result.url) == ("fetched", SHA, url)
    assert (result.etag, result.last_modified) == ('"v1"', "Wed, 21 Oct 2015 07:28:00 GMT")
    assert store.get(SHA) == BODY.encode()
    [attempt] = result.attempts
    assert (attempt.attempt, attempt.status_code, attempt.bytes) == (1, 200, len(BODY.encode()))
    assert (attempt.sha256, attempt.error_class, attempt.url) == (SHA, None, url)
    assert attempt.started_at.tzinfo is UTC and attempt.elapsed_ms >= 0
    [logged] = server.requests()
    assert logged.headers["User-Agent"] == "tomeflow-test/1 (+mailto:team@example.org)"
    assert "text/markdown" in logged.headers["Accept"]
    assert logged.headers["If-None-Match"] is None


@pytest.mark.parametrize(
    ("script", "outcome", "error_class", "codes"),
    [
        ([status(500), markdown(BODY)], "fetched", None, [500, 200]),
        ([status(503), status(502), markdown(BODY)], "fetched", None, [503, 502, 200]),
        ([status(500)], "failed", "ServerError", [500, 500, 500]),
        ([status(429)], "failed", "RateLimited", [429, 429, 429]),
        ([status(404), markdown(BODY)], "not_found", "NotFound", [404]),
        ([status(410)], "not_found", "NotFound", [410]),
        ([status(403), markdown(BODY)], "failed", "ClientError", [403]),
        ([status(204)], "failed", "UnexpectedStatus", [204]),
        ([markdown(BODY, content_type="text/plain; charset=UTF-8")], "fetched", None, [200]),
        ([markdown(BODY, content_type="text/x-markdown")], "fetched", None, [200]),
        (
            [markdown(HTML, content_type="text/html; charset=utf-8")],
            "bad_content",
            "UnacceptableContentType",
            [200],
        ),
        ([markdown(BODY, content_type=None)], "bad_content", "UnacceptableContentType", [200]),
        ([markdown(HTML, content_type="text/plain")], "bad_content", "HtmlBody", [200]),
        ([markdown("\ufeff<html>hi</html>")], "bad_content", "HtmlBody", [200]),
        ([Reply(body=b"# caf\xe9\n", content_type="text/plain")], "bad_content", "NotUtf8", [200]),
    ],
)
def test_status_and_content_table(
    server: ScriptedHTTPServer,
    make_fetcher: MakeFetcher,
    script: list[Reply],
    outcome: str,
    error_class: str | None,
    codes: list[int],
) -> None:
    url = server.route("/p.md", *script)
    result = make_fetcher().fetch(request(url))
    assert (result.outcome, result.error_class, statuses(result)) == (outcome, error_class, codes)
    assert [a.attempt for a in result.attempts] == list(range(1, len(codes) + 1))
    assert result.sha256 == (SHA if outcome == "fetched" else None)
    assert server.hits("/p.md") == len(codes)


def test_backoff_grows_with_jitter_and_stays_under_the_cap(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher, sleeps: list[float]
) -> None:
    url = server.route("/p.md", status(500))
    fetcher = make_fetcher(max_retries=4, backoff_factor=1.0, backoff_max=3.0)
    result = fetcher.fetch(request(url))
    assert result.outcome == "failed" and len(result.attempts) == 5
    # equal jitter: each wait lies in [ceiling / 2, ceiling], ceilings 1, 2, 3 (capped), 3
    assert len(sleeps) == 4
    for wait, ceiling in zip(sleeps, [1.0, 2.0, 3.0, 3.0], strict=True):
        assert ceiling / 2 <= wait <= ceiling


def _http_date(offset: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + offset, usegmt=True)


@pytest.mark.parametrize(
    ("code", "retry_after", "expected"),
    [
        (429, "7", 7.0),
        (503, "7", 7.0),
        (429, "3600", 60.0),  # capped at retry_after_cap
        (429, _http_date(timedelta(hours=1)), 60.0),
        (429, _http_date(timedelta(hours=-1)), 0.0),  # a date already past: retry now
    ],
    # stable ids: xdist workers must collect the same tests, whatever the clock says
    ids=["429-seconds", "503-seconds", "429-capped", "429-date-ahead", "429-date-past"],
)
def test_retry_after_is_honoured_and_capped(
    server: ScriptedHTTPServer,
    make_fetcher: MakeFetcher,
    sleeps: list[float],
    code: int,
    retry_after: str,
    expected: float,
) -> None:
    url = server.route("/p.md", status(code, headers={"Retry-After": retry_after}), markdown(BODY))
    result = make_fetcher(retry_after_cap=60.0).fetch(request(url))
    assert result.outcome == "fetched" and statuses(result) == [code, 200]
    assert sleeps == [expected]


def test_retry_after_as_a_near_http_date(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher, sleeps: list[float]
) -> None:
    retry_after = _http_date(timedelta(seconds=30))
    url = server.route("/p.md", status(429, headers={"Retry-After": retry_after}), markdown(BODY))
    assert make_fetcher().fetch(request(url)).outcome == "fetched"
    [wait] = sleeps
    assert 27.0 <= wait <= 30.0  # the header has one-second resolution


def test_unreadable_retry_after_falls_back_to_backoff(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher, sleeps: list[float]
) -> None:
    url = server.route("/p.md", status(429, headers={"Retry-After": "soon"}), markdown(BODY))
    assert make_fetcher(backoff_factor=0.01).fetch(request(url)).outcome == "fetched"
    [wait] = sleeps
    assert 0.005 <= wait <= 0.01


def test_not_modified_reuses_the_stored_body(
    server: ScriptedHTTPServer, store: RawStore, make_fetcher: MakeFetcher
) -> None:
    sha = store.put(BODY.encode())
    url = server.route("/p.md", status(304, headers={"ETag": '"v2"'}))
    since = "Wed, 21 Oct 2015 07:28:00 GMT"
    req = request(url, etag='"v1"', last_modified=since, previous_sha256=sha)
    result = make_fetcher().fetch(req)
    assert (result.outcome, result.sha256, result.etag) == ("not_modified", sha, '"v2"')
    assert result.last_modified == since
    [logged] = server.requests()
    assert (logged.headers["If-None-Match"], logged.headers["If-Modified-Since"]) == ('"v1"', since)


@pytest.mark.parametrize("previous", ["0" * 64, "not-a-hash", None])
def test_missing_stored_body_means_an_unconditional_fetch(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher, previous: str | None
) -> None:
    url = server.route("/p.md", markdown(BODY))
    req = request(url, etag='"v1"', previous_sha256=previous)
    result = make_fetcher().fetch(req)
    assert (result.outcome, result.sha256) == ("fetched", SHA)
    assert server.requests()[0].headers["If-None-Match"] is None


class VanishingStore(RawStore):
    """A store whose body disappears between the first look and the 304."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.looks = 0

    def has(self, sha256: str) -> bool:
        self.looks += 1
        return self.looks == 1


def test_body_gone_by_the_304_is_fetched_again(
    server: ScriptedHTTPServer, tmp_path: Path, make_fetcher: MakeFetcher
) -> None:
    url = server.route("/p.md", status(304), markdown(BODY))
    req = request(url, etag='"v1"', previous_sha256="0" * 64)
    result = make_fetcher(raw_store=VanishingStore(tmp_path / "v")).fetch(req)
    assert (result.outcome, statuses(result)) == ("fetched", [304, 200])
    first, second = server.requests()
    assert (first.headers["If-None-Match"], second.headers["If-None-Match"]) == ('"v1"', None)


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "streamed"])
def test_oversize_body_stops_reading(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher, send_length: bool
) -> None:
    big = Reply(body=b"x" * 300_000, content_type="text/plain", send_length=send_length)
    url = server.route("/big.md", big)
    result = make_fetcher(max_body_bytes=1000).fetch(request(url))
    assert (result.outcome, result.error_class) == ("too_large", "BodyTooLarge")
    [attempt] = result.attempts
    if send_length:
        assert attempt.bytes == 0  # refused on the header, before reading
    else:
        assert 1000 < attempt.bytes < 300_000  # counted while streaming, then stopped


def test_body_without_content_length_is_read_to_the_end(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    url = server.route("/p.md", Reply(body=BODY.encode(), send_length=False))
    assert make_fetcher().fetch(request(url)).sha256 == SHA


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        (Reply(body=BODY.encode(), truncate_after=10), "TruncatedBody"),
        (Reply(reset=True), "ConnectionError"),
        (Reply(body=BODY.encode(), delay=2.0), "ReadTimeout"),
    ],
    ids=["truncated", "reset", "read-timeout"],
)
def test_transient_faults_are_retried_then_fail(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher, fault: Reply, error_class: str
) -> None:
    url = server.route("/p.md", fault)
    result = make_fetcher(max_retries=1).fetch(request(url))
    assert (result.outcome, result.error_class) == ("failed", error_class)
    assert [a.error_class for a in result.attempts] == [error_class, error_class]
    assert result.error_message


@pytest.mark.parametrize(
    "fault",
    [
        Reply(body=BODY.encode(), truncate_after=10),
        Reply(reset=True),
        Reply(body=BODY.encode(), delay=2.0),
    ],
    ids=["truncated", "reset", "read-timeout"],
)
def test_transient_fault_then_success(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher, fault: Reply
) -> None:
    url = server.route("/p.md", fault, markdown(BODY))
    result = make_fetcher().fetch(request(url))
    assert (result.outcome, result.sha256, len(result.attempts)) == ("fetched", SHA, 2)


def test_connect_timeout(make_fetcher: MakeFetcher, unanswered_port: int) -> None:
    url = f"http://127.0.0.1:{unanswered_port}/p.md"
    result = make_fetcher(connect_timeout=0.2, max_retries=1).fetch(request(url))
    assert (result.outcome, result.error_class) == ("failed", "ConnectTimeout")
    assert statuses(result) == [None, None]


def test_slow_trickle_hits_the_transfer_deadline(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    ticks = iter(range(0, 10**6, 1000))  # every look at the clock is 1000s later
    url = server.route("/p.md", markdown(BODY))
    fetcher = make_fetcher(max_retries=0, fetcher_kwargs={"clock": lambda: float(next(ticks))})
    result = fetcher.fetch(request(url))
    assert (result.outcome, result.error_class) == ("failed", "TransferTimeout")


def test_redirect_to_an_allowed_host_is_followed(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    target = server.url("/b.md", host="localhost")
    url = server.route("/a.md", redirect(target, 301))
    server.route("/b.md", redirect("/c.md", 307))
    server.route("/c.md", markdown(BODY))
    allowed = frozenset({"127.0.0.1", "localhost"})
    fetcher = make_fetcher(allowed_hosts=allowed, private_hosts_allowed=allowed)
    result = fetcher.fetch(request(url))
    assert (result.outcome, result.sha256, result.url) == ("fetched", SHA, url)
    assert [a.url for a in result.attempts] == [url, target, server.url("/c.md", "localhost")]
    assert statuses(result) == [301, 307, 200]
    assert {r.headers["User-Agent"] for r in server.requests()} == {fetcher.policy.user_agent}


@pytest.mark.parametrize(
    ("location", "error_class"),
    [
        ("http://evil.example/steal", "RedirectNotAllowed"),
        ("file:///etc/passwd", "RedirectNotAllowed"),
        ("ftp://127.0.0.1/p.md", "RedirectNotAllowed"),
        ("LOCALHOST", "PrivateAddress"),  # allowed host, but a name resolving to loopback
    ],
)
def test_redirect_off_the_allowlist_is_refused(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher, location: str, error_class: str
) -> None:
    location = location.replace("LOCALHOST", server.url("/b.md", host="localhost"))
    url = server.route("/a.md", redirect(location))
    server.route("/b.md", markdown(BODY))
    fetcher = make_fetcher(allowed_hosts=frozenset({"127.0.0.1", "localhost"}))
    result = fetcher.fetch(request(url))
    assert (result.outcome, result.error_class) == ("failed", error_class)
    assert statuses(result)[0] == 302
    assert server.hits("/b.md") == 0


def test_redirect_loop_stops(server: ScriptedHTTPServer, make_fetcher: MakeFetcher) -> None:
    url = server.route("/loop.md", redirect("/loop.md"))
    result = make_fetcher(max_redirects=2).fetch(request(url))
    assert (result.outcome, result.error_class, len(result.attempts)) == (
        "failed",
        "TooManyRedirects",
        3,
    )


@pytest.mark.parametrize(
    ("url", "error_class"),
    [
        ("https://tomesphere.com/paper/PMC1/full.md", "HostNotAllowed"),
        ("http://127.0.0.2/p.md", "HostNotAllowed"),
        ("ftp://127.0.0.1/p.md", "SchemeNotAllowed"),
        ("file:///etc/passwd", "SchemeNotAllowed"),
        ("javascript:alert(1)", "SchemeNotAllowed"),
        ("http:///p.md", "InvalidURL"),
        ("http://127.0.0.1:99999/p.md", "InvalidURL"),
    ],
)
def test_refused_before_any_request(make_fetcher: MakeFetcher, url: str, error_class: str) -> None:
    result = make_fetcher().fetch(request(url))
    assert (result.outcome, result.error_class, result.attempts) == ("failed", error_class, ())


def test_listed_name_resolving_to_loopback_is_refused_unless_allowed(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    url = server.route("/p.md", markdown(BODY)).replace("127.0.0.1", "localhost")
    listed = frozenset({"localhost"})
    refused = make_fetcher(allowed_hosts=listed).fetch(request(url))
    assert (refused.outcome, refused.error_class) == ("failed", "PrivateAddress")
    assert statuses(refused) == [None] and server.hits("/p.md") == 0
    allowed = make_fetcher(allowed_hosts=listed, private_hosts_allowed=listed)
    assert allowed.fetch(request(url)).outcome == "fetched"


@pytest.mark.parametrize(
    ("addresses", "refused"),
    [
        ({"10.0.0.7"}, True),
        ({"192.168.1.1"}, True),
        ({"169.254.169.254"}, True),  # cloud metadata endpoint
        ({"100.64.0.1"}, True),  # shared address space, where some clouds serve metadata
        ({"203.0.113.5"}, True),  # documentation range: not globally reachable
        ({"::1"}, True),
        ({"::ffff:127.0.0.1"}, True),
        ({"::ffff:100.64.0.1"}, True),
        ({"2002:7f00:1::"}, True),  # 6to4 for 127.0.0.1
        ({"0.0.0.0"}, True),
        ({"224.0.0.1"}, True),
        ({"fe80::1"}, True),
        ({PUBLIC, "10.0.0.7"}, True),  # one private answer is enough
        ({PUBLIC}, False),
    ],
)
def test_address_check_uses_every_dns_answer(
    server: ScriptedHTTPServer,
    make_fetcher: MakeFetcher,
    addresses: set[str],
    refused: bool,
) -> None:
    # the stub resolver answers for the connection itself: a public answer is connected to
    # (the local server plays that address), a private one is never connected to at all
    url = server.route("/p.md", markdown(BODY)).replace("127.0.0.1", "papers.test")
    fetcher = make_fetcher(
        allowed_hosts=frozenset({"papers.test"}), fetcher_kwargs={"resolve": lambda _: addresses}
    )
    with offline_internet({PUBLIC: server}) as connected:
        result = fetcher.fetch(request(url))
    assert result.outcome == ("failed" if refused else "fetched")
    assert result.error_class == ("PrivateAddress" if refused else None)
    assert connected == ([] if refused else [PUBLIC])
    assert server.hits("/p.md") == (0 if refused else 1)


def test_the_fetchers_resolver_picks_the_address_and_the_host_stays_the_name(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    url = server.route("/p.md", markdown(BODY)).replace("127.0.0.1", "papers.test")
    named = frozenset({"papers.test"})
    fetcher = make_fetcher(
        allowed_hosts=named, private_hosts_allowed=named, fetcher_kwargs={"resolve": resolve}
    )
    result = fetcher.fetch(request(url))
    assert (result.outcome, result.sha256) == ("fetched", SHA)
    assert asked == ["papers.test"]  # once, for the one connection, by the fetcher's resolver
    [logged] = server.requests()
    assert logged.headers["Host"] == f"papers.test:{server.port}"


def test_a_pooled_connection_is_checked_again_under_each_policy(
    server: ScriptedHTTPServer, store: RawStore
) -> None:
    url = server.route("/p.md", markdown(BODY))
    lenient = FetchPolicy(
        allowed_hosts=LOOPBACK, private_hosts_allowed=LOOPBACK, per_host_rate=1000.0
    )
    strict = FetchPolicy(allowed_hosts=LOOPBACK, per_host_rate=1000.0)
    session = new_session(2)
    with offline_internet() as connected:
        assert Fetcher(lenient, store, session).fetch(request(url)).outcome == "fetched"
        refused = Fetcher(strict, store, session).fetch(request(url))
    session.close()
    assert (refused.outcome, refused.error_class) == ("failed", "PrivateAddress")
    assert connected == ["127.0.0.1"] and server.hits("/p.md") == 1


def test_dns_failure_is_retried(make_fetcher: MakeFetcher) -> None:
    def no_dns(host: str) -> set[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    fetcher = make_fetcher(
        allowed_hosts=frozenset({"papers.invalid"}), fetcher_kwargs={"resolve": no_dns}
    )
    result = fetcher.fetch(request("http://papers.invalid/p.md"))
    assert (result.outcome, result.error_class, len(result.attempts)) == (
        "failed",
        "NameResolutionError",
        3,
    )


class BrokenStore(RawStore):
    def put(self, body: bytes) -> str:
        raise OSError(28, "No space left on device")


def test_unexpected_error_becomes_a_failed_outcome(
    server: ScriptedHTTPServer, tmp_path: Path, make_fetcher: MakeFetcher
) -> None:
    url = server.route("/p.md", markdown(BODY))
    # a timeout load can't reach: under load the fixture's 0.2 s read timeout made this flaky
    # (a first attempt cut short and retried), and timeouts are not what this test is about
    fetcher = make_fetcher(raw_store=BrokenStore(tmp_path), read_timeout=10.0)
    result = fetcher.fetch(request(url))
    assert (result.outcome, result.error_class, statuses(result)) == ("failed", "OSError", [200])
    assert "No space left" in (result.error_message or "")


def test_fetch_many_keeps_order_and_one_hang_blocks_nothing(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    urls = [server.route(f"/p{i}.md", markdown(f"# paper {i}\n")) for i in range(8)]
    urls[2] = server.route("/hang.md", Reply(delay=30.0))
    urls[5] = server.route("/gone.md", status(404))
    reqs = [request(u, paper_id=f"P{i}") for i, u in enumerate(urls)]
    progress: list[tuple[int, int]] = []
    fetcher = make_fetcher(max_retries=0, per_host_concurrency=2)
    results = fetcher.fetch_many(
        reqs, on_progress=lambda done, total: progress.append((done, total))
    )
    assert [r.paper_id for r in results] == [f"P{i}" for i in range(8)]
    outcomes = [r.outcome for r in results]
    assert (
        outcomes == ["fetched"] * 2 + ["failed"] + ["fetched"] * 2 + ["not_found"] + ["fetched"] * 2
    )
    assert results[2].error_class == "ReadTimeout"
    assert progress == [(i, 8) for i in range(1, 9)]
    assert fetcher.fetch_many([]) == []


def test_fifty_papers_some_failing_then_healed(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    broken = {f"/paper/P{i}/full.md" for i in range(0, 50, 7)}
    urls = server.routes(
        {
            f"/paper/P{i}/full.md": status(500)
            if f"/paper/P{i}/full.md" in broken
            else markdown(f"# paper {i}\n")
            for i in range(50)
        }
    )
    reqs = [request(url, paper_id=path.split("/")[2]) for path, url in urls.items()]
    fetcher = make_fetcher(max_retries=1, per_host_concurrency=4)
    first = fetcher.fetch_many(reqs)
    failed = [r.paper_id for r in first if r.outcome == "failed"]
    assert failed == [f"P{i}" for i in range(0, 50, 7)]
    for path in broken:
        server.heal(path)
    again = fetcher.fetch_many([r for r in reqs if r.paper_id in failed])
    assert {r.outcome for r in again} == {"fetched"}


def test_per_host_concurrency_cap(server: ScriptedHTTPServer, make_fetcher: MakeFetcher) -> None:
    gate = threading.Event()
    urls = [server.route(f"/p{i}.md", markdown(BODY, gate=gate)) for i in range(12)]
    fetcher = make_fetcher(per_host_concurrency=3, read_timeout=10.0)
    # twelve callers at once, as concurrent Prefect tasks sharing one fetcher would be
    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(fetcher.fetch, request(u)) for u in urls]
        assert server.wait_for_in_flight(3)
        gate.set()
        results = [f.result() for f in futures]
    assert {r.outcome for r in results} == {"fetched"}
    assert server.peak_in_flight == 3


def test_rate_limiter_spaces_requests_per_host() -> None:
    fake = FakeTime()
    limiter = PerHostRateLimiter(2.0, clock=fake.clock, sleep=fake.sleep)
    waits = [limiter.wait("a.org") for _ in range(3)]
    assert waits == [0.0, 0.5, 0.5]
    assert limiter.wait("b.org") == 0.0  # another host has its own budget
    fake.now += 10.0
    assert limiter.wait("a.org") == 0.0  # an idle host does not bank a burst


def test_a_slot_taken_over_waits_a_full_interval_before_its_first_request() -> None:
    # the slot's last holder (another process) may have sent its last request just now
    fake = FakeTime()
    limiter = PerHostRateLimiter(2.0, clock=fake.clock, sleep=fake.sleep)
    limiter.taken_over("a.org")
    assert limiter.wait("a.org") == 0.5
    assert limiter.wait("a.org") == 0.5
    fake.now += 10.0
    limiter.taken_over("a.org")
    assert limiter.wait("a.org") == 0.5
    assert limiter.wait("b.org") == 0.0


def test_rate_limiter_is_thread_safe() -> None:
    frozen = PerHostRateLimiter(4.0, clock=lambda: 100.0, sleep=lambda _: None)
    with ThreadPoolExecutor(8) as pool:
        waits = list(pool.map(lambda _: frozen.wait("a.org"), range(8)))
    assert sorted(waits) == [i * 0.25 for i in range(8)]


def test_fetcher_waits_on_the_limiter_for_every_attempt(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    fake = FakeTime()
    limiter = PerHostRateLimiter(2.0, clock=fake.clock, sleep=fake.sleep)
    fetcher = make_fetcher(fetcher_kwargs={"limiter": limiter})
    first = server.route("/a.md", status(500), markdown(BODY))
    second = server.route("/b.md", markdown(BODY))
    assert [fetcher.fetch(request(u)).outcome for u in (first, second)] == ["fetched"] * 2
    assert fake.sleeps == [0.5, 0.5]  # three requests, each half a second after the last


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        ({"Example.ORG.", "[::1]"}, {"example.org", "::1"}),
        ({"127.0.0.1"}, {"127.0.0.1"}),
    ],
)
def test_policy_normalises_hosts(hosts: set[str], expected: set[str]) -> None:
    assert FetchPolicy(allowed_hosts=frozenset(hosts)).allowed_hosts == expected


@pytest.mark.parametrize("host", ["example.org:443", "127.0.0.1:8080"])
def test_policy_refuses_ports(host: str) -> None:
    with pytest.raises(ValueError, match="without a port"):
        FetchPolicy(allowed_hosts=frozenset({host}))


def test_policy_from_settings() -> None:
    settings = Settings(allowed_hosts=["tomesphere.com", "Example.org"], read_timeout=12.0)
    policy = FetchPolicy.from_settings(settings, seed_hosts=["elsewhere.org"])
    assert policy.allowed_hosts == {"tomesphere.com", "example.org"}
    assert policy.private_hosts_allowed == {"tomesphere.com", "example.org"}
    assert (policy.read_timeout, policy.user_agent) == (12.0, settings.user_agent)


def test_allowlist_defaults_to_the_seeds_hosts_which_may_not_be_private() -> None:
    policy = FetchPolicy.from_settings(Settings(), seed_hosts=["tomesphere.com", "127.0.0.1"])
    assert policy.allowed_hosts == {"tomesphere.com", "127.0.0.1"}
    assert policy.private_hosts_allowed == frozenset()


def test_an_ip_literal_not_named_in_the_setting_is_refused(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    url = server.route("/p.md", markdown(BODY))
    fetcher = make_fetcher(allowed_hosts=LOOPBACK, private_hosts_allowed=frozenset())
    result = fetcher.fetch(request(url))
    assert (result.outcome, result.error_class) == ("failed", "PrivateAddress")
    assert server.hits("/p.md") == 0


def test_session_passed_in_is_left_open(store: RawStore, server: ScriptedHTTPServer) -> None:
    session = new_session(4)
    url = server.route("/p.md", markdown(BODY))
    policy = FetchPolicy(
        allowed_hosts=LOOPBACK, private_hosts_allowed=LOOPBACK, per_host_rate=1000.0
    )
    with Fetcher(policy, store, session) as fetcher:
        assert fetcher.fetch(request(url)).outcome == "fetched"
    # still open: the next fetcher reuses its pooled connection instead of making one
    with offline_internet() as connected, Fetcher(policy, store, session) as fetcher:
        assert fetcher.fetch(request(url)).outcome == "fetched"
    session.close()
    assert connected == [] and server.hits("/p.md") == 2


def test_a_guarded_session_on_its_own_connects_to_public_addresses_only(
    server: ScriptedHTTPServer,
) -> None:
    from flows.fetch.guard import AddressRefused

    session = new_session(1)
    with pytest.raises(AddressRefused, match=r"non-public 127\.0\.0\.1"):
        session.get(server.route("/p.md", markdown(BODY)), timeout=2)
    session.close()
    assert server.hits("/p.md") == 0


def test_a_session_without_the_guard_is_refused(store: RawStore) -> None:
    import requests

    with pytest.raises(ValueError, match="new_session"):
        Fetcher(FetchPolicy(allowed_hosts=LOOPBACK), store, requests.Session())


def test_the_paper_deadline_stops_retries_before_a_wait_past_it(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    fake = FakeTime()
    url = server.route("/p.md", status(500))
    fetcher = make_fetcher(
        max_retries=10,
        backoff_factor=4.0,
        backoff_max=100.0,
        max_paper_seconds=20.0,
        fetcher_kwargs={"clock": fake.clock, "sleep": fake.sleep},
    )
    result = fetcher.fetch(request(url))
    assert (result.outcome, result.error_class) == ("failed", "PaperTimeout")
    assert "20s deadline for one paper" in (result.error_message or "")
    # waits of about 4, 8 and 16 seconds: the third would end past 20, so it is not slept
    assert 2 <= len(fake.sleeps) < 10 and fake.now < 20.0
    assert statuses(result) == [500] * (len(fake.sleeps) + 1)


@pytest.mark.parametrize(
    "seconds", [{"max_transfer_seconds": 0}, {"max_paper_seconds": -1.0}], ids=["attempt", "paper"]
)
def test_policy_refuses_deadlines_that_are_not_positive(seconds: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="seconds"):
        FetchPolicy(allowed_hosts=LOOPBACK, **seconds)


@pytest.mark.parametrize("certified", ["papers.test", "other.test"])
def test_https_connects_to_the_checked_address_but_verifies_the_name(
    tmp_path: Path, store: RawStore, certified: str
) -> None:
    context, ca = tls_context(tmp_path, certified)
    names: list[str] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    session = new_session(2)
    session.verify = str(ca)
    named = frozenset({"papers.test"})
    policy = FetchPolicy(
        allowed_hosts=named, private_hosts_allowed=named, per_host_rate=1000.0, max_retries=0
    )
    with (
        serve(tls=context) as server,
        Fetcher(policy, store, session, resolve=lambda _: ["127.0.0.1"]) as fetcher,
    ):
        url = server.route("/p.md", markdown(BODY)).replace("127.0.0.1", "papers.test")
        result = fetcher.fetch(request(url))
        hits = server.requests()
    session.close()
    assert names == ["papers.test"]  # the server name sent is the host's, not the address
    if certified == "papers.test":
        assert (result.outcome, result.sha256) == ("fetched", SHA)
        assert hits[0].headers["Host"] == f"papers.test:{server.port}"
    else:  # the certificate is checked against the name asked for
        assert (result.outcome, result.error_class, hits) == ("failed", "SSLError", [])


def test_https_connections_are_guarded_too(tmp_path: Path, store: RawStore) -> None:
    context, ca = tls_context(tmp_path, "papers.test")
    session = new_session(2)
    session.verify = str(ca)
    policy = FetchPolicy(allowed_hosts=frozenset({"papers.test"}), per_host_rate=1000.0)
    with (
        serve(tls=context) as server,
        Fetcher(policy, store, session, resolve=lambda _: ["127.0.0.1"]) as fetcher,
    ):
        url = server.route("/p.md", markdown(BODY)).replace("127.0.0.1", "papers.test")
        result = fetcher.fetch(request(url))
        assert server.hits("/p.md") == 0
    session.close()
    assert (result.outcome, result.error_class) == ("failed", "PrivateAddress")


_SPACE = st.text(alphabet=" \t\r\n", max_size=5)


@given(_SPACE, st.sampled_from(["<!doctype html", "<!DOCTYPE HTML", "<html", "<HTML lang=en"]))
def test_html_is_sniffed_whatever_the_case_and_leading_space(space: str, start: str) -> None:
    assert looks_like_html((space + start + ">...").encode())


@given(st.text(max_size=200))
def test_html_sniffing_looks_only_at_the_opening_tag(text: str) -> None:
    head = text.removeprefix("\ufeff").lstrip(" \t\r\n\x0b\x0c").lower()
    assert looks_like_html(text.encode()) == head.startswith(("<!doctype html", "<html"))
