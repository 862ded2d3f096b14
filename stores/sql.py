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
migrate (a table of a newer version is refused, not written over);
``next_id:<table>`` is the id counter, advanced by an ``UPDATE`` in its own
transaction (the row lock makes it unique across processes and hosts).  A
counter row that is missing for a table that already holds records starts
above the highest id in it, so ids are never handed out twice.  SQLite
table names are case-insensitive, so its keys use the lower-case name: the
tables ``Runs`` and ``runs`` are one table with one counter.  Missing
``extra_fields`` columns are added with ``ALTER TABLE``.

Transactions and retries
------------------------
A save writes the object and every child saved with it in one transaction.
SQLite runs in WAL mode with a busy timeout, writers take the lock at
``BEGIN IMMEDIATE`` (so two writers never deadlock on a lock upgrade), and
"database is locked" is retried with back-off until a deadline, then raised
as :class:`~gc3session.exceptions.StoreLockedError`.  PostgreSQL
serialization failures, deadlocks and lock timeouts are retried the same
way.  Reads (one id, many ids, the list of ids, the states) retry as writes
do, and raise ``StoreLockedError`` with ``step="read"`` past the deadline:
a SQLite connection can find the database locked when it opens, and a
PostgreSQL ``lock_timeout`` cancels a read waiting behind ``ALTER TABLE``.

``durable=False`` sets SQLite ``synchronous=OFF`` / PostgreSQL
``synchronous_commit=off``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
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
from gc3session.exceptions import (
    IdAllocationError,
    InvalidTableName,
    InvalidType,
    InvalidValue,
    LoadError,
    RecordNotFoundError,
    StoreLockedError,
    StoreUnavailableError,
    StoreWriteError,
)
from gc3session.persistence.idfactory import IdFactory, is_valid_id, seqno_of
from gc3session.persistence.record import Record
from gc3session.persistence.recordstore import RecordStore
from gc3session.persistence.url import StoreUrl

SCHEMA_VERSION = 1
META_TABLE = "gc3session_meta"
DEFAULT_TABLE = "store"
#: SQLite's name for a database that lives in memory only.
MEMORY = ":memory:"
RETRY_DEADLINE = 60.0
#: PostgreSQL advisory lock key taken while creating or migrating tables.
_SCHEMA_LOCK_KEY = 0x6763_3373  # "gc3s"
_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_T = TypeVar("_T")

log = logging.getLogger(__name__)

ExtraFields = Mapping[sa.Column, Callable[[Any], Any]]  # type: ignore[type-arg]


def validate_table_name(name: Any) -> str:
    """Accept only plain identifiers as table names (no quoting tricks, no injection).

    >>> validate_table_name("runs_2024")
    'runs_2024'
    >>> validate_table_name("x; DROP TABLE store")
    Traceback (most recent call last):
    ...
    gc3session.exceptions.InvalidTableName: invalid SQL table name 'x; DROP TABLE store': ...
    """
    # The meta table's name is refused in any case: SQLite and MySQL fold case.
    if not isinstance(name, str) or not _TABLE_RE.fullmatch(name) or name.lower() == META_TABLE:
        raise InvalidTableName(
            f"invalid SQL table name {name!r}: use letters, digits and _"
            " (at most 63, not starting with a digit)", table=name)
    return name


