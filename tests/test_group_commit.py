"""Group commit of the engine's state changes: real commands, a real SIGKILL of the driver.

With ``commit_interval`` the engine keeps the starts and ends of commands in
memory and commits them in one store batch; nothing is reported before it is
on disk, and a driver killed inside a window loses nothing that the run
directories cannot tell the next driver.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from typing import Any, Iterator

import pytest

from gc3session import Application, Session
from gc3session.engine import Engine
from gc3session.exceptions import InvalidValue
from gc3session.executors.local import LocalExecutor

CHILD = """
import os, signal, sys, time
from gc3session import Session
from gc3session.engine import Engine
with Session(sys.argv[1]) as session:
    engine = Engine(session, max_in_flight=4, commit_interval=600)
    deadline = time.monotonic() + 60
    def ended(): return sum(t.execution.state.value == "TERMINATED" for t in session)
    while ended() < int(sys.argv[2]) and time.monotonic() < deadline:
        engine.progress()
        engine.wait(0.05)
    print(ended(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # with starts and ends in memory only
"""


@pytest.fixture
def session(tmp_path: "os.PathLike[str]") -> Iterator[Session]:
    with Session(os.path.join(tmp_path, "s")) as opened:
        yield opened


def on_disk(path: str) -> dict[str, str]:
    with Session(path, mode="r") as other:
        return {t.jobname: t.execution.state.value for t in other}


def audited(tmp_path, name: str, body: str = "") -> Application:
    log = os.path.join(tmp_path, "audit.log")
    return Application(["sh", "-c", f'echo "{name} start" >> {log}; {body} echo "{name} done" >> {log}'],
                       jobname=name, output_dir=os.path.join(tmp_path, "out", name))


def test_changes_wait_for_the_commit_and_counts_commits_them_first(session, tmp_path):
    """Ends of commands stay in memory until the window closes; counts() puts them on disk first."""
    for i in range(3):
        session.add(audited(tmp_path, f"t{i}"), flush=False)
    session.add(audited(tmp_path, "slow", "sleep 2;"), flush=False)  # keeps the engine busy
    session.flush()
    engine = Engine(session, max_in_flight=4, commit_interval=600)
    deadline = time.monotonic() + 30
    while sum(t.execution.state.value == "TERMINATED" for t in session) < 3:
        engine.progress()
        assert time.monotonic() < deadline
        engine.wait(0.05)
    assert set(on_disk(session.path).values()) == {"NEW"}  # nothing committed yet
    counts = engine.counts()
    assert counts["ok"] == 3 and counts["RUNNING"] == 1
    assert on_disk(session.path) == {"t0": "TERMINATED", "t1": "TERMINATED", "t2": "TERMINATED",
                                     "slow": "RUNNING"}
    assert engine.run_until_done(poll_interval=0.1)["ok"] == 4
    engine.close()
    assert set(on_disk(session.path).values()) == {"TERMINATED"}


def test_a_window_closes_after_commit_interval_seconds(session, tmp_path):
    """A pass after the interval commits what the earlier passes kept."""
    session.add(audited(tmp_path, "t", "sleep 1;"))
    engine = Engine(session, commit_interval=0.3)
    engine.progress()  # started, kept in memory
    assert on_disk(session.path) == {"t": "NEW"}
    time.sleep(0.4)
    engine.progress()
    assert on_disk(session.path) == {"t": "RUNNING"}
    engine.close()


def test_driver_killed_inside_a_commit_window_then_rerun_runs_every_command_once(session, tmp_path):
    """SIGKILL with starts and ends not committed: the next driver finds every run, none runs twice."""
    quick = [audited(tmp_path, f"q{i}") for i in range(4)]
    slow = [audited(tmp_path, f"s{i}", "sleep 1.5;") for i in range(2)]
    for task in quick + slow:
        session.add(task, flush=False)
    session.flush()
    child = subprocess.run([sys.executable, "-c", CHILD, session.path, "4"], capture_output=True,
                           text=True, timeout=120, check=False)
    assert child.returncode == -9, child.stderr
    assert int(child.stdout) >= 4  # the quick ones ended in memory, the slow ones still run
    assert set(on_disk(session.path).values()) == {"NEW"}  # no start and no end was committed
    with Session(session.path) as again:
        engine = Engine(again)
        counts = engine.run_until_done(poll_interval=0.1)
        engine.close()
        attempts = {t.jobname: t.execution.attempt for t in again}
    assert counts["ok"] == 6
    assert attempts == {t.jobname: 1 for t in quick + slow}
    with open(os.path.join(tmp_path, "audit.log")) as stream:
        events = collections.Counter(stream.read().splitlines())
    assert events == {f"{t.jobname} {e}": 1 for t in quick + slow for e in ("start", "done")}


def test_commit_interval_must_not_be_negative(session):
    with pytest.raises(InvalidValue):
        Engine(session, commit_interval=-1)


class ListedExecutor(LocalExecutor):
    """The local executor; before it starts a command, it notes whether the session on disk lists
    the task (a read-only handle opened at that moment)."""

    def __init__(self, session_path: str) -> None:
        super().__init__()
        self.session_path = session_path
        self.listed: dict[str, bool] = {}

    def submit(self, task: Any, workdir: str) -> dict[str, Any]:
        with Session(self.session_path, mode="r", load=False) as other:
            self.listed[task.jobname] = str(task.persistent_id) in other.list_ids()
        return super().submit(task, workdir)


def test_a_task_added_while_commits_are_grouped_is_listed_before_its_command_starts(session, tmp_path):
    """Engine.add during a run: the session on disk lists the task before its command starts."""
    session.add(audited(tmp_path, "first"))
    executor = ListedExecutor(session.path)
    engine = Engine(session, executor=executor, commit_interval=600)
    engine.progress()
    engine.add(audited(tmp_path, "added"))
    assert engine.run_until_done(poll_interval=0.1)["ok"] == 2
    engine.close()
    assert executor.listed == {"first": True, "added": True}
