"""The engine and Application: real commands, real working directories, real kills.

Every test drives real local processes through :class:`gc3session.engine.Engine`
and checks what is on disk afterwards (outputs, the session reopened by a
second handle), never the engine's private state.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
from typing import Iterator

import pytest

from gc3session import Application, ParallelTaskCollection, SequentialTaskCollection, Session
from gc3session.engine import SIGNAL_DATA_STAGING, SIGNAL_HOOK_FAILED, Engine
from gc3session.exceptions import InvalidValue
from gc3session.executors import EXIT_FILE
from gc3session.task import State

PY = sys.executable


@pytest.fixture
def session(tmp_path: "os.PathLike[str]") -> Iterator[Session]:
    with Session(os.path.join(tmp_path, "s")) as opened:
        yield opened


def drive(engine: Engine, timeout: float = 30.0) -> dict[str, int]:
    """Run passes until the engine is idle; fail (instead of hanging) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        engine.progress()
        if engine.idle:
            return engine.counts()
        assert time.monotonic() < deadline, f"engine not idle after {timeout}s: {engine.counts()}"
        engine.wait(0.2)


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def audited(audit: str, name: str, body: str = "") -> list[str]:
    """A shell command that appends "<name> start" / "<name> done" to ``audit`` around ``body``."""
    return ["sh", "-c", f'echo "{name} start" >> {audit}; {body} echo "{name} done" >> {audit}']


def app(tmp_path, name: str, argv: list[str], **kwargs) -> Application:
    return Application(argv, jobname=name, output_dir=os.path.join(tmp_path, "out", name), **kwargs)


def kill_with_its_spawner(pid: int) -> None:
    """SIGKILL a command as a crash of the whole machine would: its spawner (the parent,
    which would record the status) first, then the command's process group; wait until gone."""
    with open(f"/proc/{pid}/stat", "rb") as stream:
        parent = int(stream.read().rpartition(b")")[2].split()[1])
    with open(f"/proc/{parent}/cmdline", "rb") as stream:
        assert b"gc3session/executors/_spawner.py\0" in stream.read()
    os.kill(parent, signal.SIGKILL)
    os.killpg(pid, signal.SIGKILL)

    def gone() -> bool:  # no process, or a zombie that its new parent has not reaped yet
        try:
            with open(f"/proc/{pid}/stat", "rb") as stream:
                return stream.read().rpartition(b")")[2].split()[0] == b"Z"
        except FileNotFoundError:
            return True

    wait_for(gone)


def reopened_states(session: Session) -> dict[str, str]:
    with Session(session.path, mode="r") as other:
        return {str(t.persistent_id): t.execution.state.value for t in other}


def test_application_stages_inputs_collects_outputs_and_records_the_exit_status(session, tmp_path):
    """Inputs are staged into a fresh working directory, outputs/stdout/stderr land in output_dir."""
    source = os.path.join(tmp_path, "data.txt")
    with open(source, "w") as stream:
        stream.write("three little words\n")
    task = app(tmp_path, "wc", ["sh", "-c", "wc -w < in.txt > n.txt; echo out; echo err >&2;"
                                            ' echo "$GREETING"; pwd; exit 3'],
               inputs={source: "in.txt"}, outputs=["n.txt"], environment={"GREETING": "hi"})
    session.add(task)
    engine = Engine(session)
    counts = drive(engine)
    engine.close()
    assert counts["failed"] == 1 and counts["total"] == 1
    assert task.execution.exitcode == 3 and task.execution.signal is None
    assert task.execution.returncode == 3 << 8
    with open(os.path.join(task.output_dir, "n.txt")) as stream:
        assert stream.read().strip() == "3"
    with open(os.path.join(task.output_dir, "stdout.txt")) as stream:
        out = stream.read().splitlines()
    assert out[:2] == ["out", "hi"]
    assert out[2] == task.execution.handle["workdir"]  # it ran in its own directory
    assert os.path.dirname(out[2]) == os.path.join(session.path, "runs")
    with open(os.path.join(task.output_dir, "stderr.txt")) as stream:
        assert stream.read() == "err\n"
    with Session(session.path, mode="r") as other:
        (saved,) = list(other)
        assert saved.execution.returncode == 3 << 8 and saved.execution.state == State.TERMINATED


def test_every_pass_persists_its_state_changes(session, tmp_path):
    """After each progress() a second handle on the session sees exactly the in-memory states."""
    for i in range(4):
        session.add(app(tmp_path, f"t{i}", ["sh", "-c", f"sleep 0.{i}"]), flush=False)
    session.flush()
    engine = Engine(session, max_in_flight=2)
    seen = set()
    deadline = time.monotonic() + 30
    while not engine.idle or not seen:
        engine.progress()
        mine = {str(t.persistent_id): t.execution.state.value for t in session}
        assert reopened_states(session) == mine
        seen.update(mine.values())
        assert time.monotonic() < deadline
        engine.wait(0.1)
    engine.close()
    assert {"RUNNING", "TERMINATED"} <= seen
    assert engine.counts()["ok"] == 4


