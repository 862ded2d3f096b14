"""SessionBasedScript: each option's observable output and exit status.

Most tests call ``Probe().main([...])`` in this process (its stdout, stderr
and return value are what a shell would see); the driver lock, Ctrl-C and
the terminal display need a real second process and run ``probe.py`` in a
subprocess.  Probe's commands append "<name> start" / "<name> done" lines to
an audit file, which is how executions are counted.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from typing import Any

import pytest

from gc3session import Application, Session
from gc3session.cmdline import (EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_USAGE, SessionBasedScript,
                                parse_duration, parse_memory)
from gc3session.sessionlock import lock_owner

TESTS = os.path.dirname(os.path.abspath(__file__))


class Probe(SessionBasedScript):
    """Run --tasks shell commands, each doing --body (with $I set to its index)."""

    new_tasks_calls = 0

    def __init__(self) -> None:
        super().__init__(version="0.1")

    def setup_args(self, parser: Any) -> None:
        super().setup_args(parser)
        parser.add_argument("--tasks", type=int, default=3)
        parser.add_argument("--body", default="true")
        parser.add_argument("--audit", default="audit.log")
        parser.add_argument("--same-name", action="store_true", help="give every task the same name")

    def new_tasks(self, extra: dict[str, Any]) -> list[Application]:
        type(self).new_tasks_calls += 1
        audit = os.path.abspath(self.params.audit)
        tasks = []
        for i in range(self.params.tasks):
            name = "same" if self.params.same_name else f"t{i}"
            script = (f'echo "{name} start" >> {audit}; {self.params.body}; rc=$?;'
                      f' echo "{name} done" >> {audit}; exit $rc')
            tasks.append(Application(["sh", "-c", script], jobname=name, environment={"I": str(i)},
                                     **extra))
        return tasks


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """Run Probe in-process in ``tmp_path``; returns (status, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [os.path.join(tmp_path, "probe.py")])

    def run(*argv: str, capsys=None) -> int:
        return Probe().main(list(argv))
    return run


def audit_lines(tmp_path) -> list[str]:
    path = os.path.join(tmp_path, "audit.log")
    if not os.path.exists(path):
        return []
    with open(path) as stream:
        return stream.read().splitlines()


def spawn(tmp_path, *argv: str, **kwargs: Any) -> subprocess.Popen:
    """Start probe.py as a real driver process in ``tmp_path``."""
    script = os.path.join(tmp_path, "probe.py")
    with open(script, "w") as stream:
        stream.write("from test_cmdline import Probe\nProbe().run()\n")
    # this checkout's gc3session, not an installed one (which may be another version)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.path.dirname(TESTS)]))
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, script, *argv], cwd=tmp_path, env=env, text=True, **kwargs)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_one_pass_then_continuous_run_exit_statuses_and_finished_stamp(probe, tmp_path, capsys):
    """Without -C one pass starts the work (status 4|8: running, not started); -C runs it to 0."""
    gate = os.path.join(tmp_path, "go")  # the commands wait for it (at most 60 s): no race
    body = f"for n in $(seq 3000); do [ -e {gate} ] && break; sleep 0.02; done"
    assert probe("-J", "2", "--body", body) == 4 | 8
    out = capsys.readouterr().out
    assert "Status of jobs in the 'probe' session" in out
    assert re.search(r"RUNNING\s+2/3", out) and re.search(r"NEW\s+1/3", out)
    assert not os.path.exists(os.path.join(tmp_path, "probe", "finished"))
    open(gate, "w").close()
    assert probe("-C", "1") == 0
    out = capsys.readouterr().out
    assert re.search(r"ok\s+3/3\s+\(100.0%\)", out)
    assert os.path.exists(os.path.join(tmp_path, "probe", "finished"))
    assert sorted(audit_lines(tmp_path)) == sorted(f"t{i} {e}" for i in range(3) for e in ("start", "done"))


def test_failed_tasks_set_bit_2_and_still_finish_the_session(probe, tmp_path, capsys):
    """Some commands fail: status 2, the finished time stamp is set, -l failed lists exactly them."""
    assert probe("-C", "1", "-l", "failed", "--body", '[ "$I" != 1 ]') == 2
    out = capsys.readouterr().out
    assert re.search(r"failed\s+1/3", out)
    table = out[out.index("JobID"):].splitlines()
    assert [cell.strip() for cell in table[0].split(" | ")] == ["JobID", "Job name", "State", "Info"]
    assert [row.split(" | ")[1].strip() for row in table[2:]] == ["t1"]
    assert os.path.exists(os.path.join(tmp_path, "probe", "finished"))


