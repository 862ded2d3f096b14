"""The SQL store's frequent statements, run on the database driver itself.

Why not SQLAlchemy for these: around one statement, a call through it costs a
pool checkout (and, on PostgreSQL, the pre-ping round trip that checks the
connection), a ``BEGIN``, a ``ROLLBACK`` at check-in, and the processing of
every parameter of every row.  For a point read that is several times the
``SELECT`` itself, and for a bulk save more than the driver's
``executemany``.  Schema work, the id counter and any dialect other than
SQLite files and PostgreSQL stay on SQLAlchemy (:mod:`gc3session.stores.sql`).

Connections
-----------
Each thread of a store has a connection of its own, made by the store's
engine (so the engine's ``connect`` events configure it: WAL, ``synchronous``,
the busy timeout; ``synchronous_commit``), detached from the engine's pool and
put in autocommit mode.  A lone statement is then a transaction of its own,
which is atomic and, at full durability, durable when it returns: one round
trip for a point read, a single-record save or a removal.  Several statements
run between an explicit ``BEGIN`` (``BEGIN IMMEDIATE`` on SQLite: the write
lock is taken at once, as the store's other writes take it) and ``COMMIT``,
and any error rolls them back before it is raised.  A PostgreSQL connection
found broken (the server restarted, a network cut) is dropped and the call is
made once more on a new one, which is what the engine's pre-ping did for the
pooled connections.

SQLite in memory is left out: every connection to ``:memory:`` is a database
of its own.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy.engine import Engine

_T = TypeVar("_T")
#: Above this many ids, a select of (nearly) the whole table reads the whole table.
_MANY = 2000
#: Columns every store row has, in the order of :meth:`RawSql.row`.
COLUMNS = ("id", "data", "state", "cls", "summary")


class RawSql:
    """The frequent statements of one store table, on per-thread driver connections.

    :param engine: returns the store's engine (made lazily by the store).
    :param dialect: ``"sqlite"`` or ``"postgresql"``.
    :param table: the table's name, quoted for the dialect.
    """

    def __init__(self, engine: Callable[[], Engine], dialect: str, table: str) -> None:
        self._engine = engine
        self.sqlite = dialect == "sqlite"
        mark = "?" if self.sqlite else "%s"
        names = ", ".join(COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
        self.upsert = (f"INSERT INTO {table} ({names}) VALUES ({', '.join([mark] * len(COLUMNS))})"
                       f" ON CONFLICT (id) DO UPDATE SET {updates}")
        self.read_one = f"SELECT data FROM {table} WHERE id = {mark}"
        self._table = table
        self._mark = mark
        self._begin = "BEGIN IMMEDIATE" if self.sqlite else "BEGIN"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Any] = []

    # --- statements ---------------------------------------------------------
    def select(self, columns: str, ids: list[str] | None) -> list[tuple[Any, ...]]:
        """``SELECT columns`` of every row, or of the rows of ``ids`` (in chunks of 500).

        Several chunks are read in one transaction, so they see one snapshot.
        """
        query = f"SELECT {columns} FROM {self._table}"
        if ids is None:
            return self.run(lambda cursor: _fetch(cursor, query, ()))
        if len(ids) > _MANY and self._mostly_all(ids):
            # a session asking for (nearly) every row: one scan, filtered here, instead of a
            # query per 500 ids (and the rows come in the order they were written)
            wanted = set(ids)
            return [row for row in self.run(lambda cursor: _fetch(cursor, query, ()))
                    if row[0] in wanted]
        if not self.sqlite:  # one array parameter, however many ids
            return self.run(lambda cursor: _fetch(cursor, f"{query} WHERE id = ANY(%s)", (ids,)))
        chunks = [ids[i:i + 500] for i in range(0, len(ids), 500)]

        def read(cursor: Any) -> list[tuple[Any, ...]]:
            rows: list[tuple[Any, ...]] = []
            for chunk in chunks:
                rows.extend(_fetch(cursor, f"{query} WHERE {self._in(len(chunk))}",
                                   self._in_params(chunk)))
            return rows

        return self.run(read, transaction=len(chunks) > 1, write=False)

    def _mostly_all(self, ids: list[str]) -> bool:
        """Whether ``ids`` are at least half of the rows (the highest rowid bounds the count
        on SQLite; PostgreSQL's planner estimate of the table's rows)."""
        if self.sqlite:
            query = f"SELECT max(rowid) FROM {self._table}"
        else:
            query = ("SELECT reltuples FROM pg_class WHERE oid ="
                     f" to_regclass('{self._table.replace(chr(39), chr(39) * 2)}')")
        rows = self.run(lambda cursor: _fetch(cursor, query, ()))
        size = rows[0][0] if rows and rows[0][0] is not None else 0
        return 0 <= size <= 2 * len(ids)

    def fetch_one(self, pid: str) -> tuple[Any, ...] | None:
        """The ``data`` of the row ``pid`` (as a 1-tuple), or None: one statement."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is not None:
            try:
                return cursor.execute(self.read_one, (pid,)).fetchone()  # type: ignore[no-any-return]
            except Exception:  # run() says what is wrong, and replaces a broken connection
                pass
        return self.run(lambda cursor: cursor.execute(self.read_one, (pid,)).fetchone())

    def delete(self, ids: list[str]) -> None:
        """Delete the rows of ``ids``, as one transaction."""
        chunks = [ids[i:i + 500] for i in range(0, len(ids), 500)]

        def delete(cursor: Any) -> None:
            for chunk in chunks:
                cursor.execute(f"DELETE FROM {self._table} WHERE {self._in(len(chunk))}",
                               self._in_params(chunk))

        self.run(delete, transaction=len(chunks) > 1)

    def upsert_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert or replace ``rows`` (tuples in :data:`COLUMNS` order), as one transaction."""
        if len(rows) == 1:
            self.run(lambda cursor: cursor.execute(self.upsert, rows[0]))
        else:
            self.run(lambda cursor: cursor.executemany(self.upsert, rows), transaction=True)

    def _in(self, n: int) -> str:
        if self.sqlite:
            return f"id IN ({', '.join('?' * n)})"
        return "id = ANY(%s)"

    def _in_params(self, ids: list[str]) -> Any:
        return ids if self.sqlite else (ids,)

    # --- connections and transactions --------------------------------------
    def run(self, work: Callable[[Any], _T], *, transaction: bool = False,
            write: bool = True) -> _T:
        """``work(cursor)`` on this thread's connection, in a transaction if asked.

        A transaction that fails is rolled back before the error is raised.
        A PostgreSQL connection that turns out broken is replaced once.
        """
        for attempt in (1, 2):
            conn = self._connection()
            try:
                if not transaction:
                    return work(self._local.cursor)
                with self._transaction(write) as cursor:
                    return work(cursor)
            except Exception:
                if attempt == 1 and _broken(conn):
                    self._drop(conn)
                    continue
                raise
        raise AssertionError("unreachable")  # the loop returns or raises

    @contextlib.contextmanager
    def _transaction(self, write: bool) -> Iterator[Any]:
        cursor = self._local.cursor
        cursor.execute(self._begin if write else "BEGIN")
        try:
            yield cursor
        except BaseException:
            with contextlib.suppress(Exception):  # the error that got us here is the one to raise
                cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    def _connection(self) -> Any:
        """This thread's connection; its one cursor (reused: making one costs more than a
        point read) is ``self._local.cursor``."""
        conn: Any = getattr(self._local, "conn", None)
        if conn is None:
            fairy = self._engine().raw_connection()
            fairy.detach()  # ours alone from now on: never handed to another user of the pool
            conn = fairy.dbapi_connection
            if not self.sqlite:
                conn.autocommit = True  # SQLite's already is (isolation_level None)
            with self._lock:
                self._connections.append(conn)
            self._local.cursor = conn.cursor()
            self._local.conn = conn
        return conn

    def _drop(self, conn: Any) -> None:
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = self._local.cursor = None
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        """Close every connection (of every thread)."""
        with self._lock:
            connections, self._connections = self._connections, []
        self._local = threading.local()
        for conn in connections:
            with contextlib.suppress(Exception):  # closing a dead connection is no news
                conn.close()

    def forget(self) -> None:
        """In a forked child: drop the parent's connections without closing them (they are its)."""
        with self._lock:
            self._connections = []
        self._local = threading.local()


def _fetch(cursor: Any, query: str, params: Any) -> list[tuple[Any, ...]]:
    cursor.execute(query, params)
    return cursor.fetchall()  # type: ignore[no-any-return]


def _broken(conn: Any) -> bool:
    """True for a PostgreSQL connection that can no longer be used (SQLite's never break)."""
    return bool(getattr(conn, "broken", False) or getattr(conn, "closed", False) is True)


__all__ = ["COLUMNS", "RawSql"]