def test_max_in_flight_bounds_the_running_commands(session, tmp_path):
    """With max_in_flight=2 no pass ever leaves more than 2 commands running."""
    for i in range(6):
        session.add(app(tmp_path, f"t{i}", ["sleep", "0.2"]), flush=False)
    session.flush()
    engine = Engine(session, max_in_flight=2)
    peak = 0
    deadline = time.monotonic() + 30
    while True:
        engine.progress()
        running = engine.counts()["RUNNING"]
        peak = max(peak, running)
        assert running <= 2
        if engine.idle:
            break
        assert time.monotonic() < deadline
        engine.wait(0.5)
    engine.close()
    assert peak == 2 and engine.counts()["ok"] == 6


def test_terminated_hook_judges_the_result_and_its_verdict_is_saved(session, tmp_path):
    """terminated() reads an output and fails the task; a raising hook fails only its own task."""

    session.add(Judged(["sh", "-c", "echo 41 > answer.txt"], outputs=["answer.txt"], jobname="judged",
                       output_dir=os.path.join(tmp_path, "judged")))
    session.add(Raising(["true"], jobname="raising", output_dir=os.path.join(tmp_path, "raising")))
    session.add(app(tmp_path, "fine", ["true"]))
    engine = Engine(session)
    counts = drive(engine)
    engine.close()
    assert (counts["ok"], counts["failed"]) == (1, 2)
    with Session(session.path, mode="r") as other:
        by_name = {t.jobname: t for t in other}
    assert by_name["judged"].answer == 41 and by_name["judged"].execution.exitcode == 1
    assert by_name["raising"].execution.signal == SIGNAL_HOOK_FAILED
    assert "terminated() failed" in by_name["raising"].execution.info
    assert by_name["fine"].execution.returncode == 0


class Judged(Application):
    def terminated(self) -> None:
        with open(os.path.join(self.output_dir, "answer.txt")) as stream:
            self.answer = int(stream.read())
        if self.answer != 42:
            self.execution.exitcode = 1


class Raising(Application):
    def terminated(self) -> None:
        raise RuntimeError("cannot judge")


def test_failures_that_the_command_cannot_report(session, tmp_path):
    """Missing outputs, a missing input, an unknown command and a signal are all recorded as failures."""
    missing_out = app(tmp_path, "noout", ["true"], outputs=["result.dat"])
    missing_in = app(tmp_path, "noin", ["true"], inputs=[os.path.join(tmp_path, "absent")])
    unknown = app(tmp_path, "nocmd", ["no-such-command-gc3session"])
    killed = app(tmp_path, "sig", ["sh", "-c", "kill -TERM $$"])
    for task in (missing_out, missing_in, unknown, killed):
        session.add(task)
    engine = Engine(session)
    counts = drive(engine)
    engine.close()
    assert counts["failed"] == 4
    assert missing_out.execution.signal == SIGNAL_DATA_STAGING
    assert "missing outputs: result.dat" in missing_out.execution.info
    assert missing_in.execution.exitcode == 127 and "could not be started" in missing_in.execution.info
    assert unknown.execution.exitcode == 127
    assert killed.execution.signal == signal.SIGTERM


def test_sequential_collection_runs_children_in_order_and_next_may_stop_early(session, tmp_path):
    """Children of a sequence start only after the previous one ended; next() can end it early."""
    log = os.path.join(tmp_path, "order.log")
    steps = [app(tmp_path, f"step{i}", audited(log, f"step{i}", "sleep 0.1;")) for i in range(3)]
    seq = SequentialTaskCollection(steps, jobname="seq")
    stopping = StopAfterFirst([app(tmp_path, f"stop{i}", ["sh", "-c", "exit 5"]) for i in range(2)],
                              jobname="stopping")
    session.add(seq)
    session.add(stopping)
    engine = Engine(session)
    counts = drive(engine)
    engine.close()
    with open(log) as stream:
        assert stream.read().split("\n")[:-1] == [f"step{i} {e}" for i in range(3) for e in ("start", "done")]
    assert seq.execution.state == State.TERMINATED and seq.execution.returncode == 0
    assert stopping.tasks[1].execution.state == State.NEW  # never started
    assert stopping.execution.returncode == 77 << 8  # set by the hook and kept
    assert (counts["ok"], counts["failed"]) == (1, 1)


class StopAfterFirst(SequentialTaskCollection):
    def next(self, done: int) -> State:
        self.execution.returncode = 77 << 8
        return State.TERMINATED


