"""Session: the gc3libs API, the directory layout, and the fixes over GC3Pie.

Every test works on real directories under ``tmp_path``; "the directory is
unchanged" is checked with a snapshot of every file's bytes (and mtimes,
where the test says so).
"""

from __future__ import annotations

import inspect
import os
import stat
import sys
import tempfile
import textwrap

import pytest
import sqlalchemy as sa
from _session_objects import PayloadTask, index_lines, payloads, run_child, snapshot

from gc3session import (
    ParallelTaskCollection,
    SequentialTaskCollection,
    Session,
    Task,
    TaskCollection,
    TemporarySession,
    fsio,
)
from gc3session.exceptions import (
    ClassNotFoundError,
    CorruptIndexError,
    CorruptRecordError,
    CorruptSessionError,
    Error,
    LoadError,
    ReadOnlySessionError,
    SessionNotFoundError,
)
from gc3session.persistence import Persistable, StoreUrl, make_store
from gc3session.stores.filesystem import FilesystemStore

METADATA = ["created", "session_ids.txt", "store.url"]


@pytest.fixture
def spath(tmp_path: "os.PathLike[str]") -> str:
    """Where the test's session lives (not created yet)."""
    return os.path.join(tmp_path, "sess")


def _new_session(path: str, n: int = 3, **kwargs: object) -> tuple[Session, list[str]]:
    session = Session(path, **kwargs)  # type: ignore[arg-type]
    ids = [session.add(PayloadTask(jobname=f"job{i}", payload=i)) for i in range(n)]
    return session, ids


def _inode(path: str) -> int:
    return os.stat(path).st_ino


# --- constructor signatures -----------------------------------------------------------------------

def test_session_signature_is_gc3libs() -> None:
    params = list(inspect.signature(Session).parameters.values())
    assert [(p.name, p.default) for p in params[:5]] == [
        ("path", inspect.Parameter.empty), ("create", True), ("store_or_url", None),
        ("load", True), ("task_ids", None)]
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD


def test_temporary_session_signature_is_gc3libs() -> None:
    params = list(inspect.signature(TemporarySession).parameters.values())
    assert [(p.name, p.default) for p in params[:3]] == [
        ("store_or_url", inspect.Parameter.empty), ("task_ids", None), ("delete", True)]


def test_positional_arguments_as_in_gc3libs(spath: str) -> None:
    session = Session(spath, True, None, True, None)
    tid = session.add(Task())
    assert Session(spath, False, None, True, [tid]).list_ids() == [tid]


def test_store_kwargs_reach_make_store(spath: str, tmp_path: "os.PathLike[str]") -> None:
    url = f"sqlite:///{tmp_path}/ext.db"
    session = Session(spath, store_or_url=url, table_name="my_jobs")
    tid = session.add(Task(x=1))
    session.store.close()
    engine = sa.create_engine(f"sqlite:///{tmp_path}/ext.db")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT id FROM my_jobs").scalars().all() == [tid]
    finally:
        engine.dispose()
    reopened = Session(spath, table_name="my_jobs")
    assert reopened.tasks[tid].x == 1
    reopened.store.close()


# --- attributes, len, iteration, in ---------------------------------------------------------------

