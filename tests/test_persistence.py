"""The persistence foundation: ids, store URLs, the registry, exceptions and records.

Stores are real (a directory, an SQLite file); nothing is mocked.  The
tests that change process-wide tables (``relocate``, ``allow``, the
registry) put them back when they finish.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import pickle
import pickletools
import struct
import sys
import threading
from typing import Any

import pytest
from _store_objects import Item, Node, WithNewArgs

import gc3session
from gc3session import exceptions as exc
from gc3session import persistence
from gc3session.persistence import (
    Id,
    IdFactory,
    Persistable,
    StoreUrl,
    allow,
    classes,
    known_schemes,
    make_store,
    register,
    relocate,
    unregister,
)
from gc3session.stores.filesystem import FilesystemStore
from gc3session.stores.sql import SqlStore
from gc3session.task import Application, ParallelTaskCollection, Task


@pytest.fixture
def fs_store(tmp_path: Any) -> FilesystemStore:
    """A filesystem store in a fresh directory."""
    return FilesystemStore(str(tmp_path / "jobs"))


@pytest.fixture
def process_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give ``relocate``/``allow`` private copies of their tables for one test."""
    monkeypatch.setattr(classes, "_relocations", dict(classes._relocations))
    monkeypatch.setattr(classes, "_allowed_classes", set(classes._allowed_classes))
    classes._class_cache.clear()
    yield
    classes._class_cache.clear()


def _write_module(directory: Any, dotted: str, source: str) -> None:
    """Create the module ``dotted`` (packages included) under ``directory``."""
    parts = dotted.split(".")
    path = directory
    for package in parts[:-1]:
        path = path / package
        path.mkdir(exist_ok=True)
        (path / "__init__.py").touch()
    (path / f"{parts[-1]}.py").write_text(source)


def _forget_module(dotted: str) -> None:
    for name in [m for m in sys.modules if m == dotted or m.startswith(dotted.split(".")[0])]:
        del sys.modules[name]


# --- Id and IdFactory --------------------------------------------------------------------

def test_id_is_the_string_it_shows() -> None:
    """An Id equals and hashes like its text, so dicts keyed by either find both."""
    task_id = Id("Task", 17)
    assert task_id == "Task.17" and hash(task_id) == hash("Task.17")
    assert (task_id.prefix, task_id.seqno) == ("Task", 17)
    assert {"Task.17": "x"}[task_id] == "x" and {task_id: "y"}["Task.17"] == "y"
    assert Id("Task", 17) != Id("Task", 18) and Id("Task", 17) != Id("Job", 17)
    assert repr(task_id) == "'Task.17'"


def test_id_parse_accepts_prefix_dot_number_only() -> None:
    """Id.parse takes 'Prefix.N' and refuses paths, blanks and other shapes with InvalidValue."""
    parsed = Id.parse("Application.1234")
    assert isinstance(parsed, Id) and parsed.seqno == 1234 and Id.parse(parsed) is parsed
    for bad in ["", "Task", "Task.", ".5", "Task.-1", "../Task.1", "Task.1/x", "Task 1", "Ta sk.1",
                "Task.1\x00", "Task.1.2", 17, None]:
        with pytest.raises(exc.InvalidValue) as info:
            Id.parse(bad)  # type: ignore[arg-type]
        assert info.value.id == bad


def test_id_pickles_as_an_id() -> None:
    """A pickled Id comes back as an Id with its prefix and number."""
    back = pickle.loads(pickle.dumps(Id("Task", 5), protocol=4))
    assert type(back) is Id and back == "Task.5" and (back.prefix, back.seqno) == ("Task", 5)


def test_idfactory_hands_out_growing_blocks_of_fresh_numbers() -> None:
    """Ids come from blocks of 8, 16, ... up to 1024 numbers, each taken once from the counter."""
    counter = {"next": 1}
    calls = []

    def allocate(n: int) -> int:
        calls.append(n)
        first, counter["next"] = counter["next"], counter["next"] + n
        return first

    factory = IdFactory(allocate=allocate)
    ids = [factory.new(Item()) for _ in range(3000)]
    assert [i.seqno for i in ids] == list(range(1, 3001))
    assert all(i.prefix == "Item" for i in ids)
    assert calls[:8] == [8, 16, 32, 64, 128, 256, 512, 1024] and set(calls[8:]) == {1024}
    assert IdFactory(allocate=allocate, prefix="Job").new(Item()).prefix == "Job"


