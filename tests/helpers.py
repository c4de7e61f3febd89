"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from flows.assemble import assemble_paper
from flows.fetch.rawstore import RawStore
from flows.fetch.stage import bodies_to_read
from flows.records import FulltextState, PaperLoad, PaperRecord, QuarantineRow, StoredPaper
from flows.settings import PROJECT_ROOT
from flows.tables import CORE_TABLES

REAL_SEED = PROJECT_ROOT / "seeds" / "PMC12809390.md"
REAL_FULLTEXT = Path(__file__).parent / "data" / "fulltext" / "PMC12809390.md"
PUBLISHER = "https://tomesphere.com"


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one query."""
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params or None).fetchall()


def snapshot(
    url: str, tables: tuple[str, ...] = CORE_TABLES, exclude: tuple[str, ...] = ()
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (without the excluded columns), in a stable order."""
    out = {}
    with psycopg.connect(url) as conn:
        for table in tables:
            schema, name = table.split(".")
            columns = [
                c
                for (c,) in conn.execute(
                    """select column_name from information_schema.columns
                       where table_schema = %s and table_name = %s order by ordinal_position""",
                    (schema, name),
                )
                if c not in exclude
            ]
            rows = conn.execute(f"select {', '.join(columns)} from {table}").fetchall()
            out[table] = sorted(rows, key=repr)
    return out


def write_seed(folder: Path, name: str, text: str, base_url: str) -> Path:
    """Write a seed page whose URLs point at base_url (a local test server) instead of the web."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text.replace(PUBLISHER, base_url), encoding="utf-8")
    return path


def assemble_from_store(
    paper: PaperRecord,
    state: FulltextState,
    before: StoredPaper | None,
    store: RawStore,
    force: bool = False,
) -> tuple[PaperLoad, list[QuarantineRow]]:
    """One paper through the fetch stage's body reading and assemble, as a batch takes it."""
    stored = {} if before is None else {paper.paper_id: before}
    bodies = bodies_to_read([paper], {paper.paper_id: state}, stored, store, force)
    return assemble_paper(paper, state, before, bodies, force)


def _stat(path: Path) -> list[str] | None:
    """The fields of a /proc/<pid>/stat after the command name (state first); None if gone."""
    try:
        return path.read_text().rsplit(")", 1)[1].split()
    except OSError:  # ended meanwhile
        return None


def process_alive(pid: int) -> bool:
    """Whether pid runs (Linux /proc; an exited process nobody has reaped yet does not)."""
    fields = _stat(Path(f"/proc/{pid}/stat"))
    return fields is not None and fields[0] != "Z"


def child_processes(pid: int) -> list[int]:
    """The pids whose parent is pid (Linux /proc)."""
    return [
        int(stat.parent.name)
        for stat in Path("/proc").glob("[0-9]*/stat")
        if (fields := _stat(stat)) is not None and int(fields[1]) == pid
    ]
