"""Bring a database to the newest schema with Alembic."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from flows.settings import PROJECT_ROOT


def alembic_config(url: str) -> Config:
    """An Alembic config for tomeflow's migrations, bound to url."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "schemas" / "migrations"))
    config.attributes["database_url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to revision."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Undo migrations down to revision."""
    command.downgrade(alembic_config(url), revision)
