"""Read-only logins for analysts: members of tomeflow_reader (migration 0008).

The password never travels as text: libpq hashes it (SCRAM) on this side, and the server
stores and logs only the hash.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql

READER_ROLE = "tomeflow_reader"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class RoleError(ValueError):
    """A reader login cannot be made with this name."""


def check_name(name: str) -> None:
    """Refuse a name no reader login may have."""
    if not _NAME.fullmatch(name):
        raise RoleError(
            f"role name {name!r}: lower-case letters, digits and _ only, 63 at most, "
            "not starting with a digit"
        )
    if name == READER_ROLE or name.startswith("pg_"):
        raise RoleError(f"role name {name!r} is reserved")


def grant_reader(conn: psycopg.Connection[Any], name: str, password: str) -> bool:
    """Make `name` a reader login with this password (or reset it); True when it was made."""
    check_name(name)
    if not password:
        raise RoleError("the password is empty")
    with conn.transaction():
        found = conn.execute(
            """select r.rolsuper or r.rolcreaterole or r.rolcreatedb or r.rolreplication
                      or exists (select 1 from pg_database d where d.datdba = r.oid)
                      or exists (select 1 from pg_class c where c.relowner = r.oid),
                      pg_has_role(r.oid, %s, 'member')
               from pg_roles r where r.rolname = %s""",
            (READER_ROLE, name),
        ).fetchone()
        if found is not None and (found[0] or not found[1]):
            raise RoleError(f"role {name!r} exists and is not a tomeflow reader: pick another name")
        hashed = conn.pgconn.encrypt_password(password.encode(), name.encode())
        role, secret = sql.Identifier(name), sql.Literal(hashed.decode())
        if found is None:
            conn.execute(
                sql.SQL("create role {} login password {} in role {}").format(
                    role, secret, sql.Identifier(READER_ROLE)
                )
            )
        else:
            conn.execute(sql.SQL("alter role {} login password {}").format(role, secret))
        # a group's settings are not inherited: each login gets the search path itself
        conn.execute(sql.SQL("alter role {} set search_path = analytics, core").format(role))
    return found is None
