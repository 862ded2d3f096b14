"""Seams of the session API: the same object twice, an object from elsewhere, a failed add.

Each test sets the situation up on real session directories, with each of
the three stores (a directory of records, an SQLite file, a PostgreSQL
database of the throwaway test server), and checks what a fresh handle sees
afterwards.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable

import pytest
from _session_objects import PayloadTask, index_lines, payloads

from gc3session import ParallelTaskCollection, Session, Task, fresh_copy
from gc3session.exceptions import (
    ForeignTaskError,
    LoadError,
    RecordNotFoundError,
    SerializationError,
    SessionNotFoundError,
)

STORES = ["file", "sqlite", "postgresql"]


@pytest.fixture(params=STORES)
def make_session(request: pytest.FixtureRequest, tmp_path: Any) -> Callable[..., Session]:
    """``make_session(name)``: a new session in ``tmp_path/name`` on the parametrized store."""
    kind = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "postgresql" else None

    def make(name: str, **kwargs: Any) -> Session:
        path = str(tmp_path / name)
        if kind == "sqlite":
            url: str | None = f"sqlite:///{tmp_path}/{name}.db"
        elif kind == "postgresql":
            url = f"{pg_url}#table={name}"
        else:
            url = None
        return Session(path, store_or_url=url, **kwargs)

    return make


def _reopen(session: Session) -> Session:
    return Session(session.path, store_or_url=session.store_url)


class Unpicklable(Task):
    """A task holding a lambda (pickle cannot name it)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hook = lambda: None


# --- item 1: remove, then add the same object -------------------------------------
@pytest.mark.parametrize("flush", [True, False])
def test_remove_then_add_the_same_object_writes_it_again(make_session: Callable[..., Session],
                                                         flush: bool) -> None:
    session = make_session("s")
    task = PayloadTask(jobname="a", payload=1)
    other = PayloadTask(jobname="b", payload=2)
    session.add(task)
    session.add(other)
    session.remove(task.persistent_id, flush=flush)
    assert session.add(task) == task.persistent_id
    session.flush()
    assert sorted(index_lines(session.path)) == sorted([other.persistent_id, task.persistent_id])
    session.close()
    with _reopen(session) as again:
        assert payloads(again) == {task.persistent_id: 1, other.persistent_id: 2}


def test_remove_then_add_a_collection_writes_its_children_again(
        make_session: Callable[..., Session]) -> None:
    session = make_session("s")
    children = [PayloadTask(jobname=f"c{n}", payload=n) for n in range(3)]
    collection = ParallelTaskCollection(children, jobname="coll")
    session.add(collection)
    session.remove(collection.persistent_id)
    assert not set(session.store.list()) & {c.persistent_id for c in children}
    session.add(collection)
    session.close()
    with _reopen(session) as again:
        loaded = again.load(collection.persistent_id)
        assert [c.payload for c in loaded.tasks] == [0, 1, 2]


def test_a_removed_child_that_joins_again_keeps_its_record(make_session: Callable[..., Session]) -> None:
    """remove(parent, flush=False), then add(child): the flush must not delete the child."""
    session = make_session("s")
    child = PayloadTask(jobname="child", payload=7)
    parent = ParallelTaskCollection([child], jobname="parent")
    session.add(parent)
    session.remove(parent.persistent_id, flush=False)
    session.add(child)
    session.close()
    with _reopen(session) as again:
        assert payloads(again) == {child.persistent_id: 7}


# --- item 2: a task of another session ----------------------------------------------
def test_a_task_of_another_session_is_refused_naming_both(make_session: Callable[..., Session]) -> None:
    first, second = make_session("first"), make_session("second")
    mine = PayloadTask(jobname="mine", payload="second's")
    second.add(mine)
    theirs = PayloadTask(jobname="theirs", payload="first's")
    first.add(theirs)
    assert theirs.persistent_id == mine.persistent_id  # the same id means two tasks here
    before = index_lines(second.path)
    with pytest.raises(ForeignTaskError) as info:
        second.add(theirs)
    assert first.path in str(info.value) and second.path in str(info.value)
    assert info.value.id == theirs.persistent_id
    assert index_lines(second.path) == before and len(second) == 1
    copy = fresh_copy(theirs)
    new_id = second.add(copy)
    assert new_id != mine.persistent_id and theirs.persistent_id == mine.persistent_id
    first.close()
    second.close()
    with _reopen(second) as again:
        assert payloads(again) == {mine.persistent_id: "second's", new_id: "first's"}
    with _reopen(first) as again:
        assert payloads(again) == {theirs.persistent_id: "first's"}