def test_attributes_of_a_new_session(tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    session = Session("relative-name")
    assert session.path == os.path.join(os.fspath(tmp_path), "relative-name")
    assert session.name == "relative-name"
    assert session.tasks == {}
    assert isinstance(session.store, FilesystemStore)
    assert session.store_url == StoreUrl.parse(os.path.join(session.path, "jobs"))
    assert str(session.store_url) == f"file://{session.path}/jobs"
    assert session.created == os.stat(os.path.join(session.path, "created")).st_mtime
    assert session.finished == -1
    assert len(session) == 0 and list(session) == []


def test_len_iteration_and_in(spath: str) -> None:
    session, ids = _new_session(spath, 3)
    assert len(session) == 3
    assert [t.persistent_id for t in session] == ids
    assert [t.payload for t in session] == [0, 1, 2]
    for tid in ids:
        task = session.tasks[tid]
        assert tid in session and str(tid) in session and task in session
    session.forget(ids[0])
    assert ids[0] not in session and "Task.999999" not in session
    assert len(session) == 2


def test_attributes_after_reopening(spath: str) -> None:
    session, ids = _new_session(spath, 2)
    reopened = Session(spath)
    assert reopened.path == spath and reopened.name == "sess"
    assert list(reopened.tasks) == ids
    assert reopened.store_url == session.store_url
    assert reopened.created == session.created
    assert isinstance(reopened.store, FilesystemStore)


# --- add, forget, remove, flush, save, load -------------------------------------------------------

def test_add_same_object_twice_gives_same_id(spath: str) -> None:
    session = Session(spath)
    task = Task()
    tid1 = session.add(task)
    tid2 = session.add(task)
    assert tid1 == tid2 == task.persistent_id
    assert len(session) == 1
    assert index_lines(spath) == [tid1]


def test_add_returns_an_id_saved_in_the_store(spath: str) -> None:
    session = Session(spath)
    tid = session.add(PayloadTask(payload="p"))
    assert tid == session.tasks[tid].persistent_id
    assert FilesystemStore(session.store.directory).load(tid).payload == "p"
    assert index_lines(spath) == [tid]


def test_forget_keeps_the_record(spath: str) -> None:
    session, ids = _new_session(spath, 3)
    session.forget(ids[1])
    assert session.list_ids() == [ids[0], ids[2]]
    assert index_lines(spath) == [ids[0], ids[2]]
    assert Session(spath).list_ids() == [ids[0], ids[2]]
    assert FilesystemStore(session.store.directory).load(ids[1]).payload == 1
    session.forget("Task.424242")  # unknown ids are ignored
    assert index_lines(spath) == [ids[0], ids[2]]


def test_remove_deletes_nested_children_from_the_store(spath: str) -> None:
    session = Session(spath)
    leaves = [Task(n=i) for i in range(4)]
    inner = SequentialTaskCollection(leaves[2:])
    outer = ParallelTaskCollection([leaves[0], TaskCollection([leaves[1], inner])])
    keep = Task(keep=True)
    oid = session.add(outer)
    kid = session.add(keep)
    assert len(session.store.list()) == 8
    session.remove(oid)
    assert session.store.list() == [kid]
    assert session.list_ids() == [kid]
    assert index_lines(spath) == [kid]
    reopened = Session(spath)
    assert reopened.list_ids() == [kid]
    assert reopened.store.list() == [kid]


def test_remove_of_a_task_loaded_from_disk_finds_its_children(spath: str) -> None:
    session = Session(spath)
    oid = session.add(ParallelTaskCollection([Task(), ParallelTaskCollection([Task(), Task()])]))
    del session
    reopened = Session(spath, load=False)
    reopened.remove(oid)
    assert reopened.store.list() == []
    assert index_lines(spath) == []


def test_flush_false_defers_the_index(spath: str) -> None:
    session = Session(spath)
    first = session.add(Task())
    later = [session.add(Task(), flush=False) for _ in range(3)]
    assert index_lines(spath) == [first]
    assert Session(spath).list_ids() == [first]
    assert session.list_ids() == [first, *later]
    session.flush()
    assert index_lines(spath) == [first, *later]
    assert Session(spath).list_ids() == [first, *later]


def test_forget_flush_false_defers_the_index(spath: str) -> None:
    session, ids = _new_session(spath, 3)
    session.forget(ids[0], flush=False)
    assert index_lines(spath) == ids
    session.flush()
    assert index_lines(spath) == ids[1:]


def test_save_does_not_add_to_the_session(spath: str) -> None:
    session = Session(spath)
    obj = Persistable()
    obj.value = 42
    oid = session.save(obj)
    assert oid == obj.persistent_id
    assert len(session) == 0 and index_lines(spath) == []
    assert Session(spath).load(oid, add=False).value == 42


def test_load_is_a_proxy_and_adds_by_default(spath: str) -> None:
    session = Session(spath)
    obj = Persistable()
    oid = session.save(obj)
    assert session.load(oid, add=False).persistent_id == obj.persistent_id
    assert oid not in session
    other = Session(spath)
    loaded = other.load(oid)
    assert loaded.persistent_id == oid
    assert oid in other
    assert index_lines(spath) == [oid]


def test_load_many(spath: str) -> None:
    session = Session(spath)
    ids = [session.save(PayloadTask(payload=i)) for i in range(3)]
    other = Session(spath)
    loaded = other.load_many(ids)
    assert list(loaded) == ids
    assert [o.payload for o in loaded.values()] == [0, 1, 2]
    assert other.list_ids() == ids
    assert index_lines(spath) == ids


def test_list_ids_and_list_names(spath: str) -> None:
    session, ids = _new_session(spath, 3)
    session.add(Task())  # no jobname
    assert session.list_ids()[:3] == ids
    assert Session(spath).list_names() == {"job0", "job1", "job2"}


def test_iter_workflow_is_breadth_first(spath: str) -> None:
    session = Session(spath)
    t0, t1, t2, a, b, c = (Task(jobname=n) for n in ["t0", "t1", "t2", "a", "b", "c"])
    coll2 = ParallelTaskCollection([a, b, c], jobname="coll2")
    coll = SequentialTaskCollection([t0, t1, t2, coll2], jobname="coll")
    session.add(coll)
    order = ["coll", "t0", "t1", "t2", "coll2", "a", "b", "c"]
    assert [t.jobname for t in session.iter_workflow()] == order
    assert [t.jobname for t in Session(spath).iter_workflow()] == order


def test_save_all_writes_only_changed_tasks(spath: str) -> None:
    session, ids = _new_session(spath, 4)
    store = session.store
    before = {tid: _inode(store.location(tid)) for tid in ids}
    index_before = snapshot(spath)["session_ids.txt"]

    session.tasks[ids[1]].payload = "changed"
    session.tasks[ids[3]].execution.state = "RUNNING"
    session.save_all()

    after = {tid: _inode(store.location(tid)) for tid in ids}
    assert {tid for tid in ids if before[tid] != after[tid]} == {ids[1], ids[3]}
    assert snapshot(spath)["session_ids.txt"] == index_before
    assert all(not t.changed for t in session)
    session.save_all()  # nothing changed: nothing written
    assert {tid: _inode(store.location(tid)) for tid in ids} == after
    assert payloads(Session(spath)) == {ids[0]: 0, ids[1]: "changed", ids[2]: 2, ids[3]: 3}
    assert Session(spath).states()[ids[3]] == "RUNNING"


# --- destroy --------------------------------------------------------------------------------------

def test_destroy_removes_directory_and_records(spath: str) -> None:
    session, _ = _new_session(spath, 2)
    session.add(ParallelTaskCollection([Task(), Task()]))
    store_dir = session.store.directory
    session.destroy()
    assert not os.path.exists(spath)
    assert not os.path.exists(store_dir)


def test_destroy_with_an_external_store_removes_only_its_records(tmp_path: "os.PathLike[str]") -> None:
    db = os.path.join(tmp_path, "shared", "jobs.db")
    url = f"sqlite:///{db}"
    mine = Session(os.path.join(tmp_path, "mine"), store_or_url=url)
    theirs = Session(os.path.join(tmp_path, "theirs"), store_or_url=url)
    my_ids = [mine.add(Task()), mine.add(ParallelTaskCollection([Task(), Task()]))]
    my_records = set(mine.store.list())
    their_ids = [theirs.add(Task()), theirs.add(ParallelTaskCollection([Task()]))]
    their_records = set(theirs.store.list()) - my_records
    loose = mine.save(Task())  # saved, not part of any session
    assert len(my_records) == 4 and len(my_ids) == len(their_ids) == 2

    mine.destroy()
    assert not os.path.exists(mine.path)
    assert os.path.isfile(db)
    store = make_store(url)
    try:
        assert set(store.list()) == their_records | {loose}
    finally:
        store.close()
    reopened = Session(theirs.path)
    assert reopened.list_ids() == their_ids
    reopened.store.close()
    theirs.store.close()


def test_destroy_of_a_partial_view_removes_every_task(spath: str, tmp_path: "os.PathLike[str]") -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    session, ids = _new_session(spath, 3, store_or_url=url)
    session.store.close()
    view = Session(spath, task_ids=[ids[0]])
    view.destroy()
    assert not os.path.exists(spath)
    store = make_store(url)
    try:
        assert store.list() == []
    finally:
        store.close()


# --- timestamps -----------------------------------------------------------------------------------

def test_timestamps_with_explicit_times(spath: str) -> None:
    session = Session(spath)
    assert not os.path.exists(os.path.join(spath, "finished"))
    assert session.set_start_timestamp(1_000_000_000.0) == 1_000_000_000.0
    assert os.stat(os.path.join(spath, "created")).st_mtime == 1_000_000_000.0
    assert session.created == 1_000_000_000.0
    assert session.set_end_timestamp(1_500_000_000.5) == 1_500_000_000.5
    assert os.stat(os.path.join(spath, "finished")).st_mtime == 1_500_000_000.5
    assert session.finished == 1_500_000_000.5
    reopened = Session(spath)
    assert reopened.created == 1_000_000_000.0
    assert reopened.finished == 1_500_000_000.5  # GC3Pie never read it back


def test_timestamps_default_to_now(spath: str) -> None:
    import time
    session = Session(spath)
    before = time.time()
    end = session.set_end_timestamp()
    assert before - 1 <= end <= time.time() + 1
    assert Session(spath).finished == end


def test_set_start_timestamp_keeps_the_command_line(spath: str) -> None:
    Session(spath).set_start_timestamp(1234.0)
    with open(os.path.join(spath, "created"), "rb") as stream:
        assert stream.read() == (" ".join(sys.argv) + "\n").encode()


# --- layout ---------------------------------------------------------------------------------------

def test_new_session_directory_lists_exactly_three_files(spath: str) -> None:
    session = Session(spath)
    assert sorted(os.listdir(spath)) == METADATA
    assert sorted(os.listdir(os.path.dirname(spath))) == ["sess"]  # no staging leftovers
    session.add(Task())
    assert sorted(os.listdir(spath)) == sorted([*METADATA, "jobs"])


def test_reopening_writes_nothing(spath: str) -> None:
    _new_session(spath, 2)
    before = snapshot(spath)
    reopened = Session(spath)
    list(reopened)
    reopened.states()
    Session(spath, load=False).list_ids()
    assert snapshot(spath) == before


def test_metadata_file_formats(spath: str) -> None:
    session = Session(spath)
    with open(os.path.join(spath, "session_ids.txt"), "rb") as stream:
        assert stream.read() == b""
    with open(os.path.join(spath, "store.url"), "rb") as stream:
        assert stream.read() == b"file:jobs"  # relative to the session, no trailing newline
    with open(os.path.join(spath, "created"), "rb") as stream:
        assert stream.read() == (" ".join(sys.argv) + "\n").encode()
    ids = [session.add(Task()) for _ in range(3)]
    with open(os.path.join(spath, "session_ids.txt"), "rb") as stream:
        assert stream.read() == "".join(f"{i}\n" for i in ids).encode()


def test_store_url_of_an_sqlite_session(spath: str, tmp_path: "os.PathLike[str]") -> None:
    session = Session(spath, store_or_url=f"sqlite:///{tmp_path}/db/jobs.db")
    with open(os.path.join(spath, "store.url"), "rb") as stream:
        assert stream.read() == f"sqlite:///{tmp_path}/db/jobs.db".encode()
    session.store.close()


def test_files_are_private(spath: str, tmp_path: "os.PathLike[str]") -> None:
    old = os.umask(0o022)
    try:
        session = Session(spath)
        session.add(ParallelTaskCollection([Task(), Task()]))
        session.set_end_timestamp()
        sqlite_session = Session(os.path.join(spath, "inner"), store_or_url=f"sqlite:///{spath}/inner/x.db")
        sqlite_session.add(Task())
        sqlite_session.store.close()
    finally:
        os.umask(old)
    entries = snapshot(spath)
    assert len(entries) > 12
    for name, (kind, mode, *_rest) in entries.items():
        if kind == stat.S_IFDIR:
            assert mode == 0o700, (name, oct(mode))
        else:
            assert kind == stat.S_IFREG and mode == 0o600, (name, oct(mode))


def test_existing_empty_directory_becomes_a_session(spath: str) -> None:
    os.mkdir(spath)
    Session(spath).add(Task())
    assert Session(spath).list_ids() == index_lines(spath)
    assert len(index_lines(spath)) == 1


# --- the index: O(1) appends, atomic rewrites, torn lines, corruption -----------------------------

def test_add_appends_to_the_index(spath: str) -> None:
    session = Session(spath)
    index = os.path.join(spath, "session_ids.txt")
    inode = _inode(index)
    ids = []
    for _ in range(5):
        with open(index, "rb") as stream:
            before = stream.read()
        ids.append(session.add(Task()))
        with open(index, "rb") as stream:
            after = stream.read()
        assert after == before + f"{ids[-1]}\n".encode()
        assert _inode(index) == inode
    for _ in range(3):
        session.add(Task(), flush=False)
    session.flush()
    assert _inode(index) == inode
    assert len(index_lines(spath)) == 8


def _steps_of(call: "object") -> list[tuple[str, str]]:
    """The fsio write steps ``call()`` takes, in order."""
    steps: list[tuple[str, str]] = []
    with fsio.inject_faults(lambda step, path: steps.append((step, path))):
        call()  # type: ignore[operator]
    return steps


def test_add_is_durable_when_it_returns(spath: str) -> None:
    session = Session(spath)
    session.add(Task())  # the store directory and an id block exist from now on
    index = os.path.join(spath, "session_ids.txt")
    added: list[str] = []
    steps = _steps_of(lambda: added.append(session.add(Task())))
    record = session.store.location(added[0])
    shard = os.path.dirname(record)
    # the record: temporary file fsynced, renamed into place, directory fsynced...
    renamed = steps.index(("rename", record))
    assert any(step == "fsync" and os.path.dirname(path) == shard for step, path in steps[:renamed])
    assert steps.index(("fsync-dir", shard)) > renamed
    # ...then, last, one append to the index and its fsync: the id is durable when add returns
    assert steps[-2:] == [("write", index), ("fsync", index)]
    assert [step for step, path in steps if path == index] == ["write", "fsync"]


def test_flush_appends_a_batch_in_one_write(spath: str) -> None:
    session = Session(spath)
    index = os.path.join(spath, "session_ids.txt")
    inode = _inode(index)
    ids = [session.add(Task(), flush=False) for _ in range(20)]
    steps = _steps_of(session.flush)
    records = [session.store.location(tid) for tid in ids]
    last_record_step = max(i for i, (_, path) in enumerate(steps) if path in records)
    assert [step for step, path in steps if path == index] == ["write", "fsync"]
    assert steps.index(("write", index)) > last_record_step  # records first, index second
    assert index_lines(spath) == ids and _inode(index) == inode


def test_session_over_a_store_object(spath: str, tmp_path: "os.PathLike[str]") -> None:
    store = FilesystemStore(os.path.join(tmp_path, "elsewhere"))
    session = Session(spath, store_or_url=store)
    assert session.store is store
    assert sorted(os.listdir(spath)) == METADATA  # GC3Pie did not even create the directory
    with open(os.path.join(spath, "store.url"), "rb") as stream:
        assert stream.read() == f"file://{tmp_path}/elsewhere".encode()
    tid = session.add(PayloadTask(payload=1))
    assert os.path.isfile(store.location(tid))
    assert payloads(Session(spath)) == {tid: 1}


@pytest.mark.parametrize("how", ["forget", "remove"])
def test_forget_and_remove_rewrite_the_index_atomically(spath: str, how: str) -> None:
    session, ids = _new_session(spath, 3)
    index = os.path.join(spath, "session_ids.txt")
    inode = _inode(index)
    getattr(session, how)(ids[1])
    assert _inode(index) != inode  # a new file renamed into place, never rewritten in place
    assert index_lines(spath) == [ids[0], ids[2]]
    assert stat.S_IMODE(os.stat(index).st_mode) == 0o600
    assert sorted(os.listdir(spath)) == sorted([*METADATA, "jobs"])  # no temp file left


def test_torn_last_line_is_ignored_and_cut_by_the_next_add(spath: str) -> None:
    session, ids = _new_session(spath, 2)
    index = os.path.join(spath, "session_ids.txt")
    with open(index, "ab") as stream:
        stream.write(b"Task.99")  # an append that a crash interrupted
    before = snapshot(spath)
    reopened = Session(spath)
    assert reopened.list_ids() == ids
    assert snapshot(spath) == before  # reading does not repair
    new = reopened.add(Task())
    with open(index, "rb") as stream:
        assert stream.read() == f"{ids[0]}\n{ids[1]}\n{new}\n".encode()


def test_torn_line_without_any_newline(spath: str) -> None:
    Session(spath).close()
    with open(os.path.join(spath, "session_ids.txt"), "wb") as stream:
        stream.write(b"Task.")
    reopened = Session(spath)
    assert reopened.list_ids() == []
    tid = reopened.add(Task())
    assert index_lines(spath) == [tid]


@pytest.mark.parametrize("keep_ids", [True, False], ids=["after-ids", "whole-file"])
def test_garbage_without_newline_is_not_a_torn_line(spath: str, keep_ids: bool) -> None:
    """A torn append leaves the start of an id; bytes no id can hold are corruption.

    Taking them for a torn line opens the session as if those tasks did not
    exist, and the next ``add`` cuts the bytes away for good.
    """
    _, ids = _new_session(spath, 2)
    index = os.path.join(spath, "session_ids.txt")
    with open(index, "ab" if keep_ids else "wb") as stream:
        stream.write(b"\xff\xfe\x89 not an id \xc3(")
    before = snapshot(spath)
    with pytest.raises(CorruptIndexError) as info:
        Session(spath)
    assert info.value.path == index
    assert snapshot(spath) == before


@pytest.mark.parametrize("content, line", [
    (b"Task.1\nhello world\nTask.2\n", 2),
    (b"not-an-id\n", 1),
    (b"Task.1\n../../etc/passwd\n", 2),
    (b"\x89PNG\r\n\x1a\n\x00\x00garbage\n", 1),
])
def test_index_with_a_non_id_line(spath: str, content: bytes, line: int) -> None:
    Session(spath)
    index = os.path.join(spath, "session_ids.txt")
    with open(index, "wb") as stream:
        stream.write(content)
    before = snapshot(spath)
    for kwargs in ({}, {"load": False}, {"mode": "r"}):
        with pytest.raises(CorruptIndexError) as info:
            Session(spath, **kwargs)  # type: ignore[arg-type]
        assert info.value.path == index and info.value.line == line
        assert index in str(info.value) and f"line {line}" in str(info.value)
        assert "restore" in str(info.value).lower()
        assert snapshot(spath) == before


def _damage(path: str, how: str) -> None:
    if how == "missing":
        os.unlink(path)
    elif how == "garbage":
        with open(path, "wb") as stream:
            stream.write(b"\xff\xfe\x00\x89garbage\n\x00\xc3(\n")
    elif how == "empty":
        with open(path, "wb"):
            pass
    elif how == "directory":
        os.unlink(path)
        os.mkdir(path, 0o700)
    elif how == "unreadable":
        os.chmod(path, 0)
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("filename, how", [
    ("session_ids.txt", "missing"),
    ("session_ids.txt", "garbage"),
    ("session_ids.txt", "directory"),
    ("session_ids.txt", "unreadable"),
    ("store.url", "missing"),
    ("store.url", "garbage"),
    ("store.url", "empty"),
    ("store.url", "directory"),
    ("store.url", "unreadable"),
])
@pytest.mark.parametrize("kwargs", [{}, {"create": True, "store_or_url": "sqlite:///{tmp}/new.db"},
                                    {"load": False}, {"mode": "r"}],
                         ids=["default", "create-with-url", "load-false", "read-only"])
def test_damaged_metadata_is_reported_never_recreated(
        spath: str, tmp_path: "os.PathLike[str]", filename: str, how: str, kwargs: dict) -> None:
    if how == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    _new_session(spath, 2)
    target = os.path.join(spath, filename)
    _damage(target, how)
    before = snapshot(tmp_path)
    kwargs = {k: (v.format(tmp=tmp_path) if isinstance(v, str) else v) for k, v in kwargs.items()}
    try:
        with pytest.raises(CorruptSessionError) as info:
            Session(spath, **kwargs)
    finally:
        if how == "unreadable":
            os.chmod(target, 0o600)
    message = str(info.value)
    assert info.value.path == target
    assert target in message
    assert "restore" in message.lower()  # repair advice
    if how != "unreadable":
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("load", [True, False])
def test_store_url_that_is_not_a_url(spath: str, tmp_path: "os.PathLike[str]",
                                     monkeypatch: pytest.MonkeyPatch, load: bool) -> None:
    """Text that is no URL must not be taken for a path relative to the working directory.

    Sessions only ever write absolute URLs to ``store.url``; reading
    ``garbled text`` as ``file://$PWD/garbled text`` opens some other store
    (or none), and the next save creates a store wherever the process runs.
    """
    _new_session(spath, 2)
    target = os.path.join(spath, "store.url")
    with open(target, "wb") as stream:
        stream.write(b"garbled text")
    cwd = os.path.join(tmp_path, "cwd")
    os.mkdir(cwd)
    monkeypatch.chdir(cwd)
    before = snapshot(tmp_path)
    with pytest.raises(CorruptSessionError) as info:
        session = Session(spath, load=load)
        session.add(Task())  # where would this go?
    assert info.value.path == target
    assert os.listdir(cwd) == []
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kwargs", [{}, {"create": True}, {"load": False},
                                    {"store_or_url": "sqlite:///{tmp}/x.db"}])
