"""Which URLs and addresses the fetcher may contact (checked for the first URL and every hop).

1. the scheme is http or https ("SchemeNotAllowed");
2. the hostname, whatever the port, is in the allowlist ("HostNotAllowed", or
   "RedirectNotAllowed" for a hop);
3. before every attempt the host is resolved (an IP literal is its own address); if any
   address is private, loopback, link-local, multicast, reserved or unspecified the fetch
   is refused ("PrivateAddress") unless the host is in the private allowlist, which holds
   the hosts an operator named in TOMEFLOW_ALLOWED_HOSTS.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


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
    """Whether an address is anything but a public unicast one."""
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


def resolve_addresses(host: str) -> set[str]:
    """Every address the system resolver gives for host."""
    return {str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}


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
