"""Why a full text could not be fetched: one cause per kind of failure, whatever the class.

raw.fetches keeps both: error_class as tomeflow names the error (NotFound, ReadTimeout, ...)
and error_cause, one of dns, connect, timeout, tls, http_status, too_large, bad_content,
refused (the allowlist or the address guard) or other. Migration 0008 filled error_cause for
the rows fetched before it with the same mapping, written as SQL (a test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Mapping

# one cause per kind of failure, whatever the error's class (raw.fetches.error_cause)
ERROR_CAUSES: Mapping[str, str] = {
    "NameResolutionError": "dns",
    **dict.fromkeys(("ConnectionError", "NewConnectionError", "TruncatedBody",
                     "ChunkedEncodingError", "ProtocolError"), "connect"),
    **dict.fromkeys(("ConnectTimeout", "ReadTimeout", "Timeout", "TransferTimeout",
                     "PaperTimeout"), "timeout"),
    "SSLError": "tls",
    **dict.fromkeys(("NotFound", "ServerError", "RateLimited", "ClientError",
                     "UnexpectedStatus"), "http_status"),
    "BodyTooLarge": "too_large",
    **dict.fromkeys(("HtmlBody", "UnacceptableContentType", "NotUtf8",
                     "ContentDecodingError"), "bad_content"),
    **dict.fromkeys(("PrivateAddress", "HostNotAllowed", "SchemeNotAllowed",
                     "RedirectNotAllowed", "InvalidURL", "TooManyRedirects"), "refused"),
}  # fmt: skip


def error_cause(error_class: str | None) -> str | None:
    """The cause an error class stands for: dns, connect, timeout, tls, http_status, ..."""
    return None if error_class is None else ERROR_CAUSES.get(error_class, "other")
