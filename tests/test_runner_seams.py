"""The runner's seams: trees that grow while they run, and tasks created without a name.

Trees that grow: GC3Pie's dynamic workflow is a ``SequentialTaskCollection``
whose ``next()`` appends the next step while it runs.  Every step is a real
command that appends its name to an audit file.  The engine tests start the
commands through :class:`WitnessExecutor`, the local executor plus one
look, just before each command starts, at what a second, read-only handle
of the session finds on disk: that is what a driver resuming after a crash
would see.  The end-to-end test SIGKILLs a real driver at several moments
of such a workflow and runs it again: every step must run exactly once.

Unnamed tasks: a script's ``new_tasks()`` returns tasks without a job name;
each gets ``<class name>-N<k>``.  These tests run the script in this process
(``main([...])``) and read its stderr, the session on disk and an audit
file its commands append to.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any, Iterator

import pytest

from gc3session import Application, ParallelTaskCollection, SequentialTaskCollection, Session, Task, fsck
from gc3session.cmdline import SessionBasedScript
from gc3session.engine import Engine
from gc3session.executors.local import LocalExecutor
from gc3session.task import State

PY = sys.executable


class WitnessExecutor(LocalExecutor):
    """The local executor; before it starts a command, it notes whether the task is on disk.

    ``seen[jobname]`` becomes "saved" when a read-only handle of the session,
    opened at that moment, reaches a task of that name and id from a
    top-level task, else "missing".
    """

    def __init__(self, session_path: str) -> None:
        super().__init__()
        self.session_path = session_path
        self.seen: dict[str, str] = {}

    def submit(self, task: Any, workdir: str) -> dict[str, Any]:
        with Session(self.session_path, mode="r") as other:
            saved = {str(node.persistent_id): node.jobname for node in other.iter_workflow()}
        found = saved.get(str(getattr(task, "persistent_id", None))) == task.jobname
        self.seen[task.jobname] = "saved" if found else "missing"
        return super().submit(task, workdir)


# --- trees that grow -------------------------------------------------------------------
def step(base: str, name: str) -> Application:
    """A command that appends ``name`` to ``base/audit.log``."""
    audit = os.path.join(base, "audit.log")
    return Application(["sh", "-c", f"echo {name} >> {audit}"], jobname=name,
                       output_dir=os.path.join(base, "out", name))


class Grow(SequentialTaskCollection):
    """Starts with one step; after each step, ``next()`` appends another until there are ``size``."""

    def __init__(self, base: str, size: int, **kwargs: Any) -> None:
        super().__init__([step(base, "step0")], **kwargs)
        self.base = base
        self.size = size

    def next(self, done: int) -> State:
        if len(self.tasks) < self.size:
            self.add(step(self.base, f"step{len(self.tasks)}"))
            return State.RUNNING
        return State.TERMINATED


@pytest.fixture
def base(tmp_path) -> str:
    return str(tmp_path)


@pytest.fixture
def session(base: str) -> Iterator[Session]:
    with Session(os.path.join(base, "s")) as opened:
        yield opened


def drive(engine: Engine, timeout: float = 60.0) -> dict[str, int]:
    """Run passes until the engine is idle; fail (instead of hanging) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        engine.progress()
        if engine.idle:
            return engine.counts()
        assert time.monotonic() < deadline, f"engine not idle after {timeout}s: {engine.counts()}"
        engine.wait(0.2)


def audit_lines(base: str) -> list[str]:
    try:
        with open(os.path.join(base, "audit.log")) as stream:
            return stream.read().splitlines()
    except FileNotFoundError:
        return []


