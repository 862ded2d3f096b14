"""FilesystemStore: one atomic, durable file per record in a sharded directory.

Every test works on a real directory; faults are injected through
``gc3session.fsio.inject_faults`` (the real write path, failing at a chosen
step), and forks are real ``os.fork()`` calls.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from typing import Any

import pytest
from _store_objects import Item, Node, save_in_forked_child
from hypothesis import given
from hypothesis import strategies as st

from gc3session import fsio
from gc3session.exceptions import (
    CorruptRecordError,
    IdAllocationError,
    InvalidValue,
    LoadError,
    ReadOnlyStoreError,
    RecordNotFoundError,
    StoreWriteError,
)
from gc3session.persistence import StoreUrl
from gc3session.stores import filesystem
from gc3session.stores.filesystem import COUNTER_FILE, SHARD_SIZE, FilesystemStore
from gc3session.stores.statelog import STATES_FILE, SUMMARIES_FILE
from gc3session.task import Task


def _tmp_files(store: Any) -> list[str]:
    """The temporary files the store's own check reports (leftovers of killed writers)."""
    return [f.path for f in store.check() if f.kind == "tmp-file"]


@pytest.fixture
def store(tmp_path: Any) -> FilesystemStore:
    """A store in ``tmp_path/jobs`` (not created until the first save)."""
    return FilesystemStore(str(tmp_path / "jobs"))


def _checksums(root: str) -> dict[str, tuple[str, int, int]]:
    """sha256, inode and mtime of every file under ``root``."""
    result = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as stream:
                digest = hashlib.sha256(stream.read()).hexdigest()
            st_ = os.lstat(path)
            result[os.path.relpath(path, root)] = (digest, st_.st_ino, st_.st_mtime_ns)
    return result


def _reopen(store: FilesystemStore, **kwargs: Any) -> FilesystemStore:
    return FilesystemStore(store.directory, **kwargs)


# --- the Store API -----------------------------------------------------------------------

def test_save_load_replace_remove_list(store: FilesystemStore, tmp_path: Any) -> None:
    """The gc3libs Store API on a directory: save -> id, load, replace, remove, list, url."""
    assert not os.path.exists(store.directory)  # created by the first save only
    assert store.url == StoreUrl.parse(str(tmp_path / "jobs")) and store.list() == []
    first = store.save(Item("one"))
    second = store.save(Item("two"))
    assert (first, second) == ("Item.1", "Item.2")
    assert sorted(store.list()) == [first, second]
    other = _reopen(store)
    assert other.load(first).payload == "one"
    other.replace(first, Item("replaced"))
    store.invalidate_cache()
    assert store.load(first).payload == "replaced" and store.load(first).persistent_id == first
    store.remove(first)
    store.remove(first)  # already gone: no error
    assert store.list() == [second]
    with pytest.raises(RecordNotFoundError) as info:
        _reopen(store).load(first)
    assert info.value.id == first and info.value.location == store.location(first)
    assert first in str(info.value) and store.location(first) in str(info.value)


def test_saving_again_keeps_the_id(store: FilesystemStore) -> None:
    """A second save of the same object overwrites its record under the same id."""
    item = Item("v1")
    pid = store.save(item)
    item.payload = "v2"
    assert store.save(item) == pid and store.list() == [pid]
    assert _reopen(store).load(pid).payload == "v2"


def test_cache_returns_the_same_object_until_invalidated(store: FilesystemStore) -> None:
    """Loading an id twice gives one object while it is held; invalidate_cache() reads again."""
    item = Item("cached")
    pid = store.save(item)
    assert store.load(pid) is item
    _reopen(store).replace(pid, Item("changed elsewhere"))
    assert store.load(pid) is item
    store.invalidate_cache()
    assert store.load(pid).payload == "changed elsewhere"


