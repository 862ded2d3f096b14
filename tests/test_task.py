"""The task model: Run.State, Task, Run (execution), history, the changed flag, collections."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gc3session import ParallelTaskCollection, Run, SequentialTaskCollection, Session, Task, TaskCollection
from gc3session.exceptions import InvalidValue
from gc3session.stores.filesystem import FilesystemStore
from gc3session.task import HISTORY_LIMIT

STATES = ["NEW", "SUBMITTED", "RUNNING", "TERMINATING", "TERMINATED", "STOPPED", "UNKNOWN"]
COLLECTIONS = [TaskCollection, ParallelTaskCollection, SequentialTaskCollection]


def _reopen_store(store: FilesystemStore) -> FilesystemStore:
    """A new store object on the same directory (nothing cached)."""
    return FilesystemStore(store.directory)


@pytest.fixture
def store(tmp_path: "os.PathLike[str]") -> FilesystemStore:
    return FilesystemStore(os.path.join(tmp_path, "jobs"))


# --- Run.State ------------------------------------------------------------------

def test_run_state_has_exactly_the_gc3libs_states() -> None:
    assert sorted(s.name for s in Run.State) == sorted(STATES)


@pytest.mark.parametrize("name", STATES)
def test_run_state_members_equal_their_names(name: str) -> None:
    member = getattr(Run.State, name)
    assert member == name
    assert str(member) == name
    assert hash(member) == hash(name)
    assert {name: 1}[member] == 1


@pytest.mark.parametrize("name", STATES)
def test_state_survives_save_and_load(store: FilesystemStore, name: str) -> None:
    task = Task()
    task.execution.state = name
    pid = store.save(task)
    loaded = _reopen_store(store).load(pid)
    assert loaded.execution.state == name
    assert loaded.execution.state is getattr(Run.State, name)
    assert store.states([pid]) == {pid: name}


def test_unknown_state_is_rejected() -> None:
    task = Task()
    with pytest.raises(InvalidValue, match="BOGUS"):
        task.execution.state = "BOGUS"
    assert task.execution.state == "NEW"


# --- Task attributes ----------------------------------------------------------------

def test_keyword_arguments_become_attributes() -> None:
    task = Task(jobname="align-42", sample="S42", size=3, inputs=["a", "b"])
    assert task.jobname == "align-42"
    assert task.sample == "S42"
    assert task.size == 3
    assert task.inputs == ["a", "b"]
    assert "sample" in task and "nothing" not in task


def test_jobname_defaults_to_none() -> None:
    assert Task().jobname is None
    assert Task(size=1).jobname is None


def test_attributes_survive_save_and_load(store: FilesystemStore) -> None:
    task = Task(jobname="j", sample="S1", numbers=[1, 2, 3], nested={"a": (1, 2)})
    pid = store.save(task)
    loaded = _reopen_store(store).load(pid)
    assert loaded is not task
    assert (loaded.jobname, loaded.sample, loaded.numbers, loaded.nested) == \
        ("j", "S1", [1, 2, 3], {"a": (1, 2)})
    assert loaded.persistent_id == pid


# --- execution -------------------------------------------------------------------------

def test_new_task_execution_starts_new_with_a_timestamp() -> None:
    before = time.time()
    task = Task()
    after = time.time()
    run = task.execution
    assert isinstance(run, Run)
    assert run.state == Run.State.NEW
    assert before <= run.timestamp["NEW"] <= after
    assert run.returncode is None and run.exitcode is None and run.signal is None


def test_each_state_change_is_timestamped_and_logged() -> None:
    run = Task().execution
    seen = {}
    for name in ["SUBMITTED", "RUNNING", "TERMINATING", "TERMINATED"]:
        before = time.time()
        run.state = name
        after = time.time()
        seen[name] = run.timestamp[name]
        assert before <= run.timestamp[name] <= after
        assert run.state == name
    assert list(seen.values()) == sorted(seen.values())
    messages = [message for message, _, _ in run.history]
    assert messages == ["Transition from state NEW to state SUBMITTED",
                        "Transition from state SUBMITTED to state RUNNING",
                        "Transition from state RUNNING to state TERMINATING",
                        "Transition from state TERMINATING to state TERMINATED"]


def test_setting_the_same_state_again_changes_nothing() -> None:
    run = Task().execution
    run.state = "RUNNING"
    stamp, length = run.timestamp["RUNNING"], len(run.history)
    run.state = Run.State.RUNNING
    assert run.timestamp["RUNNING"] == stamp and len(run.history) == length


@given(exitcode=st.integers(0, 255), signal=st.integers(0, 127))
@settings(max_examples=60, deadline=None, database=None)
def test_returncode_combines_exitcode_and_signal(exitcode: int, signal: int) -> None:
    rc = (exitcode << 8) | signal
    run = Task().execution
    run.returncode = rc
    assert (run.exitcode, run.signal, run.returncode) == (exitcode, signal, rc)

    run = Task().execution
    run.returncode = (signal, exitcode)  # gc3libs: a (signal, exitcode) tuple
    assert (run.exitcode, run.signal, run.returncode) == (exitcode, signal, rc)

    run = Task().execution
    run.exitcode = exitcode
    run.signal = signal
    assert run.returncode == rc


def test_returncode_examples() -> None:
    run = Task().execution
    run.exitcode = 2
    assert run.returncode == 512 and run.signal is None
    run.returncode = (9, 0)
    assert (run.returncode, run.signal, run.exitcode) == (9, 9, 0)
    run.returncode = None
    assert (run.returncode, run.signal, run.exitcode) == (None, None, None)


def test_returncode_survives_save_and_load(store: FilesystemStore) -> None:
    task = Task()
    task.execution.returncode = (15, 3)
    task.execution.state = "TERMINATED"
    pid = store.save(task)
    loaded = _reopen_store(store).load(pid).execution
    assert (loaded.returncode, loaded.exitcode, loaded.signal) == ((3 << 8) | 15, 3, 15)


def test_history_keeps_the_newest_1000_messages() -> None:
    assert HISTORY_LIMIT == 1000
    run = Task().execution
    for i in range(1100):
        run.info = f"message {i}"
    messages = [message for message, _, _ in run.history]
    assert len(run.history) == 1000
    assert messages == [f"message {i}" for i in range(100, 1100)]
    assert run.info == "message 1099"


def test_history_is_bounded_after_a_reload(store: FilesystemStore) -> None:
    task = Task()
    for i in range(1000):
        task.execution.info = f"m{i}"
    pid = store.save(task)
    loaded = _reopen_store(store).load(pid)
    for i in range(1000, 1100):
        loaded.execution.info = f"m{i}"
    assert [m for m, _, _ in loaded.execution.history] == [f"m{i}" for i in range(100, 1100)]


def test_history_messages_carry_their_time() -> None:
    run = Task().execution
    before = time.time()
    run.info = "hello"
    after = time.time()
    (message, when, _tags), = list(run.history)
    assert message == "hello" and before <= when <= after


def test_info_is_the_newest_message() -> None:
    run = Task().execution
    assert run.info is None
    run.info = "first"
    run.info = "second"
    assert run.info == "second"
    run.state = "RUNNING"
    assert run.info == "Transition from state NEW to state RUNNING"


@pytest.mark.parametrize("state, returncode, ok, failed", [
    ("TERMINATED", 0, True, False),
    ("TERMINATED", 1 << 8, False, True),
    ("TERMINATED", 9, False, True),  # killed by a signal
    ("RUNNING", 0, False, False),
    ("NEW", None, False, False),
    ("STOPPED", 1 << 8, False, False),
])
def test_in_state_ok_and_failed(state: str, returncode: int | None, ok: bool, failed: bool) -> None:
    run = Task().execution
    run.returncode = returncode
    run.state = state
    assert run.in_state("ok") is ok
    assert run.in_state("failed") is failed
    assert run.in_state(state)
    assert run.in_state("UNKNOWN", state)
    assert not run.in_state("UNKNOWN")


# --- the changed flag ------------------------------------------------------------------

def test_changed_set_on_creation_and_cleared_by_store_save(store: FilesystemStore) -> None:
    task = Task(x=1)
    assert task.changed is True
    store.save(task)
    assert task.changed is False


@pytest.mark.parametrize("change", [
    lambda t: setattr(t, "x", 2),
    lambda t: setattr(t, "new_attribute", "v"),
    lambda t: setattr(t, "jobname", "renamed"),
    lambda t: setattr(t.execution, "state", "RUNNING"),
    lambda t: setattr(t.execution, "returncode", 256),
    lambda t: setattr(t.execution, "exitcode", 1),
    lambda t: setattr(t.execution, "signal", 9),
    lambda t: setattr(t.execution, "info", "a message"),
], ids=["attr", "new-attr", "jobname", "state", "returncode", "exitcode", "signal", "info"])
def test_changes_set_the_flag(store: FilesystemStore, change: "object") -> None:
    task = Task(x=1)
    store.save(task)
    assert task.changed is False
    change(task)  # type: ignore[operator]
    assert task.changed is True
    store.save(task)
    assert task.changed is False
    # and the same on a freshly loaded task
    loaded = _reopen_store(store).load(task.persistent_id)
    assert loaded.changed is False
    change(loaded)  # type: ignore[operator]
    assert loaded.changed is True


def test_session_save_clears_the_flag(tmp_path: "os.PathLike[str]") -> None:
    session = Session(os.path.join(tmp_path, "s"))
    task = Task(x=1)
    session.save(task)
    assert task.changed is False
    task.x = 2
    assert task.changed is True
    session.save(task)
    assert task.changed is False
    added = Task(y=1)
    session.add(added)
    assert added.changed is False


def test_loaded_tasks_are_unchanged(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(tmp_path, "s")
    session = Session(path)
    session.add(Task(x=1))
    session.add(TaskCollection([Task(y=1), Task(y=2)]))
    for task in Session(path).iter_workflow():
        assert task.changed is False, task


# --- collections ------------------------------------------------------------------------

@pytest.mark.parametrize("cls", COLLECTIONS)
def test_collection_holds_children_in_tasks(cls: type) -> None:
    children = [Task(n=i) for i in range(3)]
    coll = cls(children, jobname="c")
    assert coll.tasks == children
    assert coll.jobname == "c"
    extra = Task(n=3)
    coll.add(extra)
    assert coll.tasks[-1] is extra


@pytest.mark.parametrize("cls", COLLECTIONS)
def test_children_are_records_of_their_own(tmp_path: "os.PathLike[str]", cls: type) -> None:
    path = os.path.join(tmp_path, "s")
    session = Session(path)
    children = [Task(n=i) for i in range(3)]
    cid = session.add(cls(children))
    child_ids = [c.persistent_id for c in children]
    assert all(pid is not None for pid in child_ids)
    assert set(session.store.list()) == {cid, *child_ids}
    assert session.list_ids() == [cid]  # children are not top-level tasks
    for pid in child_ids:  # each child loads on its own
        assert os.path.isfile(session.store.location(pid))
        assert FilesystemStore(session.store.directory).load(pid).n == child_ids.index(pid)

    reopened = Session(path)
    coll = reopened.tasks[cid]
    assert type(coll) is cls
    assert [c.persistent_id for c in coll.tasks] == child_ids
    assert [c.n for c in coll.tasks] == [0, 1, 2]


@pytest.mark.parametrize("cls", COLLECTIONS)
def test_collection_changed_when_a_child_changed(tmp_path: "os.PathLike[str]", cls: type) -> None:
    path = os.path.join(tmp_path, "s")
    session = Session(path)
    inner = ParallelTaskCollection([Task(n=10), Task(n=11)])
    coll = cls([Task(n=0), inner])
    session.add(coll)
    assert coll.changed is False and inner.changed is False
    coll.tasks[0].n = 100
    assert coll.changed is True
    session.save_all()
    assert coll.changed is False
    inner.tasks[1].execution.state = "RUNNING"  # a grandchild's execution record
    assert inner.changed is True and coll.changed is True
    session.save_all()
    assert coll.changed is False and inner.changed is False

    reopened = Session(path).tasks[coll.persistent_id]
    assert reopened.changed is False
    assert reopened.tasks[0].n == 100
    assert reopened.tasks[1].tasks[1].execution.state == "RUNNING"


def test_save_all_rewrites_only_the_changed_child(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(tmp_path, "s")
    session = Session(path)
    children = [Task(n=i) for i in range(4)]
    coll = ParallelTaskCollection(children)
    session.add(coll)
    inodes = {t.persistent_id: os.stat(session.store.location(t.persistent_id)).st_ino
              for t in [coll, *children]}

    children[2].n = 200
    session.save_all()

    after = {pid: os.stat(session.store.location(pid)).st_ino for pid in inodes}
    rewritten = {pid for pid in inodes if inodes[pid] != after[pid]}
    # every write is a rename of a new file: unchanged records keep their inode
    assert children[2].persistent_id in rewritten
    assert rewritten <= {children[2].persistent_id, coll.persistent_id}
    assert Session(path).tasks[coll.persistent_id].tasks[2].n == 200


def test_sequential_collection_keeps_its_position(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(tmp_path, "s")
    session = Session(path)
    seq = SequentialTaskCollection([Task(n=0), Task(n=1)])
    assert seq._current_task == 0
    seq._current_task = 1
    session.add(seq)
    assert Session(path).tasks[seq.persistent_id]._current_task == 1