def test_children_that_next_appends_get_ids_and_are_saved_before_they_run(session, base):
    """A sequence that grows to 4 steps runs to the end; each step runs once, saved before it ran."""
    grow = Grow(base, 4, jobname="grow")
    session.add(grow)
    witness = WitnessExecutor(session.path)
    engine = Engine(session, executor=witness)
    counts = drive(engine)
    engine.close()
    assert (counts["ok"], counts["total"]) == (1, 1)
    names = [f"step{k}" for k in range(4)]
    assert witness.seen == {name: "saved" for name in names}
    assert audit_lines(base) == names
    ids = [str(child.persistent_id) for child in grow.tasks]
    assert len(set(ids)) == 4
    assert sorted(os.listdir(os.path.join(base, "s", "runs"))) == sorted(f"{i}.1" for i in ids)
    with Session(session.path, mode="r") as other:
        (saved,) = list(other)
        assert [str(c.persistent_id) for c in saved.tasks] == ids
        assert [c.jobname for c in saved.tasks] == names
        assert [c.execution.state for c in saved.tasks] == [State.TERMINATED] * 4
        assert [c.execution.returncode for c in saved.tasks] == [0] * 4
        assert saved.execution.state == State.TERMINATED and saved._current_task == 4


def test_a_tree_saved_between_a_step_ending_and_next_grows_on_resume(session, base):
    """The saved tree has its step TERMINATED but ``next()`` not yet asked (a driver killed
    between the two): the next driver asks it, gives the new step an id and runs it."""
    grow = Grow(base, 2, jobname="grow")
    session.add(grow)
    (first,) = grow.tasks
    first.execution.state = State.TERMINATED
    first.execution.returncode = 0
    grow.execution.state = State.RUNNING
    session.save(grow)
    engine = Engine(session, executor=WitnessExecutor(session.path))
    counts = drive(engine)
    engine.close()
    assert (counts["ok"], counts["total"]) == (1, 1)
    assert audit_lines(base) == ["step1"]
    with Session(session.path, mode="r") as other:
        (saved,) = list(other)
        assert [c.jobname for c in saved.tasks] == ["step0", "step1"]
        assert len({str(c.persistent_id) for c in saved.tasks}) == 2


def test_children_added_to_a_running_collection_between_passes_are_saved_before_they_run(
        session, base):
    """User code adds children to a running parallel collection and to a sequence between passes."""
    gate = os.path.join(base, "go")  # the first child waits for it (at most 60 s): no race
    waiting = Application(["sh", "-c", f"for n in $(seq 3000); do [ -e {gate} ] && break; sleep 0.02;"
                                       " done"], jobname="waiting",
                          output_dir=os.path.join(base, "out", "waiting"))
    group = ParallelTaskCollection([waiting], jobname="group")
    sequence = SequentialTaskCollection([step(base, "first")], jobname="sequence")
    session.add(group)
    session.add(sequence)
    witness = WitnessExecutor(session.path)
    engine = Engine(session, executor=witness)
    engine.progress()
    assert waiting.execution.state == State.RUNNING
    late = [step(base, "late0"), step(base, "late1"), step(base, "then")]
    group.add(late[0])
    group.add(late[1])
    sequence.add(late[2])
    deadline = time.monotonic() + 60
    while any(task.execution.state != State.TERMINATED for task in late):
        assert time.monotonic() < deadline, [task.execution.state for task in late]
        engine.progress()
        engine.wait(0.1)
    assert waiting.execution.state == State.RUNNING  # they joined a collection that was running
    open(gate, "w").close()
    counts = drive(engine)
    engine.close()
    assert (counts["ok"], counts["total"]) == (2, 2)
    assert witness.seen == dict.fromkeys(["waiting", "first", "late0", "late1", "then"], "saved")
    assert sorted(audit_lines(base)) == ["first", "late0", "late1", "then"]
    with Session(session.path, mode="r") as other:
        saved = {t.jobname: t for t in other}
        assert [c.jobname for c in saved["group"].tasks] == ["waiting", "late0", "late1"]
        assert [c.jobname for c in saved["sequence"].tasks] == ["first", "then"]
        for top in saved.values():
            assert [c.execution.returncode for c in top.tasks] == [0] * len(top.tasks)


