"""Faults a slow or hostile server throws at the fetcher: each on loopback, each bounded in time.

Slow servers must not hold an attempt past its deadline (max_transfer_seconds) nor a paper past
its own (max_paper_seconds), whether they drip the body, the headers or nothing at all. Address
tricks must not reach a private address: DNS rebinding, redirects to private addresses, the
shared address space, IPv4 loopback written as IPv6.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from flows.fetch.client import Fetcher, new_session
from flows.fetch.policy import FetchPolicy
from flows.fetch.rawstore import RawStore
from flows.records import FetchRequest, FetchResult
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

pytestmark = pytest.mark.faults

LOOPBACK = frozenset({"127.0.0.1"})
PUBLIC = "93.184.216.34"  # a public address; offline_internet lets a local server play it
BODY = b"# A slow paper\n\n" + b"x" * 130 + b"\n"  # dripped at 0.02 s a byte: about 3 s whole
DRIP = 0.02

MakeFetcher = Callable[..., Fetcher]


@pytest.fixture
def server() -> Iterator[ScriptedHTTPServer]:
    with serve() as scripted:
        yield scripted


@pytest.fixture
def store(tmp_path: Path) -> RawStore:
    return RawStore(tmp_path / "raw")


@pytest.fixture
def make_fetcher(store: RawStore) -> Iterator[MakeFetcher]:
    """Fetchers with half-second attempts; the read timeout is longer than a drip's interval."""
    made: list[Fetcher] = []

    def make(
        resolve: Callable[[str], Iterable[str]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **policy: object,
    ) -> Fetcher:
        settings: dict = {
            "allowed_hosts": LOOPBACK,
            "private_hosts_allowed": LOOPBACK,
            "connect_timeout": 0.5,
            "read_timeout": 1.0,
            "max_transfer_seconds": 0.5,
            "max_retries": 1,
            "backoff_factor": 0.01,
            "backoff_max": 0.02,
            "per_host_rate": 1000.0,
        }
        settings.update(policy)
        fetcher = Fetcher(FetchPolicy(**settings), store, sleep=sleep, resolve=resolve)
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()


def request(url: str, paper_id: str = "PMC1") -> FetchRequest:
    return FetchRequest(paper_id=paper_id, url=url)


def timed(fetcher: Fetcher, req: FetchRequest) -> tuple[FetchResult, float]:
    started = time.monotonic()
    result = fetcher.fetch(req)
    return result, time.monotonic() - started


def outline(result: FetchResult) -> list[tuple[int | None, str | None]]:
    return [(a.status_code, a.error_class) for a in result.attempts]


def cut_near(result: FetchResult, seconds: float) -> bool:
    """Whether every attempt ended close to `seconds` after it started."""
    return all(seconds - 0.1 <= a.elapsed_ms / 1000 < seconds + 0.5 for a in result.attempts)


# slow servers


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "close-delimited"])
def test_a_dripping_body_is_cut_at_the_deadline_retried_then_failed(
    server: ScriptedHTTPServer, store: RawStore, make_fetcher: MakeFetcher, send_length: bool
) -> None:
    url = server.route("/p.md", Reply(body=BODY, drip=DRIP, send_length=send_length))
    result, took = timed(make_fetcher(), request(url))
    assert (result.outcome, result.error_class, result.sha256) == (
        "failed",
        "TransferTimeout",
        None,
    )
    # a cut close-delimited body ends like a whole one: it must not be taken for one
    assert outline(result) == [(200, "TransferTimeout")] * 2
    assert all(a.sha256 is None and a.bytes < len(BODY) for a in result.attempts)
    assert cut_near(result, 0.5) and took < 2.0  # the whole body would take 3 s an attempt
    assert server.hits("/p.md") == 2
    assert not [path for path in store.root.rglob("*") if path.is_file()]


def test_a_body_stalled_before_its_first_byte_is_not_taken_for_an_empty_one(
    server: ScriptedHTTPServer, store: RawStore, make_fetcher: MakeFetcher
) -> None:
    # no length, and nothing of the body before the cut: the cut reads as a clean end of file
    url = server.route("/p.md", Reply(body=BODY, drip=5.0, send_length=False))
    result, took = timed(make_fetcher(read_timeout=10.0, max_retries=0), request(url))
    assert outline(result) == [(200, "TransferTimeout")]
    assert (result.sha256, result.attempts[0].bytes) == (None, 0)
    assert cut_near(result, 0.5) and took < 1.5
    assert not [path for path in store.root.rglob("*") if path.is_file()]