def test_a_task_loaded_from_a_closed_session_is_still_refused(
        make_session: Callable[..., Session]) -> None:
    first = make_session("first")
    first.add(PayloadTask(jobname="x", payload=1))
    first.close()
    with _reopen(first) as handle:
        loaded = handle.load(handle.list_ids()[0])
    del handle  # its store is gone; the task remembers where it belongs
    second = make_session("second")
    second.add(PayloadTask(jobname="y", payload=2))
    with pytest.raises(ForeignTaskError):
        second.add(loaded)
    with pytest.raises(ForeignTaskError):
        second.save(loaded)  # saving without adding is refused too
    second.close()


def test_a_collection_holding_a_foreign_child_is_refused(make_session: Callable[..., Session]) -> None:
    first, second = make_session("first"), make_session("second")
    foreign = PayloadTask(jobname="foreign", payload=1)
    first.add(foreign)
    second.add(PayloadTask(jobname="own", payload=2))
    listing = sorted(second.store.list())
    with pytest.raises(ForeignTaskError):
        second.add(ParallelTaskCollection([foreign], jobname="coll"))
    assert sorted(second.store.list()) == listing and len(second) == 1
    first.close()
    second.close()


def test_two_handles_of_one_session_share_their_tasks(make_session: Callable[..., Session]) -> None:
    """A task loaded through one handle is at home in the other (same store): no refusal."""
    session = make_session("s")
    task = PayloadTask(jobname="t", payload=3)
    session.add(task)
    other = _reopen(session)
    assert other.add(task) == task.persistent_id
    other.add(PayloadTask(jobname="u", payload=4))
    session.close()
    other.close()
    assert len(index_lines(session.path)) == 2


