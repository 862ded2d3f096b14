"""Connections of an SQL store: one SQLAlchemy engine per dialect, and retries.

Transactions and retries
------------------------
A save writes the object and every child saved with it in one transaction.
SQLite runs in WAL mode with a busy timeout; the store's write transactions
take the write lock at ``BEGIN IMMEDIATE`` (so two writers never deadlock
on a lock upgrade), while any other transaction on the engine (reads, and
SQL a user runs on ``store._engine``) begins deferred and never holds the
write lock.  "database is locked" is retried with back-off until a
deadline, then raised as :class:`~gc3session.exceptions.StoreLockedError`.
PostgreSQL serialization failures, deadlocks and lock timeouts are retried
the same way.  Reads (one id, many ids, the list of ids, the states) retry
as writes do, and raise ``StoreLockedError`` with ``step="read"`` past the
deadline: a SQLite connection can find the database locked when it opens,
and a PostgreSQL ``lock_timeout`` cancels a read waiting behind
``ALTER TABLE``.

``durable=False`` sets SQLite ``synchronous=OFF`` / PostgreSQL
``synchronous_commit=off``.
"""

from __future__ import annotations

import os
import random
import time
import urllib.parse
from typing import Any, Callable, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from gc3session import fsio
from gc3session.exceptions import StoreLockedError, StoreUnavailableError
from gc3session.persistence.url import StoreUrl

#: SQLite's name for a database that lives in memory only.
MEMORY = ":memory:"
#: How long transient errors are retried, in seconds, by default.
RETRY_DEADLINE = 60.0
#: The execution option that makes a transaction a write (``BEGIN IMMEDIATE`` on SQLite).
WRITE = "gc3session_write"
_T = TypeVar("_T")


def sqlalchemy_url(url: StoreUrl) -> sa.URL:
    """The SQLAlchemy URL of a store URL (psycopg 3 for PostgreSQL, the declared driver)."""
    if url.base_scheme == "sqlite":
        return sa.URL.create(url.scheme, database=url.path or None)
    drivername = "postgresql+psycopg" if url.scheme == "postgresql" else url.scheme
    query: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
        query.setdefault(key, []).append(value)
    return sa.URL.create(drivername, username=url.username, password=url.password,
                         host=url.host, port=url.port, database=url.database or None,
                         query={k: v[0] if len(v) == 1 else tuple(v) for k, v in query.items()})


def make_engine(url: StoreUrl, *, readonly: bool, durable: bool, create: bool,
                busy_timeout: float) -> Engine:
    """The engine of a store at ``url``.

    A read-only SQLite store changes no file: with no ``-wal`` file no writer
    is active, and "immutable" reads create no ``-wal``/``-shm`` files either;
    with one, a writer may be working, and plain read-only mode reads its
    commits through the shared-memory file.  A writable SQLite database is
    created 0600 (SQLite gives ``-wal``/``-shm`` the same mode), unless
    ``create`` is False: then a missing file is an error, never a new empty
    database.

    :raises StoreUnavailableError: for a missing SQLite file with ``create=False``.
    """
    if url.base_scheme != "sqlite":
        engine = sa.create_engine(sqlalchemy_url(url), pool_pre_ping=True)
        if not durable and url.base_scheme == "postgresql":
            @event.listens_for(engine, "connect")
            def _on_pg_connect(dbapi_conn: Any, _record: Any) -> None:
                with dbapi_conn.cursor() as cursor:
                    cursor.execute("SET synchronous_commit = off")
                dbapi_conn.commit()
        return engine
    if readonly:
        wal = os.path.exists(url.path + "-wal")
        engine = sa.create_engine(
            f"sqlite:///file:{urllib.parse.quote(url.path)}?mode=ro"
            f"{'' if wal else '&immutable=1'}&uri=true", connect_args={"timeout": busy_timeout})
    else:
        if url.path not in ("", MEMORY):
            if not create and not os.path.exists(url.path):
                raise StoreUnavailableError(
                    f"database file {url.path} does not exist (create=False); restore it, or"
                    " fix the store URL", url=str(url), path=url.path)
            fsio.make_dirs(os.path.dirname(url.path), durable=durable)
            fsio.create_private(url.path)
        engine = sa.create_engine(sqlalchemy_url(url), connect_args={"timeout": busy_timeout})
    pragmas = ([] if readonly else ["PRAGMA journal_mode=WAL"]) + [
        f"PRAGMA synchronous={'FULL' if durable else 'OFF'}",
        f"PRAGMA busy_timeout={int(busy_timeout * 1000)}"]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions begin as _on_begin says
        cursor = dbapi_conn.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # the caller asked for no transaction: a BEGIN here would never end
        write = not readonly and options.get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def retry(operation: Callable[[], _T], *, engine: Engine | None, deadline: float, step: str,
          location: str, table: str) -> _T:
    """Run ``operation``, again with back-off while it fails with a transient error.

    ``operation`` must start from scratch each time (a fresh connection,
    nothing kept from the failed attempt).  Errors of the driver's own
    cursor (point reads bypass SQLAlchemy) count like SQLAlchemy's.

    :raises StoreLockedError: with ``step`` once ``deadline`` seconds have
        passed; any other error is raised as it is, at once.
    """
    errors: tuple[type[Exception], ...] = (sa.exc.DBAPIError,) if engine is None else (
        sa.exc.DBAPIError, engine.dialect.loaded_dbapi.Error)
    give_up = time.monotonic() + deadline
    delay = 0.005
    while True:
        try:
            return operation()
        except errors as err:
            if not _is_transient(err):
                raise
            if time.monotonic() > give_up:
                raise StoreLockedError(
                    f"{location}: database stayed busy for {deadline:g}s:"
                    f" {getattr(err, 'orig', None) or err}", step=step, table=table) from err
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)


def _is_transient(err: Exception) -> bool:
    """Errors worth retrying: SQLite busy/locked, PostgreSQL serialization/deadlock/lock timeout.

    ``err`` is a SQLAlchemy error wrapping the driver's, or the driver's own.
    """
    orig = err.orig if isinstance(err, sa.exc.DBAPIError) else err
    text = str(orig).lower()
    if "database is locked" in text or "database is busy" in text or "database table is locked" in text:
        return True
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return sqlstate in ("40001", "40P01", "55P03")


__all__ = ["MEMORY", "RETRY_DEADLINE", "WRITE", "make_engine", "retry", "sqlalchemy_url"]