def test_non_session_directory_is_never_turned_into_a_session(
        spath: str, tmp_path: "os.PathLike[str]", kwargs: dict) -> None:
    os.makedirs(os.path.join(spath, "data"))
    with open(os.path.join(spath, "notes.txt"), "wb") as stream:
        stream.write(b"precious\n")
    before = snapshot(tmp_path)
    kwargs = {k: (v.format(tmp=tmp_path) if isinstance(v, str) else v) for k, v in kwargs.items()}
    with pytest.raises(CorruptSessionError):
        Session(spath, **kwargs)
    assert snapshot(tmp_path) == before


def test_a_regular_file_is_never_turned_into_a_session(spath: str, tmp_path: "os.PathLike[str]") -> None:
    with open(spath, "wb") as stream:
        stream.write(b"precious\n")
    before = snapshot(tmp_path)
    with pytest.raises(CorruptSessionError):
        Session(spath)
    assert snapshot(tmp_path) == before


def test_create_false_on_a_missing_directory(spath: str, tmp_path: "os.PathLike[str]") -> None:
    with pytest.raises(SessionNotFoundError):
        Session(spath, create=False)
    with pytest.raises(SessionNotFoundError):
        Session(spath, mode="r")
    assert os.listdir(tmp_path) == []


# --- partial views (GC3Pie #655) ------------------------------------------------------------------