def test_idfactory_reserve_and_forget_block_never_reuse_numbers() -> None:
    """reserve(n) takes n numbers at once; forget_block() drops the rest of a block, never reusing it."""
    counter = {"next": 1}

    def allocate(n: int) -> int:
        first, counter["next"] = counter["next"], counter["next"] + n
        return first

    factory = IdFactory(allocate=allocate)
    first = factory.new(Item())
    factory.forget_block()  # what a forked child does with its parent's block
    second = factory.new(Item())
    assert second.seqno > first.seqno + IdFactory.MIN_BLOCK - 1
    factory.reserve(100)
    seqnos = [factory.new(Item()).seqno for _ in range(100)]
    assert seqnos == list(range(seqnos[0], seqnos[0] + 100)) and seqnos[0] > second.seqno
    with pytest.raises(exc.InvalidValue):
        factory.reserve(0)


def test_idfactory_shared_by_threads_never_repeats_a_number() -> None:
    """Eight threads taking ids from one factory at once never get the same number twice."""
    counter = itertools.count(1)
    counter_lock = threading.Lock()

    def allocate(n: int) -> int:
        with counter_lock:  # the store's own counter is atomic (a locked file, a row)
            first = next(counter)
            for _ in range(n - 1):
                next(counter)
            return first

    factory = IdFactory(allocate=allocate)
    item = Item()
    taken: list[Id] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=lambda: taken.extend([factory.new(item) for _ in range(20000)]))
                   for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert len(taken) == 160000 and len(set(taken)) == 160000


def test_two_factories_share_no_pool(tmp_path: Any) -> None:
    """Each store has its own factory: ids of two stores are counted separately."""
    one, two = FilesystemStore(str(tmp_path / "a")), FilesystemStore(str(tmp_path / "b"))
    assert one.idfactory is not two.idfactory
    assert one.save(Item()) == "Item.1" and two.save(Item()) == "Item.1"


# --- StoreUrl --------------------------------------------------------------------------

def test_url_never_shows_the_password() -> None:
    """str() and repr() mask the password; render(hide_password=False) is the only way back."""
    url = StoreUrl.parse("postgresql+psycopg://bob:s%40cret!@db.example:5433/jobs?sslmode=require#table=runs")
    assert url.password == "s@cret!" and url.username == "bob"
    for text in (str(url), repr(url), str(url.without_password())):
        assert "cret" not in text
    assert str(url) == "postgresql+psycopg://bob:***@db.example:5433/jobs?sslmode=require#table=runs"
    assert url.without_password().password is None
    assert str(url.without_password()) == "postgresql+psycopg://bob@db.example:5433/jobs?sslmode=require#table=runs"
    assert StoreUrl.parse(url.render(hide_password=False)) == url
    assert (url.scheme, url.base_scheme, url.host, url.port, url.database, url.query) == (
        "postgresql+psycopg", "postgresql", "db.example", 5433, "jobs", "sslmode=require")


def test_url_bad_port_error_hides_the_password() -> None:
    """An unparsable URL raises InvalidUrlError whose text does not carry the password."""
    with pytest.raises(exc.InvalidUrlError) as info:
        StoreUrl.parse("postgresql://bob:hunter2@db:notaport/jobs")
    assert "hunter2" not in str(info.value) and "hunter2" not in str(info.value.url)


