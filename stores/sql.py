"""A store that keeps records as rows of one SQL table (SQLAlchemy 2 Core).

Schema (version 1)
------------------
``<table>`` (default ``store``)::

    id     VARCHAR(255) PRIMARY KEY   -- "Prefix.N"
    data   BLOB                       -- the record bytes (serialization module)
    state  VARCHAR(128) NULL, indexed -- execution.state of tasks, for plain SQL
    cls    VARCHAR(255)               -- module:qualname of the object's class
    ...    one column per ``extra_fields`` entry

``gc3session_meta``, shared by every store table of a database::

    key    VARCHAR(255) PRIMARY KEY   -- "schema:<table>", "next_id:<table>"
    value  BIGINT

``schema:<table>`` holds the schema version so that later versions can
migrate; ``next_id:<table>`` is the id counter, advanced by an ``UPDATE`` in
its own transaction (the row lock makes it unique across processes and
hosts).  Missing ``extra_fields`` columns are added with ``ALTER TABLE``.

Transactions and retries
------------------------
A save writes the object and every child saved with it in one transaction.
SQLite runs in WAL mode with a busy timeout, writers take the lock at
``BEGIN IMMEDIATE`` (so two writers never deadlock on a lock upgrade), and
"database is locked" is retried with back-off until a deadline, then raised
as :class:`~gc3session.exceptions.StoreLockedError`.  PostgreSQL
serialization failures and deadlocks are retried the same way.

``durable=False`` sets SQLite ``synchronous=OFF`` / PostgreSQL
``synchronous_commit=off``.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import time
import urllib.parse
from typing import Any, Callable, Mapping, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from gc3session import fsio
from gc3session.exceptions import (IdAllocationError, InvalidTableName, InvalidType,
                                   InvalidValue, LoadError, RecordNotFoundError,
                                   SerializationError, StoreLockedError, StoreUnavailableError,
                                   StoreWriteError)
from gc3session.persistence.serialization import Record
from gc3session.persistence.store import Store
from gc3session.persistence.url import StoreUrl

SCHEMA_VERSION = 1
META_TABLE = "gc3session_meta"
DEFAULT_TABLE = "store"
RETRY_DEADLINE = 60.0
#: PostgreSQL advisory lock key taken while creating or migrating tables.
_SCHEMA_LOCK_KEY = 0x6763_3373  # "gc3s"
_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_T = TypeVar("_T")

ExtraFields = Mapping[sa.Column, Callable[[Any], Any]]  # type: ignore[type-arg]


def validate_table_name(name: Any) -> str:
    """Accept only plain identifiers as table names (no quoting tricks, no injection).

    >>> validate_table_name("runs_2024")
    'runs_2024'
    >>> validate_table_name("x; DROP TABLE store")
    Traceback (most recent call last):
    ...
    gc3session.exceptions.InvalidTableName: invalid SQL table name 'x; DROP TABLE store': use letters, digits and _ (at most 63, not starting with a digit)
    """
    if not isinstance(name, str) or not _TABLE_RE.fullmatch(name) or name == META_TABLE:
        raise InvalidTableName(
            f"invalid SQL table name {name!r}: use letters, digits and _"
            " (at most 63, not starting with a digit)", table=name)
    return name


class SqlStore(Store):
    """Save objects as rows of an SQL table.

    :param url: ``sqlite:///path``, ``postgresql[+driver]://...`` or
        ``mysql[+driver]://...``; a ``#table=NAME`` fragment names the table.
    :param table_name: the table (overrides the URL fragment; default ``store``).
    :param extra_fields: ``{sqlalchemy.Column: function(obj)}``; each column is
        set to ``function(obj)`` on every save, so plain SQL can query it.
    :param create: create the tables if they are missing (default True).
    :param durable: commit to stable storage before returning (default True).
    :param trusted: False restricts loads to allow-listed classes.

    The engine is created lazily at first use and dropped by :meth:`pre_fork`,
    so a store can be built before a ``fork()`` and used after it.
    """

    def __init__(self, url: "str | StoreUrl", table_name: str | None = None,
                 extra_fields: ExtraFields | None = None, create: bool = True, *,
                 durable: bool = True, trusted: bool = True, readonly: bool = False,
                 **ignored: Any) -> None:
        parsed = StoreUrl.parse(url)
        if parsed.base_scheme == "file":
            raise InvalidValue(f"SqlStore needs a database URL, not {parsed}", url=str(parsed))
        self.table_name = validate_table_name(table_name or parsed.table or DEFAULT_TABLE)
        if table_name is not None and parsed.table != table_name:
            parsed = dataclasses.replace(parsed, fragment=f"table={table_name}")
        super().__init__(parsed, durable=durable, trusted=trusted, readonly=readonly)
        for column, func in (extra_fields or {}).items():
            if not isinstance(column, sa.Column) or not callable(func):
                raise InvalidType("extra_fields must map sqlalchemy.Column objects to functions")
            if column.name in ("id", "data", "state", "cls"):
                raise InvalidValue(f"extra field {column.name!r} clashes with a built-in column")
        self._extra_fields = dict(extra_fields or {})
        self._create = create and not readonly
        self._engine_obj: Engine | None = None
        self._table_obj: sa.Table | None = None
        self._meta_obj: sa.Table | None = None

    # --- engine and schema ----------------------------------------------------
    @property
    def _engine(self) -> Engine:
        if self._engine_obj is None:
            self._engine_obj = self._make_engine()
            try:
                self._retry(self._init_schema)
            except sa.exc.SQLAlchemyError as err:
                self._engine_obj.dispose()
                self._engine_obj = None
                raise StoreUnavailableError(
                    f"cannot open {self.location('-')}: {err.orig or err}",
                    url=str(self.url), table=self.table_name) from err
            except BaseException:
                self._engine_obj.dispose()
                self._engine_obj = None
                raise
        return self._engine_obj

    @property
    def _tables(self) -> sa.Table:
        """The store table (gc3libs name), created or reflected on first use."""
        self._engine  # noqa: B018 - initializes the schema
        assert self._table_obj is not None
        return self._table_obj

    @property
    def is_sqlite(self) -> bool:
        """True for SQLite databases (one writer at a time, file-based)."""
        return self.url.base_scheme == "sqlite"

    def _sqlalchemy_url(self) -> sa.URL:
        url = self.url
        if self.is_sqlite:
            return sa.URL.create(url.scheme, database=url.path or None)
        drivername = url.scheme
        if drivername == "postgresql":
            drivername = "postgresql+psycopg"  # psycopg 3, our declared driver
        query: dict[str, Any] = {}
        for key, _, value in (p.partition("=") for p in url.query.split("&") if p):
            query.setdefault(key, []).append(value)
        return sa.URL.create(drivername, username=url.username, password=url.password,
                             host=url.host, port=url.port, database=url.database or None,
                             query={k: v[0] if len(v) == 1 else tuple(v) for k, v in query.items()})

    def _make_engine(self) -> Engine:
        if self.is_sqlite:
            if self.readonly:
                # With no -wal file no writer is active: "immutable" reads create no
                # -wal/-shm files either, so a read-only open leaves the directory as it
                # was.  With one, a writer may be working: plain read-only mode, which
                # needs the shared-memory file to see its commits.
                wal = os.path.exists(self.url.path + "-wal")
                engine = sa.create_engine(
                    f"sqlite:///file:{urllib.parse.quote(self.url.path)}?mode=ro"
                    f"{'' if wal else '&immutable=1'}&uri=true", connect_args={"timeout": 30})
            else:
                if self.url.path:
                    fsio.make_dirs(os.path.dirname(self.url.path), durable=self.durable)
                    fsio.create_private(self.url.path)  # SQLite gives -wal/-shm the same mode
                engine = sa.create_engine(self._sqlalchemy_url(), connect_args={"timeout": 30})
            synchronous = "FULL" if self.durable else "OFF"
            journal = "" if self.readonly else "PRAGMA journal_mode=WAL"

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cursor = dbapi_conn.cursor()
                if journal:
                    cursor.execute(journal)
                cursor.execute(f"PRAGMA synchronous={synchronous}")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                readonly = self.readonly or conn.get_execution_options().get("gc3session_readonly")
                conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")
            return engine
        engine = sa.create_engine(self._sqlalchemy_url(), pool_pre_ping=True)
        if not self.durable and self.url.base_scheme == "postgresql":
            @event.listens_for(engine, "connect")
            def _on_pg_connect(dbapi_conn: Any, _record: Any) -> None:
                with dbapi_conn.cursor() as cursor:
                    cursor.execute("SET synchronous_commit = off")
                dbapi_conn.commit()
        return engine

    def _data_type(self) -> Any:
        return sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")

    def _init_schema(self) -> None:
        engine = self._engine_obj
        assert engine is not None
        metadata = sa.MetaData()
        extra = [col._copy() for col in self._extra_fields]
        table = sa.Table(
            self.table_name, metadata,
            sa.Column("id", sa.String(255), primary_key=True),
            sa.Column("data", self._data_type(), nullable=False),
            sa.Column("state", sa.String(128), nullable=True, index=True),
            sa.Column("cls", sa.String(255), nullable=True),
            *extra,
        )
        meta = sa.Table(META_TABLE, metadata,
                        sa.Column("key", sa.String(255), primary_key=True),
                        sa.Column("value", sa.BigInteger, nullable=False))
        with engine.begin() as conn:
            self._lock_schema(conn)
            inspector = sa.inspect(conn)
            existing = set(inspector.get_table_names())
            if self.table_name not in existing or META_TABLE not in existing:
                if not self._create:
                    raise LoadError(f"no table {self.table_name} in {self.url} (create=False)",
                                    location=self.location("-"), cause="missing table")
                metadata.create_all(conn, checkfirst=True)
            elif not self.readonly:
                have = {c["name"] for c in inspector.get_columns(self.table_name)}
                for column in table.columns:
                    if column.name not in have:  # schema migration: new extra field
                        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
                        conn.exec_driver_sql(
                            f"ALTER TABLE {conn.dialect.identifier_preparer.quote(self.table_name)}"
                            f" ADD COLUMN {ddl}")
            for key, value in ((f"schema:{self.table_name}", SCHEMA_VERSION),
                               (f"next_id:{self.table_name}", 1)):
                if self.readonly:
                    break
                if conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).first() is None:
                    conn.execute(meta.insert().values(key=key, value=value))
        self._table_obj, self._meta_obj = table, meta

    def _lock_schema(self, conn: Connection) -> None:
        """Serialize schema set-up between processes (two ``CREATE TABLE`` would clash).

        SQLite's ``BEGIN IMMEDIATE`` already holds the write lock; PostgreSQL
        takes a transaction-scoped advisory lock, released at commit.
        """
        if conn.dialect.name == "postgresql" and not self.readonly:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                         {"key": _SCHEMA_LOCK_KEY})

    # --- retries ---------------------------------------------------------------
    def _retry(self, operation: Callable[[], _T]) -> _T:
        deadline = time.monotonic() + RETRY_DEADLINE
        delay = 0.005
        while True:
            try:
                return operation()
            except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.DBAPIError) as err:
                if not _is_transient(err):
                    raise
                if time.monotonic() > deadline:
                    raise StoreLockedError(
                        f"{self.location('-')}: database stayed busy for {RETRY_DEADLINE:.0f}s:"
                        f" {err.orig}", step="commit", table=self.table_name) from err
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)

    # --- primitives --------------------------------------------------------------
    def location(self, pid: str) -> str:
        """``table <name> in <url>`` (password hidden), for messages."""
        return f"table {self.table_name} in {self.url.without_fragment()}"

    def _allocate_ids(self, n: int) -> int:
        meta = self._meta_table()
        key = f"next_id:{self.table_name}"

        def allocate() -> int:
            with self._engine.begin() as conn:
                conn.execute(meta.update().where(meta.c.key == key)
                             .values(value=meta.c.value + n))
                value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
            if value is None:
                raise IdAllocationError(f"id counter row {key!r} is missing in {self.url}",
                                        table=META_TABLE, step="allocate")
            return int(value) - n

        return self._retry(allocate)

    def _meta_table(self) -> sa.Table:
        self._engine  # noqa: B018 - initializes the schema
        assert self._meta_obj is not None
        return self._meta_obj

    def _row(self, record: Record) -> dict[str, Any]:
        row = {"id": str(record.id), "data": record.data, "state": record.state, "cls": record.cls}
        for column, func in self._extra_fields.items():
            if record.obj is None:
                row[column.name] = None
                continue
            try:
                row[column.name] = func(record.obj)
            except Exception as err:  # user-supplied function: report which one failed
                raise SerializationError(
                    f"extra field {column.name!r} of {record.id} could not be computed: {err}",
                    id=record.id, column=column.name) from err
        return row

    def _upsert(self, conn: Connection) -> Any:
        table = self._tables
        update_cols = [c.name for c in table.columns if c.name != "id"]
        dialect = conn.dialect.name
        if dialect in ("sqlite", "postgresql"):
            module = sqlite if dialect == "sqlite" else postgresql
            stmt = module.insert(table)
            return stmt.on_conflict_do_update(
                index_elements=[table.c.id],
                set_={name: stmt.excluded[name] for name in update_cols})
        if dialect in ("mysql", "mariadb"):
            stmt = mysql.insert(table)
            return stmt.on_duplicate_key_update({name: stmt.inserted[name] for name in update_cols})
        return None

    def _write(self, records: list[Record]) -> None:
        if not records:
            return
        rows = [self._row(r) for r in records]
        table = self._tables

        def write() -> None:
            with self._engine.begin() as conn:
                upsert = self._upsert(conn)
                if upsert is not None:
                    conn.execute(upsert, rows)
                else:
                    conn.execute(table.delete().where(table.c.id.in_([r["id"] for r in rows])))
                    conn.execute(table.insert(), rows)

        try:
            self._retry(write)
        except sa.exc.SQLAlchemyError as err:
            raise StoreWriteError(f"cannot write to {self.location('-')}: {err}",
                                  step="commit", table=self.table_name) from err

    def _read(self, pid: str) -> bytes:
        table = self._tables
        try:
            with self._engine.connect().execution_options(gc3session_readonly=True) as conn:
                row = conn.execute(sa.select(table.c.data).where(table.c.id == pid)).first()
        except sa.exc.SQLAlchemyError as err:
            raise LoadError(f"cannot read {pid} from {self.location(pid)}: {err}",
                            id=pid, location=self.location(pid), cause=str(err)) from err
        if row is None:
            raise RecordNotFoundError(f"no record {pid} in {self.location(pid)}",
                                      id=pid, location=self.location(pid), cause="missing")
        return bytes(row[0])

    def _read_many(self, pids: list[str]) -> dict[str, bytes]:
        table = self._tables
        result: dict[str, bytes] = {}
        try:
            with self._engine.connect().execution_options(gc3session_readonly=True) as conn:
                for chunk in _chunks(pids, 500):
                    query = sa.select(table.c.id, table.c.data).where(table.c.id.in_(chunk))
                    result.update((row[0], bytes(row[1])) for row in conn.execute(query))
        except sa.exc.SQLAlchemyError as err:
            raise LoadError(f"cannot read from {self.location('-')}: {err}",
                            location=self.location("-"), cause=str(err)) from err
        return result

    def _delete(self, pids: list[str]) -> None:
        table = self._tables

        def delete() -> None:
            with self._engine.begin() as conn:
                for chunk in _chunks(pids, 500):
                    conn.execute(table.delete().where(table.c.id.in_(chunk)))

        try:
            self._retry(delete)
        except sa.exc.SQLAlchemyError as err:
            raise StoreWriteError(f"cannot delete from {self.location('-')}: {err}",
                                  step="commit", table=self.table_name) from err

    def _list_ids(self) -> list[str]:
        table = self._tables
        with self._engine.connect().execution_options(gc3session_readonly=True) as conn:
            return [row[0] for row in conn.execute(sa.select(table.c.id))]

    def _states(self, pids: list[str] | None) -> dict[str, str | None]:
        table = self._tables
        query = sa.select(table.c.id, table.c.state)
        with self._engine.connect().execution_options(gc3session_readonly=True) as conn:
            if pids is None:
                return {row[0]: row[1] for row in conn.execute(query)}
            result: dict[str, str | None] = {}
            for chunk in _chunks(pids, 500):
                result.update((row[0], row[1]) for row in conn.execute(query.where(table.c.id.in_(chunk))))
            return result

    def pre_fork(self) -> None:
        """Drop the engine: connections must not be shared with a forked child."""
        if self._engine_obj is not None:
            self._engine_obj.dispose(close=False)
            self._engine_obj = None

    def post_fork(self) -> None:
        """In the child: forget inherited connections and the parent's id block."""
        super().post_fork()
        if self._engine_obj is not None:
            self._engine_obj.dispose(close=False)
            self._engine_obj = None

    def close(self) -> None:
        """Close every pooled connection."""
        if self._engine_obj is not None:
            self._engine_obj.dispose()
            self._engine_obj = None


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _is_transient(err: sa.exc.DBAPIError) -> bool:
    """Errors worth retrying: SQLite busy/locked, PostgreSQL serialization/deadlock."""
    text = str(err.orig).lower()
    if "database is locked" in text or "database is busy" in text or "database table is locked" in text:
        return True
    sqlstate = getattr(err.orig, "sqlstate", None) or getattr(err.orig, "pgcode", None)
    return sqlstate in ("40001", "40P01", "55P03")


def make_sqlstore(url: StoreUrl, **kwargs: Any) -> SqlStore:
    """Registry constructor for ``sqlite``, ``postgresql`` and ``mysql`` URLs."""
    return SqlStore(url, **kwargs)


__all__ = ["SqlStore", "make_sqlstore", "validate_table_name"]