def test_partial_view_never_shrinks_the_index(spath: str) -> None:
    _, ids = _new_session(spath, 5)
    view = Session(spath, task_ids=[ids[1]])
    assert view.list_ids() == [ids[1]]
    assert [t.payload for t in view] == [1]
    view.load(ids[1])                 # gsession/ginfo: load one task...
    view.tasks[ids[1]].payload = "x"  # ...change it, save and flush
    view.save_all()
    view.flush()
    assert set(index_lines(spath)) == set(ids)
    new = view.add(Task())
    view.forget(new)
    assert set(index_lines(spath)) == set(ids)
    assert payloads(Session(spath))[ids[1]] == "x"


def test_loading_one_task_leaves_the_index_untouched(spath: str) -> None:
    _, ids = _new_session(spath, 4)
    before = snapshot(spath)
    for kwargs in ({}, {"task_ids": [ids[2]]}, {"load": False}):
        session = Session(spath, **kwargs)  # type: ignore[arg-type]
        assert session.load(ids[2]).payload == 2
        session.load_many([ids[2]])
        assert snapshot(spath) == before


def test_partial_view_loading_another_task_lists_it_once(spath: str) -> None:
    """Loading a task that is in the index but not in the view must not append it again."""
    _, ids = _new_session(spath, 4)
    view = Session(spath, task_ids=[ids[0]])
    view.load(ids[2])  # gc3libs default: add=True, flush=True
    view.load_many([ids[1], ids[3]])
    assert index_lines(spath) == ids


