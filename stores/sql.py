"""A store that keeps records as rows of one SQL table (SQLAlchemy 2 Core).

The tables, and how they are created and migrated, are described in
:mod:`gc3session.stores.sqlschema`; connections, transactions and retries in
:mod:`gc3session.stores.sqlengine`.  A save writes the object and every
child saved with it in one transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
from typing import Any, Callable, Iterator, Mapping, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from gc3session.exceptions import (
    IdAllocationError,
    InvalidType,
    InvalidValue,
    LoadError,
    RecordNotFoundError,
    StoreUnavailableError,
    StoreWriteError,
)
from gc3session.persistence.idfactory import IdFactory
from gc3session.persistence.record import Record, summary_dicts
from gc3session.persistence.recordstore import RecordStore
from gc3session.persistence.url import StoreUrl
from gc3session.stores.sqlengine import MEMORY, RETRY_DEADLINE, WRITE, make_engine, retry
from gc3session.stores.sqlraw import RawSql
from gc3session.stores.sqlschema import (
    BUILT_IN_COLUMNS,
    DEFAULT_TABLE,
    META_TABLE,
    define_tables,
    set_up,
    validate_table_name,
)

_T = TypeVar("_T")

log = logging.getLogger(__name__)

ExtraFields = Mapping[sa.Column, Callable[[Any], Any]]  # type: ignore[type-arg]


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

    ``directory`` and ``protocol`` are accepted and ignored: GC3Pie passes
    the filesystem store's arguments to every store, and the pickle protocol
    of records is pinned.  Any other keyword argument is a ``TypeError`` (a
    misspelt ``readonly`` must not give a writable store).

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
                 idfactory: IdFactory | None = None, directory: Any = None,
                 protocol: Any = None) -> None:
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
            if column.name in BUILT_IN_COLUMNS:
                raise InvalidValue(f"extra field {column.name!r} clashes with a built-in column")
        self._extra_fields = dict(extra_fields or {})
        # SQLite folds table names to one case: one table, one set of meta rows.
        self._meta_name = self.table_name.lower() if self.is_sqlite else self.table_name
        self._create = create and not readonly
        self._engine_obj: Engine | None = None
        self._raw_obj: RawSql | None = None
        self._raw_checked = False  # whether _raw_obj was decided (None: this database has no raw path)
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
    def _raw(self) -> RawSql | None:
        """The driver-level statements (:mod:`gc3session.stores.sqlraw`), or None where they
        are not used (other dialects, SQLite in memory): SQLAlchemy then runs everything."""
        if not self._raw_checked:
            engine = self._engine
            memory = self.is_sqlite and self.url.path in ("", MEMORY)
            if not memory and engine.dialect.name in ("sqlite", "postgresql"):
                self._raw_obj = RawSql(lambda: self._engine, engine.dialect.name,
                                       engine.dialect.identifier_preparer.quote(self.table_name))
            self._raw_checked = True
        return self._raw_obj

    def _db_errors(self) -> tuple[type[Exception], ...]:
        """What a failed statement raises: SQLAlchemy's errors, and the driver's own."""
        return (sa.exc.SQLAlchemyError, self._engine.dialect.loaded_dbapi.Error)

    @property
    def is_sqlite(self) -> bool:
        """True for SQLite databases (one writer at a time, file-based)."""
        return self.url.base_scheme == "sqlite"

    def _make_engine(self) -> Engine:
        return make_engine(self.url, readonly=self.readonly, durable=self.durable,
                           create=self._create, busy_timeout=self.busy_timeout)

    def _init_schema(self) -> None:
        table, meta = define_tables(self.table_name, self._extra_fields)
        with self._writing() as conn:
            set_up(conn, table, meta, meta_name=self._meta_name, create=self._create,
                   readonly=self.readonly, location=self.location("-"))
        self._table_obj, self._meta_obj = table, meta

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction (SQLite: it holds the write lock from its first statement)."""
        engine = self._engine_obj if self._engine_obj is not None else self._engine
        with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            yield conn

    def _retry(self, operation: Callable[[], _T], step: str = "commit") -> _T:
        """Run ``operation`` again while it fails with a transient error (:func:`sqlengine.retry`).

        The engine is made first if need be: it says which driver errors to retry, and
        the first statement of a store (a point read or write on the driver's own
        connection) must be retried like any other.
        """
        return retry(operation, engine=self._engine, deadline=self.retry_deadline, step=step,
                     location=self.location("-"), table=self.table_name)

    # --- primitives --------------------------------------------------------------
    def location(self, pid: str) -> str:
        """``table <name> in <url>`` (password hidden), for messages."""
        return self._location

    @functools.cached_property
    def _location(self) -> str:
        # rendered once: every statement passes it to the retry loop, for its error messages
        return f"table {self.table_name} in {self.url.without_fragment()}"

    def _allocate_ids(self, n: int) -> int:
        meta = self._meta_table()
        key = f"next_id:{self._meta_name}"

        def allocate() -> int:
            with self._writing() as conn:
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
        row = {"id": str(record.id), "data": record.data, "state": record.state, "cls": record.cls,
               "summary": record.summary.decode("ascii")}
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
        raw = None if self._extra_fields else self._raw
        if raw is not None:
            # the driver's executemany on plain tuples: no per-row parameter processing
            rows = [(str(r.id), r.data, r.state, r.cls, r.summary.decode("ascii")) for r in records]

            def write() -> None:
                raw.upsert_rows(rows)
        else:
            dict_rows = [self._row(r) for r in records]
            table = self._tables

            def write() -> None:
                with self._writing() as conn:
                    upsert = self._upsert(conn)
                    if upsert is not None:
                        conn.execute(upsert, dict_rows)
                    else:
                        conn.execute(table.delete().where(table.c.id.in_([r["id"] for r in dict_rows])))
                        conn.execute(table.insert(), dict_rows)

        try:
            self._retry(write)
        except self._db_errors() as err:
            raise StoreWriteError(f"cannot write to {self.location('-')}: {err}",
                                  step="commit", table=self.table_name) from err

    def _read(self, pid: str) -> bytes:
        raw = self._raw
        if raw is not None:
            def read() -> Any:
                return raw.fetch_one(pid)
        else:
            table = self._tables

            def read() -> Any:
                with self._engine.connect() as conn:
                    return conn.execute(sa.select(table.c.data).where(table.c.id == pid)).first()

        try:
            try:
                row = read()  # once as it is: the retry loop costs more than a point read
            except self._db_errors():
                row = self._retry(read, step="read")  # again while transient; else raised again
        except self._db_errors() as err:
            raise LoadError(f"cannot read {pid} from {self.location(pid)}: {err}",
                            id=pid, location=self.location(pid), cause=str(err)) from err
        if row is None:
            raise RecordNotFoundError(f"no record {pid} in {self.location(pid)}",
                                      id=pid, location=self.location(pid), cause="missing")
        return bytes(row[0])

    def _select(self, names: tuple[str, ...], pids: list[str] | None,
                failure: str) -> list[tuple[Any, ...]]:
        """The columns ``names`` of every row, or of the rows of ``pids`` (absent ones left out).

        :raises LoadError: ``failure`` (what could not be read) and why.
        """
        raw = self._raw
        if raw is not None:
            def read() -> list[tuple[Any, ...]]:
                return raw.select(", ".join(names), pids)
        else:
            table = self._tables
            query = sa.select(*[table.c[name] for name in names])

            def read() -> list[tuple[Any, ...]]:
                with self._engine.connect() as conn:
                    if pids is None:
                        return [tuple(row) for row in conn.execute(query)]
                    return [tuple(row) for chunk in _chunks(pids, 500)
                            for row in conn.execute(query.where(table.c.id.in_(chunk)))]

        try:
            return self._retry(read, step="read")
        except self._db_errors() as err:
            raise LoadError(f"cannot read {failure} {self.location('-')}: {err}",
                            location=self.location("-"), cause=str(err)) from err

    def _read_many(self, pids: list[str]) -> dict[str, bytes]:
        return {pid: bytes(data) for pid, data in self._select(("id", "data"), pids, "from")}

    def _delete(self, pids: list[str]) -> None:
        raw = self._raw
        if raw is not None:
            def delete() -> None:
                raw.delete(pids)
        else:
            table = self._tables

            def delete() -> None:
                with self._writing() as conn:
                    for chunk in _chunks(pids, 500):
                        conn.execute(table.delete().where(table.c.id.in_(chunk)))

        try:
            self._retry(delete)
        except self._db_errors() as err:
            raise StoreWriteError(f"cannot delete from {self.location('-')}: {err}",
                                  step="commit", table=self.table_name) from err

    def _list_ids(self) -> list[str]:
        return [pid for (pid,) in self._select(("id",), None, "the records of")]

    def _states(self, pids: list[str] | None) -> dict[str, str | None]:
        return dict(self._select(("id", "state"), pids, "the states of"))  # type: ignore[arg-type]

    def _summaries(self, pids: list[str] | None) -> dict[str, dict[str, Any]]:
        """From the ``cls``, ``state`` and ``summary`` columns (older rows: from their headers)."""
        rows = self._select(("id", "cls", "state", "summary"), pids, "the summaries of")
        known = [row for row in rows if row[3] is not None]
        result = dict(zip((row[0] for row in known), summary_dicts(
            [(cls or "", state, summary.encode("ascii")) for _, cls, state, summary in known])))
        older = [pid for pid, _, _, summary in rows if summary is None]
        if older:
            result.update(super()._summaries(older))
        return result

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
        if self._raw_obj is not None:
            self._raw_obj.forget()
        if self._engine_obj is not None:
            self._engine_obj.dispose(close=False)
            self._engine_obj = None

    def close(self) -> None:
        """Close every connection: the pooled ones and the driver-level ones of every thread."""
        if self._raw_obj is not None:
            self._raw_obj.close()
        if self._engine_obj is not None:
            self._engine_obj.dispose()
            self._engine_obj = None


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def make_sqlstore(url: StoreUrl, **kwargs: Any) -> SqlStore:
    """Registry constructor for ``sqlite``, ``postgresql`` and ``mysql`` URLs."""
    return SqlStore(url, **kwargs)


__all__ = ["SqlStore", "make_sqlstore", "validate_table_name"]
