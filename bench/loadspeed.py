"""The load stage's speed beside a raw COPY and a dlt merge of the very same rows.

After a first run, every core/raw table (and ops.runs, which they refer to) is dumped from the
run's database: `COPY ... TO STDOUT` text for the raw COPY, JSON lines for dlt. The raw COPY
writes the dump into a second, freshly migrated database, in foreign-key order, in one
transaction; dlt merges the JSON lines into a third database from an environment of its own
(bench/.venv-dlt, made once: dlt is not a dependency of tomeflow).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from flows.tables import CORE_TABLES, TABLES

COMPUTED = {t.name: {c.name for c in t.computed} for t in TABLES}

BENCH_DIR = Path(__file__).resolve().parent
DLT_VENV = BENCH_DIR / ".venv-dlt"
DLT_SCRIPT = BENCH_DIR / "dlt_merge.py"
DLT_REQUIREMENT = "dlt[postgres]"

# foreign keys first: ops.runs before everything, then the core tables in flows/tables.py's
# order (core.papers before its children, entities before their aliases)
LOAD_ORDER = ("ops.runs", *CORE_TABLES, "raw.fetches")


@dataclass(frozen=True, slots=True)
class DumpedTable:
    """One table's rows, dumped to files: every column, as the table holds them."""

    name: str
    columns: dict[str, str]  # name -> information_schema data_type, in table order
    primary_key: list[str]
    rows: int
    copy_file: Path  # COPY text format
    json_file: Path  # one JSON object per line (row_to_json)

    def ident(self) -> sql.Identifier:
        return sql.Identifier(*self.name.split("."))

    def column_list(self) -> sql.Composable:
        return sql.SQL(", ").join(map(sql.Identifier, self.columns))


def _columns(conn: psycopg.Connection[tuple[str, ...]], name: str) -> dict[str, str]:
    # not the columns PostgreSQL computes (core.sections.search): a load pays for computing
    # them, and so does the raw COPY
    schema, table = name.split(".")
    rows = conn.execute(
        """select column_name, data_type from information_schema.columns
           where table_schema = %s and table_name = %s and is_generated = 'NEVER'
           order by ordinal_position""",
        (schema, table),
    ).fetchall()
    computed = COMPUTED.get(name, ())
    return {column: data_type for column, data_type in rows if column not in computed}


def _primary_key(conn: psycopg.Connection[tuple[str, ...]], name: str) -> list[str]:
    schema, table = name.split(".")
    rows = conn.execute(
        """select k.column_name
           from information_schema.table_constraints c
           join information_schema.key_column_usage k
             on k.constraint_schema = c.constraint_schema and k.constraint_name = c.constraint_name
           where c.constraint_type = 'PRIMARY KEY' and c.table_schema = %s and c.table_name = %s
           order by k.ordinal_position""",
        (schema, table),
    ).fetchall()
    return [column for (column,) in rows]


def dump_tables(url: str, folder: Path, target: str) -> list[DumpedTable]:
    """Dump every table of LOAD_ORDER from url into folder (COPY text and JSON lines).

    Every column the target database's table has too: while the schema is being changed, a
    database migrated later may lack a column (or have a new one) that url's has.
    """
    folder.mkdir(parents=True, exist_ok=True)
    dumped = []
    with psycopg.connect(target) as conn:
        wanted = {name: _columns(conn, name) for name in LOAD_ORDER}
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for name in LOAD_ORDER:
            columns = {c: t for c, t in _columns(conn, name).items() if c in wanted[name]}
            table = DumpedTable(
                name,
                columns,
                _primary_key(conn, name),
                0,
                folder / f"{name}.copy",
                folder / f"{name}.jsonl",
            )
            to_stdout = sql.SQL("copy {} ({}) to stdout").format(table.ident(), table.column_list())
            with table.copy_file.open("wb") as out, cur.copy(to_stdout) as copy:
                for chunk in copy:
                    out.write(chunk)
            as_json = sql.SQL(
                "copy (select row_to_json(t)::text from (select {} from {}) t) to stdout"
            )
            rows = 0
            with (
                table.json_file.open("w", encoding="utf-8") as out,
                cur.copy(as_json.format(table.column_list(), table.ident())) as copy,
            ):
                copy.set_types(["text"])
                for (line,) in copy.rows():
                    out.write(line)
                    out.write("\n")
                    rows += 1
            dumped.append(
                DumpedTable(
                    name, columns, table.primary_key, rows, table.copy_file, table.json_file
                )
            )
    return dumped