def test_stale_handle_loading_a_new_task_lists_it_once(spath: str) -> None:
    Session(spath)
    a, b = Session(spath), Session(spath)
    x = a.add(Task())
    b.load(x)
    assert index_lines(spath) == [x]


def test_readding_a_task_forgotten_without_flush_lists_it_once(spath: str) -> None:
    session, ids = _new_session(spath, 2)
    task = session.tasks[ids[0]]
    session.forget(ids[0], flush=False)
    session.add(task)
    assert sorted(index_lines(spath)) == sorted(ids)
    assert len(index_lines(spath)) == 2


def test_remove_after_forget_and_readd_without_flush_leaves_no_dangling_id(spath: str) -> None:
    """forget(x, flush=False), add(x, flush=False), remove(x): x's record is gone, so is x from the index."""
    session, ids = _new_session(spath, 2)
    task = session.tasks[ids[0]]
    session.forget(ids[0], flush=False)
    session.add(task, flush=False)
    session.remove(ids[0])
    assert ids[0] not in session.store.list()
    assert index_lines(spath) == [ids[1]]
    assert Session(spath).list_ids() == [ids[1]]


# --- read-only sessions ---------------------------------------------------------------------------

def _writers(session: Session, ids: list[str], other: str) -> dict[str, object]:
    return {
        "add": lambda: session.add(Task()),
        "add-no-flush": lambda: session.add(Task(), flush=False),
        "forget": lambda: session.forget(ids[0]),
        "remove": lambda: session.remove(ids[0]),
        "flush": session.flush,
        "save": lambda: session.save(Task()),
        "save_all": session.save_all,
        "save_all-changed": lambda: (setattr(session.tasks[ids[0]], "payload", 9), session.save_all()),
        "set_start_timestamp": lambda: session.set_start_timestamp(1.0),
        "set_end_timestamp": session.set_end_timestamp,
        "destroy": session.destroy,
        "load-new-id": lambda: session.load(other),
        "load_many-new-id": lambda: session.load_many([other]),
    }


