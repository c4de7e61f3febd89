"""A scripted, threaded HTTP server on 127.0.0.1 for fetcher and end-to-end flow tests.

A test registers routes: for a path, a list of replies played one per request, the last one
repeating. ``heal`` swaps a failing script for a good one. Every request is logged, and the
server counts requests in flight (and the peak) for concurrency assertions.

    with serve() as server:
        url = server.route("/p/1/full.md", status(500), markdown("# Title"))

or take the ``http_server`` fixture (register it in conftest.py with
``pytest_plugins = ["tests.http_server"]``).

``serve(tls=...)`` serves https with a context from ``tls_context`` (a throwaway CA and a
certificate for one name). ``offline_internet`` keeps connections on the machine: a public
address a fake resolver hands out can be played by a local server, every other one is refused.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import ssl
import struct
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

logger = logging.getLogger(__name__)

GATE_TIMEOUT = 10.0  # a forgotten gate must not hang the suite
MARKDOWN = "text/markdown; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    """One scripted response."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = MARKDOWN
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering; cut short when the server stops
    gate: threading.Event | None = None  # answer only once the test sets this event
    truncate_after: int | None = None  # announce the whole body, send this many bytes, close
    reset: bool = False  # answer with a tcp reset instead of a response
    send_length: bool = True  # false: no Content-Length, the body ends when the socket closes
    drip: float = 0.0  # send the body one byte at a time, this many seconds apart
    drip_head: bool = False  # drip the status line and headers too


def markdown(text: str, **kwargs: Any) -> Reply:
    """A 200 reply carrying text as UTF-8 Markdown (kwargs: any other Reply field)."""
    return Reply(body=text.encode("utf-8"), **kwargs)


def status(code: int, **kwargs: Any) -> Reply:
    """A reply with this status and no body unless given, e.g. status(429, headers={...})."""
    return Reply(status=code, content_type=kwargs.pop("content_type", None), **kwargs)