def test_parallel_collections_run_together_and_nest_inside_sequences(session, tmp_path):
    """A parallel group starts all its children at once; a sequence of groups runs group by group."""
    log = os.path.join(tmp_path, "nest.log")
    first = ParallelTaskCollection([app(tmp_path, f"a{i}", audited(log, f"a{i}", "sleep 0.3;"))
                                    for i in range(3)], jobname="first")
    second = ParallelTaskCollection([app(tmp_path, f"b{i}", audited(log, f"b{i}")) for i in range(2)],
                                    jobname="second")
    session.add(SequentialTaskCollection([first, second], jobname="nested"))
    engine = Engine(session, max_in_flight=10)
    engine.progress()
    assert [t.execution.state for t in first.tasks] == [State.RUNNING] * 3
    assert [t.execution.state for t in second.tasks] == [State.NEW] * 2
    counts = drive(engine)
    engine.close()
    assert counts["ok"] == 1
    with open(log) as stream:
        events = stream.read().split("\n")[:-1]
    last_a_done = max(i for i, e in enumerate(events) if e.startswith("a") and e.endswith("done"))
    first_b = min(i for i, e in enumerate(events) if e.startswith("b"))
    assert len(events) == 10 and last_a_done < first_b
    with Session(session.path, mode="r") as other:
        (saved,) = list(other)
        assert [c.execution.state for c in saved.tasks[1].tasks] == [State.TERMINATED] * 2


def test_kill_stops_a_running_command_and_cancels_a_new_one(session, tmp_path):
    """kill() ends the process group (signal 9 recorded) and marks a NEW task killed without running it."""
    running = app(tmp_path, "long", ["sleep", "30"])
    waiting = app(tmp_path, "waiting", ["sleep", "30"])
    session.add(running)
    session.add(waiting)
    engine = Engine(session, max_in_flight=1)
    engine.progress()
    pid = running.execution.handle["pid"]
    engine.kill(running)
    engine.kill(waiting)
    engine.close()
    assert running.execution.signal == 9 and running.execution.state == State.TERMINATED
    assert waiting.execution.signal == 9 and "before it started" in waiting.execution.info
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert reopened_states(session) == {str(running.persistent_id): "TERMINATED",
                                        str(waiting.persistent_id): "TERMINATED"}


def test_requested_resources_reach_the_command(session, tmp_path):
    """requested_walltime kills a long command; requested_memory limits its address space;
    cores are exported."""
    slow = app(tmp_path, "slow", ["sleep", "30"], requested_walltime=0.5)
    hungry = app(tmp_path, "hungry", [PY, "-c", "x = bytearray(400 * 10**6)"], requested_memory=200 * 10**6)
    probe = app(tmp_path, "probe", ["sh", "-c", 'ulimit -v; echo "$GC3SESSION_CORES"'],
                requested_memory=300 * 2**20, requested_cores=3)
    for task in (slow, hungry, probe):
        session.add(task)
    started = time.monotonic()
    engine = Engine(session)
    drive(engine)
    engine.close()
    assert time.monotonic() - started < 25  # the 30 s sleep did not run to its end
    assert slow.execution.signal == 9
    assert "wall time of 0.5s" in " ".join(m for m, _, _ in slow.execution.history)
    assert hungry.execution.exitcode == 1
    with open(os.path.join(hungry.output_dir, "stderr.txt")) as stream:
        assert "MemoryError" in stream.read()
    with open(os.path.join(probe.output_dir, "stdout.txt")) as stream:
        assert stream.read().split() == [str(300 * 1024), "3"]


def test_resume_follows_a_command_that_outlived_its_driver(session, tmp_path):
    """A driver that stops while a command runs: the next one watches it and it runs exactly once."""
    log = os.path.join(tmp_path, "runs.log")
    task = app(tmp_path, "t", audited(log, "t", "sleep 0.5;"))
    session.add(task)
    first = Engine(session)
    first.progress()
    first.close()  # the driver goes away, the command goes on
    with Session(session.path) as again:
        second = Engine(again)
        counts = drive(second)
        second.close()
        (resumed,) = list(again)
        assert counts["ok"] == 1 and resumed.execution.attempt == 1
    with open(log) as stream:
        assert stream.read() == "t start\nt done\n"