# --- item 3: the counter never hands out a listed id ---------------------------------
def test_emptied_jobs_directory_never_reuses_listed_ids(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    with Session(path) as session:
        listed = [session.add(Task(n=n)) for n in range(5)]
    jobs = os.path.join(path, "jobs")
    shutil.rmtree(jobs)
    os.mkdir(jobs, 0o700)  # "cleaned": present, empty
    with Session(path, load=False) as session:
        new = session.add(Task(n=99))
    assert new not in listed and new.seqno > max(i.seqno for i in listed)
    assert index_lines(path) == [*listed, new]


def test_store_restored_from_an_older_backup_never_reuses_listed_ids(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    backup = str(tmp_path / "backup")
    with Session(path) as session:
        session.add(Task(n=0))
        shutil.copytree(os.path.join(path, "jobs"), backup)
        later = [session.add(Task(n=n)) for n in range(1, 20)]  # past the first id block
    shutil.rmtree(os.path.join(path, "jobs"))
    shutil.copytree(backup, os.path.join(path, "jobs"))
    with Session(path, load=False) as session:
        new = session.add(Task(n=9))
    assert new.seqno > max(i.seqno for i in later)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_emptied_sql_table_never_reuses_listed_ids(tmp_path: Any, kind: str,
                                                   request: pytest.FixtureRequest) -> None:
    import sqlalchemy as sa

    from gc3session.stores.sqlengine import sqlalchemy_url

    url = f"sqlite:///{tmp_path}/s.db" if kind == "sqlite" else request.getfixturevalue("pg_url")
    path = str(tmp_path / "s")
    with Session(path, store_or_url=url) as session:
        listed = [session.add(Task(n=n)) for n in range(4)]
        engine_url = sqlalchemy_url(session.store.url)
    engine = sa.create_engine(engine_url)
    with engine.begin() as conn:  # a restore of an older dump: no rows, counter back at 1
        conn.execute(sa.text("DELETE FROM store"))
        conn.execute(sa.text("UPDATE gc3session_meta SET value = 1 WHERE key = 'next_id:store'"))
    engine.dispose()
    with Session(path, load=False) as session:
        new = session.add(Task(n=9))
    assert new.seqno > max(i.seqno for i in listed)


# --- item 4: a failed add leaves everything as it was --------------------------------
def test_a_failed_add_does_not_poison_the_handle(make_session: Callable[..., Session]) -> None:
    session = make_session("s")
    good = session.add(PayloadTask(jobname="good", payload=1))
    before = index_lines(session.path)
    bad = Unpicklable(jobname="bad")
    with pytest.raises(SerializationError):
        session.add(bad)
    assert bad not in session and len(session) == 1 and index_lines(session.path) == before
    later = session.add(PayloadTask(jobname="later", payload=2))
    session.close()
    with _reopen(session) as again:
        assert payloads(again) == {good: 1, later: 2}


def test_a_failed_batch_flush_names_the_culprit_and_keeps_the_rest(
        make_session: Callable[..., Session]) -> None:
    session = make_session("s")
    first = session.add(PayloadTask(jobname="a", payload=1), flush=False)
    bad = Unpicklable(jobname="bad")
    session.add(bad, flush=False)
    second = session.add(PayloadTask(jobname="b", payload=2), flush=False)
    with pytest.raises(SerializationError) as info:
        session.flush()
    assert info.value.id == bad.persistent_id
    assert index_lines(session.path) == []  # nothing of the batch was written
    assert bad not in session and len(session) == 2
    session.flush()  # the rest goes on
    session.close()
    with _reopen(session) as again:
        assert payloads(again) == {first: 1, second: 2}


def test_a_failed_save_all_keeps_the_session(make_session: Callable[..., Session]) -> None:
    session = make_session("s")
    task = PayloadTask(jobname="a", payload=1)
    session.add(task)
    task.payload = 2
    task.hook = lambda: None
    with pytest.raises(SerializationError):
        session.save_all()
    del task.hook
    session.save_all()  # the same task, picklable again, saves
    session.close()
    with _reopen(session) as again:
        assert payloads(again) == {task.persistent_id: 2}


# --- item 5: no stale objects after remove or destroy -----------------------------------
@pytest.mark.parametrize("flush", [True, False])
def test_load_after_remove_raises_like_a_fresh_handle(make_session: Callable[..., Session],
                                                      flush: bool) -> None:
    session = make_session("s")
    child = PayloadTask(jobname="c", payload=0)
    keep = PayloadTask(jobname="k", payload=1)
    session.add(ParallelTaskCollection([child], jobname="p"))
    session.add(keep)
    parent_id = session.list_ids()[0]
    session.remove(parent_id, flush=flush)
    for pid in (parent_id, child.persistent_id):
        with pytest.raises(RecordNotFoundError):
            session.load(pid)
    errors: dict[str, LoadError] = {}
    session._ignore_errors = True
    session.load_many([parent_id, keep.persistent_id], add=False)
    errors.update(session.load_errors)
    assert set(errors) == {parent_id}
    session.flush()
    session.close()
    with _reopen(session) as again, pytest.raises(RecordNotFoundError):
        again.load(parent_id)


def test_load_after_destroy_raises_like_a_fresh_handle(make_session: Callable[..., Session]) -> None:
    session = make_session("s")
    pid = session.add(PayloadTask(jobname="a", payload=1))
    session.destroy()
    with pytest.raises(RecordNotFoundError):
        session.load(pid)
    assert len(session) == 0 and list(session) == []
    with pytest.raises(SessionNotFoundError):
        session.add(PayloadTask(jobname="b", payload=2))


# --- item 8: gsession copy while another handle has the session open ---------------------
def test_a_handle_open_during_a_copy_refuses_to_write_to_the_old_store(tmp_path: Any) -> None:
    from gc3session.exceptions import StoreSwitchedError
    from gc3session.storecopy import copy_session

    path = str(tmp_path / "s")
    handle = Session(path)
    tasks = [PayloadTask(jobname=f"t{n}", payload=n) for n in range(3)]
    for task in tasks:
        handle.add(task)
    old_records = sorted(handle.store.list())
    copy_session(path, f"sqlite:///{tmp_path}/new.db")
    late = PayloadTask(jobname="late", payload=99)
    with pytest.raises(StoreSwitchedError, match="gsession copy"):
        handle.add(late)
    tasks[0].payload = 100
    with pytest.raises(StoreSwitchedError):
        handle.save_all()
    with pytest.raises(StoreSwitchedError):
        handle.remove(tasks[1].persistent_id)
    assert sorted(handle.store.list()) == old_records  # nothing reached the old store
    assert late not in handle and len(index_lines(path)) == 3
    handle.close()
    with Session(path) as again:
        assert again.store_url.base_scheme == "sqlite"
        assert payloads(again) == {t.persistent_id: n for n, t in enumerate(tasks)}
        assert again.add(fresh_copy(late)) not in old_records


_ADDER = r"""
import os, sys, time
from gc3session import Session, Task
from gc3session.exceptions import StoreSwitchedError
path, stop = sys.argv[1], sys.argv[2]
session = Session(path)
n = 0
while not os.path.exists(stop):
    try:
        pid = session.add(Task(jobname=f"child-{n}", n=n))
    except StoreSwitchedError:
        session.close()
        session = Session(path)  # the session moved: go on in its new store
        continue
    print(pid, n, flush=True)
    n += 1
session.close()
"""


def test_a_process_adding_during_gsession_copy_loses_nothing(tmp_path: Any) -> None:
    """A script adds tasks in a loop while `gsession copy` moves the session: every task whose
    add returned is in the new store, listed once, with its own payload."""
    import subprocess
    import sys
    import time

    from _session_objects import child_env

    path = str(tmp_path / "s")
    with Session(path) as session:
        for n in range(200):
            session.add(Task(jobname=f"before-{n}", n=-1 - n), flush=False)
        session.flush()
    stop = str(tmp_path / "stop")
    child = subprocess.Popen([sys.executable, "-c", _ADDER, path, stop], env=child_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        copy = subprocess.run([sys.executable, "-m", "gc3session.cli", "copy", path,
                               f"sqlite:///{tmp_path}/new.db"], env=child_env(),
                              capture_output=True, text=True, timeout=120)
        assert copy.returncode == 0, copy.stderr
        time.sleep(1.0)
    finally:
        open(stop, "w").close()
        out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    added = dict(line.split() for line in out.splitlines())
    assert len(added) > 5
    lines = index_lines(path)
    assert len(lines) == len(set(lines)) == 200 + len(added)
    with Session(path, mode="r") as after:
        assert after.store_url.base_scheme == "sqlite"
        for pid, n in added.items():
            assert after.load(pid, add=False).n == int(n)


# --- item 10: the state index after a crash ---------------------------------------------
def _kill_between_renames_and_state_lines(path: str, task_id: str) -> None:
    """In a forked child: load ``task_id``, make it TERMINATED and save it, killed (SIGKILL)
    right after the rename of its record, before the state log learns the new state."""
    import signal

    from gc3session import fsio

    pid = os.fork()
    if pid == 0:
        try:
            session = Session(path)
            task = session.load(task_id)
            task.execution.state = "TERMINATED"
            renamed = []

            def hook(step: str, target: str) -> None:
                if step == "rename" and target.endswith(task_id):
                    renamed.append(target)
                elif renamed and target.endswith(".states"):
                    os.kill(os.getpid(), signal.SIGKILL)

            with fsio.inject_faults(hook):
                session.save(task)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_states_are_right_after_a_crash_without_any_repair(tmp_path: Any) -> None:
    import subprocess
    import sys

    from _session_objects import child_env

    path = str(tmp_path / "s")
    with Session(path) as session:
        ids = [session.add(Task(jobname=f"t{n}")) for n in range(3)]
    _kill_between_renames_and_state_lines(path, ids[1])
    with open(os.path.join(path, "jobs", "0", ids[1]), "rb") as stream:
        assert b" TERMINATED {" in stream.readline()  # the record has the new state
    with Session(path, mode="r", load=False) as reader:  # a reader that may not write
        assert reader.states() == {ids[0]: "NEW", ids[1]: "TERMINATED", ids[2]: "NEW"}

    def gsession(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gc3session.cli", *args], env=child_env(),
                              capture_output=True, text=True, timeout=120)

    stats = gsession("stats", "--json", path)
    assert stats.returncode == 0 and '"TERMINATED": 1' in stats.stdout
    fsck = gsession("fsck", path)
    assert fsck.returncode == 0 and "stale" not in fsck.stdout, fsck.stdout
    with Session(path, load=False) as writer:  # the next writer reconciles the log itself
        writer.add(Task(jobname="later"))
        assert writer.states()[ids[1]] == "TERMINATED"
    with open(os.path.join(path, "jobs", ".states"), "rb") as stream:
        last = [line for line in stream.read().splitlines() if line.startswith(ids[1].encode())][-1]
    assert last == f"{ids[1]} TERMINATED".encode()
    fsck = gsession("fsck", path)
    assert fsck.returncode == 0 and "stale" not in fsck.stdout, fsck.stdout


def test_a_removal_killed_before_its_state_line_does_not_show_the_task(tmp_path: Any) -> None:
    import signal

    from gc3session import fsio

    path = str(tmp_path / "s")
    with Session(path) as session:
        ids = [session.add(Task(jobname=f"t{n}")) for n in range(2)]
    pid = os.fork()
    if pid == 0:
        try:
            session = Session(path)
            unlinked = []

            def hook(step: str, target: str) -> None:
                if step == "unlink":
                    unlinked.append(target)
                elif unlinked and target.endswith(".states"):
                    os.kill(os.getpid(), signal.SIGKILL)

            with fsio.inject_faults(hook):
                session.remove(ids[0])
        finally:
            os._exit(3)
    os.waitpid(pid, 0)
    with Session(path, mode="r", load=False) as reader:
        assert reader.store.states() == {ids[1]: "NEW"}