def test_list_states_option(probe, tmp_path, capsys):
    """-l alone lists every task; -l with a state lists those; an unknown state is a usage error."""
    assert probe("-C", "1") == 0
    capsys.readouterr()
    assert probe("-l") == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"\| t\d +\| TERMINATED", out)) == 3
    assert probe("-l", "NEW,RUNNING") == 0
    assert "JobID" not in capsys.readouterr().out  # nothing in those states: no table
    assert probe("-l", "DONE") == EXIT_USAGE
    assert "unknown state DONE" in capsys.readouterr().err


def test_new_tasks_only_for_an_empty_session_and_repeated_names_are_kept(probe, tmp_path, capsys):
    """new_tasks() runs once; a second run adds nothing; tasks repeating a name are all kept."""
    Probe.new_tasks_calls = 0
    assert probe("-C", "1", "--same-name") == 0
    assert probe("-C", "1", "--tasks", "5") == 0
    assert Probe.new_tasks_calls == 1
    assert "session already exists" in capsys.readouterr().err
    with Session(os.path.join(tmp_path, "probe"), mode="r") as session:
        assert [t.jobname for t in session] == ["same"] * 3
    assert sorted(audit_lines(tmp_path)) == ["same done"] * 3 + ["same start"] * 3


def test_new_session_option_kills_and_replaces_the_old_tasks(probe, tmp_path, capsys):
    """-N kills the old commands, removes the old tasks (records included) and creates them anew."""
    assert probe("--body", "sleep 30") == 4  # one pass: all three left running
    with Session(os.path.join(tmp_path, "probe"), mode="r") as session:
        old = session.list_ids()
        pids = [t.execution.handle["pid"] for t in session]
    assert probe("-N", "-C", "1") == 0
    for pid in pids:
        wait_for(lambda: _gone(pid))
    with Session(os.path.join(tmp_path, "probe"), mode="r") as session:
        new = session.list_ids()
        assert not set(old) & set(new) and len(new) == 3
        assert not set(old) & set(session.store.list())
        assert [t.execution.returncode for t in session] == [0, 0, 0]
    lines = audit_lines(tmp_path)
    assert sorted(lines) == sorted([f"t{i} start" for i in range(3)] * 2 + [f"t{i} done" for i in range(3)])


def test_new_session_option_forgets_the_old_end_time(probe, tmp_path):
    """After -N the session is not "finished" until its new tasks are done."""
    finished = os.path.join(tmp_path, "probe", "finished")
    assert probe("-C", "1") == 0 and os.path.exists(finished)
    assert probe("-N", "--body", "sleep 30") == 4  # one pass: the new tasks are running
    assert not os.path.exists(finished)
    assert probe("-N", "-C", "1") == 0 and os.path.exists(finished)  # and the sleeps are killed


