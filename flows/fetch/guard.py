"""Which URLs and addresses the fetcher may contact (checked for the first URL and every hop).

1. the scheme is http or https ("SchemeNotAllowed");
2. the hostname, whatever the port, is in the allowlist ("HostNotAllowed", or
   "RedirectNotAllowed" for a hop);
3. every new connection resolves the host once, with the fetcher's resolver (an IP literal
   is its own address), checks every address and connects to one of those it checked; if
   any address is not a globally reachable unicast one (private, loopback, link-local, the
   shared 100.64.0.0/10, documentation, multicast, reserved, unspecified, or one of those
   IPv4 addresses written as IPv6) the connection is refused ("PrivateAddress") unless the
   host is in the private allowlist, which holds the hosts an operator named in
   TOMEFLOW_ALLOWED_HOSTS. A pooled connection is checked again, by its address, before
   each request.

Checking what one lookup answered and connecting to what was checked is what defeats DNS
rebinding: a name that resolves to a public address for the check and to loopback for the
connection cannot reach loopback, because there is no second lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolver = Callable[[str], Iterable[str]]


class AddressRefused(Exception):
    """A connection refused before it was made: its host has a non-public address."""


def normal_host(host: str) -> str:
    """A host name as compared: no brackets, no trailing dot, lower case."""
    return host.strip().strip("[]").rstrip(".").lower()


def host_of(url: str) -> str:
    """The normalised host of a url ("" when it has none or cannot be read)."""
    try:
        return normal_host(urlsplit(url).hostname or "")
    except ValueError:
        return ""


def is_ip(host: str) -> bool:
    """Whether host is an IP literal."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_private(address: str) -> bool:
    """Whether an address is anything but a globally reachable unicast one."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        # an ipv4 address carried in ipv6 is judged as that address: python 3.11 calls
        # ::ffff:100.64.0.1 reserved but not private, and the 6to4 2002:7f00:1:: global
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    # not global covers private, loopback, link-local, unspecified, documentation and the
    # shared 100.64.0.0/10 (where some clouds serve metadata); python counts multicast and
    # parts of the reserved space as global, so those are refused by name
    return not ip.is_global or ip.is_multicast or ip.is_reserved


def resolve_addresses(host: str) -> list[str]:
    """Every address the system resolver gives for host, in its order of preference."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class AddressGuard:
    """Where connections may go: names resolve with `resolve`, to private addresses if listed."""

    resolve: Resolver = resolve_addresses
    private_hosts_allowed: frozenset[str] = frozenset()

    def connectable(self, host: str) -> list[str]:
        """The addresses to connect to for host, all checked; AddressRefused if any is private.

        Resolver errors (socket.gaierror) are raised as they are.
        """
        name = host.strip("[]")
        found = [name] if is_ip(name) else list(dict.fromkeys(self.resolve(name)))
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
        if normal_host(host) not in self.private_hosts_allowed:
            private = [a for a in found if is_private(a)]
            if private:
                raise AddressRefused(f"{host} resolves to non-public {', '.join(private)}")
        return found

    def check_peer(self, host: str, address: str) -> None:
        """Refuse a pooled connection to host whose address this guard would not connect to."""
        if normal_host(host) not in self.private_hosts_allowed and is_private(address):
            raise AddressRefused(f"{host} is connected to non-public {address}")


def refusal(url: str, allowed_hosts: frozenset[str]) -> tuple[str, str] | None:
    """(error class, message) when url may not be fetched at all, else None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        return "InvalidURL", f"{url}: {exc}"
    if parts.scheme not in ("http", "https"):
        return "SchemeNotAllowed", f"{url}: only http and https are fetched"
    if not parts.hostname:
        return "InvalidURL", f"{url}: no host"
    if normal_host(parts.hostname) not in allowed_hosts:
        return "HostNotAllowed", f"{parts.hostname} is not in allowed_hosts"
    return None
