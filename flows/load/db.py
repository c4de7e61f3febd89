"""Which PostgreSQL to use: DATABASE_URL when given, otherwise an embedded server."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from pathlib import Path
from types import ModuleType
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg

from flows.settings import Settings
from flows.urls import check_postgres_url, masked, password_of, scrub

__all__ = ["check_postgres_url", "masked", "password_of", "scrub"]

log = logging.getLogger(__name__)


def database_url(settings: Settings) -> str:
    """A libpq URL for the configured database, starting the embedded one if needed."""
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        if settings.database_password_file is not None:
            url = with_password(url, read_password(settings.database_password_file))
        return url
    return embedded_database_url(settings.pgdata, settings.embedded_database)


def read_password(path: Path) -> str:
    """A password file's one line (a trailing newline is not part of it)."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"cannot read the database password file {path}: {exc.strerror}") from None


def with_password(url: str, password: str) -> str:
    """The URL with this password in it, percent-quoted: '@', ':', '/' and '#' all work."""
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def embedded_database_url(pgdata: Path, dbname: str) -> str:
    """Start (or reuse) the embedded pgserver in pgdata and make sure dbname exists."""
    pgserver = _pgserver()
    pgdata.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None keeps the server up after this process exits, so the next
    # `make run` and psql find it; `tomeflow db stop` stops it.
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    admin_url = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'create database "{dbname}"')
            log.info("created embedded database %s in %s", dbname, pgdata)
    return server.get_uri(dbname)


def _pgserver() -> ModuleType:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); pgserver copes.
    # imported late: only the embedded path needs its binaries
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    return pgserver


def sqlalchemy_url(url: str) -> str:
    """The same database as a SQLAlchemy URL on the psycopg 3 driver."""
    from sqlalchemy.engine import make_url  # only the gate's after-load checks need it

    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """A URL psycopg accepts (drops a SQLAlchemy driver suffix)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


def with_user(url: str, user: str) -> str:
    """The same database as another user, with no password in the URL."""
    parts = urlsplit(libpq_url(url))
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{host}"))


def embedded_url_if_running(pgdata: Path, dbname: str) -> str | None:
    """The embedded server's URL, without starting it; None when it is not running."""
    if not (pgdata / "postmaster.pid").exists():
        return None
    return f"postgresql://postgres:@/{dbname}?host={pgdata}"


def psql_binary() -> str:
    """`psql` when one is on PATH, else the one the pgserver package ships (a full path)."""
    if shutil.which("psql"):
        return "psql"
    return str(Path(str(_pgserver().__file__)).parent / "pginstall" / "bin" / "psql")


def psql_command(url: str) -> str:
    """The psql command line that opens this database."""
    info = psycopg.conninfo.conninfo_to_dict(libpq_url(url))
    args = []
    if info.get("host"):
        args.append(f"-h {info['host']}")
    if info.get("port"):
        args.append(f"-p {info['port']}")
    args.append(f"-U {info.get('user') or os.environ.get('USER', 'postgres')}")
    args.append(str(info.get("dbname", "postgres")))
    return f"{psql_binary()} " + " ".join(args)


def stop_embedded(pgdata: Path) -> str:
    """Stop the embedded server if it runs."""
    pgserver = _pgserver()
    if not (pgdata / "postmaster.pid").exists():
        return f"embedded PostgreSQL in {pgdata} is not running"
    pgserver.get_server(pgdata, cleanup_mode="stop").cleanup()
    return f"stopped embedded PostgreSQL in {pgdata}"
