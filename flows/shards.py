"""Shards: `--shard K/N` splits one corpus between N runs by a stable hash of the paper id.

The hash is the first 32 bits of the id's md5, taken modulo N: the same in Python (which
papers a run reads) and in SQL (which loaded papers a run may find removed), on every machine
and Python version. Every document with one paper id falls in one shard, so the first
document of an id still wins; a document rejected before its id is known goes by its name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """'K/N' -> Shard(K, N); a clear ValueError for anything else."""
        match = _SPEC.fullmatch(spec)
        if match is None:
            raise ValueError(f"shard {spec!r}: write K/N, for example 1/4")
        index, count = int(match[1]), int(match[2])
        if not 1 <= index <= count:
            raise ValueError(f"shard {spec!r}: K must be between 1 and N")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, key: str) -> bool:
        """Whether this shard takes the paper (or document) named `key`."""
        digest = hashlib.md5(key.encode("utf-8"), usedforsecurity=False).digest()
        return int.from_bytes(digest[:4], "big") % self.count == self.index - 1

    def sql(self, column: str) -> str:
        """The same test in SQL, over a text column (trusted: a column name, not input)."""
        # mod(), not %: the text goes into queries with parameters
        return (
            f"(mod(('x' || substr(md5({column}), 1, 8))::bit(32)::bigint, {self.count:d})"
            f" = {self.index - 1:d})"
        )