def test_sqlite_urls_relative_and_absolute(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///rel.db is relative to the cwd at parse time, sqlite:////abs.db absolute."""
    monkeypatch.chdir(tmp_path)
    relative = StoreUrl.parse("sqlite:///sub/rel.db")
    assert relative.path == str(tmp_path / "sub" / "rel.db")
    absolute = StoreUrl.parse("sqlite:////var/tmp/abs.db")
    assert absolute.path == "/var/tmp/abs.db"
    assert str(absolute) == "sqlite:////var/tmp/abs.db"
    monkeypatch.chdir("/")
    assert StoreUrl.parse(str(relative)).path == str(tmp_path / "sub" / "rel.db")
    for memory in ("sqlite://", "sqlite:///:memory:"):  # in memory: no path is made absolute
        url = StoreUrl.parse(memory)
        assert url.path in ("", ":memory:") and StoreUrl.parse(str(url)) == url


def test_plain_paths_and_file_urls(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain paths (made absolute) and file:// URLs both name a filesystem store; hosts are refused."""
    monkeypatch.chdir(tmp_path)
    assert StoreUrl.parse("jobs") == StoreUrl(scheme="file", path=str(tmp_path / "jobs"))
    assert StoreUrl.parse(tmp_path / "jobs").path == str(tmp_path / "jobs")
    assert StoreUrl.parse(f"file://{tmp_path}/jobs").path == str(tmp_path / "jobs")
    assert str(StoreUrl.parse("/a b/jobs")) == "file:///a%20b/jobs"
    assert StoreUrl.parse("file:///a%20b/jobs").path == "/a b/jobs"
    for bad in ["", "   ", "file://otherhost/x", "a\x00b", "bad scheme://x"]:
        with pytest.raises(exc.InvalidUrlError):
            StoreUrl.parse(bad)


def test_url_fragments_select_the_table() -> None:
    """#table=NAME selects the table (the last one wins); without_fragment drops it."""
    assert StoreUrl.parse("sqlite:////x.db#table=runs").table == "runs"
    assert StoreUrl.parse("sqlite:////x.db#table=a&table=b").table == "b"
    assert StoreUrl.parse("sqlite:////x.db").table is None
    url = StoreUrl.parse("mysql+pymysql://u@h/db#table=t")
    assert url.without_fragment().fragment == "" and url.without_fragment().table is None
    assert str(url) == "mysql+pymysql://u@h/db#table=t"


# --- registry --------------------------------------------------------------------------

def test_make_store_builtin_schemes(tmp_path: Any) -> None:
    """Paths and file:// give a FilesystemStore; sqlite, postgresql[+driver], mysql[+driver] an SqlStore."""
    assert isinstance(make_store(str(tmp_path / "a")), FilesystemStore)
    store = make_store(f"file://{tmp_path}/b")
    assert isinstance(store, FilesystemStore) and store.directory == str(tmp_path / "b")
    with make_store(f"sqlite:///{tmp_path}/x.db") as sql:
        assert isinstance(sql, SqlStore) and sql.table_name == "store"
    # server stores connect lazily: building them touches no server
    for url, table in [("postgresql://u@127.0.0.1:1/db", "store"),
                       ("postgresql+psycopg://u@127.0.0.1:1/db#table=runs", "runs"),
                       ("mysql://u@127.0.0.1:1/db#table=jobs", "jobs"),
                       ("mysql+pymysql://u:pw@127.0.0.1:1/db", "store")]:
        server = make_store(url)
        assert isinstance(server, SqlStore) and server.table_name == table, url
        assert "pw" not in repr(server)
    assert make_store("mysql://u@h/db", table_name="other").table_name == "other"


def test_make_store_and_register_are_reexported() -> None:
    """gc3session re-exports make_store and register (GC3Pie's import path ports unchanged)."""
    assert gc3session.make_store is persistence.make_store is make_store
    assert gc3session.register is register
    assert gc3session.FilesystemStore is FilesystemStore and gc3session.SqlStore is SqlStore


def test_unknown_scheme_lists_known_ones() -> None:
    """An unknown scheme raises UnknownSchemeError (an InvalidArgument and KeyError)
    listing the known ones."""
    with pytest.raises(exc.UnknownSchemeError) as info:
        make_store("nosuch://somewhere/x")
    err = info.value
    assert isinstance(err, exc.InvalidArgument) and isinstance(err, KeyError)
    assert err.scheme == "nosuch"
    for scheme in ("file", "sqlite", "postgresql", "mysql"):
        assert scheme in err.known and scheme in str(err)


def test_register_a_scheme_and_replace_it(tmp_path: Any) -> None:
    """register() adds a scheme; registering it again needs replace=True; unregister() forgets it."""
    built: list[tuple[StoreUrl, dict[str, Any]]] = []

    def constructor(url: StoreUrl, **kwargs: Any) -> FilesystemStore:
        built.append((url, kwargs))
        return FilesystemStore(str(tmp_path / url.host))

    register("Memo", constructor)
    try:
        store = make_store("memo+v2://place/x", durable=False)  # "+driver" falls back to the base scheme
        assert isinstance(store, FilesystemStore) and store.directory == str(tmp_path / "place")
        assert built[0][0].scheme == "memo+v2" and built[0][1] == {"durable": False}
        assert "memo" in known_schemes()
        with pytest.raises(exc.SchemeAlreadyRegistered):
            register("memo", constructor)
        register("memo", lambda url, **kw: FilesystemStore(str(tmp_path / "replaced")), replace=True)
        assert make_store("memo://place").directory == str(tmp_path / "replaced")
        with pytest.raises(exc.InvalidType):
            register("memo", "not callable", replace=True)  # type: ignore[arg-type]
    finally:
        unregister("memo")
    with pytest.raises(exc.UnknownSchemeError):
        make_store("memo://place")
    # a registered constructor wins over a built-in
    register("sqlite", lambda url, **kw: FilesystemStore(str(tmp_path / "override")))
    try:
        assert isinstance(make_store("sqlite:////nowhere.db"), FilesystemStore)
    finally:
        unregister("sqlite")
    assert isinstance(make_store(f"sqlite:///{tmp_path}/y.db"), SqlStore)


def test_entry_point_store(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution declaring a gc3session.stores entry point adds its scheme to make_store."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "gc3s_testplugin.py").write_text(
        "from gc3session.stores.filesystem import FilesystemStore\n"
        "class PluginStore(FilesystemStore):\n"
        "    '''The store of a third-party package.'''\n"
        "def make(url, **kwargs):\n"
        "    return PluginStore(url.path, **kwargs)\n")
    info = plugin / "gc3s_testplugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gc3s-testplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[gc3session.stores]\nplugtest = gc3s_testplugin:make\n")
    assert "plugtest" not in known_schemes()
    monkeypatch.syspath_prepend(str(plugin))
    try:
        assert "plugtest" in known_schemes()
        store = make_store(f"plugtest://{tmp_path}/data", durable=False)
        assert type(store).__name__ == "PluginStore" and store.durable is False
        assert store.directory == f"{tmp_path}/data"
        pid = store.save(Item("via plugin"))
        store.invalidate_cache()
        assert store.load(pid).payload == "via plugin"
        with pytest.raises(exc.UnknownSchemeError) as err:
            make_store("nosuch://x")
        assert "plugtest" in err.value.known
    finally:
        sys.modules.pop("gc3s_testplugin", None)


def test_make_store_refuses_a_store(tmp_path: Any) -> None:
    """Passing a store where a URL is expected is an InvalidArgument, not a silent re-wrap."""
    with pytest.raises(exc.InvalidArgument):
        make_store(make_store(str(tmp_path / "jobs")))  # type: ignore[arg-type]


# --- exceptions ------------------------------------------------------------------------

def test_gc3libs_names_and_builtin_bases() -> None:
    """gc3libs' exception names exist with their builtin bases, and typed subclasses extend them."""
    assert issubclass(exc.LoadError, exc.Error) and issubclass(exc.InvalidValue, exc.InvalidArgument)
    assert issubclass(exc.InvalidValue, ValueError) and issubclass(exc.InvalidArgument, AssertionError)
    assert issubclass(exc.RecordNotFoundError, KeyError)
    assert issubclass(exc.RecordNotFoundError, exc.LoadError)
    for sub in (exc.CorruptRecordError, exc.ClassNotFoundError, exc.UnsafeRecordError):
        assert issubclass(sub, exc.LoadError)
    assert issubclass(exc.StoreWriteError, OSError) and issubclass(exc.StoreLockedError, exc.StoreWriteError)
    assert issubclass(exc.InvalidTableName, exc.InvalidValue)
    assert issubclass(exc.ReadOnlyStoreError, PermissionError)


@pytest.mark.parametrize("err", [
    exc.LoadError("cannot load Task.1 from /s/0/Task.1", id="Task.1", location="/s/0/Task.1", cause="x"),
    exc.RecordNotFoundError("no record Task.2", id="Task.2", location="/s/0/Task.2", cause="missing"),
    exc.CorruptRecordError("bad", id="Task.3", location="table store in sqlite:////x.db", cause="y"),
    exc.StoreWriteError("cannot rename", path="/s/0/Task.4", step="rename", errno=28),
    exc.StoreLockedError("busy", step="commit", table="store"),
    exc.UnknownSchemeError("nosuch", ["file", "sqlite"]),
    exc.InvalidTableName("invalid SQL table name 'x;y'", table="x;y"),
    exc.ReadOnlyStoreError("read-only", url="/s"),
])
def test_exceptions_pickle_with_their_context(err: exc.Error) -> None:
    """Every exception survives pickling (workers send them to parents) with message and context."""
    back = pickle.loads(pickle.dumps(err, protocol=4))
    assert type(back) is type(err) and str(back) == str(err) and back.context == err.context
    for key, value in err.context.items():
        assert getattr(back, key) == value
    if isinstance(err, OSError):
        assert back.errno == err.errno


# --- records -----------------------------------------------------------------------------

def _header(data: bytes) -> list[bytes]:
    return data[:data.index(b"\n")].split(b" ", 5)


def _pickle_protocols(data: bytes) -> list[int]:
    """The PROTO opcode of each pickle after the header."""
    stream = io.BytesIO(data[data.index(b"\n") + 1:])
    protocols = []
    while stream.tell() < len(stream.getvalue()):
        ops = list(pickletools.genops(stream))
        protocols.extend(arg for op, arg, _ in ops if op.name == "PROTO")
    return protocols


def test_record_header_fields(fs_store: FilesystemStore) -> None:
    """A record starts 'GC3S 2 pickle4 module:qualname STATE SUMMARY'; '-' and '{}' for objects
    that are not tasks; the summary is ASCII JSON on the header line."""
    task = Task(jobname="h é")
    task.execution.state = "RUNNING"
    pid = fs_store.save(task)
    fields = _header(fs_store.read_record(pid))
    assert fields[:5] == [b"GC3S", b"2", b"pickle4", b"gc3session.task:Task", b"RUNNING"]
    summary = json.loads(fields[5])
    assert fields[5].isascii() and summary["jobname"] == "h é" and summary["started"] > 0
    item = fs_store.save(Item(1))
    assert _header(fs_store.read_record(item)) == [b"GC3S", b"2", b"pickle4", b"_store_objects:Item",
                                                   b"-", b"{}"]
    assert fs_store.states() == {pid: "RUNNING", item: None}


def test_records_of_format_1_still_load(fs_store: FilesystemStore) -> None:
    """A record written before the summary existed (format 1) loads, lists and summarizes."""
    pid = fs_store.save(Task(jobname="old"))
    data = fs_store.read_record(pid)
    header, payload = data.split(b"\n", 1)
    old = b" ".join(header.split(b" ")[:5]).replace(b"GC3S 2 ", b"GC3S 1 ") + b"\n" + payload
    with open(fs_store.location(pid), "wb") as stream:
        stream.write(old)
    fresh = FilesystemStore(fs_store.directory)
    assert fresh.load(pid).jobname == "old"
    assert fresh.summaries([pid])[pid]["state"] == "NEW"


def test_pickle_protocol_is_pinned_at_4(fs_store: FilesystemStore) -> None:
    """Both pickles of a record say protocol 4, whatever the interpreter's highest protocol."""
    assert persistence.PICKLE_PROTOCOL == 4 and pickle.HIGHEST_PROTOCOL >= 5
    plain = fs_store.save(Item({"a": [1, 2], "b": b"bytes"}))
    parent = Node("p")
    parent.children.append(Node("c"))
    with_refs = fs_store.save(parent)  # pickled through the reference hook
    for pid in (plain, with_refs):
        assert _pickle_protocols(fs_store.read_record(pid)) == [4, 4]


def test_a_referenced_persistable_is_its_own_record(fs_store: FilesystemStore) -> None:
    """A child Persistable is saved as a record of its own; the parent's bytes hold only its id."""
    parent, child = Node("parent"), Node("child-with-a-unique-marker")
    parent.children.append(child)
    pid = fs_store.save(parent)
    assert isinstance(child.persistent_id, Id) and child.changed is False
    assert sorted(fs_store.list()) == sorted([pid, child.persistent_id])
    parent_bytes = fs_store.read_record(pid)
    assert b"unique-marker" not in parent_bytes and child.persistent_id.encode() in parent_bytes
    assert b"unique-marker" in fs_store.read_record(child.persistent_id)
    fs_store.invalidate_cache()
    loaded = fs_store.load(pid)
    assert loaded.children[0].name == "child-with-a-unique-marker"
    assert loaded.children[0].persistent_id == child.persistent_id


def test_unchanged_children_are_not_rewritten(fs_store: FilesystemStore) -> None:
    """Saving a parent again rewrites a child only if it is new or marked changed."""
    parent, child = Node("p"), Node("c")
    parent.children.append(child)
    fs_store.save(parent)
    path = fs_store.location(child.persistent_id)
    inode = os.stat(path).st_ino
    parent.name = "p2"
    parent.changed = True
    fs_store.save(parent)
    assert os.stat(path).st_ino == inode  # not replaced
    child.name, child.changed = "c2", True
    fs_store.save(parent)
    assert os.stat(path).st_ino != inode
    fs_store.invalidate_cache()
    assert fs_store.load(parent.persistent_id).children[0].name == "c2"


def test_load_relinks_shared_children_and_cycles(fs_store: FilesystemStore) -> None:
    """Within one load each id is one object: shared children stay shared and cycles terminate."""
    root, shared = Node("root"), Node("shared")
    root.children = [shared, shared]
    root.other = shared
    shared.parent = root  # a cycle between records
    root.me = root  # a self-reference
    pid = fs_store.save(root)
    fs_store.invalidate_cache()
    loaded = fs_store.load(pid)
    assert loaded.children[0] is loaded.children[1] is loaded.other
    assert loaded.children[0].parent is loaded and loaded.me is loaded
    assert fs_store.load(shared.persistent_id) is loaded.other  # same object while it is alive
    fs_store.invalidate_cache()
    many = fs_store.load_many([pid, shared.persistent_id])
    assert many[pid].other is many[shared.persistent_id]


def test_arguments_and_state_share_memo(fs_store: FilesystemStore) -> None:
    """A value both in __getnewargs__ and in the state loads as one value, not another argument."""
    obj = WithNewArgs()
    obj.tags = ["shared", "list"]
    obj.same = obj.tags
    obj.text = "plain"
    pid = fs_store.save(obj)
    fs_store.invalidate_cache()
    loaded = fs_store.load(pid)
    assert loaded.same == ["shared", "list"] and loaded.same is loaded.tags and loaded.text == "plain"


def test_relocate_a_class(tmp_path: Any, fs_store: FilesystemStore, monkeypatch: pytest.MonkeyPatch,
                          process_tables: None) -> None:
    """Records written under a class that moved load after relocate(old, new); before, ClassNotFoundError."""
    monkeypatch.syspath_prepend(str(tmp_path))
    _write_module(tmp_path, "gc3s_oldmod", "from gc3session.persistence import Persistable\n"
                  "class Thing(Persistable):\n    '''A user record.'''\n")
    import gc3s_oldmod  # type: ignore[import-not-found]
    thing = gc3s_oldmod.Thing()
    thing.value = 7
    pid = fs_store.save(thing)
    os.unlink(tmp_path / "gc3s_oldmod.py")
    _forget_module("gc3s_oldmod")
    _write_module(tmp_path, "gc3s_newmod", "from gc3session.persistence import Persistable\n"
                  "class Renamed(Persistable):\n    '''The same record, moved.'''\n")
    fs_store.invalidate_cache()
    with pytest.raises(exc.ClassNotFoundError) as info:
        fs_store.load(pid)
    assert info.value.id == pid and info.value.location == fs_store.location(pid)
    assert pid in str(info.value) and fs_store.location(pid) in str(info.value)
    assert "gc3s_oldmod:Thing" in str(info.value)
    relocate("gc3s_oldmod:Thing", "gc3s_newmod:Renamed")
    loaded = fs_store.load(pid)
    assert type(loaded).__name__ == "Renamed" and loaded.value == 7
    with pytest.raises(exc.InvalidValue):
        relocate("gc3s_oldmod:Thing", "gc3s_newmod")


def test_relocate_a_module_prefix(tmp_path: Any, fs_store: FilesystemStore,
                                  monkeypatch: pytest.MonkeyPatch, process_tables: None) -> None:
    """relocate('oldpkg', 'newpkg') moves every class of oldpkg and its submodules, inside records too."""
    monkeypatch.syspath_prepend(str(tmp_path))
    source = ("from gc3session.persistence import Persistable\n"
              "class Outer(Persistable):\n    '''A record.'''\n"
              "class Inner:\n    '''A plain value inside a record.'''\n")
    _write_module(tmp_path, "gc3s_oldpkg.sub", source)
    from gc3s_oldpkg import sub  # type: ignore[import-not-found]
    outer = sub.Outer()
    outer.inner = sub.Inner()
    outer.inner.n = 3
    pid = fs_store.save(outer)
    os.rename(tmp_path / "gc3s_oldpkg", tmp_path / "gc3s_newpkg")
    _forget_module("gc3s_oldpkg")
    fs_store.invalidate_cache()
    with pytest.raises(exc.ClassNotFoundError):
        fs_store.load(pid)
    relocate("gc3s_oldpkg", "gc3s_newpkg")
    loaded = fs_store.load(pid)
    assert type(loaded).__module__ == "gc3s_newpkg.sub" and loaded.inner.n == 3
    assert type(loaded.inner).__module__ == "gc3s_newpkg.sub"
    _forget_module("gc3s_newpkg")


def test_untrusted_load_uses_the_allow_list(tmp_path: Any, process_tables: None) -> None:
    """trusted=False loads gc3session's classes and builtins, refuses others until allow()ed."""
    import datetime
    writer = FilesystemStore(str(tmp_path / "jobs"))
    task = Task(jobname="t", when=datetime.datetime(2024, 5, 1, 12, 0), tags={"a", "b"})
    task_id = writer.save(task)
    item_id = writer.save(Item("user class"))
    reader = FilesystemStore(str(tmp_path / "jobs"), trusted=False)
    assert reader.load(task_id).when == datetime.datetime(2024, 5, 1, 12, 0)
    collection = ParallelTaskCollection([Application(["echo", "hi"], jobname="a"), Task(jobname="b")])
    collection_id = writer.save(collection)
    writer.invalidate_cache()
    loaded = reader.load(collection_id)
    assert [t.jobname for t in loaded.tasks] == ["a", "b"] and loaded.tasks[0].arguments == ["echo", "hi"]
    with pytest.raises(exc.UnsafeRecordError) as info:
        reader.load(item_id)
    assert info.value.id == item_id and info.value.location == reader.location(item_id)
    assert "_store_objects:Item" in str(info.value)
    allow("_store_objects:Item")
    assert reader.load(item_id).payload == "user class"


def test_untrusted_load_rebuilds_gc3session_exceptions(tmp_path: Any) -> None:
    """A task holding a gc3session exception (pickled by its own __reduce__) loads untrusted."""
    stream = io.BytesIO()
    stream.write(b"GC3S 1 pickle4 gc3session.task:Task NEW\n")
    pickler = pickle.Pickler(stream, protocol=4)
    # A private dispatch table: the exception's own __reduce__, whatever copyreg was taught
    # by other libraries loaded in this process (tblib, through dask, replaces it).
    pickler.dispatch_table = {}
    pickler.dump(())
    pickler.dump(({"jobname": "failed", "error": exc.InvalidValue("bad input", id="Task.9")}, None, None))
    store = FilesystemStore(str(tmp_path / "jobs"), trusted=False)
    store.write_records({"Task.1": stream.getvalue()})
    loaded = store.load("Task.1")
    assert isinstance(loaded.error, exc.InvalidValue) and loaded.error.id == "Task.9"
    assert str(loaded.error) == "bad input" and loaded.jobname == "failed"


def _evil_record(glob: bytes, argument: str) -> bytes:
    """A record whose state calls ``glob`` (a 'module\\nname\\n' global) with ``argument``."""
    arg = argument.encode()
    call = b"\x80\x02c" + glob + b"X" + struct.pack("<I", len(arg)) + arg + b"\x85RNN\x87."
    return b"GC3S 1 pickle4 gc3session.task:Task NEW\n" + pickle.dumps((), protocol=4) + call


@pytest.mark.parametrize("glob", [
    b"gc3session.stores.filesystem\nos.system\n",  # a module a gc3session module imports
    b"gc3session.fsio\nos.system\n",
    b"gc3session.persistence.classes\nfind_class\n",  # a function, not a class
    b"gc3session.fsio\nunlink\n",
    b"gc3session.session\nSession\n",  # a class whose constructor creates files
])
def test_untrusted_load_never_calls_code_under_gc3session_names(tmp_path: Any, glob: bytes) -> None:
    """Only data classes defined under gc3session names resolve: no function, no re-exported module."""
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    argument = {b"os.system": f"rm {victim}", b"unlink": str(victim),
                b"Session": str(tmp_path / "created"), b"find_class": "posix:system"}
    store = FilesystemStore(str(tmp_path / "jobs"), trusted=False)
    data = _evil_record(glob, argument[glob.split(b"\n")[1]])
    store.write_records({"Task.1": data})
    with pytest.raises(exc.UnsafeRecordError) as info:
        store.load("Task.1")
    assert info.value.id == "Task.1" and store.location("Task.1") in str(info.value)
    assert victim.read_text() == "keep me" and not (tmp_path / "created").exists()


def test_corrupt_record_names_id_and_location(fs_store: FilesystemStore) -> None:
    """Garbage, a truncated payload or a bad header raise CorruptRecordError naming the id and file."""
    pid = fs_store.save(Item("x" * 1000))
    good = fs_store.read_record(pid)
    for bad in [b"", b"garbage", good[:len(good) // 2], b"GC3S 2 pickle4 x:Y -\n",
                b"GC3S 1 json x:Y -\n", good.replace(b"GC3S", b"GC3X", 1)]:
        with open(fs_store.location(pid), "wb") as stream:
            stream.write(bad)
        fs_store.invalidate_cache()
        with pytest.raises(exc.CorruptRecordError) as info:
            fs_store.load(pid)
        assert info.value.id == pid and info.value.location == fs_store.location(pid)
        assert pid in str(info.value) and fs_store.location(pid) in str(info.value)


def test_write_records_refuses_bytes_that_are_not_records(fs_store: FilesystemStore) -> None:
    """write_records() checks each header first: a bad one raises CorruptRecordError, nothing is written."""
    good = fs_store.read_record(fs_store.save(Item(1)))
    with pytest.raises(exc.CorruptRecordError) as info:
        fs_store.write_records({"Item.50": good, "Item.51": b"not a record"})
    assert info.value.id == "Item.51"
    assert sorted(fs_store.list()) == ["Item.1"]


def test_unserializable_object_raises_serialization_error(fs_store: FilesystemStore) -> None:
    """An object holding an open file raises SerializationError naming its id; nothing is written."""
    item = Item()
    with open(__file__) as stream:
        item.payload = stream
        with pytest.raises(exc.SerializationError) as info:
            fs_store.save(item)
    assert info.value.id == item.persistent_id and fs_store.list() == []


def test_persistable_str_is_its_id(fs_store: FilesystemStore) -> None:
    """str() of a saved Persistable is its id (GC3Pie prints tasks that way)."""
    item = Item()
    assert str(item) != "Item.1"
    fs_store.save(item)
    assert str(item) == "Item.1" and isinstance(Persistable(persistent_id="X.1").persistent_id, str)
