"""Fault injection at every write step: errors are typed, nothing committed is lost.

Each scenario is run once with a recording hook to list the steps it takes
(create, write, fsync, rename, fsync-dir, unlink, mkdir, truncate); then for
every step it is run again from the same starting point with that step
failing (ENOSPC, EIO, EACCES) or the process being killed there.  After the
fault: the error is a gc3session error naming the path and the step, what
was committed before is intact, no temporary file is left that could block
the next write, and the same operation succeeds once the fault is gone.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import Any, Callable

import pytest
from _faults import FaultAt, die, fail_with
from _report import record

from gc3session import Session, Task, fsio
from gc3session.exceptions import Error, StoreWriteError

Scenario = Callable[[Session], Any]


def _setup(path: str) -> Session:
    session = Session(path)
    for n in range(3):
        session.add(Task(jobname=f"old-{n}", n=n))
    return session


def _add(session: Session) -> Any:
    return session.add(Task(jobname="new", n=99))


def _add_batch(session: Session) -> Any:
    for n in range(12):
        session.add(Task(jobname=f"batch-{n}", n=n), flush=False)
    session.flush()


def _replace(session: Session) -> Any:
    task = next(iter(session))
    task.n = 1000
    session.save_all()


FIRST = "Task.1"  # the first id of every fresh store


def _forget(session: Session) -> Any:
    session.forget(FIRST)


def _remove(session: Session) -> Any:
    session.remove(FIRST)


def _finish(session: Session) -> Any:
    session.set_end_timestamp(12345.0)


def _create(session: Session) -> Any:
    return Session(os.path.join(os.path.dirname(session.path), "second"))


SCENARIOS: dict[str, Scenario] = {
    "add": _add, "add_batch": _add_batch, "replace": _replace, "forget": _forget,
    "remove": _remove, "finish": _finish, "create": _create,
}


def _snapshot(path: str) -> dict[str, Any]:
    """What a fresh reader sees: ids and each task's payload."""
    session = Session(path, mode="r")
    return {i: session.load(i, add=False).n for i in session.list_ids()}


def _tmp_leftovers(root: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if fsio.is_tmp_name(f)]


def _steps(tmp_path: Any, scenario: Scenario) -> list[tuple[str, str]]:
    session = _setup(str(tmp_path / "probe" / "s"))
    seen: list[tuple[str, str]] = []
    with fsio.inject_faults(lambda step, path: seen.append((step, path))):
        scenario(session)
    return seen


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EACCES])
def test_error_at_every_step(tmp_path: Any, name: str, code: int) -> None:
    scenario = SCENARIOS[name]
    steps = _steps(tmp_path, scenario)
    assert steps, f"{name} performs no write step"
    for index, (step, _) in enumerate(steps, 1):
        root = tmp_path / f"{index}"
        session = _setup(str(root / "s"))
        before = _snapshot(session.path)

        with fsio.inject_faults(FaultAt(index, fail_with(code))):
            with pytest.raises(Error) as info:
                scenario(session)
        err = info.value
        assert isinstance(err, StoreWriteError), f"{name}@{step}: {type(err)} {err}"
        assert err.errno == code and err.step and err.path, f"{name}@{step}: {err!r}"
        assert str(err.path) in str(err)
        after = _snapshot(session.path)
        for task_id, value in before.items():  # committed tasks are never lost or altered
            # a replace that failed after its rename may have landed: old or new, never torn
            assert after.get(task_id, value) in (value, 1000 if name == "replace" else value)
        assert set(before) - set(after) <= {FIRST}, f"{name}@{step} lost tasks"
        assert not _tmp_leftovers(str(root)), f"{name}@{step} left {_tmp_leftovers(str(root))}"
        # once the fault is gone the same operation works on a fresh handle
        scenario(Session(session.path))
    record(faults_injected=len(steps))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_kill_at_every_step(tmp_path: Any, name: str) -> None:
    scenario = SCENARIOS[name]
    steps = _steps(tmp_path, scenario)
    for index, (step, _) in enumerate(steps, 1):
        root = tmp_path / f"{index}"
        session = _setup(str(root / "s"))
        before = _snapshot(session.path)
        pid = os.fork()
        if pid == 0:  # child: die at the chosen step, like a power cut would stop the program
            try:
                with fsio.inject_faults(FaultAt(index, die)):
                    scenario(session)
            finally:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"{name}@{step}"
        after = _snapshot(session.path)  # the session opens and every index entry loads
        for task_id, value in before.items():
            if task_id in after:
                assert after[task_id] == value or name == "replace"
        if name not in ("forget", "remove"):
            assert set(before) <= set(after), f"{name}@{step}: lost {set(before) - set(after)}"
        scenario(Session(session.path))  # leftovers of the killed writer do not block anything
        assert set(before) - {FIRST} <= set(_snapshot(session.path))
    record(crashes_survived=len(steps))