def _read_everything(session: Session, ids: list[str]) -> None:
    assert len(session) == len(session.list_ids())
    list(session)
    list(session.iter_workflow())
    session.list_names()
    session.states()
    for tid in session.list_ids():
        session.load(tid)
        assert tid in session
    session.load_many(session.list_ids())
    session.load(ids[-1], add=False)
    session.store.list()
    session.store.states()


def test_read_only_session_writes_nothing(spath: str) -> None:
    session, ids = _new_session(spath, 3)
    session.add(ParallelTaskCollection([Task(), Task()]))
    outside = session.save(Task())
    session.set_end_timestamp(2_000_000.0)
    ids = session.list_ids()
    del session
    before = snapshot(spath)

    for kwargs in ({}, {"load": False}, {"task_ids": [ids[0]]}):
        ro = Session(spath, mode="r", **kwargs)  # type: ignore[arg-type]
        _read_everything(ro, ids)
        assert snapshot(spath) == before
        for name, call in _writers(ro, ids, outside).items():
            with pytest.raises(ReadOnlySessionError):
                call()  # type: ignore[operator]
            assert snapshot(spath) == before, name
    assert issubclass(ReadOnlySessionError, PermissionError)


def test_read_only_sqlite_session(spath: str, tmp_path: "os.PathLike[str]") -> None:
    session, ids = _new_session(spath, 3, store_or_url=f"sqlite:///{spath}/jobs.db")
    session.store.close()
    before = snapshot(spath)
    ro = Session(spath, mode="r")
    _read_everything(ro, ids)
    assert snapshot(spath) == before  # not even -wal/-shm files
    for name, call in _writers(ro, ids, ids[0]).items():
        if name.startswith("load"):
            continue
        with pytest.raises(ReadOnlySessionError):
            call()  # type: ignore[operator]
    assert snapshot(spath) == before
    ro.store.close()
    assert snapshot(spath) == before


