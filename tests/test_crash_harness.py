"""Randomized crash harness: SIGKILL at random points of long workloads.

A child process (:mod:`_crash_child`) adds, saves and removes tasks at
random with ``flush=True`` and reports each operation before and after it;
the parent kills it at a random moment, reopens the session, checks it is
consistent, that every operation that had returned is there (an
operation in flight may or may not have landed), and that ``gsession fsck``
finds no problem: a kill may leave only what :mod:`gc3session.fsck` calls
leftovers (a temporary file of the killed writer, the records of the add or
remove in flight as orphans, ``.states`` lines about those ids), and every
orphan must be the task of an add or a remove that was cut short.  Then the
next round continues on the same session.  Rounds per store: ``GC3SESSION_CRASH_ROUNDS``
(default 6; the reliability report runs many more).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from _report import record

from gc3session import Session, fsck, fsio

ROUNDS = int(os.environ.get("GC3SESSION_CRASH_ROUNDS", "6"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _apply(model: dict[str, int], lines: list[str]) -> tuple[dict[str, int], tuple[str, ...] | None]:
    """Replay the finished operations; return the model and the one in flight."""
    in_flight = None
    for line in lines:
        kind, op, task_id, value = line.split()
        if kind == "BEGIN":
            in_flight = (op, task_id, value)
            continue
        in_flight = None
        if op in ("A", "S"):
            model[task_id] = int(value)
        else:
            model.pop(task_id, None)
    return model, in_flight


def _check(path: str, model: dict[str, int], in_flight: tuple[str, ...] | None) -> dict[str, int]:
    session = Session(path, mode="r")
    found = {i: session.load(i, add=False).value for i in session.list_ids()}
    extra = set(found) - set(model)
    missing = set(model) - set(found)
    landed = None
    if in_flight is not None:
        op, task_id, value = in_flight
        if op == "A":
            assert len(extra) <= 1 and all(found[i] == int(value) for i in extra), extra
            extra = set()
        elif op == "R":
            missing.discard(task_id)
        elif op == "S" and found.get(task_id) == int(value):
            landed = task_id  # the save in flight reached the disk: its value is the new truth
    assert not extra, f"tasks nobody added: {extra}"
    assert not missing, f"lost tasks whose operation had returned: {missing}"
    for task_id, value in model.items():
        if task_id in found and task_id != landed:
            assert found[task_id] == value, (task_id, found[task_id], value)
    assert set(session.states()) == set(found)
    session.close()
    return found


def _until_first_end(child: subprocess.Popen[str], timeout: float = 60) -> list[str]:
    """The child's lines up to its first finished operation (it is killed after ``timeout``)."""
    assert child.stdout is not None
    watchdog = threading.Timer(timeout, child.kill)
    watchdog.start()
    head: list[str] = []
    try:
        while not head or not head[-1].startswith("END"):
            line = child.stdout.readline()
            if not line:
                break
            head.append(line.rstrip("\n"))
    finally:
        watchdog.cancel()
    return head


@pytest.mark.parametrize("store", ["file", "sqlite", "postgresql"])
def test_random_kills_lose_nothing_that_returned(tmp_path: Any, store: str,
                                                 request: pytest.FixtureRequest) -> None:
    url = {"file": "", "sqlite": f"sqlite:///{tmp_path}/jobs.db"}.get(store)
    if store == "postgresql":
        url = request.getfixturevalue("pg_url")
    path = str(tmp_path / "s")
    model: dict[str, int] = {}
    rng = random.Random(store)
    seen: set[str] = set()  # ids of operations that returned
    removes_cut: set[str] = set()  # ids of removes killed in flight
    adds_cut = 0  # adds killed in flight (their ids were never printed)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    for round_no in range(ROUNDS):
        child = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests", "_crash_child.py"), path, url or "",
             str(round_no)], stdout=subprocess.PIPE, text=True, env=env)
        assert child.stdout is not None and child.stdout.readline() == "READY\n"
        head = _until_first_end(child)  # a busy machine must not make a round empty
        time.sleep(0.05 + rng.random() * 0.4)
        child.kill()
        output, _ = child.communicate()
        lines = [line for line in [*head, *output.splitlines()] if line.count(" ") == 3]
        assert any(line.startswith("END") for line in lines), f"child did nothing:\n{output}"
        model, in_flight = _apply(model, lines)
        model = _check(path, model, in_flight)
        seen.update(line.split()[2] for line in lines if line.startswith("END"))
        if in_flight is not None and in_flight[0] == "R":
            removes_cut.add(in_flight[1])
        adds_cut += in_flight is not None and in_flight[0] == "A"
        report = fsck.check(path)
        assert report.clean, [f.message for f in report.problems]
        orphans = {f.id for f in report.findings if f.kind == "orphan"}
        # an orphan is a task whose remove was cut short, or one whose add never returned
        unknown = orphans - removes_cut
        assert not unknown & seen and len(unknown) <= adds_cut, (orphans, removes_cut, adds_cut)
        record(crashes_survived=1, operations_verified=sum(line.startswith("END") for line in lines),
               operations_lost=0)
    leftovers = [f for d, _, fs in os.walk(path) for f in fs if fsio.is_tmp_name(f)]
    assert len(leftovers) <= ROUNDS  # at most one per killed writer, and they block nothing
