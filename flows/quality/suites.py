"""Suites are data: one JSON file per record kind and per after-load check.

Files live in `schemas/expectations/` (`papers.json`, ...; `tables.*.json` after load). Every
expectation carries a policy in its meta: `quarantine` (a row that breaks it is rejected; it
yields a `RowFailure` per row) or `warn` (recorded only). A suite's meta says which checkpoint
runs it, the key columns that identify a row (before load) or the SQL query it is validated
against (after load; `tables.run_rows` has `{counts}` in its query, filled with one row per
table the caller names: the rows the run wrote, against the rows carrying its run id;
`{run_id}` is the run's id and `{max_drop}` the drift gate's threshold, a share).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.entities import CURIE_PATTERNS
from flows.quality.results import SuiteError
from flows.records import Checkpoint
from flows.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

SUITES_DIR = PROJECT_ROOT / "schemas" / "expectations"

BEFORE_LOAD_SUITES = (
    "papers",
    "authors",
    "entities",
    "paper_entities",
    "sections",
    "references",
    "mentions",
)

POLICIES: frozenset[str] = frozenset(("quarantine", "warn"))

DEFAULT_REFERENCE_COUNT_GAP_TOLERANCE = 3
DEFAULT_DRIFT_MAX_DROP = 0.05

# expectations whose regex is assembled from code carry this in their meta
_REGEX_FROM_CURIE_PATTERNS = "flows.entities.CURIE_PATTERNS"


@dataclass(frozen=True, slots=True)
class SuiteFile:
    """One suite file as read: its GX document and the gate's reading of its meta."""

    name: str
    path: Path
    checkpoint: Checkpoint
    key: tuple[str, ...]
    query: str | None
    run_counts: bool  # its query counts this run's rows per table: {counts} is filled in
    document: Mapping[str, Any]

    @property
    def columns(self) -> frozenset[str]:
        """Every column the suite's expectations read, and its key."""
        names = set(self.key)
        for expectation in self.document["expectations"]:
            kwargs = expectation.get("kwargs", {})
            if "column" in kwargs:
                names.add(kwargs["column"])
            names.update(kwargs.get("column_list", ()))
        return frozenset(names)


def curie_regex(patterns: Mapping[str, str] = CURIE_PATTERNS) -> str:
    """One regex for a CURIE: known prefixes with their own local-id pattern, any other loosely."""
    known = "|".join(
        f"{re.escape(prefix)}:(?:{_unanchored(pattern)})" for prefix, pattern in patterns.items()
    )
    # an unknown prefix is lower case, sanitised (flows.entities._sanitise); the lookahead
    # keeps a known prefix, however it is cased, from passing through the loose branch
    prefixes = "|".join(re.escape(p) for p in patterns)
    unknown = rf"(?!(?i:{prefixes}):)[a-z0-9][a-z0-9._]*:\S+"
    return rf"^(?:{known}|{unknown})$"


def _unanchored(pattern: str) -> str:
    # groups become non-capturing: pandas warns on every str.contains with capture groups,
    # once per batch and suite; none of the patterns uses a backreference
    if re.search(r"\\\d", pattern):
        raise ValueError(f"a backreference would break once groups are renumbered: {pattern}")
    body = pattern.removeprefix("^").removesuffix("$")
    return re.sub(r"(?<!\\)\((?!\?)", "(?:", body)


def render_suites(suites_dir: Path = SUITES_DIR) -> dict[str, str]:
    """The text every suite file should have: generated regexes filled in, canonical JSON."""
    rendered = {}
    for path in sorted(suites_dir.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for expectation in document.get("expectations", []):
            if expectation.get("meta", {}).get("regex_from") == _REGEX_FROM_CURIE_PATTERNS:
                expectation["kwargs"]["regex"] = curie_regex()
        rendered[path.name] = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return rendered


def write_suites(suites_dir: Path = SUITES_DIR) -> list[Path]:
    """Rewrite the suite files whose text differs from render_suites; returns those paths."""
    written = []
    for name, text in render_suites(suites_dir).items():
        path = suites_dir / name
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def read_suites(suites_dir: Path = SUITES_DIR) -> dict[str, SuiteFile]:
    """Every suite file in suites_dir, checked for the fields the gate relies on."""
    suites = {}
    for path in sorted(suites_dir.glob("*.json")):
        suite = _read_suite(path)
        suites[suite.name] = suite
    missing = [name for name in BEFORE_LOAD_SUITES if name not in suites]
    if missing:
        raise SuiteError(suites_dir, f"no suite file for {', '.join(missing)}")
    return suites


def _read_suite(path: Path) -> SuiteFile:
    document = json.loads(path.read_text(encoding="utf-8"))
    name = document.get("name")
    if name != path.stem:
        raise SuiteError(path, f"suite name {name!r} differs from the file name")
    meta = document.get("meta", {})
    checkpoint = meta.get("checkpoint")
    if checkpoint not in ("before_load", "after_load"):
        raise SuiteError(path, f"meta.checkpoint is {checkpoint!r}, not before_load/after_load")
    expectations = document.get("expectations") or []
    if not expectations:
        raise SuiteError(path, "no expectations")
    for position, expectation in enumerate(expectations, 1):
        policy = expectation.get("meta", {}).get("policy")
        if policy not in POLICIES:
            allowed = ", ".join(sorted(POLICIES))
            raise SuiteError(path, f"expectation {position}: policy {policy!r} not in {allowed}")
        if expectation.get("kwargs", {}).get("regex") == "":
            raise SuiteError(path, f"expectation {position}: empty regex; run render_suites")
    key = tuple(meta.get("key", ()))
    query = meta.get("query")
    if checkpoint == "before_load" and (not key or key[0] != "paper_id"):
        raise SuiteError(path, "a before_load suite needs meta.key starting with paper_id")
    if checkpoint == "after_load" and not query:
        raise SuiteError(path, "an after_load suite needs meta.query")
    return SuiteFile(
        name=name,
        path=path,
        checkpoint=checkpoint,
        key=key,
        query=query,
        run_counts=bool(meta.get("run_counts", False)),
        document=document,
    )


def suite_parameters(today: dt.date, reference_count_gap_tolerance: int) -> dict[str, Any]:
    """Values for the suites' $PARAMETER placeholders, computed when a batch is validated."""
    return {
        "latest_published_on": dt.date(today.year + 1, 12, 31).isoformat(),
        "latest_year": today.year + 1,
        "reference_count_gap_tolerance": reference_count_gap_tolerance,
    }


if __name__ == "__main__":
    # `python -m flows.quality.suites` refreshes the generated parts of the suite files
    logging.basicConfig(level=logging.INFO)
    for changed in write_suites():
        log.info("rewrote %s", changed)