def test_read_only_sqlite_session_without_database(spath: str, tmp_path: "os.PathLike[str]") -> None:
    db = os.path.join(tmp_path, "elsewhere", "jobs.db")
    session, _ = _new_session(spath, 1, store_or_url=f"sqlite:///{db}")
    session.store.close()
    os.unlink(db)
    before = snapshot(tmp_path)
    with pytest.raises(Error):  # a typed error: the database is not there
        Session(spath, mode="r")
    assert snapshot(tmp_path) == before  # and it was not created


# --- two handles in one process -------------------------------------------------------------------

def test_two_handles_never_lose_each_others_changes(spath: str) -> None:
    Session(spath)
    a = Session(spath)
    b = Session(spath)
    a1 = a.add(PayloadTask(payload="a1"))
    a2 = a.add(PayloadTask(payload="a2"))
    b1 = b.add(PayloadTask(payload="b1"))
    a.forget(a1)
    assert Session(spath).list_ids() == [a2, b1]
    b.add(PayloadTask(payload="b2"), flush=False)
    b.flush()
    a3 = a.add(PayloadTask(payload="a3"))
    b.remove(b1)
    a.tasks[a2].payload = "a2'"
    a.save_all()
    b.save_all()
    reopened = Session(spath)
    assert payloads(reopened) == {a2: "a2'", b.list_ids()[-1]: "b2", a3: "a3"}
    assert len(set(index_lines(spath))) == len(index_lines(spath)) == 3


def test_two_handles_get_distinct_ids(spath: str) -> None:
    Session(spath)
    a, b = Session(spath), Session(spath)
    ids = []
    for _ in range(20):
        ids.append(a.add(Task()))
        ids.append(b.add(Task()))
    assert len(set(ids)) == 40
    assert Session(spath).list_ids() == ids


def test_removing_a_task_another_handle_added_leaves_no_dangling_id(spath: str) -> None:
    """``b.remove(x)`` deletes x's record; the index must then not list x any more."""
    Session(spath)
    a, b = Session(spath), Session(spath)
    x = a.add(Task())
    y = a.add(Task())
    b.remove(x)
    assert x not in b.store.list()
    reopened = Session(spath)  # raises RecordNotFoundError if the index still lists x
    assert reopened.list_ids() == [y]


# --- load=False -----------------------------------------------------------------------------------

def test_load_false_opens_without_unpickling(spath: str, tmp_path: "os.PathLike[str]",
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    modules = os.path.join(tmp_path, "modules")
    os.mkdir(modules)
    with open(os.path.join(modules, "vanishing_tasks_mod.py"), "w") as stream:
        stream.write("from gc3session import Task\nclass VanishingTask(Task):\n    pass\n")
    monkeypatch.syspath_prepend(modules)
    import vanishing_tasks_mod  # type: ignore[import-not-found]
    session = Session(spath)
    ok = session.add(Task(jobname="plain"))
    gone = session.add(vanishing_tasks_mod.VanishingTask(jobname="gone"))
    session.tasks[ok].execution.state = "RUNNING"
    session.save_all()
    del session, vanishing_tasks_mod
    # the module is gone: out of sys.modules, and no longer importable
    monkeypatch.delitem(sys.modules, "vanishing_tasks_mod")
    os.unlink(os.path.join(modules, "vanishing_tasks_mod.py"))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != modules])

    lazy = Session(spath, load=False)
    assert lazy.list_ids() == [ok, gone]
    assert lazy.states() == {ok: "RUNNING", gone: "NEW"}
    assert len(lazy) == 2 and gone in lazy
    assert lazy.tasks == {}


def test_load_false_loads_tasks_on_iteration(spath: str) -> None:
    _, ids = _new_session(spath, 3)
    lazy = Session(spath, load=False)
    assert lazy.tasks == {}
    assert [t.payload for t in lazy] == [0, 1, 2]
    assert list(lazy.tasks) == ids
    assert Session(spath, load=False).load(ids[1]).payload == 1


def test_load_false_never_discards_an_existing_session(spath: str) -> None:
    _, ids = _new_session(spath, 2)
    before = snapshot(spath)
    Session(spath, load=False, create=True)
    assert snapshot(spath) == before
    assert Session(spath).list_ids() == ids


# --- passwords ------------------------------------------------------------------------------------

def test_store_url_never_holds_the_password(spath: str, pg_url: str) -> None:
    secret = "s3cret-Pa55"
    url = sa.engine.make_url(pg_url).set(password=secret).render_as_string(hide_password=False)
    assert secret in url
    session = Session(spath, store_or_url=url)
    tid = session.add(PayloadTask(payload="pg"))
    assert secret not in repr(session) and secret not in str(session.store_url)
    session.store.close()
    with open(os.path.join(spath, "store.url"), "rb") as stream:
        written = stream.read().decode()
    assert secret not in written
    assert written == str(StoreUrl.parse(url).without_password())
    for name, entry in snapshot(spath).items():
        assert secret.encode() not in (entry[3] or b""), name
    reopened = Session(spath)
    assert payloads(reopened) == {tid: "pg"}
    reopened.store.close()
    with_password = Session(spath, store_or_url=url)  # the password may be given again on reopen
    assert payloads(with_password) == {tid: "pg"}
    with_password.store.close()
    with open(os.path.join(spath, "store.url"), "rb") as stream:
        assert stream.read().decode() == written


# --- objects that fail to load --------------------------------------------------------------------

_MAKE_SESSION = textwrap.dedent("""
    import sys
    from gc3session import Session, Task
    from _session_objects import PayloadTask
    import short_lived_mod
    session = Session(sys.argv[1])
    ids = [session.add(PayloadTask(payload=0)),
           session.add(short_lived_mod.ShortLived(payload=1)),
           session.add(PayloadTask(payload=2))]
    print(" ".join(ids))
""")