def test_batch_api(store: FilesystemStore) -> None:
    """save_many, load_many (with an errors dict) and remove_many work on many ids at once."""
    items = [Item(n) for n in range(20)]
    ids = store.save_many(items)
    assert len(set(ids)) == 20 and [i.persistent_id for i in items] == ids
    store.invalidate_cache()
    loaded = store.load_many(ids)
    assert [loaded[i].payload for i in ids] == list(range(20))
    store.remove_many(ids[:10])
    errors: dict[str, LoadError] = {}
    store.invalidate_cache()
    rest = store.load_many(ids, errors=errors)
    assert sorted(rest) == sorted(ids[10:]) and sorted(errors) == sorted(ids[:10])
    assert all(isinstance(e, RecordNotFoundError) for e in errors.values())
    with pytest.raises(RecordNotFoundError):
        store.load_many(ids)


def test_ids_are_never_reused(store: FilesystemStore) -> None:
    """Removing records does not free their numbers, in this process or a later one."""
    ids = [store.save(Item(n)) for n in range(3)]
    store.remove_many(ids)
    again = _reopen(store).save(Item("after"))
    assert again.seqno > max(i.seqno for i in ids)


def test_bad_ids_are_refused(store: FilesystemStore) -> None:
    """Ids that are not 'Prefix.N' (paths above all) are refused before touching the disk."""
    for bad in ["../etc.1", "Task.1/../../x", "", "Task"]:
        with pytest.raises(InvalidValue):
            store.load(bad)
        with pytest.raises(InvalidValue):
            store.replace(bad, Item())
    assert not os.path.exists(store.directory)


def test_states_without_unpickling(store: FilesystemStore, tmp_path: Any) -> None:
    """states() answers from the state log, even for records whose class cannot be imported."""
    running = Task(jobname="r")
    running.execution.state = "RUNNING"
    rid = store.save(running)
    nid = store.save(Task(jobname="n"))
    store.write_records({"Gone.900": b"GC3S 1 pickle4 nosuch.module:Gone TERMINATED\n\x80\x04."})
    assert store.states() == {rid: "RUNNING", nid: "NEW", "Gone.900": "TERMINATED"}
    assert store.states([rid, "Task.999"]) == {rid: "RUNNING"}
    store.remove(nid)
    assert store.states() == {rid: "RUNNING", "Gone.900": "TERMINATED"}


def test_state_log_lines_and_torn_tail(store: FilesystemStore) -> None:
    """.states gets '<id> ?' before and '<id> <state>' after each write ('<id> !' after a
    removal); a torn last line is ignored."""
    pid = store.save(Task(jobname="x"))
    item = store.save(Item())
    store.remove(item)
    log = os.path.join(store.directory, STATES_FILE)
    with open(log, "rb") as stream:
        assert stream.read() == (f"{pid} ?\n{pid} NEW\n{item} ?\n{item} -\n"
                                 f"{item} ?\n{item} !\n").encode()
    with open(log, "ab") as stream:
        stream.write(b"Task.77 RUNN")  # a crash in the middle of an append
    assert _reopen(store).states() == {pid: "NEW"}


def test_states_fall_back_to_headers_without_a_log(store: FilesystemStore) -> None:
    """Without .states (deleted, or a store copied without it) states() reads the record headers."""
    pid = store.save(Task(jobname="x"))
    os.unlink(os.path.join(store.directory, STATES_FILE))
    assert _reopen(store).states() == {pid: "NEW"}
    store.rebuild_states()
    with open(os.path.join(store.directory, STATES_FILE), "rb") as stream:
        header, body = stream.read().split(b"\n", 1)
    # the size of the lines, and the highest id number the counter handed out (a block of 8)
    assert header == f"#{len(pid) + 5} 8".encode() and body == f"{pid} NEW\n".encode()


def test_state_log_compacts_itself_across_short_lived_handles(store: FilesystemStore) -> None:
    """Each handle lives for one batch (as scripts and gsession runs do): the log still
    compacts, staying within a few lines per record, and reads the same afterwards."""
    tasks = [Task(jobname=f"t{n}") for n in range(400)]
    store.save_many(tasks)
    log = os.path.join(store.directory, STATES_FILE)
    for round_ in range(30):
        handle = _reopen(store, durable=False)  # the log is never fsynced anyway: quicker
        for task in tasks:
            task.execution.state = "RUNNING" if round_ % 2 else "TERMINATED"
        handle.save_many(tasks)
    size = os.path.getsize(log)
    live = sum(len(f"{t.persistent_id} NEW\n") for t in tasks)
    assert size <= 6 * live + (128 << 10), f"{size} bytes of log for {live} bytes of live lines"
    expected = {t.persistent_id: str(t.execution.state) for t in tasks}
    assert _reopen(store).states() == expected
    _reopen(store).rebuild_states()
    assert _reopen(store).states() == expected


