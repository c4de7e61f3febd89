"""Raw bodies on disk, addressed by the sha256 of their uncompressed bytes and gzip-compressed.

Layout: ``root/ab/cd/abcd....gz``. A write goes to a unique temporary file in the target
folder and is renamed into place with ``os.replace``, which is atomic on one filesystem, so
readers never see half a file and concurrent writers (threads or processes) of the same body
simply race to install identical bytes.

Writes are cheap (fast compression, no fsync each); `sync` makes a batch's bodies durable in
one call before the batch's rows commit, so a committed row never names a body that a power
cut could still take away.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gzip
import hashlib
import logging
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path

logger = logging.getLogger(__name__)

GZIP_LEVEL = 1  # six times faster than 6; bodies are text and still shrink about 3x
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class RawBodyMissing(KeyError):
    """No body with this sha256 is stored."""

    def __init__(self, sha256: str) -> None:
        super().__init__(sha256)
        self.sha256 = sha256


class RawBodyCorrupt(Exception):
    """A stored body no longer matches its sha256 (or is not valid gzip)."""

    def __init__(self, sha256: str, reason: str) -> None:
        super().__init__(f"raw body {sha256}: {reason}")
        self.sha256 = sha256
        self.reason = reason


class RawStore:
    """Content-addressed, compressed storage of fetched bodies; safe for concurrent use."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._root = os.fspath(self.root)

    def path_for(self, sha256: str) -> Path:
        """Where the body with this sha256 lives (whether or not it is stored)."""
        return Path(self._location(sha256))

    def has(self, sha256: str) -> bool:
        """Whether a body with this sha256 is stored."""
        # os.path on a str, not a Path: a rerun asks this of every paper
        return os.path.isfile(self._location(sha256))

    def _location(self, sha256: str) -> str:
        # the check also keeps a hostile "hash" from naming a path outside the store
        if not _SHA256.match(sha256):
            raise ValueError(f"not a lowercase sha256 hex digest: {sha256!r}")
        return f"{self._root}/{sha256[:2]}/{sha256[2:4]}/{sha256}.gz"

    def put(self, body: bytes) -> str:
        """Store body (idempotent) and return the sha256 hex of its uncompressed bytes."""
        sha256 = hashlib.sha256(body).hexdigest()
        path = self.path_for(sha256)
        if path.is_file():
            return sha256
        path.parent.mkdir(parents=True, exist_ok=True)
        # mtime=0 makes the compressed bytes a function of the body alone
        packed = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        fd, tmp = tempfile.mkstemp(prefix=f".{sha256[:12]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(packed)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        logger.debug("stored raw body %s (%d bytes, %d packed)", sha256, len(body), len(packed))
        return sha256

    def sync(self, sha256s: Iterable[str]) -> int:
        """Make these stored bodies durable (one syncfs, else an fsync each); returns how many."""
        paths = [self.path_for(s) for s in set(sha256s)]
        if not paths:
            return 0
        if _syncfs(self.root):
            return len(paths)
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return len(paths)

    def get(self, sha256: str) -> bytes:
        """The stored body with this sha256, checked against the hash."""
        path = self.path_for(sha256)
        try:
            packed = path.read_bytes()
        except FileNotFoundError:
            raise RawBodyMissing(sha256) from None
        try:
            body = gzip.decompress(packed)
        except (OSError, EOFError, zlib.error) as exc:
            raise RawBodyCorrupt(sha256, f"unreadable gzip: {exc}") from exc
        if hashlib.sha256(body).hexdigest() != sha256:
            raise RawBodyCorrupt(sha256, "content does not match its hash")
        return body


class StoredBodies(Mapping[str, bytes]):
    """Bodies named by their sha256, each read from the raw store when it is asked for.

    A batch hands these on instead of the bytes: the process that parses the bodies reads them
    one at a time, and no process holds a whole batch of bodies (about 50 MB) meanwhile. A
    body gone or damaged raises RawBodyMissing (a KeyError) or RawBodyCorrupt when read.
    """

    def __init__(self, store: RawStore, sha256s: Iterable[str] = ()) -> None:
        self.store = store
        self._sha256s = frozenset(sha256s)

    def __getitem__(self, sha256: str) -> bytes:
        if sha256 not in self._sha256s:
            raise KeyError(sha256)
        return self.store.get(sha256)

    def __contains__(self, sha256: object) -> bool:
        return sha256 in self._sha256s

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._sha256s))

    def __len__(self) -> int:
        return len(self._sha256s)

    def __repr__(self) -> str:
        return f"StoredBodies({self.store.root}, {len(self)} bodies)"


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def _syncfs(root: Path) -> bool:
    """syncfs(2) on root's filesystem: every pending write there, in one call (Linux only)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "syncfs") or not root.exists():
        return False
    fd = os.open(root, os.O_RDONLY)
    try:
        return bool(libc.syncfs(fd) == 0)
    finally:
        os.close(fd)
