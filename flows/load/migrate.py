"""Bring a database to the newest schema with Alembic (imported only when there is work)."""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

import psycopg

from flows.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = PROJECT_ROOT / "schemas" / "migrations"
_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?([\w-]+|None)['\"]?", re.MULTILINE)


def alembic_config(url: str) -> Config:
    """An Alembic config for tomeflow's migrations, bound to url."""
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to revision."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Undo migrations down to revision."""
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def ensure_schema(url: str) -> None:
    """Upgrade to head, unless the database is there already (one query, no Alembic import)."""
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("select version_num from alembic_version").fetchone()
    except psycopg.errors.UndefinedTable:
        row = None
    if row is None or row[0] != head_revision():
        upgrade(url)


@cache
def head_revision() -> str:
    """The newest revision among schemas/migrations/versions (the one nothing revises)."""
    revisions, revised = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = {m.group(1): m.group(2) for m in _REVISION.finditer(text)}
        revisions.add(found["revision"])
        revised.add(found.get("down_revision"))
    heads = revisions - revised
    if len(heads) != 1:
        raise RuntimeError(f"schemas/migrations has {len(heads)} heads: {sorted(heads)}")
    return heads.pop()