def test_dripping_headers_are_cut_at_the_deadline(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    url = server.route("/p.md", Reply(body=BODY, drip=DRIP, drip_head=True))
    result, took = timed(make_fetcher(), request(url))
    assert (result.outcome, result.error_class) == ("failed", "TransferTimeout")
    assert outline(result) == [(None, "TransferTimeout")] * 2
    assert cut_near(result, 0.5) and took < 2.0
    assert server.hits("/p.md") == 2


def test_a_reused_connection_is_cut_at_the_deadline_too(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    url = server.route("/p.md", markdown("# fast\n"), Reply(body=BODY, drip=DRIP))
    fetcher = make_fetcher(max_retries=0)
    with offline_internet() as connected:
        assert fetcher.fetch(request(url)).outcome == "fetched"
        result, took = timed(fetcher, request(url, "PMC2"))
    assert connected == ["127.0.0.1"]  # one connection, pooled, served both
    assert outline(result) == [(200, "TransferTimeout")]
    assert cut_near(result, 0.5) and took < 1.5


def test_a_hanging_connect_is_cut_at_the_deadline(
    make_fetcher: MakeFetcher, unanswered_port: int
) -> None:
    url = f"http://127.0.0.1:{unanswered_port}/p.md"
    result, took = timed(make_fetcher(connect_timeout=10.0, max_retries=0), request(url))
    assert outline(result) == [(None, "TransferTimeout")]
    assert cut_near(result, 0.5) and took < 1.5


NAMED = frozenset({"papers.test"})


@pytest.fixture
def https_fetcher(store: RawStore) -> Iterator[Callable[[Path], Fetcher]]:
    """Fetchers for https://papers.test (resolved to loopback) that trust a given CA."""
    sessions = []

    def make(ca: Path) -> Fetcher:
        session = new_session(2)
        session.verify = str(ca)
        sessions.append(session)
        policy = FetchPolicy(
            allowed_hosts=NAMED,
            private_hosts_allowed=NAMED,
            connect_timeout=10.0,
            read_timeout=10.0,
            max_transfer_seconds=0.5,
            max_retries=0,
            per_host_rate=1000.0,
        )
        return Fetcher(policy, store, session, resolve=lambda _: ["127.0.0.1"])

    yield make
    for session in sessions:
        session.close()


def test_a_stalled_tls_handshake_is_cut_at_the_deadline(
    tmp_path: Path, https_fetcher: Callable[[Path], Fetcher]
) -> None:
    _, ca = tls_context(tmp_path, "papers.test")
    listener = socket.socket()  # takes the connection, never answers the client hello
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        url = f"https://papers.test:{listener.getsockname()[1]}/p.md"
        result, took = timed(https_fetcher(ca), request(url))
    finally:
        listener.close()
    assert outline(result) == [(None, "TransferTimeout")]
    assert cut_near(result, 0.5) and took < 1.5  # not the 10 s connect and read timeouts


def test_a_dripping_body_over_https_is_cut_at_the_deadline(
    tmp_path: Path, https_fetcher: Callable[[Path], Fetcher]
) -> None:
    context, ca = tls_context(tmp_path, "papers.test")
    fetcher = https_fetcher(ca)
    with serve(tls=context) as server:
        url = server.route("/p.md", markdown("# fast\n"), Reply(body=BODY, drip=DRIP))
        url = url.replace("127.0.0.1", "papers.test")
        assert fetcher.fetch(request(url)).outcome == "fetched"
        result, took = timed(fetcher, request(url, "PMC2"))  # on the pooled tls connection
    assert outline(result) == [(200, "TransferTimeout")]
    assert cut_near(result, 0.5) and took < 1.5


def test_the_paper_deadline_cuts_retries_short(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    url = server.route("/p.md", Reply(body=BODY, drip=DRIP))
    fetcher = make_fetcher(max_transfer_seconds=0.4, max_paper_seconds=1.0, max_retries=10)
    result, took = timed(fetcher, request(url))
    assert (result.outcome, result.error_class) == ("failed", "PaperTimeout")
    # 0.4 s, 0.4 s, then what is left of the paper's second; ten retries were allowed
    assert outline(result) == [(200, "TransferTimeout")] * 3
    first, _, third = result.attempts
    assert "paper" not in (first.error_message or "")
    assert "max_paper_seconds" in (third.error_message or "")
    assert third.elapsed_ms < first.elapsed_ms
    assert 0.9 <= took < 1.5


def test_a_retry_after_past_the_paper_deadline_is_not_waited_for(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    sleeps: list[float] = []
    url = server.route("/p.md", status(503, headers={"Retry-After": "30"}), markdown("# late\n"))
    fetcher = make_fetcher(sleep=sleeps.append, max_paper_seconds=5.0, max_retries=3)
    result, took = timed(fetcher, request(url))
    assert (result.outcome, result.error_class) == ("failed", "PaperTimeout")
    assert outline(result) == [(503, "ServerError")]
    assert sleeps == [] and took < 1.0


# address tricks


def test_dns_rebinding_never_reaches_loopback(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    # public when first asked, loopback from then on: each connection resolves once and goes
    # to the address it checked, so the loopback answer is refused, never connected to
    answers = iter([[PUBLIC]])
    names: list[str] = []

    def rebinding(host: str) -> list[str]:
        names.append(host)
        return next(answers, ["127.0.0.1"])

    url = server.route("/p.md", markdown("# loopback only\n")).replace("127.0.0.1", "localhost")
    fetcher = make_fetcher(
        resolve=rebinding,
        allowed_hosts=frozenset({"localhost"}),
        private_hosts_allowed=frozenset(),
        max_retries=2,
    )
    with serve() as public:
        # the public host closes its connection, so the retry needs a new one
        public.route("/p.md", status(503, headers={"Connection": "close"}))
        with offline_internet({PUBLIC: public}) as connected:
            result = fetcher.fetch(request(url))
        assert public.hits("/p.md") == 1
    assert (result.outcome, result.error_class) == ("failed", "PrivateAddress")
    assert outline(result) == [(503, "ServerError"), (None, "PrivateAddress")]
    assert connected == [PUBLIC] and names == ["localhost", "localhost"]
    assert server.hits("/p.md") == 0


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/p.md",
        "http://100.64.0.1/p.md",
        "http://[::ffff:127.0.0.1]:{port}/b.md",
        "http://127.0.0.2:{port}/b.md",
    ],
)
def test_a_redirect_to_a_private_address_is_refused(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher, location: str
) -> None:
    url = server.route("/a.md", redirect(location.format(port=server.port)))
    server.route("/b.md", markdown("# private\n"))
    with offline_internet() as connected:
        result = make_fetcher().fetch(request(url))
    assert (result.outcome, result.error_class) == ("failed", "RedirectNotAllowed")
    assert outline(result) == [(302, None)]
    assert connected == ["127.0.0.1"] and server.hits("/b.md") == 0


def test_a_redirect_to_a_listed_name_resolving_private_is_refused_at_connect(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher
) -> None:
    url = server.route("/a.md", redirect(server.url("/b.md", host="papers.test")))
    server.route("/b.md", markdown("# private\n"))
    fetcher = make_fetcher(
        resolve=lambda _: ["10.0.0.7"], allowed_hosts=frozenset({"127.0.0.1", "papers.test"})
    )
    with offline_internet() as connected:
        result = fetcher.fetch(request(url))
    assert (result.outcome, result.error_class) == ("failed", "PrivateAddress")
    assert outline(result) == [(302, None), (None, "PrivateAddress")]
    assert connected == ["127.0.0.1"] and server.hits("/b.md") == 0


@pytest.mark.parametrize(
    "address", ["100.64.0.1", "100.127.255.254", "::ffff:127.0.0.1", "::ffff:100.64.0.1"]
)
@pytest.mark.parametrize("written", ["resolved", "literal"])
def test_shared_and_ipv4_mapped_addresses_are_refused(
    server: ScriptedHTTPServer, make_fetcher: MakeFetcher, address: str, written: str
) -> None:
    server.route("/p.md", markdown("# private\n"))
    host = "papers.test" if written == "resolved" else address
    netloc = f"[{host}]" if ":" in host else host
    fetcher = make_fetcher(resolve=lambda _: [address], allowed_hosts=frozenset({host}))
    with offline_internet() as connected:
        result = fetcher.fetch(request(f"http://{netloc}:{server.port}/p.md"))
    assert (result.outcome, result.error_class) == ("failed", "PrivateAddress")
    assert outline(result) == [(None, "PrivateAddress")]
    assert address in (result.error_message or "")
    assert connected == [] and server.hits("/p.md") == 0
