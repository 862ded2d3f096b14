"""SqlStore on real SQLite files and a real PostgreSQL server.

Most tests run on both (the ``db_url`` fixture); what the tests read back
they read with plain SQL over a connection of their own, as a user querying
the table would.  MySQL is covered at the URL and naming level only (no
server here).
"""

from __future__ import annotations

import gc
import hashlib
import os
import sqlite3
import threading
import warnings
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from _store_objects import Item, Node, save_in_forked_child

from gc3session.exceptions import (
    InvalidTableName,
    InvalidType,
    InvalidValue,
    LoadError,
    ReadOnlyStoreError,
    RecordNotFoundError,
    StoreLockedError,
    StoreUnavailableError,
    StoreWriteError,
)
from gc3session.persistence import make_store
from gc3session.stores.sql import SqlStore
from gc3session.stores.sqlschema import META_TABLE, SCHEMA_VERSION
from gc3session.task import Task


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh database: an SQLite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/x.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def opened() -> Iterator[list[SqlStore]]:
    """Stores a test opens, closed at its end (an open engine would leak connections)."""
    stores: list[SqlStore] = []
    yield stores
    for store in stores:
        store.close()


def _open(opened: list[SqlStore], url: str, **kwargs: Any) -> SqlStore:
    store = SqlStore(url, **kwargs)
    opened.append(store)
    return store


