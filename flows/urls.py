"""Database URLs shown safely: masked for people, scrubbed out of messages, PostgreSQL only."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
_USERINFO = re.compile(r"(://[^:/?#@\s]*:)([^@\s]*)@")


def masked(url: str) -> str:
    """The URL with its password hidden, for logs and artifacts (whatever the URL's shape)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not even a URL (an unclosed "[", a bad port): mask by pattern
        return _USERINFO.sub(r"\1***@", url)
    if password is None:
        return url
    # an empty password (the embedded server's "postgres:@") is shown as no password at all
    hidden = "***" if password else ""
    netloc = parts.netloc.replace(f":{password}@", f":{hidden}@" if hidden else "@")
    return urlunsplit(parts._replace(netloc=netloc))


def password_of(url: str) -> str | None:
    """The password a URL carries, if any (to scrub it from messages)."""
    try:
        return urlsplit(url).password or None
    except ValueError:
        m = _USERINFO.search(url)
        return m.group(2) if m else None


def scrub(text: str, url: str | None) -> str:
    """Text with the URL's password (and the URL itself) replaced by their masked forms."""
    if not url:
        return text
    text = text.replace(url, masked(url))
    password = password_of(url)
    if password:
        text = text.replace(password, "***")
    return text


def check_postgres_url(url: str) -> None:
    """Refuse a URL that is not PostgreSQL before anything connects to it."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme.split("+", 1)[0] not in POSTGRES_SCHEMES:
        raise ValueError(
            f"DATABASE_URL must be a PostgreSQL URL (postgresql://user:password@host:5432/db),"
            f" not {masked(url)}"
        )


def scrubbed(exc: BaseException, url: str | None) -> BaseException:
    """The exception with the URL's password scrubbed from its message (changed in place)."""
    if url and any(isinstance(a, str) for a in exc.args):
        exc.args = tuple(scrub(a, url) if isinstance(a, str) else a for a in exc.args)
    return exc
