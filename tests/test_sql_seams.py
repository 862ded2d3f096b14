"""SqlStore seams: extra fields that cannot be computed, reads under locks.

On real SQLite files and a real PostgreSQL server (``pg_url``): an
``extra_fields`` function that raises leaves NULL in its column and the
object saved; reads retry "locked" errors like writes do, and give up with
:class:`StoreLockedError` after the deadline.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from _store_objects import Item, Node

from gc3session.exceptions import StoreLockedError
from gc3session.stores.sql import SqlStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh database: an SQLite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/x.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def opened() -> Iterator[list[SqlStore]]:
    """Stores a test opens, closed at its end."""
    stores: list[SqlStore] = []
    yield stores
    for store in stores:
        store.close()


def _engine(url: str) -> sa.Engine:
    """An engine of the test's own (plain SQLAlchemy, psycopg 3 for PostgreSQL)."""
    url = url.split("#")[0].split("?")[0]
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def _rows(url: str, statement: str) -> list[tuple[Any, ...]]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(statement))]
    finally:
        engine.dispose()


# --- extra fields -------------------------------------------------------------------------------

def _label(node: Node) -> str:
    if node.name == "bad":
        raise RuntimeError("no label for this one")
    return node.name.upper()


def test_extra_field_that_raises_stores_null_and_saves(db_url: str, opened: list[SqlStore],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """The task is saved, its column is NULL, the other columns are set; a warning names column and id."""
    fields = {sa.Column("label", sa.String(20)): _label,
              sa.Column("kids", sa.Integer): lambda node: len(node.children)}
    store = SqlStore(db_url, extra_fields=fields)
    opened.append(store)
    root = Node("root")
    root.children = [Node("good"), Node("bad"), Node("good too")]
    for child in root.children:
        child.parent = root
    with caplog.at_level(logging.WARNING, logger="gc3session.stores.sql"):
        root_id = store.save(root)
    bad_id = root.children[1].persistent_id
    rows = {row[0]: row[1:] for row in _rows(db_url, "SELECT id, label, kids, cls FROM store")}
    assert rows == {root_id: ("ROOT", 3, "_store_objects:Node"),
                    root.children[0].persistent_id: ("GOOD", 0, "_store_objects:Node"),
                    bad_id: (None, 0, "_store_objects:Node"),
                    root.children[2].persistent_id: ("GOOD TOO", 0, "_store_objects:Node")}
    warnings = [r for r in caplog.records if r.name == "gc3session.stores.sql"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert "'label'" in message and bad_id in message and "no label for this one" in message
    reader = SqlStore(db_url)
    opened.append(reader)
    loaded = reader.load(root_id)
    assert [c.name for c in loaded.children] == ["good", "bad", "good too"]
    assert loaded.children[1].parent is loaded and loaded.children[1].persistent_id == bad_id


def test_extra_field_fixed_later_fills_the_column(db_url: str, opened: list[SqlStore],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The NULL is not sticky: the next save whose function succeeds writes the value."""
    store = SqlStore(db_url, extra_fields={sa.Column("label", sa.String(20)): _label})
    opened.append(store)
    node = Node("bad")
    with caplog.at_level(logging.WARNING, logger="gc3session.stores.sql"):
        pid = store.save(node)
    assert _rows(db_url, "SELECT label FROM store") == [(None,)]
    node.name = "fixed"
    store.save(node)
    assert _rows(db_url, "SELECT id, label FROM store") == [(pid, "FIXED")]
    assert len([r for r in caplog.records if r.name == "gc3session.stores.sql"]) == 1


# --- reads under locks --------------------------------------------------------------------------

def _with_lock_timeout(url: str, ms: int) -> str:
    """The URL with a PostgreSQL ``lock_timeout`` for its connections (as a DBA may set per role)."""
    return f"{url}?options=-c%20lock_timeout%3D{ms}"


def _hold_table_lock(url: str, seconds: float) -> tuple[Any, threading.Timer]:
    """Take ACCESS EXCLUSIVE on ``store`` (what ALTER TABLE or VACUUM FULL takes) for ``seconds``."""
    engine = _engine(url)
    conn = engine.connect()
    conn.exec_driver_sql("LOCK TABLE store IN ACCESS EXCLUSIVE MODE")
    timer = threading.Timer(seconds, conn.commit)
    timer.start()
    return (engine, conn), timer


def _release(holder: tuple[Any, Any], timer: threading.Timer) -> None:
    timer.cancel()
    timer.join()
    engine, conn = holder
    conn.rollback()
    conn.close()
    engine.dispose()


def test_reads_wait_for_a_table_lock_held_elsewhere(pg_url: str, opened: list[SqlStore]) -> None:
    """load, load_many, list and states retry a lock timeout and succeed once the lock is gone."""
    writer = SqlStore(pg_url)
    opened.append(writer)
    ids = writer.save_many([Item(n) for n in range(3)])
    reader = SqlStore(_with_lock_timeout(pg_url, 50))
    opened.append(reader)
    assert sorted(reader.list()) == sorted(ids)  # connected before the lock is taken
    reads = {"load": lambda: reader.load(ids[0]).payload,
             "load_many": lambda: sorted(o.payload for o in reader.load_many(ids).values()),
             "list": lambda: sorted(reader.list()),
             "states": lambda: sorted(reader.states(ids))}
    expected = {"load": 0, "load_many": [0, 1, 2], "list": sorted(ids), "states": sorted(ids)}
    for name, read in reads.items():
        reader.invalidate_cache()
        holder, timer = _hold_table_lock(pg_url, 0.5)
        started = time.monotonic()
        try:
            assert read() == expected[name], name
        finally:
            _release(holder, timer)
        assert time.monotonic() - started >= 0.4, name  # it did wait for the lock


def test_reads_past_the_deadline_raise_store_locked(pg_url: str, opened: list[SqlStore]) -> None:
    """A lock held longer than retry_deadline: StoreLockedError (step "read") naming the table."""
    class Hurried(SqlStore):
        retry_deadline = 0.3

    writer = SqlStore(pg_url)
    opened.append(writer)
    pid = writer.save(Item("kept"))
    reader = Hurried(_with_lock_timeout(pg_url, 20))
    opened.append(reader)
    reader.list()
    holder, timer = _hold_table_lock(pg_url, 30.0)
    try:
        for read in (lambda: reader.load(pid), lambda: reader.load_many([pid]), reader.list,
                     lambda: reader.states([pid])):
            reader.invalidate_cache()
            started = time.monotonic()
            with pytest.raises(StoreLockedError) as info:
                read()
            assert time.monotonic() - started < 5
            assert info.value.step == "read" and info.value.table == "store"
            assert "lock timeout" in str(info.value)
    finally:
        _release(holder, timer)
    assert reader.load(pid).payload == "kept"


_WRITER = """
import sys, time
from _store_objects import Item
from gc3session.stores.sql import SqlStore

class Impatient(SqlStore):
    busy_timeout = 0.001

store = Impatient(sys.argv[1])
ids = store.list()
print("READY", flush=True)
until = time.monotonic() + float(sys.stdin.readline())
n = 0
while time.monotonic() < until:
    store.save(Item("new %d" % n))
    store.replace(ids[n % len(ids)], Item(n))
    n += 1
    if n % 25 == 0:
        store.close()  # a new connection, as a new process would open
store.close()
print(n, flush=True)
"""


def test_sqlite_reader_among_writer_processes_never_sees_locked(tmp_path: Any,
                                                                opened: list[SqlStore]) -> None:
    """4 writer processes that barely wait for locks, and a reader that reads for 3 seconds.

    The writers reconnect now and then, as new processes do.  Readers of a
    WAL database are not blocked by writers once connected; what can find
    the database locked is opening a connection while another process
    cleans up or recovers the WAL.  The reader must never see an error.
    """
    class Impatient(SqlStore):
        busy_timeout = 0.001

    url = f"sqlite:///{tmp_path}/x.db"
    seed = Impatient(url)
    ids = seed.save_many([Item(n) for n in range(20)])
    seed.close()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, url], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(4)]
    reader = Impatient(url)
    opened.append(reader)
    reads = [lambda i: reader.load(ids[i % len(ids)]), lambda i: reader.load_many(ids),
             lambda i: reader.list(), lambda i: reader.states(ids)]
    errors: list[str] = []
    done = 0
    try:
        for writer in writers:  # all started and connected, so that all write while the reader reads
            assert writer.stdout is not None and writer.stdout.readline() == "READY\n"
        reader.list()  # connected too (opening a store takes the write lock, to set up the schema)
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write("3.0\n")
            writer.stdin.flush()
        until = time.monotonic() + 3.0
        while time.monotonic() < until:
            for read in reads:
                try:
                    read(done)
                    done += 1
                except Exception as err:  # counted, not raised: the message shows how many
                    errors.append(f"{type(err).__name__}: {err}")
                reader.invalidate_cache()
        writes = []
        for writer in writers:
            out, err = writer.communicate(timeout=120)
            assert writer.returncode == 0, err[-2000:]
            writes.append(int(out))
    finally:
        for writer in writers:  # also those a failed assertion left unread: no pipe left open
            if writer.poll() is None:
                writer.kill()
            for stream in (writer.stdin, writer.stdout, writer.stderr):
                if stream is not None:
                    stream.close()
            writer.wait()
    print(f"reader: {done} reads, {len(errors)} failed; writers: {writes} save+replace each")
    assert not errors, f"{len(errors)} failed reads of {done + len(errors)}: {errors[:3]}"
    assert done > 20 and sum(writes) > 0, (done, writes)


def test_a_store_used_again_after_close_retries_its_first_locked_statement(tmp_path: Any,
                                                                         opened: list[SqlStore]) -> None:
    """After ``close()`` the store has no engine until a statement needs one; the retry of that
    first statement still knows the driver's errors ("database is locked" on the driver's own
    connection, as a writer process that reconnects now and then meets it).  It used to be
    raised at once as a StoreWriteError."""
    store = SqlStore(f"sqlite:///{tmp_path}/x.db")
    opened.append(store)
    pid = store.save(Item(0))
    store.close()
    attempts: list[int] = []

    def locked_once() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert store._retry(locked_once) == "done" and len(attempts) == 2
    assert store.load(pid).payload == 0