def _session_with_a_lost_class(spath: str, tmp_path: "os.PathLike[str]") -> list[str]:
    """A session made by a child process that could import a class this process cannot."""
    modules = os.path.join(tmp_path, "child-only")
    os.mkdir(modules)
    with open(os.path.join(modules, "short_lived_mod.py"), "w") as stream:
        stream.write("from gc3session import Task\nclass ShortLived(Task):\n    pass\n")
    ids = run_child(_MAKE_SESSION, spath, extra_paths=(modules,)).stdout.split()
    assert "short_lived_mod" not in sys.modules
    return ids


def test_unimportable_class_raises_a_load_error(spath: str, tmp_path: "os.PathLike[str]") -> None:
    ids = _session_with_a_lost_class(spath, tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(ClassNotFoundError) as info:
        Session(spath)
    err = info.value
    assert isinstance(err, LoadError)
    assert err.id == ids[1]
    assert ids[1] in str(err) and "short_lived_mod" in str(err)
    assert "short_lived_mod" in err.cause
    assert snapshot(tmp_path) == before


def test_corrupt_record_raises_a_load_error(spath: str, tmp_path: "os.PathLike[str]") -> None:
    session, ids = _new_session(spath, 3)
    record = session.store.location(ids[1])
    with open(record, "r+b") as stream:
        data = stream.read()
        stream.seek(0)
        stream.truncate()
        stream.write(data[: len(data) // 2])
    before = snapshot(tmp_path)
    with pytest.raises(CorruptRecordError) as info:
        Session(spath)
    assert info.value.id == ids[1] and ids[1] in str(info.value)
    assert info.value.cause
    assert snapshot(tmp_path) == before


def _garble(path: str) -> None:
    with open(path, "wb") as stream:
        stream.write(b"GC3S 1 pickle4 gc3session.task:Task NEW\n\x80\x04garbage")


@pytest.mark.parametrize("load", [True, False])
def test_ignore_errors_collects_failures(spath: str, tmp_path: "os.PathLike[str]", load: bool) -> None:
    ids = _session_with_a_lost_class(spath, tmp_path)
    _garble(FilesystemStore(os.path.join(spath, "jobs")).location(ids[2]))
    missing = "PayloadTask.999999"  # listed in the index, no record
    with open(os.path.join(spath, "session_ids.txt"), "ab") as stream:
        stream.write(f"{missing}\n".encode())
    before = snapshot(tmp_path)

    session = Session(spath, load=load, ignore_errors=True)
    loaded = list(session)
    assert [t.persistent_id for t in loaded] == [ids[0]]
    assert loaded[0].payload == 0
    assert sorted(session.load_errors) == sorted([ids[1], ids[2], missing])
    assert isinstance(session.load_errors[ids[1]], ClassNotFoundError)
    assert isinstance(session.load_errors[ids[2]], CorruptRecordError)
    assert all(isinstance(e, LoadError) and e.id == i for i, e in session.load_errors.items())
    assert session.list_ids() == [*ids, missing]  # failures stay in the session
    assert snapshot(tmp_path) == before


# --- TemporarySession -----------------------------------------------------------------------------

@pytest.fixture
def private_tmpdir(tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> str:
    """Make tempfile create TemporarySession directories under tmp_path."""
    where = os.path.join(tmp_path, "tmp")
    os.mkdir(where)
    monkeypatch.setattr(tempfile, "tempdir", where)
    return where


def test_temporary_session_over_a_store(tmp_path: "os.PathLike[str]", private_tmpdir: str) -> None:
    store = FilesystemStore(os.path.join(tmp_path, "store"))
    ids = [store.save(PayloadTask(payload=i)) for i in range(3)]
    coll_id = store.save(ParallelTaskCollection([PayloadTask(payload="child")]))
    store_before = snapshot(store.directory)

    session = TemporarySession(store.url, delete=False)
    assert os.path.dirname(session.path) == private_tmpdir
    assert session.name == str(store.url)
    assert sorted(session.list_ids()) == sorted(store.list())  # every record, children too
    assert coll_id in session.list_ids() and len(session) == 5
    assert sorted(index_lines(session.path)) == sorted(store.list())
    assert {t.persistent_id: getattr(t, "payload", None) for t in session}[ids[1]] == 1
    assert snapshot(store.directory) == store_before

    subset = TemporarySession(str(store.url), task_ids=ids[:2], delete=False)
    assert subset.list_ids() == ids[:2]
    assert [t.payload for t in subset] == [0, 1]
    assert Session(subset.path).list_ids() == ids[:2]


_TEMPORARY = textwrap.dedent("""
    import sys, tempfile
    tempfile.tempdir = sys.argv[1]
    from gc3session import TemporarySession
    session = TemporarySession(sys.argv[2], delete=sys.argv[3] == "delete")
    print(session.path, len(session))
""")


@pytest.mark.parametrize("delete", [True, False])
def test_temporary_session_directory_is_removed_at_exit(
        tmp_path: "os.PathLike[str]", private_tmpdir: str, delete: bool) -> None:
    store = FilesystemStore(os.path.join(tmp_path, "store"))
    store.save(Task())
    store_before = snapshot(store.directory)
    path, count = run_child(_TEMPORARY, private_tmpdir, str(store.url),
                            "delete" if delete else "keep").stdout.split()
    assert count == "1"
    assert os.path.dirname(path) == private_tmpdir
    assert os.path.exists(path) is not delete
    assert snapshot(store.directory) == store_before  # never the store