WORKFLOW = textwrap.dedent("""\
    import os
    from gc3session import Application, SequentialTaskCollection
    from gc3session.cmdline import SessionBasedScript
    from gc3session.task import State

    STEPS = 5


    def step(k, audit, delay):
        name = f"step{k}"
        body = f'echo "{name} start" >> {audit}; sleep {delay}; echo "{name} done" >> {audit}'
        return Application(["sh", "-c", body], jobname=name, output_dir=os.path.abspath(name))


    class Chain(SequentialTaskCollection):
        def __init__(self, audit, delay):
            super().__init__([step(0, audit, delay)], jobname="chain")
            self.audit, self.delay = audit, delay

        def next(self, done):
            if len(self.tasks) < STEPS:
                self.add(step(len(self.tasks), self.audit, self.delay))
                return State.RUNNING
            return State.TERMINATED


    class Script(SessionBasedScript):
        '''Run a chain of steps that grows one step at a time.'''

        def new_tasks(self, extra):
            return [Chain(os.path.abspath("audit.log"), 0.3)]
""")
STEPS = [f"step{k}" for k in range(5)]


def run_workflow(tmp_path) -> subprocess.Popen:
    script = os.path.join(tmp_path, "chain.py")
    if not os.path.exists(script):
        with open(os.path.join(tmp_path, "seams_workflow.py"), "w") as stream:
            stream.write(WORKFLOW)
        with open(script, "w") as stream:
            stream.write("from seams_workflow import Script\nScript().run()\n")
    return subprocess.Popen([PY, script, "-s", "chain", "-C", "1"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_line(tmp_path, line: str, driver: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + 60
    while line not in audit_lines(str(tmp_path)):
        assert driver is None or driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, f"the workflow never reached {line!r}"
        time.sleep(0.01)


@pytest.mark.parametrize("moment, rerun_after", [
    ("step1 start", None), ("step1 done", None), ("step2 start", None), ("step3 done", None),
    # the step ends while no driver watches: the rerun finishes it, and next() appends while
    # the rerun is still looking at what the killed driver left
    ("step1 start", "step1 done")])
def test_sigkill_mid_workflow_then_rerun_runs_every_dynamic_step_once(tmp_path, monkeypatch, moment,
                                                                     rerun_after):
    """The driver is SIGKILLed once the audit shows ``moment``; the rerun finishes the chain."""
    driver = run_workflow(tmp_path)
    try:
        wait_for_line(tmp_path, moment, driver)
    finally:
        driver.kill()
        driver.communicate(timeout=30)
    assert driver.returncode == -signal.SIGKILL
    monkeypatch.syspath_prepend(str(tmp_path))  # the records name the script's classes
    report = fsck.check(os.path.join(tmp_path, "chain"))
    assert report.clean, report.problems  # every child the killed driver made is saved in its tree
    if rerun_after:
        wait_for_line(tmp_path, rerun_after)
    driver = run_workflow(tmp_path)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 0, out + err
    events = collections.Counter(audit_lines(str(tmp_path)))
    assert events == {f"{name} {event}": 1 for name in STEPS for event in ("start", "done")}
    with Session(os.path.join(tmp_path, "chain"), mode="r") as session:
        (chain,) = list(session)
        assert [c.jobname for c in chain.tasks] == STEPS
        assert len({str(c.persistent_id) for c in chain.tasks}) == len(STEPS)
        assert [c.execution.returncode for c in chain.tasks] == [0] * len(STEPS)
    report = fsck.check(os.path.join(tmp_path, "chain"))
    assert report.clean, report.problems


# --- unnamed tasks ---------------------------------------------------------------------
class Batch(SessionBasedScript):
    """Create --apps unnamed commands, --tasks unnamed plain tasks, and --named tasks named --name.

    Each call of ``new_tasks()`` appends a line to ``calls.log``.
    """

    def __init__(self) -> None:
        super().__init__(version="0.1")

    def setup_args(self, parser: Any) -> None:
        super().setup_args(parser)
        parser.add_argument("--apps", type=int, default=0)
        parser.add_argument("--tasks", type=int, default=0)
        parser.add_argument("--named", type=int, default=0)
        parser.add_argument("--name", default="twin")

    def new_tasks(self, extra: dict[str, Any]) -> Iterator[Task]:
        with open("calls.log", "a") as stream:
            stream.write("new_tasks\n")
        audit = os.path.abspath("audit.log")
        for i in range(self.params.apps):
            yield Application(["sh", "-c", f'echo "app {i}" >> {audit}'], **extra)
        for i in range(self.params.tasks):
            yield Task(sample=i)
        for i in range(self.params.named):
            yield Application(["sh", "-c", f'echo "named {i}" >> {audit}'], jobname=self.params.name,
                              **extra)


@pytest.fixture
def batch(tmp_path, monkeypatch):
    """Run Batch in-process in ``tmp_path``; returns its exit status."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [os.path.join(tmp_path, "batch.py")])

    def run(*argv: str) -> int:
        return Batch().main(list(argv))
    return run


def saved_tasks(tmp_path) -> list[tuple[str, str, Any]]:
    with Session(os.path.join(tmp_path, "batch"), mode="r") as session:
        return [(str(t.persistent_id), t.jobname, getattr(t, "output_dir", None)) for t in session]


def test_unnamed_tasks_get_unique_names_from_their_class_and_position(batch, tmp_path, capsys):
    """5 unnamed Applications and 5 unnamed Tasks become 10 tasks; a rerun adds none, -N all again."""
    # plain Tasks have no command: they stay NEW, hence exit status 8
    assert batch("-C", "1", "--apps", "5", "--tasks", "5", "--named", "1", "--name", "kept") == 8
    err = capsys.readouterr().err
    expected = [f"Application-N{k}" for k in range(1, 6)] + [f"Task-N{k}" for k in range(6, 11)] + ["kept"]
    first = saved_tasks(tmp_path)
    assert [name for _, name, _ in first] == expected
    assert [out for _, name, out in first if name.startswith("Application")] == [
        os.path.join(tmp_path, name) for name in expected[:5]]  # -o's NAME is the new name
    assert sorted(audit_lines(str(tmp_path))) == [f"app {i}" for i in range(5)] + ["named 0"]
    assert "WARNING" not in err
    assert batch("-C", "1", "--apps", "5", "--tasks", "5", "--named", "1", "--name", "kept") == 8
    warnings = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "session already exists" in warnings[0]  # nothing about names
    with open(os.path.join(tmp_path, "calls.log")) as stream:
        assert stream.read() == "new_tasks\n"  # the session is not empty: new_tasks() is not called
    assert saved_tasks(tmp_path) == first
    assert batch("-N", "-C", "1", "--apps", "5", "--tasks", "5", "--named", "1", "--name",
                 "kept") == 8
    assert "WARNING" not in capsys.readouterr().err
    again = saved_tasks(tmp_path)
    assert [name for _, name, _ in again] == expected  # the old names were removed, not skipped
    assert not {i for i, _, _ in again} & {i for i, _, _ in first}
    assert len(audit_lines(str(tmp_path))) == 12


def test_tasks_given_the_same_name_are_all_added_with_a_warning_naming_it(batch, tmp_path, capsys):
    """Three tasks named "twin" in one batch: all three are added and run, and stderr says so."""
    assert batch("-C", "1", "--named", "3", "--apps", "1") == 0
    err = capsys.readouterr().err
    assert [name for _, name, _ in saved_tasks(tmp_path)] == ["Application-N1", "twin", "twin", "twin"]
    assert sorted(audit_lines(str(tmp_path))) == ["app 0", "named 0", "named 1", "named 2"]
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warnings) == 2 and all("'twin'" in line for line in warnings), err
