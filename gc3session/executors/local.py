"""Run commands as local processes (the default executor).

Commands are started by the executor's *spawner*, a small process of its
own (:mod:`gc3session.executors._spawner`, one per executor, started with
the first command): the spawner is the parent of the commands, reaps them
and writes each one's exit status to
:data:`~gc3session.executors.base.EXIT_FILE` in its working directory (one
``write``: no partial content after a kill).  It outlives the driver until
its last command ended, so a command that ends while no driver is watching
(the driver was killed, the machine is being drained) is still accounted
for by the next driver.  Each command is started directly with
``posix_spawnp`` (no ``/bin/sh`` in between: the shell per command cost
about 0.65 ms of CPU), in its own process group and session, so Ctrl-C on
the driver, or the loss of its terminal, does not reach it.  A command
that cannot be started (no such program) gets status 127, as from a shell.

A run also holds an ``flock`` on its working directory from before its
process starts until its exit status is on file: the spawner takes the
lock, the command inherits it (as descriptor 3), and the spawner lets go of
its copy once it has written the status.  The kernel drops the lock when the
last holder ends, however it ends.  A restarted driver therefore knows for
certain whether a run is still going, even one whose process id it died too
early to save: a run goes on while its lock is held and no status is on file.
A recycled pid is never mistaken for the run: before a kill, the process
start time from ``/proc/<pid>/stat`` must be the one recorded.  Locking
the directory itself rather than a file in it saves a file creation per run,
about a millisecond on a busy disk.  "Killed with its driver" therefore
means: the driver, the spawner and the command were killed (a power cut, a
batch system ending the job); a command killed alone is recorded as killed
(status 128 + signal), as the shell recorded it.

Commands get the driver's environment as it was when the executor was
made, plus the task's ``environment``.  The resources a task requests reach
its command: ``requested_memory`` as an address-space limit (``ulimit -v``,
applied by ``/bin/sh``, which then executes the command in its place: the
only case with a shell), ``requested_cores`` as the environment variable
``GC3SESSION_CORES``.  The engine enforces the wall-time limit.
"""

from __future__ import annotations

import itertools
import os
import select
import signal as signals
import socket
import subprocess
import sys
import threading
from typing import Any, Iterable

from ..exceptions import Error
from ..locking import is_locked
from . import _spawner
from .base import (
    EXIT_FILE,
    LIMIT_EXEC_SCRIPT,
    Executor,
    Outcome,
    command_environment,
    decode_status,
    read_exit_status,
)


class SpawnerError(Error, ChildProcessError):
    """The spawner of the local executor could not be started, or stopped answering."""


class LocalExecutor(Executor):
    """Run each command as a process of this machine, child of the executor's spawner.

    The spawner answers over a socket; a reader thread of this process
    takes its answers (pids, then exit statuses), so :meth:`poll` never
    blocks and :meth:`wait` sleeps until a command ends.  Nothing is left for
    the garbage collector: an executor can be dropped while its commands run
    on.
    """

    name = "local"

    def __init__(self) -> None:
        self._host = socket.gethostname()
        self._environ = dict(os.environ)
        self._link: _Link | None = None
        self._linking = threading.Lock()  # the engine starts commands from several threads
        self._pidfds: dict[int, int] = {}

    def submit(self, task: Any, workdir: str) -> dict[str, Any]:
        """Start the command of ``task`` in ``workdir`` (which holds its staged inputs)."""
        extra, _ = command_environment({}, task.environment, task.requested_cores,
                                       task.requested_memory)
        argv = [str(a) for a in task.arguments]
        if task.requested_memory:
            argv = ["/bin/sh", "-c", LIMIT_EXEC_SCRIPT, "sh", *argv]
        with self._linking:
            if self._link is None or not self._link.alive:
                self._link = _Link.start(self._environ)
            link = self._link
        reply = link.request(argv, extra, workdir, task.stdout, task.stderr)
        if reply[0] != "started":
            raise Error(f"cannot start {task.arguments[0]!r} for {task}: {reply[-1]}", id=str(task))
        return {"executor": self.name, "pid": reply[2], "start": reply[3],
                "host": self._host, "workdir": workdir}

    def poll(self, task: Any, handle: dict[str, Any]) -> Outcome | None:
        """The status the spawner reported, or else what the run lock and exit file tell."""
        pid = handle.get("pid")
        link = self._link
        if link is not None and pid in link.children:
            status = link.take(pid)
            if status is not None:
                return decode_status(status)
            if link.alive:
                return None
            link.children.discard(pid)  # the spawner died: the run directory tells
        if self._alive(handle):
            return None
        if pid is not None:
            self._forget(pid)
        status = read_exit_status(handle["workdir"])
        if status is None:
            return Outcome(None, None, "the run ended while no driver watched it and left no exit status")
        return decode_status(status)

    def reattach(self, task: Any, handle: dict[str, Any]) -> bool:
        """True if the run of ``handle`` still goes on, on this host."""
        return handle.get("host", self._host) == self._host and self._alive(handle)

    def kill(self, task: Any, handle: dict[str, Any]) -> None:
        """Kill the process group of the run (SIGKILL)."""
        pid = handle.get("pid")
        mine = self._link is not None and pid in self._link.children
        if pid is not None and (mine or (self._alive(handle) and self._same_process(handle))):
            try:
                os.killpg(pid, signals.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self, handles: Iterable[dict[str, Any]], timeout: float) -> None:
        """Sleep until one of the runs ends (the spawner's answer, or a pidfd), or ``timeout``."""
        link = self._link
        poller = select.poll()
        mine: set[int] = set()
        others = 0
        for handle in handles:
            pid = handle.get("pid")
            if link is not None and pid in link.children:
                mine.add(pid)
                continue
            fd = self._pidfd(pid)
            if fd is not None:
                poller.register(fd, select.POLLIN)
                others += 1
        if mine and link is not None:
            if link.ended_among(mine):
                return
            poller.register(link.wakeup, select.POLLIN)
        if mine or others:
            poller.poll(max(0, int(timeout * 1000)))
            if link is not None:
                link.drain_wakeup()
        else:
            super().wait(handles, timeout)

    def close(self) -> None:
        """Let go of the spawner and of pidfds; running commands go on (the spawner with them)."""
        if self._link is not None:
            self._link.close()
            self._link = None
        for pid in list(self._pidfds):
            self._forget(pid)

    def _alive(self, handle: dict[str, Any]) -> bool:
        """The run goes on: its lock is held and its exit status is not on file yet.

        The lock alone decides, not the pid: between a command's end and the
        recording of its status (a zombie, then a reaped pid) the spawner
        still holds its copy of the lock; and once the status is on file, a
        descendant of the command that kept the lock does not make the run
        "running".  The pid is checked before a kill (:meth:`kill`).
        """
        return is_locked(handle["workdir"]) and read_exit_status(handle["workdir"]) is None

    def _same_process(self, handle: dict[str, Any]) -> bool:
        """The pid of ``handle`` is still the process started (not recycled since)."""
        pid = handle.get("pid")
        return pid is not None and _spawner.start_time(pid) == handle.get("start")

    def _pidfd(self, pid: int | None) -> int | None:
        if pid is None:
            return None
        if pid not in self._pidfds:
            try:
                self._pidfds[pid] = os.pidfd_open(pid)
            except (OSError, AttributeError):
                return None
        return self._pidfds[pid]

    def _forget(self, pid: int) -> None:
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            os.close(fd)


