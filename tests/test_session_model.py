"""Sessions against a model: random add/remove/forget/flush/modify/reopen sequences.

The model is a dict ``id -> payload``.  Two views of it are kept: what the
open handle holds (``model``) and what a fresh ``Session(path)`` must see
(``flushed``: the model as of the last flush).  After every step a fresh
session is opened on the directory and compared with ``flushed``, and the
raw ``session_ids.txt`` is checked (complete lines, no duplicates).

Besides the everyday operations the one-handle machine tries the seams:
removing a task and adding the same object again, adding a task of a
second session (refused; a fresh copy joins under a new id), ``gsession
copy`` to another store while the handle is open (its later writes are
refused, a reopen goes on in the new store), and another process killed
(SIGKILL) at a random write step of an add, after which the session must
open with exactly the flushed tasks, plus the killed add's task if its id
reached the index.  It runs on the filesystem store, SQLite and PostgreSQL.

A second machine drives two handles on one directory, both writing with
``flush=True``; after every step a fresh reopen must equal the model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import pytest
from _faults import FaultAt, die
from _session_objects import PayloadTask, index_lines, payloads
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gc3session import Session, fresh_copy, fsio
from gc3session.exceptions import ForeignTaskError, StoreSwitchedError
from gc3session.storecopy import copy_session

SETTINGS = settings(max_examples=30, stateful_step_count=30, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
#: The SQL machines run the same rules as the filesystem ones, whose
#: failures are shrunk; shrinking over SQL stores (a new engine per reopen) can
#: take minutes, so their failures are reported as found.
NO_SHRINK = settings(SETTINGS, phases=[Phase.explicit, Phase.reuse, Phase.generate])

payload_st = st.one_of(st.integers(-10**6, 10**6), st.text(max_size=8),
                       st.lists(st.integers(0, 9), max_size=3))
pick_st = st.integers(0, 10**6)


def _pick(keys: Any, i: int) -> str:
    keys = sorted(keys)
    return keys[i % len(keys)]


def _close(session: Session) -> None:
    session.store.close()


def _check_on_disk(path: str, expected: dict[str, Any]) -> None:
    """A fresh ``Session(path)`` and the raw index hold exactly ``expected``."""
    lines = index_lines(path)
    assert len(lines) == len(set(lines)), f"duplicate lines in session_ids.txt: {lines}"
    assert set(lines) == set(expected)
    fresh = Session(path)
    try:
        assert set(fresh.list_ids()) == set(expected)
        assert payloads(fresh) == expected
    finally:
        _close(fresh)


class SessionModel(RuleBasedStateMachine):
    """One handle, every operation, checked against a fresh reopen after each step."""

    store = "file"
    pg_url = ""  # set on the PostgreSQL machine by its test
    _tables = 0

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="gc3session-model.")
        self.path = os.path.join(self.tmp, "sess")
        self.session = Session(self.path, store_or_url=self._new_store_url("jobs"))
        self.other = Session(os.path.join(self.tmp, "other"),
                             store_or_url=self._new_store_url("other"))
        self.model: dict[str, Any] = {}
        self.flushed: dict[str, Any] = {}
        self.forgotten: dict[str, PayloadTask] = {}
        self.copies = 0

    def _new_store_url(self, name: str) -> str | None:
        """A store of this machine's kind that nothing uses yet (None: the default one)."""
        if self.store == "sqlite":
            return f"sqlite:///{self.tmp}/{name}.db"
        if self.store == "postgresql":
            SessionModel._tables += 1
            return f"{self.pg_url}#table=m{os.getpid()}_{SessionModel._tables}"
        return None if name == "jobs" else os.path.join(self.tmp, name)

    def _flushed_now(self) -> None:
        self.flushed = dict(self.model)

    @rule(payload=payload_st, flush=st.booleans())
    def add(self, payload: Any, flush: bool) -> None:
        tid = self.session.add(PayloadTask(payload=payload), flush=flush)
        assert tid not in self.model and tid not in self.forgotten
        self.model[tid] = payload
        if flush:
            self._flushed_now()

    @rule(payload=payload_st)
    def add_same_object_again(self, payload: Any) -> None:
        task = PayloadTask(payload=payload)
        tid = self.session.add(task)
        assert self.session.add(task) == tid
        self.model[tid] = payload
        self._flushed_now()

    @precondition(lambda self: self.model)
    @rule(i=pick_st)
    def remove(self, i: int) -> None:
        tid = _pick(self.model, i)
        self.session.remove(tid)
        del self.model[tid]
        self._flushed_now()
        assert tid not in self.session.store.list()

    @precondition(lambda self: self.model)
    @rule(i=pick_st, flush=st.booleans())
    def forget(self, i: int, flush: bool) -> None:
        tid = _pick(self.model, i)
        task = self.session.tasks[tid]
        self.session.forget(tid, flush=flush)
        self.forgotten[tid] = task
        del self.model[tid]
        if flush:
            self._flushed_now()

    @precondition(lambda self: self.forgotten)
    @rule(i=pick_st, flush=st.booleans())
    def add_forgotten_task_again(self, i: int, flush: bool) -> None:
        tid = _pick(self.forgotten, i)
        task = self.forgotten.pop(tid)
        assert self.session.add(task, flush=flush) == tid
        self.model[tid] = task.payload
        if flush:
            self._flushed_now()

    @rule()
    def flush(self) -> None:
        self.session.flush()
        self._flushed_now()

    @precondition(lambda self: self.model)
    @rule(i=pick_st, payload=payload_st)
    def modify_then_save_all(self, i: int, payload: Any) -> None:
        tid = _pick(self.model, i)
        self.session.tasks[tid].payload = payload
        self.session.save_all()
        self.model[tid] = payload
        self._flushed_now()

    @rule()
    def reopen(self) -> None:
        _close(self.session)
        self.session = Session(self.path)
        self.model = dict(self.flushed)
        for tid in list(self.forgotten):
            if tid in self.model:  # its forget was never flushed
                del self.forgotten[tid]

    @precondition(lambda self: self.model)
    @rule(i=pick_st, flush=st.booleans())
    def remove_then_add_the_same_object(self, i: int, flush: bool) -> None:
        tid = _pick(self.model, i)
        task = self.session.load(tid)
        self.session.remove(tid, flush=flush)
        assert self.session.add(task) == tid
        assert self.session.load(tid) is task
        self._flushed_now()

    @rule(payload=payload_st)
    def add_a_task_of_another_session(self, payload: Any) -> None:
        theirs = PayloadTask(payload=payload)
        self.other.add(theirs)
        with pytest.raises(ForeignTaskError):
            self.session.add(theirs)
        tid = self.session.add(fresh_copy(theirs))
        assert tid not in self.model and tid not in self.forgotten
        self.model[tid] = payload
        self._flushed_now()

    @rule(pending=st.booleans())
    def copy_to_another_store_while_open(self, pending: bool) -> None:
        if pending:
            self.session.add(PayloadTask(payload="never written"), flush=False)
        self.copies += 1
        copy_session(self.path, str(self._new_store_url(f"copy{self.copies}")))
        if pending:
            with pytest.raises(StoreSwitchedError):
                self.session.flush()  # nothing reaches the old store
        _close(self.session)
        self.session = Session(self.path)  # goes on in the new store
        self.model = dict(self.flushed)
        # forgotten tasks belong to the old store, which the session left
        self.forgotten.clear()

    @rule(step=st.integers(1, 12), payload=payload_st)
    def reopen_after_another_process_is_killed_adding(self, step: int, payload: Any) -> None:
        self.session.flush()
        self._flushed_now()
        tid = _add_killed_at(self.path, step, payload)
        if tid in index_lines(self.path):
            self.flushed[tid] = payload
        self.reopen()

    @invariant()
    def handle_matches_model(self) -> None:
        assert set(self.session.list_ids()) == set(self.model)
        assert len(self.session) == len(self.model)

    @invariant()
    def fresh_reopen_matches_flushed_model(self) -> None:
        _check_on_disk(self.path, self.flushed)

    def teardown(self) -> None:
        _close(self.session)
        _close(self.other)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _add_killed_at(path: str, step: int, payload: Any) -> str:
    """In a forked child: add a task to the session at ``path``, killed (SIGKILL) at its
    ``step``-th write step if it has that many; return the task's id."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            session = Session(path, load=False)
            task = PayloadTask(payload=payload)
            tid = session.add(task, flush=False)
            os.write(write_end, tid.encode())
            with fsio.inject_faults(FaultAt(step, die)):
                session.flush()
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as stream:
        tid = stream.read().decode()
    os.waitpid(pid, 0)
    return tid


class SqliteSessionModel(SessionModel):
    store = "sqlite"


class PostgresSessionModel(SessionModel):
    store = "postgresql"


class TwoHandles(RuleBasedStateMachine):
    """Two handles on one directory, both writing with flush=True, against one model."""

    store = "file"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="gc3session-2h.")
        self.path = os.path.join(self.tmp, "sess")
        url = f"sqlite:///{self.tmp}/jobs.db" if self.store == "sqlite" else None
        _close(Session(self.path, store_or_url=url))
        self.handles = [Session(self.path), Session(self.path)]
        self.model: dict[str, Any] = {}

    def _known(self, h: int) -> list[str]:
        """Ids of the model that handle ``h`` has in its view."""
        return [tid for tid in self.handles[h].list_ids() if tid in self.model]

    @rule(h=st.integers(0, 1), payload=payload_st)
    def add(self, h: int, payload: Any) -> None:
        tid = self.handles[h].add(PayloadTask(payload=payload))
        assert tid not in self.model
        self.model[tid] = payload

    @rule(h=st.integers(0, 1), i=pick_st)
    def remove(self, h: int, i: int) -> None:
        known = self._known(h)
        if known:
            tid = _pick(known, i)
            self.handles[h].remove(tid)
            del self.model[tid]

    @rule(h=st.integers(0, 1), i=pick_st)
    def forget(self, h: int, i: int) -> None:
        known = self._known(h)
        if known:
            tid = _pick(known, i)
            self.handles[h].forget(tid)
            del self.model[tid]

    @rule(h=st.integers(0, 1), i=pick_st, payload=payload_st)
    def modify_then_save_all(self, h: int, i: int, payload: Any) -> None:
        known = [tid for tid in self._known(h) if tid in self.handles[h].tasks]
        if known:
            tid = _pick(known, i)
            self.handles[h].tasks[tid].payload = payload
            self.handles[h].save_all()
            self.model[tid] = payload

    @rule(h=st.integers(0, 1))
    def flush(self, h: int) -> None:
        self.handles[h].flush()

    @rule(h=st.integers(0, 1))
    def reopen(self, h: int) -> None:
        _close(self.handles[h])
        self.handles[h] = Session(self.path)
        assert set(self.handles[h].list_ids()) == set(self.model)

    @invariant()
    def fresh_reopen_matches_model(self) -> None:
        _check_on_disk(self.path, self.model)

    def teardown(self) -> None:
        for handle in self.handles:
            _close(handle)
        shutil.rmtree(self.tmp, ignore_errors=True)


class SqliteTwoHandles(TwoHandles):
    store = "sqlite"


@pytest.mark.parametrize("machine", [SessionModel, SqliteSessionModel, TwoHandles, SqliteTwoHandles],
                         ids=["filesystem", "sqlite", "two-handles-filesystem", "two-handles-sqlite"])
def test_session_agrees_with_the_model(machine: type[RuleBasedStateMachine]) -> None:
    run_state_machine_as_test(machine, settings=SETTINGS if machine.store == "file" else NO_SHRINK)


def test_session_on_postgresql_agrees_with_the_model(pg_url: str) -> None:
    machine = type("PostgresSessionModelHere", (PostgresSessionModel,), {"pg_url": pg_url})
    # every reopen connects anew to the server: fewer examples keep it to some seconds
    run_state_machine_as_test(machine, settings=settings(NO_SHRINK, max_examples=12))