def test_a_rebuilt_counter_stays_above_ids_a_compaction_forgot(store: FilesystemStore) -> None:
    """Removed ids vanish from a compacted log; its header keeps the highest number seen."""
    ids = store.save_many([Item(n) for n in range(20)])
    store.remove_many(ids[10:])
    store.rebuild_states()  # a compaction: the removed ids are no longer named
    with open(os.path.join(store.directory, STATES_FILE), "rb") as stream:
        assert not any(str(pid).encode() in stream.read() for pid in ids[10:])
    os.unlink(os.path.join(store.directory, COUNTER_FILE))
    new = _reopen(store).save(Item("new"))
    assert new.seqno > max(i.seqno for i in ids)


# --- the id counter ----------------------------------------------------------------------

def test_counter_file_is_reserved_ahead(store: FilesystemStore) -> None:
    """.next_id holds the next free number: a whole block is reserved before its first id is used."""
    store.save(Item())
    counter = os.path.join(store.directory, COUNTER_FILE)
    with open(counter, "rb") as stream:
        assert stream.read() == b"9\n"  # Item.1 .. Item.8 reserved by this process
    assert _reopen(store).save(Item()) == "Item.9"


def test_missing_counter_is_rebuilt_above_every_record(store: FilesystemStore) -> None:
    """A deleted .next_id restarts above the highest record number, never below it."""
    store.write_records({"Item.4321": store.read_record(store.save(Item()))})
    os.unlink(os.path.join(store.directory, COUNTER_FILE))
    assert _reopen(store).save(Item()) == "Item.4322"


def test_copied_records_are_never_overwritten_by_new_ids(store: FilesystemStore) -> None:
    """write_records() moves the counter (and this store's cached block) past the ids it writes."""
    data = store.read_record(store.save(Item("in use")))  # Item.1; Item.2-8 reserved here
    copied = ["Item.3", "Item.5", "Item.40"]
    store.write_records({pid: data for pid in copied})
    new = [store.save(Item("new")) for _ in range(45)] + [_reopen(store).save(Item("other"))]
    assert not set(new) & set(copied) and min(i.seqno for i in new) > 40
    store.invalidate_cache()
    assert [store.load(pid).payload for pid in copied] == ["in use"] * 3


@pytest.mark.parametrize("garbage", [b"twelve\n", b"-5\n", b"\xff\xfe", b"12 13\n"])
def test_garbage_counter_raises_and_is_left_alone(store: FilesystemStore, garbage: bytes) -> None:
    """An unreadable .next_id raises IdAllocationError naming it, and is not overwritten."""
    store.save(Item())
    counter = os.path.join(store.directory, COUNTER_FILE)
    with open(counter, "wb") as stream:
        stream.write(garbage)
    with pytest.raises(IdAllocationError) as info:
        _reopen(store).save(Item())
    assert info.value.path == counter and counter in str(info.value)
    with open(counter, "rb") as stream:
        assert stream.read() == garbage


def test_forked_child_never_reuses_the_parents_block(store: FilesystemStore) -> None:
    """post_fork() in a child drops the inherited block: parent and child ids stay distinct."""
    parent_first = store.save(Item("parent"))
    child_id = save_in_forked_child(store, "child")
    parent_second = store.save(Item("parent again"))
    assert len({parent_first, parent_second, child_id}) == 3
    store.invalidate_cache()
    assert store.load(child_id).payload == "child"
    assert store.load(parent_second).payload == "parent again"


# --- crash safety and bad records --------------------------------------------------------