def test_resume_collects_a_command_that_finished_while_no_driver_watched(session, tmp_path):
    """The exit status the run left in its directory is read; outputs are collected; nothing reruns."""
    task = app(tmp_path, "t", ["sh", "-c", "echo 7 > seven.txt"], outputs=["seven.txt"])
    session.add(task)
    first = Engine(session)
    first.progress()
    first.close()
    workdir = task.execution.handle["workdir"]
    wait_for(lambda: os.path.exists(os.path.join(workdir, EXIT_FILE)))
    with Session(session.path) as again:
        second = Engine(again)
        counts = drive(second)
        second.close()
        (resumed,) = list(again)
    assert counts["ok"] == 1 and resumed.execution.attempt == 1
    assert any("no driver was watching" in m for m, _, _ in resumed.execution.history)
    with open(os.path.join(resumed.output_dir, "seven.txt")) as stream:
        assert stream.read() == "7\n"


@pytest.mark.parametrize("policy", ["rerun", "report"])
def test_resume_policy_decides_about_a_lost_run(session, tmp_path, policy):
    """A run killed with its driver becomes UNKNOWN; "rerun" runs it again, "report" leaves it."""
    log = os.path.join(tmp_path, "runs.log")
    task = app(tmp_path, "t", audited(log, "t", "sleep 30;"))
    session.add(task)
    first = Engine(session)
    first.progress()
    first.close()
    wait_for(lambda: os.path.exists(log))
    kill_with_its_spawner(task.execution.handle["pid"])
    task.arguments = audited(log, "t")  # the second attempt must not sleep
    session.save(task)
    with Session(session.path) as again:
        engine = Engine(again, resume_policy=policy)
        counts = drive(engine)
        engine.close()
        (resumed,) = list(again)
    history = " ".join(m for m, _, _ in resumed.execution.history)
    assert "lost while no driver was watching" in history
    with open(log) as stream:
        lines = stream.read().splitlines()
    if policy == "rerun":
        assert counts["ok"] == 1 and resumed.execution.attempt == 2
        assert lines == ["t start", "t start", "t done"]
    else:
        assert counts["UNKNOWN"] == 1 and resumed.execution.state == State.UNKNOWN
        assert lines == ["t start"]


def test_resume_of_a_submission_cut_short_trusts_the_run_lock(session, tmp_path):
    """A task saved SUBMITTED before its pid was known: a held run lock means "running", else "lost"."""
    held = app(tmp_path, "held", ["true"])
    never = app(tmp_path, "never", ["true"])
    for task in (held, never):
        session.add(task)
        workdir = os.path.join(session.path, "runs", f"{task.persistent_id}.1")
        task.execution.attempt = 1
        task.execution.handle = {"executor": "local", "workdir": workdir, "submitted": time.time()}
        task.execution.state = State.SUBMITTED
        session.save(task)
    os.makedirs(held.execution.handle["workdir"])
    lock = os.open(held.execution.handle["workdir"], os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as the shell of a started run would hold it
        with Session(session.path) as again:
            engine = Engine(again)
            engine.progress()
            by_name = {t.jobname: t for t in again}
            assert by_name["held"].execution.state == State.SUBMITTED  # watched, not rerun
            assert by_name["never"].execution.attempt == 2  # lost, then queued again and started
            with open(os.path.join(held.execution.handle["workdir"], EXIT_FILE), "w") as stream:
                stream.write("0\n")
            fcntl.flock(lock, fcntl.LOCK_UN)
            counts = drive(engine)
            engine.close()
    finally:
        os.close(lock)
    assert counts["ok"] == 2
    assert by_name["held"].execution.attempt == 1


def test_engine_rejects_bad_arguments(session):
    """A zero concurrency bound and an unknown resume policy are typed errors."""
    with pytest.raises(InvalidValue):
        Engine(session, max_in_flight=0)
    with pytest.raises(InvalidValue):
        Engine(session, resume_policy="retry")


def test_counts_and_add(session, tmp_path):
    """Engine.add puts a task in the session; counts() gives states, ok, failed and total."""
    engine = Engine(session)
    engine.add(app(tmp_path, "ok", ["true"]))
    engine.add(app(tmp_path, "bad", ["false"]))
    counts = drive(engine)
    engine.close()
    assert len(session) == 2
    assert {k: counts[k] for k in ("TERMINATED", "ok", "failed", "total", "NEW")} == {
        "TERMINATED": 2, "ok": 1, "failed": 1, "total": 2, "NEW": 0}
    assert json.dumps(counts)  # plain numbers


def test_commands_get_only_their_streams_and_the_run_lock(session, tmp_path):
    """A descriptor the driver inherited open does not leak into commands (as with close_fds)."""
    reader, writer = os.pipe()
    os.set_inheritable(writer, True)
    try:
        task = app(tmp_path, "fds", ["sh", "-c", "ls /proc/$$/fd"])
        session.add(task)
        engine = Engine(session)
        drive(engine)
        engine.close()
    finally:
        os.close(reader)
        os.close(writer)
    with open(os.path.join(task.output_dir, "stdout.txt")) as stream:
        assert sorted(stream.read().split()) == ["0", "1", "2", "3"]