def _sql(url: str, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one statement over a connection of the test's own; return the rows (if any)."""
    url = url.split("#")[0]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _columns(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url.split("#")[0].replace("postgresql://", "postgresql+psycopg://"))
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _has_table(url: str, table: str) -> bool:
    engine = sa.create_engine(url.split("#")[0].replace("postgresql://", "postgresql+psycopg://"))
    try:
        return bool(sa.inspect(engine).has_table(table))
    finally:
        engine.dispose()


def _files(directory: Any) -> dict[str, str]:
    result = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as stream:
            result[name] = hashlib.sha256(stream.read()).hexdigest()
    return result


# --- the Store API -------------------------------------------------------------------------

def test_store_api_round_trip(db_url: str, opened: list[SqlStore]) -> None:
    """save/load/replace/remove/list/states and the batch calls work on SQLite and PostgreSQL."""
    store = _open(opened, db_url)
    task = Task(jobname="t")
    task.execution.state = "RUNNING"
    tid = store.save(task)
    items = store.save_many([Item(n) for n in range(5)])
    assert sorted(store.list()) == sorted([tid, *items])
    other = _open(opened, db_url)
    assert other.load(tid).jobname == "t" and other.load(items[2]).payload == 2
    other.replace(items[0], Item("replaced"))
    store.invalidate_cache()
    assert store.load(items[0]).payload == "replaced"
    assert store.states() == {tid: "RUNNING", **{i: None for i in items}}
    assert store.states([tid, "Task.999"]) == {tid: "RUNNING"}
    store.remove(tid)
    store.remove(tid)
    store.remove_many(items[:2])
    assert sorted(store.list()) == sorted(items[2:])
    other.invalidate_cache()  # its cache may still hold the task another store removed
    with pytest.raises(RecordNotFoundError) as info:
        other.load(tid)
    assert info.value.id == tid and "table store" in info.value.location
    assert tid in str(info.value) and "table store" in str(info.value)
    store.invalidate_cache()
    assert [v.payload for v in store.load_many(items[2:]).values()] == [2, 3, 4]


def test_ids_unique_and_never_reused(db_url: str, opened: list[SqlStore]) -> None:
    """Two stores on one table draw from one counter; removed numbers are not handed out again."""
    one, two = _open(opened, db_url), _open(opened, db_url)
    ids = [one.save(Item()), two.save(Item()), one.save(Item()), two.save(Item())]
    assert len(set(ids)) == 4
    one.remove_many(ids)
    assert _open(opened, db_url).save(Item()).seqno > max(i.seqno for i in ids)


def test_copied_records_are_never_overwritten_by_new_ids(db_url: str, opened: list[SqlStore]) -> None:
    """write_records() moves the table's counter, and this store's cached block, past the copied ids."""
    store = _open(opened, db_url)
    data = store.read_record(store.save(Item("in use")))  # Item.1; Item.2-8 reserved here
    copied = ["Item.3", "Item.5", "Item.40"]
    store.write_records({pid: data for pid in copied})
    new = [store.save(Item()) for _ in range(3)] + [_open(opened, db_url).save(Item()) for _ in range(2)]
    assert not set(new) & set(copied) and min(i.seqno for i in new) > 40
    assert dict(_sql(db_url, f"SELECT key, value FROM {META_TABLE}"))["next_id:store"] > 41
    store.invalidate_cache()
    assert [store.load(pid).payload for pid in copied] == ["in use"] * 3


def test_children_are_rows_of_their_own(db_url: str, opened: list[SqlStore]) -> None:
    """Children are rows of their own; a load re-links shared children and cycles."""
    store = _open(opened, db_url)
    root, child = Node("root"), Node("child")
    root.children = [child, child]
    child.parent = root
    pid = store.save(root)
    assert len(_sql(db_url, "SELECT id FROM store")) == 2
    store.invalidate_cache()
    loaded = store.load(pid)
    assert loaded.children[0] is loaded.children[1] and loaded.children[0].parent is loaded


# --- schema, tables and migration ----------------------------------------------------------

def test_schema_columns_and_meta_rows(db_url: str, opened: list[SqlStore]) -> None:
    """The table has id, data, state, cls, summary; gc3session_meta holds schema:<t> = 1 and next_id:<t>."""
    store = _open(opened, db_url)
    pid = store.save(Task(jobname="x"))
    assert _columns(db_url, "store") == {"id", "data", "state", "cls", "summary"}
    assert _sql(db_url, "SELECT id, state, cls FROM store") == [(pid, "NEW", "gc3session.task:Task")]
    meta = dict(_sql(db_url, f"SELECT key, value FROM {META_TABLE}"))
    assert meta["schema:store"] == SCHEMA_VERSION == 1 and meta["next_id:store"] == 9
    data = _sql(db_url, "SELECT data FROM store")[0][0]
    assert bytes(data) == store.read_record(pid)


def test_table_name_argument_and_fragment(db_url: str, opened: list[SqlStore]) -> None:
    """table_name= or #table=NAME choose the table; tables of one database count ids separately."""
    by_arg = _open(opened, db_url, table_name="runs")
    by_fragment = _open(opened, db_url + "#table=other_runs")
    default = _open(opened, db_url)
    assert (by_arg.table_name, by_fragment.table_name, default.table_name) == ("runs", "other_runs", "store")
    assert by_arg.url.table == "runs"
    assert [s.save(Item()) for s in (by_arg, by_fragment, default)] == ["Item.1"] * 3
    assert _sql(db_url, "SELECT id FROM runs") == [("Item.1",)]
    assert _sql(db_url, "SELECT id FROM other_runs") == [("Item.1",)]
    keys = {k for (k,) in _sql(db_url, f"SELECT key FROM {META_TABLE}")}
    assert keys == {f"{kind}:{t}" for kind in ("schema", "next_id") for t in ("runs", "other_runs", "store")}
    assert make_store(db_url + "#table=runs").table_name == "runs"


@pytest.mark.parametrize("name", ["x; DROP TABLE store", "store\"--", "a b", "1abc", "t" * 64,
                                  "runs#", "gc3session_meta", "GC3Session_Meta", "ta\u00efble"])
def test_bad_table_names_refused_before_any_sql(name: str, tmp_path: Any) -> None:
    """Table names that are not plain identifiers raise InvalidTableName and never reach a database."""
    db = tmp_path / "never.db"
    for attempt in (lambda: SqlStore(f"sqlite:///{db}", table_name=name),
                    lambda: SqlStore(f"sqlite:///{db}#table={name}"),
                    lambda: SqlStore(f"postgresql://u@127.0.0.1:1/db#table={name}"),
                    lambda: make_store(f"mysql+pymysql://u@127.0.0.1:1/db#table={name}")):
        with pytest.raises(InvalidTableName) as info:
            attempt()
        assert info.value.table in (name, name.split("#")[0])
    assert not db.exists()


def test_mysql_urls_parse_without_a_server() -> None:
    """mysql[+driver] URLs give an SqlStore with its table; the password stays hidden."""
    store = make_store("mysql+pymysql://joe:pw@127.0.0.1:1/jobs?charset=utf8mb4#table=runs")
    assert isinstance(store, SqlStore) and store.table_name == "runs" and not store.is_sqlite
    assert store.url.base_scheme == "mysql" and store.url.database == "jobs"
    assert "pw" not in store.location("Task.1") and "runs" in store.location("Task.1")
    assert SqlStore("mysql://joe@h/jobs").table_name == "store"


def test_unusual_but_valid_table_names(db_url: str, opened: list[SqlStore]) -> None:
    """Reserved words and mixed case are valid names: quoted by SQLAlchemy, not refused."""
    for name in ("select", "Runs_2024"):
        store = _open(opened, db_url, table_name=name)
        pid = store.save(Item(name))
        store.invalidate_cache()
        assert store.load(pid).payload == name


def test_sqlite_table_names_differing_in_case_share_one_counter(tmp_path: Any,
                                                                opened: list[SqlStore]) -> None:
    """SQLite's Runs and runs are one table: both names draw ids from one counter, none overwritten."""
    url = f"sqlite:///{tmp_path}/x.db"
    lower, upper = _open(opened, url + "#table=runs"), _open(opened, url + "#table=RUNS")
    first, second = lower.save(Item("lower")), upper.save(Item("upper"))
    assert first != second
    lower.invalidate_cache()
    assert lower.load(first).payload == "lower" and lower.load(second).payload == "upper"


def test_extra_fields_kept_up_to_date(db_url: str, opened: list[SqlStore]) -> None:
    """extra_fields columns hold fn(obj) after every save, queryable with plain SQL."""
    fields = {sa.Column("jobname", sa.String(64)): lambda t: t.jobname,
              sa.Column("attempts", sa.Integer): lambda t: getattr(t, "attempts", 0)}
    store = _open(opened, db_url, extra_fields=fields)
    task = Task(jobname="first")
    pid = store.save(task)
    assert _sql(db_url, "SELECT jobname, attempts, state FROM store WHERE id = :id", id=pid) == [
        ("first", 0, "NEW")]
    task.jobname, task.attempts = "renamed", 3
    task.execution.state = "TERMINATED"
    store.save(task)
    assert _sql(db_url, "SELECT jobname, attempts, state FROM store WHERE id = :id", id=pid) == [
        ("renamed", 3, "TERMINATED")]
    assert _sql(db_url, "SELECT id FROM store WHERE attempts > 2") == [(pid,)]


def test_new_extra_field_added_by_alter_table(db_url: str, opened: list[SqlStore]) -> None:
    """A new extra field on an existing table is added as a column; old rows read NULL until saved."""
    old = _open(opened, db_url)
    kept = old.save(Task(jobname="old"))
    old.close()
    store = _open(opened, db_url, extra_fields={sa.Column("jobname", sa.String(64)): lambda t: t.jobname})
    assert "jobname" not in _columns(db_url, "store")  # nothing is done before first use
    new = store.save(Task(jobname="new"))
    assert "jobname" in _columns(db_url, "store")
    rows = dict(_sql(db_url, "SELECT id, jobname FROM store"))
    assert rows == {kept: None, new: "new"}
    assert store.load(kept).jobname == "old"


def test_extra_fields_must_be_columns_with_functions(tmp_path: Any) -> None:
    """extra_fields maps sqlalchemy.Column to callables and may not shadow built-in columns."""
    url = f"sqlite:///{tmp_path}/x.db"
    with pytest.raises(InvalidType):
        SqlStore(url, extra_fields={"name": lambda t: 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidType):
        SqlStore(url, extra_fields={sa.Column("n", sa.Integer): 5})  # type: ignore[dict-item]
    with pytest.raises(InvalidValue):
        SqlStore(url, extra_fields={sa.Column("state", sa.String(10)): lambda t: 1})


def test_table_without_meta_rows_migrates_and_counts_above_its_records(
        db_url: str, opened: list[SqlStore]) -> None:
    """A table made elsewhere (no cls column, no gc3session_meta) gains cls; new ids start above its ids."""
    template = _open(opened, db_url, table_name="template")
    record = template.read_record(template.save(Item("from an older table")))
    blob = "BYTEA" if db_url.startswith("postgresql") else "BLOB"
    _sql(db_url, f"CREATE TABLE legacy (id VARCHAR(255) PRIMARY KEY, data {blob} NOT NULL,"
                 " state VARCHAR(128))")
    _sql(db_url, "INSERT INTO legacy (id, data, state) VALUES ('Item.41', :data, NULL)", data=record)
    _sql(db_url, f"DELETE FROM {META_TABLE} WHERE key IN ('schema:legacy', 'next_id:legacy')")
    store = _open(opened, db_url, table_name="legacy")
    assert store.load("Item.41").payload == "from an older table"
    assert "cls" in _columns(db_url, "legacy")
    assert store.save(Item("new")) == "Item.42"
    assert _sql(db_url, "SELECT cls FROM legacy WHERE id = 'Item.42'") == [("_store_objects:Item",)]


def test_newer_schema_is_refused_and_left_alone(db_url: str, opened: list[SqlStore]) -> None:
    """A table whose schema row says a newer version raises StoreUnavailableError; no row changes."""
    pid = _open(opened, db_url).save(Item("kept"))
    _sql(db_url, f"UPDATE {META_TABLE} SET value = :v WHERE key = 'schema:store'", v=SCHEMA_VERSION + 1)
    before = _sql(db_url, "SELECT id, data FROM store")
    store = _open(opened, db_url)
    with pytest.raises(StoreUnavailableError) as info:
        store.save(Item("would be written"))
    assert "schema version 2" in str(info.value) and info.value.table == "store"
    assert _sql(db_url, "SELECT id, data FROM store") == before and pid == before[0][0]


# --- transactions ---------------------------------------------------------------------------

def test_database_error_in_a_batch_rolls_back_every_row(db_url: str, opened: list[SqlStore]) -> None:
    """When the database rejects one row of a save, the rows before it are rolled back too."""
    store = _open(opened, db_url,
                  extra_fields={sa.Column("label", sa.String(20), nullable=False): lambda n: n.label})
    kept = Node("kept")
    kept.label = "kept"
    store.save(kept)
    root = Node("root")
    root.label = "root"
    first, last = Node("first"), Node("last")
    first.label, last.label = "first", None  # NOT NULL violated by the last child
    root.children = [first, last]
    with pytest.raises(StoreWriteError) as info:
        store.save_many([root])
    assert info.value.step == "commit" and info.value.table == "store"
    assert _sql(db_url, "SELECT id FROM store") == [(kept.persistent_id,)]


# --- SQLite specifics ------------------------------------------------------------------------

def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Any, opened: list[SqlStore]) -> None:
    """The database file is in WAL mode; the store's connections wait on locks and sync fully."""
    store = _open(opened, f"sqlite:///{tmp_path}/x.db")
    store.save(Item())
    with sqlite3.connect(tmp_path / "x.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    with store._engine.connect() as own:
        assert own.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert own.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_durable_false_turns_off_syncing(db_url: str, opened: list[SqlStore]) -> None:
    """durable=False: SQLite synchronous=OFF, PostgreSQL synchronous_commit=off; the default syncs."""
    fast, safe = _open(opened, db_url, durable=False), _open(opened, db_url)
    pid = fast.save(Item("fast"))
    assert safe.load(pid).payload == "fast"
    query = "PRAGMA synchronous" if fast.is_sqlite else "SHOW synchronous_commit"
    with fast._engine.connect() as conn:
        assert conn.exec_driver_sql(query).scalar() in (0, "off")
    with safe._engine.connect() as conn:
        assert conn.exec_driver_sql(query).scalar() in (2, "on")


def _hold_write_lock(path: Any, seconds: float) -> tuple[sqlite3.Connection, threading.Timer]:
    """Take SQLite's write lock on a connection of our own; release it (commit) after ``seconds``."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE IF NOT EXISTS side (n INTEGER)")
    holder.execute("INSERT INTO side VALUES (1)")
    timer = threading.Timer(seconds, holder.commit)
    timer.start()
    return holder, timer


class _ImpatientStore(SqlStore):
    """An SqlStore whose SQLite lock wait is short, so "database is locked" reaches the retry loop."""

    busy_timeout = 0.05


def test_save_waits_for_a_write_lock_held_elsewhere(tmp_path: Any, opened: list[SqlStore]) -> None:
    """While another connection holds the write lock, a save retries and succeeds once it is released."""
    url = f"sqlite:///{tmp_path}/x.db"
    for store in (_open(opened, url), _ImpatientStore(url)):
        opened.append(store)
        store.list()  # schema set up before the lock is taken
        holder, timer = _hold_write_lock(tmp_path / "x.db", 0.5)
        try:
            pid = store.save(Item("after the lock"))
        finally:
            timer.join()
            holder.close()
        assert _open(opened, url).load(pid).payload == "after the lock"
    assert _sql(url, "SELECT count(*) FROM side") == [(2,)]  # both holders committed too


def test_lock_held_past_the_deadline_raises_store_locked(tmp_path: Any, opened: list[SqlStore]) -> None:
    """A lock held longer than retry_deadline gives StoreLockedError naming the table; nothing written."""
    class Hurried(_ImpatientStore):
        retry_deadline = 0.3

    url = f"sqlite:///{tmp_path}/x.db"
    store = Hurried(url)
    opened.append(store)
    store.list()
    holder, timer = _hold_write_lock(tmp_path / "x.db", 30.0)
    try:
        with pytest.raises(StoreLockedError) as info:
            store.save(Item("never"))
    finally:
        timer.cancel()
        holder.rollback()
        holder.close()
    assert info.value.table == "store" and "locked" in str(info.value)
    assert store.list() == []


def test_readonly_sqlite_changes_no_file(tmp_path: Any, opened: list[SqlStore]) -> None:
    """A readonly SqlStore reads, refuses every write with ReadOnlyStoreError, and leaves the files alone."""
    url = f"sqlite:///{tmp_path}/x.db"
    writer = _open(opened, url)
    pid = writer.save(Task(jobname="ro"))
    writer.close()
    before = _files(tmp_path)
    reader = _open(opened, url, readonly=True)
    assert reader.load(pid).jobname == "ro" and reader.states() == {pid: "NEW"}
    for write in (lambda: reader.save(Item()), lambda: reader.replace(pid, Item()),
                  lambda: reader.remove(pid), lambda: reader.write_records({})):
        with pytest.raises(ReadOnlyStoreError):
            write()
    reader.close()
    assert _files(tmp_path) == before


def test_readonly_store_on_a_missing_table(db_url: str, opened: list[SqlStore]) -> None:
    """readonly (or create=False) on a database without the table raises LoadError, creating nothing."""
    _sql(db_url, "CREATE TABLE unrelated (n INTEGER)")  # an existing database, without our table
    for kwargs in ({"readonly": True}, {"create": False}):
        store = _open(opened, db_url, **kwargs)
        with pytest.raises(LoadError) as info:
            store.list()
        assert "table store" in info.value.location and "table store" in str(info.value)
    assert not _has_table(db_url, "store") and not _has_table(db_url, META_TABLE)


def test_readonly_postgresql_store_refuses_writes(pg_url: str, opened: list[SqlStore]) -> None:
    """A readonly PostgreSQL store loads what a writer saved and refuses to write."""
    pid = _open(opened, pg_url).save(Item("shared"))
    reader = _open(opened, pg_url, readonly=True)
    assert reader.load(pid).payload == "shared"
    with pytest.raises(ReadOnlyStoreError):
        reader.save(Item())
    assert _sql(pg_url, "SELECT count(*) FROM store") == [(1,)]


def test_states_come_from_the_state_column(db_url: str, opened: list[SqlStore]) -> None:
    """states() reads the state column: a record whose class cannot be imported still has a state."""
    store = _open(opened, db_url)
    store.write_records({"Gone.7": b"GC3S 1 pickle4 nosuch.module:Gone TERMINATED\n\x80\x04."})
    assert store.states() == {"Gone.7": "TERMINATED"}
    assert _sql(db_url, "SELECT state, cls FROM store") == [("TERMINATED", "nosuch.module:Gone")]


def test_in_memory_sqlite_store(opened: list[SqlStore]) -> None:
    """sqlite:// is a database in memory: it works within the process and keeps its URL on rendering."""
    store = _open(opened, "sqlite://")
    pid = store.save(Item("in memory"))
    store.invalidate_cache()
    assert store.load(pid).payload == "in memory" and str(store.url) == "sqlite://"
    assert not os.path.exists(":memory:")


# --- connections ------------------------------------------------------------------------------

def test_unreachable_server_is_a_typed_error_without_password() -> None:
    """A server that cannot be reached raises StoreUnavailableError; the password is not in it."""
    store = SqlStore("postgresql://bob:hunter2@127.0.0.1:1/db")
    try:
        with pytest.raises(StoreUnavailableError) as info:
            store.list()
    finally:
        store.close()
    assert "hunter2" not in str(info.value) and "hunter2" not in info.value.url


def test_url_query_reaches_the_driver_decoded(pg_url: str, opened: list[SqlStore]) -> None:
    """Query parameters of the URL are passed to the driver percent-decoded, as URLs mean them."""
    store = _open(opened, pg_url + "?application_name=gc3s%20test%2Frun&connect_timeout=10")
    store.save(Item())
    with store._engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW application_name").scalar() == "gc3s test/run"


def test_missing_driver_is_a_typed_error_naming_the_install() -> None:
    """A URL whose driver is not installed raises StoreUnavailableError saying what to install."""
    import importlib.util
    if importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("the default MySQL driver is installed here")
    store = SqlStore("mysql://joe:pw@127.0.0.1:1/jobs")
    with pytest.raises(StoreUnavailableError) as info:
        store.list()
    assert "MySQLdb" in str(info.value) and "pip install" in str(info.value)
    assert "pw" not in str(info.value) and info.value.table == "store"


def test_pre_fork_closes_connections(db_url: str, opened: list[SqlStore]) -> None:
    """pre_fork() closes the pooled connections (none left to the garbage collector); the store reconnects."""
    store = _open(opened, db_url)
    pid = store.save(Item("before"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.pre_fork()
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    store.invalidate_cache()
    assert store.load(pid).payload == "before"


def test_forked_child_uses_its_own_connection_and_ids(db_url: str, opened: list[SqlStore]) -> None:
    """After pre_fork/fork/post_fork the child saves with fresh ids on its own connection."""
    store = _open(opened, db_url)
    first = store.save(Item("parent"))
    child_id = save_in_forked_child(store, "child")
    second = store.save(Item("parent again"))
    assert len({first, second, child_id}) == 3
    store.invalidate_cache()
    assert [store.load(i).payload for i in (first, child_id, second)] == ["parent", "child", "parent again"]