def redirect(location: str, code: int = 302) -> Reply:
    """A redirect to location."""
    return Reply(status=code, content_type=None, headers={"Location": location})


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server received it."""

    method: str
    path: str  # the request target, query included
    headers: Message  # case-insensitive: headers["user-agent"]


class ScriptedHTTPServer:
    """The server; routes and the request log are safe to use from any thread."""

    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self._lock = threading.Condition()
        self._scripts: dict[str, list[Reply]] = {}
        self._played: dict[str, int] = {}
        self._log: list[LoggedRequest] = []
        self._in_flight = 0
        self.peak_in_flight = 0
        self.stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.scripted = self
        if tls is not None:
            # the handshake is left to each handler thread, so a bad client blocks no other
            self._httpd.socket = tls.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self.scheme = "http" if tls is None else "https"
        self.host = "127.0.0.1"
        self.port: int = self._httpd.server_address[1]
        self.base_url = f"{self.scheme}://{self.host}:{self.port}"
        # a short poll lets stop() return at once instead of after the default half second
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def url(self, path: str, host: str | None = None) -> str:
        """The absolute URL of path on this server, optionally under another host name."""
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def route(self, path: str, *replies: Reply) -> str:
        """Script path (replacing any script it had); returns its URL."""
        if not replies:
            raise ValueError("a route needs at least one reply")
        with self._lock:
            self._scripts[path] = list(replies)
            self._played[path] = 0
        return self.url(path)

    def routes(self, scripts: Mapping[str, Reply | list[Reply]]) -> dict[str, str]:
        """Script many paths at once; returns path -> URL."""
        return {
            path: self.route(path, *(script if isinstance(script, list) else [script]))
            for path, script in scripts.items()
        }

    def heal(self, path: str, *replies: Reply) -> str:
        """Replace path's script (a failing one, say) with these replies."""
        return self.route(path, *(replies or (markdown(f"# healed {path}\n"),)))

    def requests(self, path: str | None = None) -> list[LoggedRequest]:
        """Requests received so far, optionally only those for path."""
        with self._lock:
            return [r for r in self._log if path is None or r.path.split("?")[0] == path]

    def hits(self, path: str) -> int:
        """How many requests path has received."""
        return len(self.requests(path))

    @property
    def in_flight(self) -> int:
        """Requests being answered right now."""
        with self._lock:
            return self._in_flight

    def wait_for_in_flight(self, count: int, timeout: float = 5.0) -> bool:
        """Block until count requests are in flight at once; false on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight >= count, timeout)

    def start(self) -> None:
        """Start serving in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _enter(self, handler: BaseHTTPRequestHandler) -> Reply | None:
        with self._lock:
            self._log.append(LoggedRequest(handler.command, handler.path, handler.headers))
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            self._lock.notify_all()
            path = handler.path.split("?")[0]
            script = self._scripts.get(path)
            if script is None:
                return None
            index = self._played[path]
            self._played[path] = index + 1
            return script[min(index, len(script) - 1)]

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._lock.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler stuck on a delay or gate must not block stop()
    scripted: ScriptedHTTPServer

    def handle_error(self, request: object, client_address: object) -> None:
        logger.debug("handler error for %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool is exercised

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # a failure ends this connection only
        super().setup()

    def do_GET(self) -> None:
        scripted = self.server.scripted
        reply = scripted._enter(self)
        plain = self.wfile
        try:
            self._play(reply or status(404, body=b"no such route"), scripted.stopping)
        except OSError:
            self.close_connection = True  # the client gave up (a timeout); nothing to tell it
        finally:
            self.wfile = plain  # a dripping writer lasts one reply
            scripted._leave()

    do_HEAD = do_GET

    def _play(self, reply: Reply, stopping: threading.Event) -> None:
        if reply.delay:
            stopping.wait(reply.delay)
        if reply.gate is not None:
            reply.gate.wait(GATE_TIMEOUT)
        if reply.drip and reply.drip_head:
            self.wfile = _Drip(self.wfile, reply.drip, stopping)
        if reply.reset:
            # linger 0 makes close() send RST instead of FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        bodiless = reply.status in (204, 304) or reply.status < 200
        if reply.send_length and not bodiless:
            self.send_header("Content-Length", str(len(reply.body)))
        if not reply.send_length or reply.truncate_after is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if bodiless or self.command == "HEAD":
            return
        body = reply.body if reply.truncate_after is None else reply.body[: reply.truncate_after]
        if reply.drip and not reply.drip_head:
            self.wfile = _Drip(self.wfile, reply.drip, stopping)
        self.wfile.write(body)
        self.wfile.flush()

    def finish(self) -> None:
        # the socket may have been reset or closed on purpose
        with suppress(OSError, ValueError):
            super().finish()

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class _Drip:
    """A writer that sends one byte at a time, `interval` seconds apart, until the server stops."""

    def __init__(self, plain: Any, interval: float, stopping: threading.Event) -> None:
        self._plain, self._interval, self._stopping = plain, interval, stopping

    def write(self, data: bytes) -> int:
        for byte in data:
            if self._stopping.wait(self._interval):
                raise ConnectionAbortedError("the server is stopping")
            self._plain.write(bytes([byte]))  # fails once the client has cut the connection
            self._plain.flush()
        return len(data)

    def flush(self) -> None:
        self._plain.flush()


@contextmanager
def serve(port: int = 0, tls: ssl.SSLContext | None = None) -> Iterator[ScriptedHTTPServer]:
    """A running scripted server for the duration of the block (port 0: any free port)."""
    server = ScriptedHTTPServer(port, tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http_server() -> Iterator[ScriptedHTTPServer]:
    """A scripted HTTP server on 127.0.0.1, stopped after the test."""
    with serve() as server:
        yield server


def tls_context(directory: Path, hostname: str) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate for hostname, and the CA file a client must trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def certificate(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, ca: bool
    ) -> x509.Certificate:
        usage = dict.fromkeys(
            [
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "encipher_only",
                "decipher_only",
            ],
            False,
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tomeflow test CA")])
    ca_cert = certificate("tomeflow test CA", ca_key, ca_name, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(hostname, key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca_cert.public_bytes(pem))
    cert_file.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, ca_file


@contextmanager
def offline_internet(
    hosts: Mapping[str, ScriptedHTTPServer] | None = None,
) -> Iterator[list[str]]:
    """Connections to these public addresses land on these local servers; others are refused.

    Yields the address of every connection asked of ``socket.create_connection``, in order,
    so a test can tell where a fetcher tried to go without a packet leaving the machine.
    """
    real = socket.create_connection
    played = dict(hosts or {})
    asked: list[str] = []

    def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address[0], address[1]
        asked.append(host)
        if host in played:
            return real(("127.0.0.1", played[host].port), *args, **kwargs)
        if not ipaddress.ip_address(host).is_loopback:
            raise ConnectionRefusedError(f"{host}:{port} is off the machine")
        return real(address, *args, **kwargs)

    with mock.patch("socket.create_connection", connect):
        yield asked