class _Link:
    """This process's end of a spawner: the socket, its reader thread and what it read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.alive = True
        self.children: set[int] = set()  # started, not yet polled to the end
        self._ended: dict[int, int] = {}
        self._replies: dict[int, tuple[Any, ...]] = {}
        self._tokens = itertools.count()
        self._sending = threading.Lock()
        self._changed = threading.Condition()
        self.wakeup, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._reader = threading.Thread(target=self._read, name="gc3session-spawner-reader",
                                        daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, environ: dict[str, str]) -> "_Link":
        """Start a spawner (it detaches at once) with ``environ``; return the link to it."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            starter = subprocess.run(
                [sys.executable, "-I", "-S", _spawner.__file__, str(theirs.fileno()), EXIT_FILE],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=environ, cwd="/", start_new_session=True, timeout=60,
                check=False)
        except (OSError, subprocess.SubprocessError) as err:
            ours.close()
            raise SpawnerError(f"cannot start the local executor's spawner: {err}") from err
        finally:
            theirs.close()
        if starter.returncode != 0:
            ours.close()
            raise SpawnerError("cannot start the local executor's spawner: it exited with status"
                               f" {starter.returncode} ({sys.executable} {_spawner.__file__})")
        return cls(ours)

    def request(self, argv: list[str], environment: dict[str, str], workdir: str,
                stdout: str | None, stderr: str | None) -> tuple[Any, ...]:
        """Ask the spawner to start one command; return its answer (``started`` or ``failed``)."""
        token = next(self._tokens)
        message = _spawner.frame(("spawn", token, argv, environment, workdir, stdout, stderr))
        try:
            with self._sending:
                self.sock.sendall(message)
        except OSError as err:
            raise SpawnerError(f"the local executor's spawner is gone ({err}); {workdir} was not"
                               " started") from err
        with self._changed:
            while token not in self._replies:
                if not self.alive:
                    raise SpawnerError(f"the local executor's spawner stopped before it started"
                                       f" the command of {workdir}")
                self._changed.wait()
            reply = self._replies.pop(token)
            if reply[0] == "started":
                self.children.add(reply[2])
        return reply

    def take(self, pid: int) -> int | None:
        """The status of ``pid`` if the spawner reported its end (then it is forgotten)."""
        with self._changed:
            status = self._ended.pop(pid, None)
            if status is not None:
                self.children.discard(pid)
            return status

    def ended_among(self, pids: set[int]) -> bool:
        """True if one of ``pids`` ended and was not polled yet."""
        with self._changed:
            return not pids.isdisjoint(self._ended)

    def drain_wakeup(self) -> None:
        try:
            while os.read(self.wakeup, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Hang up: the spawner serves its running commands to the end, then exits."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.join(5.0)
        if not self._reader.is_alive():
            os.close(self.wakeup)
            os.close(self._wake_w)

    def _read(self) -> None:
        buffer = bytearray()
        try:
            while True:
                try:
                    data = self.sock.recv(1 << 20)
                except OSError:
                    break
                if not data:
                    break
                buffer += data
                messages = _spawner.unframe(buffer)
                ended = False
                with self._changed:
                    for message in messages:
                        if message[0] == "ended":
                            self._ended[message[1]] = message[2]
                            ended = True
                        else:
                            self._replies[message[1]] = message
                    self._changed.notify_all()
                if ended:
                    try:
                        os.write(self._wake_w, b"x")
                    except BlockingIOError:
                        pass  # the pipe is full of wake-ups already
        finally:
            with self._changed:
                self.alive = False
                self._changed.notify_all()
            self.sock.close()
            try:
                os.write(self._wake_w, b"x")  # a driver waiting for its commands looks again
            except BlockingIOError:
                pass


__all__ = ["LocalExecutor", "SpawnerError"]