def _gone(pid: int) -> bool:
    """True once ``pid`` has ended (reaped here if it was a child of this process)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def test_session_and_store_url_options(probe, tmp_path):
    """-s names the session directory; -u sqlite / file / a URL choose its store."""
    assert probe("-s", "plain", "-C", "1") == 0
    assert probe("-s", "lite", "-u", "sqlite", "-C", "1") == 0
    assert probe("-s", "files", "-u", "file", "-C", "1") == 0
    other = os.path.join(tmp_path, "elsewhere.db")
    assert probe("-s", "url", "-u", f"sqlite:///{other}", "-C", "1") == 0
    expected = {"plain": f"file://{tmp_path}/plain/jobs", "lite": f"sqlite:///{tmp_path}/lite/jobs.db",
                "files": f"file://{tmp_path}/files/jobs", "url": f"sqlite:///{other}"}
    for name, url in expected.items():
        with open(os.path.join(tmp_path, name, "store.url")) as stream:
            assert stream.read() == url, name
        with Session(os.path.join(tmp_path, name), mode="r") as session:
            assert [t.execution.returncode for t in session] == [0, 0, 0]
    assert os.path.exists(os.path.join(tmp_path, "lite", "jobs.db")) and os.path.exists(other)


def test_default_session_is_named_after_the_script(probe, tmp_path):
    """Without -s the session is ./<script name>."""
    assert probe("-C", "1") == 0
    assert os.path.exists(os.path.join(tmp_path, "probe", "session_ids.txt"))


def test_output_option_templates(probe, tmp_path):
    """-o replaces NAME, SESSION, DATE and TIME; without NAME it appends /NAME."""
    before = datetime.datetime.now()
    assert probe("-s", "sess", "-C", "1", "-o", "out/SESSION/DATE_TIME/NAME") == 0
    after = datetime.datetime.now()
    stamps = {f"{d:%Y-%m-%d}_{d:%H:%M}" for d in (before, after)}
    found = os.listdir(os.path.join(tmp_path, "out", "sess.out"))
    assert len(found) == 1 and found[0] in stamps
    assert sorted(os.listdir(os.path.join(tmp_path, "out", "sess.out", found[0]))) == ["t0", "t1", "t2"]
    assert probe("-s", "flat", "-C", "1", "-o", "results") == 0
    assert os.path.exists(os.path.join(tmp_path, "results", "t2", "stdout.txt"))


def test_cores_memory_and_wall_time_reach_the_commands(probe, tmp_path, capsys):
    """-c and -m reach each command (cores exported, memory as ulimit -v); -w kills a too-long one."""
    body = 'if [ "$I" = 0 ]; then sleep 30; else echo "$GC3SESSION_CORES $(ulimit -v)"; fi'
    started = time.monotonic()
    assert probe("-C", "1", "-c", "3", "-m", "100MiB", "-w", "1s", "--tasks", "2", "--body", body,
                 "-l", "failed") == 2
    assert time.monotonic() - started < 25  # the sleep 30 was cut short
    out = capsys.readouterr().out
    assert re.search(r"\| t0 +\| TERMINATED +\| killed after exceeding its wall time of 1s", out)
    with open(os.path.join(tmp_path, "t1", "stdout.txt")) as stream:
        assert stream.read().split() == ["3", str(3 * 100 * 1024)]
    with Session(os.path.join(tmp_path, "probe"), mode="r") as session:
        sleeper = next(t for t in session if t.jobname == "t0")
        assert sleeper.execution.signal == 9 and sleeper.requested_walltime == 1.0
        assert sleeper.requested_cores == 3 and sleeper.requested_memory == 300 * 2**20
    assert "t0 done" not in audit_lines(tmp_path)


def test_max_running_bounds_concurrency(probe, tmp_path):
    """-J 2: at no point do more than two commands run (counted from their start/done lines)."""
    assert probe("-C", "1", "-J", "2", "--tasks", "6", "--body", "sleep 0.2") == 0
    running = peak = 0
    lines = audit_lines(tmp_path)
    for line in lines:
        running += 1 if line.endswith("start") else -1
        peak = max(peak, running)
    assert len(lines) == 12 and 1 <= peak <= 2


def test_verbose_option_shows_what_the_engine_does(probe, tmp_path, capsys):
    """-v shows one INFO line per start and end; without it, none."""
    assert probe("-C", "1", "-s", "quiet") == 0
    assert "INFO" not in capsys.readouterr().err
    assert probe("-C", "1", "-s", "loud", "-v") == 0
    err = capsys.readouterr().err
    assert len(re.findall(r"probe: INFO: .*started in", err)) == 3
    assert len(re.findall(r"probe: INFO: .*terminated with return code 0", err)) == 3


@pytest.mark.parametrize("argv", [["-J", "0"], ["--bogus"], ["-C", "soon"], ["-m", "lots"], ["-w", "1 fortnight"]])
def test_usage_errors_exit_64(probe, tmp_path, capsys, argv):
    """Bad options exit 64 with a hint, before any session is created."""
    assert probe(*argv) == EXIT_USAGE
    assert "Type 'probe --help' for usage." in capsys.readouterr().err
    assert not os.path.exists(os.path.join(tmp_path, "probe"))


def test_unknown_executor_is_a_usage_error(probe, capsys):
    """-x with an executor nobody provides exits 64 and lists the known ones."""
    assert probe("-x", "nowhere://host") == EXIT_USAGE
    assert "unknown executor 'nowhere://host'; known: local, dask" in capsys.readouterr().err


def test_memory_and_duration_parsers():
    """The units of -m and -w."""
    assert parse_memory("2GB") == 2 * 10**9 and parse_memory("4 GiB") == 4 * 2**30
    assert parse_duration("8 hours") == 28800 and parse_duration("90m") == 5400
    assert parse_duration("30") == 30


def test_second_driver_stops_at_once_and_a_killed_driver_leaves_no_lock(probe, tmp_path, capsys):
    """While a driver runs, another exits 69 naming it; after kill -9 of the first, the next just runs."""
    first = spawn(tmp_path, "-C", "1", "--body", "sleep 1")
    try:
        session = os.path.join(tmp_path, "probe")
        wait_for(lambda: os.path.isdir(session) and lock_owner(session) is not None)
        assert probe("-C", "1") == EXIT_LOCKED
        err = capsys.readouterr().err
        assert f"session in use by pid {first.pid} on {socket.gethostname()} since " in err
        first.kill()
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert probe("-C", "1") == 0
    lines = audit_lines(tmp_path)
    assert sorted(lines) == sorted(f"t{i} {e}" for i in range(3) for e in ("start", "done"))


def test_ctrl_c_saves_state_leaves_commands_running_and_exits_13(tmp_path, probe):
    """SIGINT to a real driver: status 13, tasks saved RUNNING, commands go on; the next run completes."""
    driver = spawn(tmp_path, "-C", "1", "--body", "sleep 2")
    try:
        wait_for(lambda: len(audit_lines(tmp_path)) == 3)
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == EXIT_INTERRUPTED
    assert "exiting upon user request (Ctrl+C)" in err
    with Session(os.path.join(tmp_path, "probe"), mode="r") as session:
        states = [t.execution.state.value for t in session]
        pids = [t.execution.handle["pid"] for t in session]
    assert states == ["RUNNING"] * 3
    for pid in pids:
        os.kill(pid, 0)  # still running
    assert probe("-C", "1") == 0
    assert sorted(audit_lines(tmp_path)) == sorted(f"t{i} {e}" for i in range(3) for e in ("start", "done"))


class SelfInterrupting(Application):
    """Sends Ctrl-C to its own driver from terminated(), i.e. in the middle of a pass."""

    def terminated(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)


class InterruptProbe(Probe):
    def new_tasks(self, extra: dict[str, Any]) -> list[Application]:
        return [SelfInterrupting(["true"], jobname="interrupter", **extra),
                Application(["sleep", "0.5"], jobname="later", **extra)]


def test_ctrl_c_in_the_middle_of_a_pass_lets_the_pass_finish_and_save(tmp_path, monkeypatch, capsys):
    """SIGINT while a pass runs: the pass completes (its results saved), then status 13."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [os.path.join(tmp_path, "probe.py")])
    assert InterruptProbe().main(["-C", "1", "-J", "1"]) == EXIT_INTERRUPTED
    assert "exiting upon user request" in capsys.readouterr().err
    with Session(os.path.join(tmp_path, "probe"), mode="r") as session:
        states = {t.jobname: t.execution.state.value for t in session}
        later = next(t for t in session if t.jobname == "later")
    # the interrupted pass collected the first task and started the second, and saved both
    assert states == {"interrupter": "TERMINATED", "later": "RUNNING"}
    wait_for(lambda: _gone(later.execution.handle["pid"]))


def test_progress_bar_on_a_terminal_and_plain_lines_elsewhere(tmp_path):
    """On a terminal stderr shows a tqdm bar with running and failed counts; elsewhere a plain line."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    try:
        driver = spawn(tmp_path, "-C", "1", "--tasks", "4", "--body", 'sleep 0.3; [ "$I" != 2 ]',
                       stderr=follower)
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the terminal closed with the driver
                break
            if not data:
                break
            chunks.append(data)
        driver.communicate(timeout=30)
    finally:
        os.close(leader)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert driver.returncode == 2
    assert "4/4" in shown and "task/s" in shown and "failed=1" in shown and "running=" in shown
    plain = spawn(tmp_path, "-s", "plain", "-C", "1", "--tasks", "2")
    out, err = plain.communicate(timeout=60)
    assert plain.returncode == 0
    assert re.search(r"\d\d:\d\d:\d\d \d/2 done, \d running, 0 failed", err)