class SqlStore(RecordStore):
    """Save objects as rows of an SQL table.

    :param url: ``sqlite:///path``, ``postgresql[+driver]://...`` or
        ``mysql[+driver]://...``; a ``#table=NAME`` fragment names the table.
    :param table_name: the table (overrides the URL fragment; default ``store``).
    :param extra_fields: ``{sqlalchemy.Column: function(obj)}``; each column is
        set to ``function(obj)`` on every save, so plain SQL can query it.  A
        function that raises leaves NULL in its column and logs a warning
        (logger ``gc3session.stores.sql``) naming the column and the id; the object is
        saved all the same.
    :param create: create the tables if they are missing (default True).
    :param durable: commit to stable storage before returning (default True).
    :param trusted: False restricts loads to allow-listed classes.
    :param readonly: every write raises; opening changes no file.
    :param idfactory: hands out ids (default: the counter row of the table).

    Any other keyword argument is a ``TypeError`` (a misspelt ``readonly``
    must not give a writable store).

    The engine is created lazily at first use and dropped by :meth:`pre_fork`,
    so a store can be built before a ``fork()`` and used after it.

    ``busy_timeout`` (SQLite's wait for a lock, per attempt) and
    ``retry_deadline`` (how long "database is locked" is retried in all) are
    class attributes, so a subclass can tune them for its workload.
    """

    busy_timeout: float = 30.0
    retry_deadline: float = RETRY_DEADLINE

    def __init__(self, url: "str | StoreUrl", table_name: str | None = None,
                 extra_fields: ExtraFields | None = None, create: bool = True, *,
                 durable: bool = True, trusted: bool = True, readonly: bool = False,
                 idfactory: IdFactory | None = None) -> None:
        parsed = StoreUrl.parse(url)
        if parsed.base_scheme == "file":
            raise InvalidValue(f"SqlStore needs a database URL, not {parsed}", url=str(parsed))
        self.table_name = validate_table_name(table_name or parsed.table or DEFAULT_TABLE)
        if table_name is not None and parsed.table != table_name:
            parsed = dataclasses.replace(parsed, fragment=f"table={table_name}")
        super().__init__(parsed, durable=durable, trusted=trusted, readonly=readonly,
                         idfactory=idfactory)
        for column, func in (extra_fields or {}).items():
            if not isinstance(column, sa.Column) or not callable(func):
                raise InvalidType("extra_fields must map sqlalchemy.Column objects to functions")
            if column.name in ("id", "data", "state", "cls"):
                raise InvalidValue(f"extra field {column.name!r} clashes with a built-in column")
        self._extra_fields = dict(extra_fields or {})
        # SQLite folds table names to one case: one table, one set of meta rows.
        self._meta_name = self.table_name.lower() if self.is_sqlite else self.table_name
        self._create = create and not readonly
        self._engine_obj: Engine | None = None
        self._point_read_sql: str | None = None
        self._upsert_stmt: Any = None
        self._table_obj: sa.Table | None = None
        self._meta_obj: sa.Table | None = None

    def exists(self) -> bool:
        """Whether the table is there (for SQLite: the database file, and the table in it).

        Creates nothing: a vanished store is reported by the session, never
        made anew.  One connection, closed again.

        :raises StoreUnavailableError: if the database cannot be reached.
        """
        if self.is_sqlite and self.url.path not in ("", MEMORY) and not os.path.isfile(self.url.path):
            return False
        engine = self._engine_obj or self._make_engine()
        try:
            with engine.connect() as conn:
                return bool(sa.inspect(conn).has_table(self.table_name))
        except sa.exc.SQLAlchemyError as err:
            raise StoreUnavailableError(
                f"cannot open {self.location('-')}: {getattr(err, 'orig', None) or err}",
                url=str(self.url), table=self.table_name) from err
        finally:
            if engine is not self._engine_obj:
                engine.dispose()

    def describe(self) -> dict[str, Any]:
        """The store's kind (the database), URL (password hidden) and table."""
        return {"kind": self.url.base_scheme, "url": str(self.url), "location": self.location("-"),
                "table": self.table_name}

    @functools.cached_property
    def home(self) -> str:
        """The database URL without password, and the table (as the database names it)."""
        return f"{self.url.without_fragment().without_password().render()}#table={self._meta_name}"

    # --- engine and schema ----------------------------------------------------
    @property
    def _engine(self) -> Engine:
        if self._engine_obj is None:
            try:
                self._engine_obj = self._make_engine()
            except (ImportError, sa.exc.NoSuchModuleError) as err:
                raise StoreUnavailableError(
                    f"cannot open {self.location('-')}: its database driver is not installed"
                    f" ({err}); install it (PostgreSQL: pip install 'gc3session[postgresql]';"
                    " MySQL: pip install PyMySQL and use mysql+pymysql://)",
                    url=str(self.url), table=self.table_name) from err
            try:
                self._retry(self._init_schema)
            except sa.exc.SQLAlchemyError as err:
                self._engine_obj.dispose()
                self._engine_obj = None
                raise StoreUnavailableError(
                    f"cannot open {self.location('-')}: {getattr(err, 'orig', None) or err}",
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
        for key, value in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
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
                    f"{'' if wal else '&immutable=1'}&uri=true",
                    connect_args={"timeout": self.busy_timeout})
            else:
                if self.url.path not in ("", MEMORY):
                    if not self._create and not os.path.exists(self.url.path):
                        # SQLite would create an empty database here: a store that
                        # should hold records must never be re-created silently.
                        raise StoreUnavailableError(
                            f"database file {self.url.path} does not exist (create=False);"
                            " restore it, or fix the store URL", url=str(self.url),
                            table=self.table_name, path=self.url.path)
                    fsio.make_dirs(os.path.dirname(self.url.path), durable=self.durable)
                    fsio.create_private(self.url.path)  # SQLite gives -wal/-shm the same mode
                engine = sa.create_engine(self._sqlalchemy_url(),
                                           connect_args={"timeout": self.busy_timeout})
            synchronous = "FULL" if self.durable else "OFF"
            busy_ms = int(self.busy_timeout * 1000)
            journal = "" if self.readonly else "PRAGMA journal_mode=WAL"

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cursor = dbapi_conn.cursor()
                if journal:
                    cursor.execute(journal)
                cursor.execute(f"PRAGMA synchronous={synchronous}")
                cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
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
            # has_table() follows the database's own rules for names (SQLite:
            # case-insensitive), where a lookup in get_table_names() would not.
            had_table = inspector.has_table(self.table_name)
            had_meta = inspector.has_table(META_TABLE)
            if not had_table or (not had_meta and not self.readonly):
                if not self._create:
                    raise LoadError(f"no table {self.table_name} in {self.url} (create=False)",
                                    location=self.location("-"), cause="missing table")
                metadata.create_all(conn, checkfirst=True)
            if had_table and not self.readonly:
                # Schema migration: a table made by an earlier version, by GC3Pie
                # (no ``cls``) or without a newly declared extra field.
                have = {c["name"].lower() for c in inspector.get_columns(self.table_name)}
                for column in table.columns:
                    if column.name.lower() not in have:
                        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
                        conn.exec_driver_sql(
                            f"ALTER TABLE {conn.dialect.identifier_preparer.quote(self.table_name)}"
                            f" ADD COLUMN {ddl}")
            if had_meta:
                self._check_schema_version(conn, meta)
            if not self.readonly:
                self._init_meta_rows(conn, table, meta, had_table)
        self._table_obj, self._meta_obj = table, meta

    def _check_schema_version(self, conn: Connection, meta: sa.Table) -> None:
        """Refuse a table whose schema is newer than this version knows (never write over it)."""
        version = conn.execute(sa.select(meta.c.value)
                               .where(meta.c.key == f"schema:{self._meta_name}")).scalar()
        if version is not None and version > SCHEMA_VERSION:
            raise StoreUnavailableError(
                f"{self.location('-')} has schema version {version}; this gc3session reads"
                f" version {SCHEMA_VERSION} and older: upgrade gc3session",
                url=str(self.url), table=self.table_name)

    def _init_meta_rows(self, conn: Connection, table: sa.Table, meta: sa.Table,
                        had_table: bool) -> None:
        """Insert the schema and counter rows that are missing.

        A missing counter of a table that already has records (a table
        copied in, a meta table dropped) starts above its highest id number.
        """
        key = f"schema:{self._meta_name}"
        if conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).first() is None:
            conn.execute(meta.insert().values(key=key, value=SCHEMA_VERSION))
        key = f"next_id:{self._meta_name}"
        if conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).first() is None:
            first = 1
            if had_table:
                seqnos = [seqno_of(pid) for (pid,) in conn.execute(sa.select(table.c.id))
                          if is_valid_id(pid)]
                first = max(seqnos, default=0) + 1
            conn.execute(meta.insert().values(key=key, value=first))

    def _lock_schema(self, conn: Connection) -> None:
        """Serialize schema set-up between processes (two ``CREATE TABLE`` would clash).

        SQLite's ``BEGIN IMMEDIATE`` already holds the write lock; PostgreSQL
        takes a transaction-scoped advisory lock, released at commit.
        """
        if conn.dialect.name == "postgresql" and not self.readonly:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                         {"key": _SCHEMA_LOCK_KEY})

    # --- retries ---------------------------------------------------------------
    def _retry(self, operation: Callable[[], _T], step: str = "commit") -> _T:
        """Run ``operation``, again with back-off while it fails with a transient error.

        Writes and reads alike go through here: a SQLite connection can find
        the database locked when it opens (another process is cleaning up
        or recovering the WAL) as well as when it writes, and a PostgreSQL
        ``lock_timeout`` can cancel a read as well as a write.  ``operation``
        must start from scratch each time (a fresh connection, nothing kept
        from the failed attempt).  Errors of the driver's own cursor (point
        reads bypass SQLAlchemy) count like SQLAlchemy's.

        :raises StoreLockedError: with ``step`` once ``retry_deadline`` has
            passed; any other error is raised as it is, at once.
        """
        deadline = time.monotonic() + self.retry_deadline
        delay = 0.005
        while True:
            try:
                return operation()
            except self._database_errors() as err:
                if not _is_transient(err):
                    raise
                if time.monotonic() > deadline:
                    raise StoreLockedError(
                        f"{self.location('-')}: database stayed busy for {self.retry_deadline:g}s:"
                        f" {getattr(err, 'orig', None) or err}", step=step,
                        table=self.table_name) from err
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)

    def _database_errors(self) -> tuple[type[Exception], ...]:
        """SQLAlchemy's errors, and the driver's once the engine exists."""
        if self._engine_obj is None:
            return (sa.exc.DBAPIError,)
        return (sa.exc.DBAPIError, self._engine_obj.dialect.loaded_dbapi.Error)

    # --- primitives --------------------------------------------------------------
    def location(self, pid: str) -> str:
        """``table <name> in <url>`` (password hidden), for messages."""
        return f"table {self.table_name} in {self.url.without_fragment()}"

    def _allocate_ids(self, n: int) -> int:
        meta = self._meta_table()
        key = f"next_id:{self._meta_name}"

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

    def _peek_counter(self) -> int | None:
        meta = self._meta_table()
        key = f"next_id:{self._meta_name}"

        def peek() -> int | None:
            with self._engine.connect() as conn:
                value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
            return None if value is None else int(value)

        return self._retry(peek)

    def _meta_table(self) -> sa.Table:
        self._engine  # noqa: B018 - initializes the schema
        assert self._meta_obj is not None
        return self._meta_obj

    def _row(self, record: Record) -> dict[str, Any]:
        """The column values of one record, extra fields included.

        An extra field whose function raises is stored as NULL and a warning
        names the column and the id: the column is a convenience for plain
        SQL, and a task must not go unsaved (its state lost) because one of
        them cannot be computed.  GC3Pie does the same.
        """
        row = {"id": str(record.id), "data": record.data, "state": record.state, "cls": record.cls}
        for column, func in self._extra_fields.items():
            if record.obj is None:
                row[column.name] = None
                continue
            try:
                row[column.name] = func(record.obj)
            except Exception as err:  # user-supplied function: any error it raises
                log.warning("extra field %r of %s in %s could not be computed (%s: %s);"
                            " stored NULL", column.name, record.id, self.location(str(record.id)),
                            type(err).__name__, err)
                row[column.name] = None
        return row

    def _upsert(self, conn: Connection) -> Any:
        """The "insert or replace" statement of this dialect, built once.

        Building it costs more than running it for a single-row save (one
        column proxy per column per call), and it is the same every time.
        """
        if self._upsert_stmt is None:
            self._upsert_stmt = self._build_upsert(conn)
        return None if self._upsert_stmt is False else self._upsert_stmt

    def _build_upsert(self, conn: Connection) -> Any:
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
        return False  # no upsert in this dialect: delete, then insert

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
        # A lone SELECT by primary key runs on the driver's cursor with an SQL
        # string built once: no BEGIN/ROLLBACK round trips and no statement
        # compiled per call, which is most of the cost of a point read through
        # SQLAlchemy (a single statement gets a snapshot of its own anyway).
        engine = self._engine
        if self._point_read_sql is None:
            mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
            self._point_read_sql = (f"SELECT data FROM"
                                    f" {engine.dialect.identifier_preparer.quote(self.table_name)}"
                                    f" WHERE id = {mark}")
        sql = self._point_read_sql

        def read() -> Any:
            with engine.connect() as conn:
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.execute(sql, (pid,))
                    return cursor.fetchone()
                finally:
                    cursor.close()

        try:
            row = self._retry(read, step="read")
        except (sa.exc.SQLAlchemyError, engine.dialect.loaded_dbapi.Error) as err:
            raise LoadError(f"cannot read {pid} from {self.location(pid)}: {err}",
                            id=pid, location=self.location(pid), cause=str(err)) from err
        if row is None:
            raise RecordNotFoundError(f"no record {pid} in {self.location(pid)}",
                                      id=pid, location=self.location(pid), cause="missing")
        return bytes(row[0])

    def _read_many(self, pids: list[str]) -> dict[str, bytes]:
        table = self._tables

        def read() -> dict[str, bytes]:
            result: dict[str, bytes] = {}
            with self._engine.connect().execution_options(gc3session_readonly=True) as conn:
                for chunk in _chunks(pids, 500):
                    query = sa.select(table.c.id, table.c.data).where(table.c.id.in_(chunk))
                    result.update((row[0], bytes(row[1])) for row in conn.execute(query))
            return result

        try:
            return self._retry(read, step="read")
        except sa.exc.SQLAlchemyError as err:
            raise LoadError(f"cannot read from {self.location('-')}: {err}",
                            location=self.location("-"), cause=str(err)) from err

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

        def read() -> list[str]:
            with self._engine.connect().execution_options(gc3session_readonly=True) as conn:
                return [row[0] for row in conn.execute(sa.select(table.c.id))]

        try:
            return self._retry(read, step="read")
        except sa.exc.SQLAlchemyError as err:
            raise LoadError(f"cannot list the records of {self.location('-')}: {err}",
                            location=self.location("-"), cause=str(err)) from err

    def _states(self, pids: list[str] | None) -> dict[str, str | None]:
        table = self._tables
        query = sa.select(table.c.id, table.c.state)

        def read() -> dict[str, str | None]:
            result: dict[str, str | None] = {}
            with self._engine.connect().execution_options(gc3session_readonly=True) as conn:
                if pids is None:
                    result.update((row[0], row[1]) for row in conn.execute(query))
                for chunk in _chunks(pids or [], 500):
                    query_chunk = query.where(table.c.id.in_(chunk))
                    result.update((row[0], row[1]) for row in conn.execute(query_chunk))
            return result

        try:
            return self._retry(read, step="read")
        except sa.exc.SQLAlchemyError as err:
            raise LoadError(f"cannot read the states of {self.location('-')}: {err}",
                            location=self.location("-"), cause=str(err)) from err

    def pre_fork(self) -> None:
        """Close the connections: none must be shared with a forked child.

        They are closed (not just forgotten) because this runs in the parent
        before the fork: nothing is shared yet, and a forgotten connection
        would stay open until garbage collection.
        """
        self.close()

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


def make_sqlstore(url: StoreUrl, **kwargs: Any) -> SqlStore:
    """Registry constructor for ``sqlite``, ``postgresql`` and ``mysql`` URLs."""
    return SqlStore(url, **kwargs)


__all__ = ["SqlStore", "make_sqlstore", "validate_table_name"]