def test_writes_leave_no_temporary_files_and_private_modes(store: FilesystemStore) -> None:
    """After saves the store holds only records and metadata, directories 0700 and files 0600."""
    batch = filesystem.GROUP_SYNC_MIN + 2  # large enough for the one-syncfs path
    store.save_many([Item(n) for n in range(batch)])
    store.save(Item("single"))
    assert _tmp_files(store) == [] and len(store.list()) == batch + 1
    for directory, _dirs, files in os.walk(store.directory):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o600


@pytest.mark.parametrize("step", ["create", "write", "fsync", "rename"])
def test_failed_write_keeps_the_old_record(store: FilesystemStore, step: str) -> None:
    """A write failing at any step raises StoreWriteError naming the step; the old record stays."""
    item = Item("old")
    pid = store.save(item)
    item.payload = "new"

    def fail(at: str, path: str) -> None:
        if at == step and os.path.basename(path).startswith((".Item", "Item")):
            raise OSError(errno.ENOSPC, "No space left on device")

    with fsio.inject_faults(fail), pytest.raises(StoreWriteError) as info:
        store.save(item)
    assert info.value.step == step and info.value.errno == errno.ENOSPC
    assert _tmp_files(store) == []
    assert _reopen(store).load(pid).payload == "old"


def test_failed_batch_publishes_nothing(store: FilesystemStore) -> None:
    """A batch whose temporary files cannot all be written renames none of them into place."""
    written = []

    def fail(at: str, path: str) -> None:
        if at == "write":
            written.append(path)
            if len(written) == 3:
                raise OSError(errno.EIO, "Input/output error")

    with fsio.inject_faults(fail), pytest.raises(StoreWriteError):
        store.save_many([Item(n) for n in range(5)])
    assert store.list() == [] and _tmp_files(store) == []


