"""Sessions against a model: random add/remove/forget/flush/modify/reopen sequences.

The model is a dict ``id -> payload``.  Two views of it are kept: what the
open handle holds (``model``) and what a fresh ``Session(path)`` must see
(``flushed``: the model as of the last flush).  After every step a fresh
session is opened on the directory and compared with ``flushed``, and the
raw ``session_ids.txt`` is checked (complete lines, no duplicates).

A second machine drives two handles on one directory, both writing with
``flush=True``; after every step a fresh reopen must equal the model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant, precondition, rule,
                                 run_state_machine_as_test)

from _session_objects import PayloadTask, index_lines, payloads
from gc3session import Session

SETTINGS = settings(max_examples=30, stateful_step_count=30, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
#: The SQLite machines run the same rules as the filesystem ones, whose
#: failures are shrunk; shrinking over SQLite (a new engine per reopen) can
#: take minutes, so its failures are reported as found.
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

    sqlite = False

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="gc3session-model.")
        self.path = os.path.join(self.tmp, "sess")
        url = f"sqlite:///{self.tmp}/jobs.db" if self.sqlite else None
        self.session = Session(self.path, store_or_url=url)
        self.model: dict[str, Any] = {}
        self.flushed: dict[str, Any] = {}
        self.forgotten: dict[str, PayloadTask] = {}

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

    @invariant()
    def handle_matches_model(self) -> None:
        assert set(self.session.list_ids()) == set(self.model)
        assert len(self.session) == len(self.model)

    @invariant()
    def fresh_reopen_matches_flushed_model(self) -> None:
        _check_on_disk(self.path, self.flushed)

    def teardown(self) -> None:
        _close(self.session)
        shutil.rmtree(self.tmp, ignore_errors=True)


class SqliteSessionModel(SessionModel):
    sqlite = True


class TwoHandles(RuleBasedStateMachine):
    """Two handles on one directory, both writing with flush=True, against one model."""

    sqlite = False

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="gc3session-2h.")
        self.path = os.path.join(self.tmp, "sess")
        url = f"sqlite:///{self.tmp}/jobs.db" if self.sqlite else None
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
    sqlite = True


@pytest.mark.parametrize("machine", [SessionModel, SqliteSessionModel, TwoHandles, SqliteTwoHandles],
                         ids=["filesystem", "sqlite", "two-handles-filesystem", "two-handles-sqlite"])
def test_session_agrees_with_the_model(machine: type[RuleBasedStateMachine]) -> None:
    run_state_machine_as_test(machine, settings=NO_SHRINK if machine.sqlite else SETTINGS)
