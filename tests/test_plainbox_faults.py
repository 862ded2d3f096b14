"""Fault injection at every step of a checkpoint: typed errors, the previous checkpoint intact.

Each scenario is first run with a recording hook to list its write steps
(``create``, ``write``, ``fsync``, ``rename``, ``fsync-dir``, ...); then, for
every step, it is run again from the same starting point with that step
failing (ENOSPC, EIO, EACCES), or with the process killed there.  After an
error: it is a :class:`StoreWriteError` with the errno and the step, the
checkpoint on disk is the previous one (or, for a failed directory fsync
after the rename, the new one: never anything else), no ``session.next`` is
left, and the next checkpoint succeeds.  After a kill: the checkpoint loads
and is the old or the new one, and the only leftover is the documented
``session.next`` marker, which ``SessionManager.checkpoint()`` clears.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import Any, Callable

import pytest
from _faults import FaultAt, die, fail_with
from _report import record

from gc3session import Task, fsio
from gc3session.exceptions import StoreWriteError
from gc3session.plainbox import (
    LockedStorageError,
    MemoryJobResult,
    SessionManager,
    SessionStorage,
    SessionStorageRepository,
    SessionSuspendHelper,
)

OLD, NEW = "old checkpoint", "new checkpoint"


def _units() -> list[Task]:
    return [Task(jobname="first", command="true"), Task(jobname="late", command="false")]


def _setup(root: str) -> SessionManager:
    manager = SessionManager.create(SessionStorageRepository(root))
    manager.add_local_device_context()
    manager.state.add(_units()[0])
    manager.state.metadata.title = OLD
    manager.checkpoint()
    return manager


def _save_checkpoint(manager: SessionManager) -> None:
    """The storage protocol alone: new bytes saved over the old checkpoint."""
    manager.state.metadata.title = NEW
    manager.storage.save_checkpoint(SessionSuspendHelper().suspend(manager.state, manager.storage.location))


def _checkpoint(manager: SessionManager) -> None:
    """A manager checkpoint that also has a new job record and a result to save."""
    if "late" not in manager.state.job_state_map:  # not there unless a failed checkpoint landed
        manager.state.add(_units()[1], flush=False)
    manager.state.update_job_result("first", MemoryJobResult({"outcome": "pass", "return_code": 0}))
    manager.state.metadata.title = NEW
    manager.checkpoint()


SCENARIOS: dict[str, Callable[[SessionManager], None]] = {
    "save_checkpoint": _save_checkpoint, "checkpoint": _checkpoint}


def _title(storage: SessionStorage) -> str:
    """What a fresh process finds: the title of the checkpoint (which must decode)."""
    with SessionManager.load_session(_units(), storage) as manager:
        return str(manager.state.metadata.title)


def _rename_index(steps: list[tuple[str, str]]) -> int:
    """The 1-based index of the rename that publishes the new checkpoint."""
    return [(s, os.path.basename(p)) for s, p in steps].index(("rename", "session")) + 1


def _steps(tmp_path: Any, scenario: Callable[[SessionManager], None]) -> list[tuple[str, str]]:
    manager = _setup(str(tmp_path / "probe"))
    seen: list[tuple[str, str]] = []
    with fsio.inject_faults(lambda step, path: seen.append((step, path))):
        scenario(manager)
    manager.close()
    return seen


def test_the_checkpoint_steps_are_the_documented_protocol(tmp_path: Any) -> None:
    """save_checkpoint is: create session.next, write, fsync, rename over session, fsync the directory."""
    steps = _steps(tmp_path, _save_checkpoint)
    names = [(step, os.path.basename(path)) for step, path in steps]
    assert names == [("create", "session.next"), ("write", "session.next"), ("fsync", "session.next"),
                     ("rename", "session"), ("fsync-dir", os.path.basename(os.path.dirname(steps[0][1])))]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EACCES])
def test_error_at_every_step(tmp_path: Any, name: str, code: int) -> None:
    """A disk error at any step: typed error with its errno, old checkpoint kept, nothing left to block."""
    scenario = SCENARIOS[name]
    steps = _steps(tmp_path, scenario)
    published = _rename_index(steps)
    for index, (step, _path) in enumerate(steps, 1):
        manager = _setup(str(tmp_path / str(index)))
        storage = manager.storage

        with fsio.inject_faults(FaultAt(index, fail_with(code))):
            with pytest.raises(StoreWriteError) as info:
                scenario(manager)
        manager.close()
        err = info.value
        assert err.errno == code and err.step and str(err.path) in str(err), f"{name}@{step}: {err!r}"
        assert _title(storage) in ({OLD, NEW} if index > published else {OLD}), f"{name}@{step}"
        assert not os.path.exists(os.path.join(storage.location, "session.next")), f"{name}@{step}"
        tmp_left = [f for d, _, fs in os.walk(storage.location) for f in fs if fsio.is_tmp_name(f)]
        assert not tmp_left, f"{name}@{step} left {tmp_left}"
        again = SessionManager.load_session(_units(), storage)
        scenario(again)  # the fault is gone: the same checkpoint now works
        again.close()
        assert _title(storage) == NEW
    record(faults_injected=len(steps))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_kill_at_every_step(tmp_path: Any, name: str) -> None:
    """A kill at any step: old or new complete checkpoint, only session.next left, cleared by checkpoint()."""
    scenario = SCENARIOS[name]
    steps = _steps(tmp_path, scenario)
    published = _rename_index(steps)
    for index, (step, _path) in enumerate(steps, 1):
        manager = _setup(str(tmp_path / str(index)))
        storage = manager.storage
        pid = os.fork()
        if pid == 0:  # child: die at the chosen step, as a crash would stop it
            try:
                with fsio.inject_faults(FaultAt(index, die)):
                    scenario(manager)
            finally:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        manager.close()
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"{name}@{step}"
        assert _title(storage) in {OLD, NEW}, f"{name}@{step}"
        if _title(storage) == NEW:
            assert index > published, f"{name}@{step}: the new checkpoint landed before its rename"
        next_file = os.path.join(storage.location, "session.next")
        if os.path.exists(next_file):
            assert published - 3 < index <= published, f"{name}@{step}: unexpected session.next"
            with pytest.raises(LockedStorageError):
                storage.save_checkpoint(b"blocked")
        again = SessionManager.load_session(_units(), storage)
        if name == "save_checkpoint" and os.path.exists(next_file):
            assert storage.break_lock()  # the storage alone leaves the marker to its caller
        scenario(again)  # in the manager scenario, checkpoint() clears the marker itself
        again.close()
        assert _title(storage) == NEW
        assert not os.path.exists(os.path.join(storage.location, "session.next"))
    record(crashes_survived=len(steps))