def _copy_in(cur: psycopg.Cursor[Any], target: sql.Composable, table: DumpedTable) -> None:
    from_stdin = sql.SQL("copy {} ({}) from stdin").format(target, table.column_list())
    with table.copy_file.open("rb") as data, cur.copy(from_stdin) as copy:
        while chunk := data.read(1 << 20):
            copy.write(chunk)


def raw_copy(url: str, tables: Sequence[DumpedTable]) -> tuple[int, float, dict[str, float]]:
    """COPY the dumped rows into url's (migrated, empty) tables.

    Returns (rows, seconds, seconds per table).
    """
    per_table: dict[str, float] = {}
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            for table in tables:
                began = time.perf_counter()
                _copy_in(cur, table.ident(), table)
                per_table[table.name] = time.perf_counter() - began
        seconds = time.perf_counter() - start
    return sum(t.rows for t in tables), seconds, per_table


def copy_without_search(url: str, tables: Sequence[DumpedTable]) -> float:
    """Seconds to COPY core.sections' dumped rows into a copy of the table whose `search`
    is a plain (empty) column: the raw COPY's core.sections time minus this is what
    PostgreSQL spends on the search tsvector and its GIN index."""
    sections = next((t for t in tables if t.name == "core.sections"), None)
    if sections is None:
        return 0.0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        # LIKE copies the columns, not the table's trigger: search stays null
        cur.execute(
            "create temporary table plain_sections "
            "(like core.sections including defaults including constraints including indexes)"
        )
        began = time.perf_counter()
        _copy_in(cur, sql.Identifier("plain_sections"), sections)
        seconds = time.perf_counter() - began
        conn.rollback()
    return seconds


@dataclass(frozen=True, slots=True)
class DltResult:
    """A dlt merge's figures, or why there are none."""

    rows: int = 0
    seconds: float = 0.0
    steps: dict[str, float] | None = None  # extract, normalize, load seconds
    version: str = ""
    file_format: str = ""
    error: str | None = None


def _tail(text: str, lines: int = 12) -> str:
    """The exception a traceback ends with, else the last lines."""
    errors = re.findall(r"^[\w.]+(?:Error|Exception|Exit)\b.*$", text, re.MULTILINE)
    if errors:
        return errors[-1]
    return "\n".join(text.strip().splitlines()[-lines:])


def dlt_python() -> tuple[Path | None, str]:
    """bench/.venv-dlt's python with dlt importable (made the first time); else (None, why)."""
    python = DLT_VENV / "bin" / "python"
    probe = [str(python), "-c", "import dlt, psycopg2; print(dlt.__version__)"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python, "present"
    base = shutil.which("python3.11") or str(getattr(sys, "_base_executable", sys.executable))
    steps = [
        [base, "-m", "venv", "--clear", str(DLT_VENV)],
        [str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"],
        [str(python), "-m", "pip", "install", "-q", DLT_REQUIREMENT],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0 and "upgrade" not in step:
            return None, f"`{' '.join(step)}` failed: {_tail(done.stderr or done.stdout)}"
    if subprocess.run(probe, capture_output=True).returncode != 0:
        return None, f"dlt is still not importable in {DLT_VENV}"
    return python, "installed now"


def dlt_merge(
    url: str, tables: Sequence[DumpedTable], work: Path, file_format: str | None
) -> DltResult:
    """Merge the dumped JSON lines into url with dlt, in dlt's own environment."""
    python, how = dlt_python()
    if python is None:
        return DltResult(error=how)
    work.mkdir(parents=True, exist_ok=True)
    spec = {
        "url": url,
        "pipelines_dir": str(work / "pipelines"),
        "file_format": file_format,
        "tables": [
            {
                "name": t.name,
                "file": str(t.json_file),
                "primary_key": t.primary_key,
                "columns": t.columns,
            }
            for t in tables
        ],
    }
    spec_file = work / "spec.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TOMEFLOW_"))},
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DLT_DATA_DIR": str(work / "dlt-data"),
    }
    done = subprocess.run(
        [str(python), str(DLT_SCRIPT), str(spec_file)],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
    )
    if done.returncode != 0:
        return DltResult(error=f"dlt merge failed: {_tail(done.stderr or done.stdout)}")
    try:
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return DltResult(error=f"dlt merge printed no figures: {_tail(done.stdout)}")
    return DltResult(
        rows=int(figures["rows"]),
        seconds=float(figures["seconds"]),
        steps=figures.get("steps"),
        version=str(figures.get("dlt_version", "")),
        file_format=str(figures.get("file_format", "")),
    )