def test_bad_record_raises_and_is_never_touched(store: FilesystemStore) -> None:
    """A record that cannot load raises LoadError naming id and path; load changes no byte on disk."""
    good = store.save(Item("fine"))
    bad = store.save(Item("will be damaged"))
    path = store.location(bad)
    with open(path, "r+b") as stream:
        data = stream.read()
        stream.seek(len(data) // 2)
        stream.truncate()
    before = _checksums(store.directory)
    for _attempt in range(2):
        reader = _reopen(store)
        with pytest.raises(CorruptRecordError) as info:
            reader.load(bad)
        assert info.value.id == bad and info.value.location == path and path in str(info.value)
        errors: dict[str, LoadError] = {}
        assert list(reader.load_many([good, bad], errors=errors)) == [good]
        assert list(errors) == [bad]
        reader.states()
        reader.list()
    assert _checksums(store.directory) == before


def test_unreadable_record_is_a_load_error(store: FilesystemStore) -> None:
    """A record that is a directory (or otherwise unreadable) raises LoadError with id and path."""
    pid = store.save(Item())
    os.unlink(store.location(pid))
    os.mkdir(store.location(pid))
    with pytest.raises(LoadError) as info:
        _reopen(store).load(pid)
    assert info.value.id == pid and info.value.location == store.location(pid)


def test_symlinked_shard_is_refused(store: FilesystemStore, tmp_path: Any) -> None:
    """A shard replaced by a symlink is never written through, read through or listed."""
    pid = store.save(Item("inside"))
    shard = os.path.dirname(store.location(pid))
    outside = tmp_path / "outside"
    os.rename(shard, outside)
    os.symlink(outside, shard)
    before = _checksums(str(outside))
    reader = _reopen(store)
    with pytest.raises(LoadError) as info:
        reader.load(pid)
    assert info.value.id == pid
    assert reader.list() == []
    with pytest.raises(StoreWriteError) as write_info:
        reader.save(Item("would land outside"))
    assert write_info.value.path == shard and "symlink" in str(write_info.value)
    assert _checksums(str(outside)) == before


def test_store_path_that_is_a_file_gives_typed_errors(tmp_path: Any) -> None:
    """A store path that is a regular file: saves raise StoreWriteError, reads LoadError, the file stays."""
    path = tmp_path / "a-file"
    path.write_bytes(b"user data")
    store = FilesystemStore(str(path))
    with pytest.raises(StoreWriteError) as info:
        store.save(Item())
    assert info.value.path == str(path)
    for read in (store.list, store.states, lambda: store.load("Item.1")):
        with pytest.raises(LoadError):
            read()
    assert path.read_bytes() == b"user data"


def test_symlinked_state_log_is_refused(store: FilesystemStore, tmp_path: Any) -> None:
    """A .states planted as a symlink is not followed: states() raises LoadError naming it."""
    store.save(Task(jobname="x"))
    log = os.path.join(store.directory, STATES_FILE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"Task.5 FAKE\n")
    os.unlink(log)
    os.symlink(elsewhere, log)
    with pytest.raises(LoadError) as info:
        _reopen(store).states()
    assert info.value.location == log


def test_readonly_store_writes_nothing(store: FilesystemStore) -> None:
    """readonly=True: every write raises ReadOnlyStoreError, reads work, no file changes."""
    pid = store.save(Task(jobname="ro"))
    before = _checksums(store.directory)
    reader = _reopen(store, readonly=True)
    for write in (lambda: reader.save(Item()), lambda: reader.replace(pid, Item()),
                  lambda: reader.remove(pid), lambda: reader.save_many([Item()]),
                  lambda: reader.remove_many([pid]), lambda: reader.write_records({})):
        with pytest.raises(ReadOnlyStoreError):
            write()
    assert reader.load(pid).jobname == "ro" and reader.states() == {pid: "NEW"}
    assert _checksums(store.directory) == before


def test_not_durable_store_still_round_trips(tmp_path: Any) -> None:
    """durable=False (GC3Pie's durability) skips fsync but keeps every write atomic."""
    fast = FilesystemStore(str(tmp_path / "fast"), durable=False)
    node = Node("root")
    node.children.append(Node("child"))
    pid = fast.save(node)
    assert _tmp_files(fast) == []
    assert _reopen(fast).load(pid).children[0].name == "child"


# --- sharding ------------------------------------------------------------------------------

@given(st.integers(min_value=1, max_value=10**12))
def test_shard_arithmetic(seqno: int) -> None:
    """Record N lives in shard N // SHARD_SIZE: each shard holds SHARD_SIZE consecutive numbers."""
    store = FilesystemStore("/nonexistent/jobs")
    path = store.location(f"Task.{seqno}")
    assert path == f"/nonexistent/jobs/{seqno // SHARD_SIZE}/Task.{seqno}"
    first_of_shard = (seqno // SHARD_SIZE) * SHARD_SIZE
    assert os.path.dirname(store.location(f"X.{first_of_shard}")) == os.path.dirname(path)
    assert os.path.dirname(store.location(f"X.{first_of_shard + SHARD_SIZE}")) != os.path.dirname(path)


def test_boundary_records_land_in_their_shards(store: FilesystemStore) -> None:
    """Numbers 999, 1000, 1999, 10**6 are files in shards 0, 1, 1 and 1000, and load from there."""
    data = store.read_record(store.save(Item("template")))
    ids = ["Item.999", "Item.1000", "Item.1999", f"Item.{10**6}"]
    store.write_records({pid: data for pid in ids})
    for pid, shard in zip(ids, ["0", "1", "1", "1000"]):
        assert os.path.isfile(os.path.join(store.directory, shard, pid))
        assert store.load(pid).payload == "template"


def test_no_directory_holds_more_than_shard_size_records(store: FilesystemStore) -> None:
    """2,100 saves spread over three shards, none holding more than SHARD_SIZE records."""
    ids = store.save_many([Item(n) for n in range(2100)])
    shards = sorted(e for e in os.listdir(store.directory) if e.isdigit())
    assert shards == ["0", "1", "2"]
    counts = [len(os.listdir(os.path.join(store.directory, s))) for s in shards]
    assert max(counts) <= SHARD_SIZE and sum(counts) == 2100
    top_level = [e for e in os.listdir(store.directory) if not e.isdigit()]
    assert sorted(top_level) == sorted([".lock", COUNTER_FILE, STATES_FILE, SUMMARIES_FILE])
    assert len(store.list()) == 2100 and len(set(ids)) == 2100
