"""The local executor's spawner: commands without a shell, statuses that outlive the driver.

Real processes throughout: the spawner is stopped with SIGSTOP to hold a
command between its end and the recording of its status.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import time
from types import SimpleNamespace

from gc3session.exceptions import Error
from gc3session.executors import EXIT_FILE
from gc3session.executors.local import LocalExecutor


def command(argv: list[str], stdout: str | None = "out.txt") -> SimpleNamespace:
    """What the executor reads of a task."""
    return SimpleNamespace(arguments=argv, environment={}, requested_cores=1, requested_memory=None,
                           stdout=stdout, stderr=stdout)


def run(executor: LocalExecutor, task: SimpleNamespace, workdir: str) -> tuple[dict, object]:
    os.makedirs(workdir)
    handle = executor.submit(task, workdir)
    deadline = time.monotonic() + 20
    while (outcome := executor.poll(task, handle)) is None:
        assert time.monotonic() < deadline, "the command did not end"
        executor.wait([handle], 0.5)
    return handle, outcome


def spawner_of(pid: int) -> int:
    """The parent of ``pid``, which must be a spawner (never signal anything else)."""
    with open(f"/proc/{pid}/stat", "rb") as stream:
        parent = int(stream.read().rpartition(b")")[2].split()[1])
    with open(f"/proc/{parent}/cmdline", "rb") as stream:
        assert b"gc3session/executors/_spawner.py\0" in stream.read(), f"the parent of {pid} is no spawner"
    return parent


def test_a_command_is_started_by_the_spawner_without_a_shell(tmp_path):
    """The command's parent is the spawner (no /bin/sh in between), for every command."""
    executor = LocalExecutor()
    try:
        task = command(["sh", "-c", "tr '\\0' ' ' < /proc/$PPID/cmdline"])
        _, outcome = run(executor, task, str(tmp_path / "a"))
        run(executor, task, str(tmp_path / "b"))
    finally:
        executor.close()
    assert outcome.exitcode == 0
    parent = (tmp_path / "a" / "out.txt").read_text()
    assert "_spawner.py" in parent and "/bin/sh" not in parent
    assert parent == (tmp_path / "b" / "out.txt").read_text()  # one spawner for both
    assert (tmp_path / "a" / EXIT_FILE).read_text() == "0\n"


def test_commands_get_default_signal_dispositions(tmp_path):
    """Python ignores SIGPIPE and SIGXFSZ, the spawner SIGINT, SIGHUP and SIGTERM: commands do not."""
    executor = LocalExecutor()
    try:
        _, outcome = run(executor, command(["sh", "-c", "grep SigIgn /proc/$$/status"]),
                         str(tmp_path / "r"))
    finally:
        executor.close()
    assert outcome.exitcode == 0
    ignored = int((tmp_path / "r" / "out.txt").read_text().split()[1], 16)
    for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        assert not ignored & (1 << (signum - 1)), signum.name


def test_a_missing_program_ends_with_127_and_leaves_it_on_file(tmp_path):
    """Like a shell's "not found": status 127, also in the exit-status file for a later driver."""
    executor = LocalExecutor()
    workdir = tmp_path / "r"
    os.makedirs(workdir)
    try:
        try:
            executor.submit(command(["no-such-program-gc3session"]), str(workdir))
        except Error as err:  # the engine records 127 with this message
            assert "no-such-program-gc3session" in str(err)
        else:
            raise AssertionError("a missing program was started")
    finally:
        executor.close()
    assert (workdir / EXIT_FILE).read_text() == "127\n"


def test_the_run_lock_is_held_until_the_status_is_on_file(tmp_path):
    """Between a command's end and its recorded status (spawner stopped), the run reads as running."""
    workdir = str(tmp_path / "r")
    os.makedirs(workdir)
    first = LocalExecutor()
    task = command(["sh", "-c", "sleep 0.3; exit 5"])
    handle = first.submit(task, workdir)
    spawner = spawner_of(handle["pid"])
    first.close()  # the driver goes away; the spawner serves on
    os.kill(spawner, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 20
        while not _is_zombie(handle["pid"]):  # ended, not reaped: no status on file yet
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = LocalExecutor()
        assert not os.path.exists(os.path.join(workdir, EXIT_FILE))
        assert second.reattach(task, handle)  # not "gone": its status is on its way
        assert second.poll(task, handle) is None
    finally:
        os.kill(spawner, signal.SIGCONT)
    deadline = time.monotonic() + 20
    while (outcome := second.poll(task, handle)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    second.close()
    assert outcome.exitcode == 5
    assert (tmp_path / "r" / EXIT_FILE).read_text() == "5\n"


def _is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", "rb") as stream:
        return stream.read().rpartition(b")")[2].split()[0] == b"Z"


def test_a_reaped_command_whose_status_is_not_on_file_yet_is_still_running(tmp_path):
    """The spawner reaped the command (its pid is gone) but has not written the status: the run
    is still going, never "lost"; once the status is on file and the lock free, it has ended."""
    workdir = tmp_path / "r"
    os.makedirs(workdir)
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid is gone, as a command's is once the spawner reaped it
    handle = {"executor": "local", "workdir": str(workdir), "pid": gone.pid, "start": 12345,
              "host": socket.gethostname()}
    lock = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
    executor = LocalExecutor()
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the spawner's copy of the run lock
        task = command(["true"])
        assert executor.reattach(task, handle)
        assert executor.poll(task, handle) is None
        (workdir / EXIT_FILE).write_text("4\n")
        fcntl.flock(lock, fcntl.LOCK_UN)
        outcome = executor.poll(task, handle)
    finally:
        os.close(lock)
        executor.close()
    assert outcome is not None and outcome.exitcode == 4
