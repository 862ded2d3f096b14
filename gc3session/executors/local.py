"""Run commands as local processes (the default executor).

Each command runs under ``/bin/sh`` in its own process group and session,
so Ctrl-C on the driver, or the loss of its terminal, does not reach it.
The shell waits for the command and writes its exit status to
:data:`~gc3session.executors.base.EXIT_FILE` in the working directory (one
``printf``: no partial content after a kill), so a command that ends while
no driver is watching (the driver was killed, the machine is being drained)
is still accounted for by the next driver.

A run also holds an ``flock`` on its working directory from before its
process starts until the shell and the command have exited: the driver
takes the lock, the process inherits it, the driver lets go of its copy.
The kernel drops it when the last holder ends, however it ends.  A
restarted driver therefore knows for certain whether a run is still going,
even one whose process id it died too early to save, and a recycled pid is
never mistaken for the run (the pid and the process start time from
``/proc/<pid>/stat`` are checked too, when they are known).  Locking the
directory itself rather than a file in it saves a file creation per run,
about a millisecond on a busy disk.

Commands get the driver's environment as it was when the executor was
made, plus the task's ``environment``.  The resources a task requests reach
its command: ``requested_memory`` as an address-space limit (``ulimit -v``,
applied by the shell before it starts the command), ``requested_cores`` as
the environment variable ``GC3SESSION_CORES``.  The engine enforces the
wall-time limit.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal as signals
import socket
from typing import Any, Iterable

from ..exceptions import Error
from ..locking import is_locked
from .base import Executor, Outcome, command_environment, decode_status, read_exit_status

#: The descriptor number under which a run's shell holds the lock of its directory.
_LOCK_FD = 3

# $1 is the working directory (posix_spawn cannot change it); then the shared
# script runs "$@", records its status and exits with it.
_CD = 'cd "$1" || exit 126; shift; '


class LocalExecutor(Executor):
    """Run each command as a child process of this machine.

    Commands start with ``posix_spawn`` (no fork of the driver's memory) and
    are reaped with ``waitpid``; nothing is left for the garbage collector,
    so an executor can be dropped while its commands run on.
    """

    name = "local"

    def __init__(self) -> None:
        self._children: set[int] = set()
        self._pidfds: dict[int, int] = {}
        self._host = socket.gethostname()
        self._environ = dict(os.environ)
        # descriptors this process inherited open (Python opens none inheritable):
        # commands must not hold them, as Popen's close_fds would ensure
        self._inherited = [fd for fd in map(int, os.listdir("/proc/self/fd"))
                           if fd > 2 and _inheritable(fd)]

    def submit(self, task: Any, workdir: str) -> dict[str, Any]:
        """Start the command of ``task`` in ``workdir`` (which holds its staged inputs)."""
        env, script = command_environment(self._environ, task.environment, task.requested_cores,
                                          task.requested_memory)
        merged = task.stderr is not None and task.stderr == task.stdout
        lock = -1
        try:
            lock = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fcntl.flock(lock, fcntl.LOCK_EX)
            actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                       _stream(1, workdir, task.stdout),
                       (os.POSIX_SPAWN_DUP2, 1, 2) if merged else _stream(2, workdir, task.stderr),
                       (os.POSIX_SPAWN_DUP2, lock, _LOCK_FD)]
            actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in self._inherited
                        if fd != _LOCK_FD and _inheritable(fd)]
            pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", _CD + script, "sh", workdir, *task.arguments],
                                 env, file_actions=actions, setsid=True)
        except OSError as err:
            raise Error(f"cannot start {task.arguments[0]!r} for {task}: {err}", id=str(task)) from err
        finally:
            if lock >= 0:
                os.close(lock)  # the shell holds the lock from here on
        self._children.add(pid)
        return {"executor": self.name, "pid": pid, "start": _start_time(pid),
                "host": self._host, "workdir": workdir}

    def poll(self, task: Any, handle: dict[str, Any]) -> Outcome | None:
        """Reap the process if it ended; decode its status."""
        pid = handle.get("pid")
        if pid in self._children:
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: the exit file tells
                reaped, status = pid, None
            if reaped == 0:
                return None
            self._forget(pid)
            if status is not None:
                if os.WIFSIGNALED(status):
                    return Outcome(None, os.WTERMSIG(status))
                return decode_status(os.WEXITSTATUS(status))
        elif self._alive(handle):
            return None
        elif pid is not None:
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
        if pid is not None and (pid in self._children or self._alive(handle)):
            try:
                os.killpg(pid, signals.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self, handles: Iterable[dict[str, Any]], timeout: float) -> None:
        """Sleep until one of the processes ends (pidfd poll), or ``timeout``."""
        poller = select.poll()
        count = 0
        for handle in handles:
            fd = self._pidfd(handle.get("pid"))
            if fd is not None:
                poller.register(fd, select.POLLIN)
                count += 1
        if count:
            poller.poll(max(0, int(timeout * 1000)))
        else:
            super().wait(handles, timeout)

    def close(self) -> None:
        """Close pidfds; running processes go on."""
        for pid in list(self._pidfds):
            self._forget(pid)

    def _alive(self, handle: dict[str, Any]) -> bool:
        """The run lock is held, and the process (if its pid is known) is the one started."""
        if not is_locked(handle["workdir"]):
            return False
        pid = handle.get("pid")
        return pid is None or _start_time(pid) == handle.get("start")

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
        self._children.discard(pid)
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            os.close(fd)


def _stream(fd: int, workdir: str, name: str | None) -> tuple[Any, ...]:
    """The spawn action that opens file ``name`` of ``workdir`` (None: /dev/null) as ``fd``."""
    path = os.devnull if name is None else os.path.join(workdir, name)
    return (os.POSIX_SPAWN_OPEN, fd, path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:  # closed meanwhile
        return False


def _start_time(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (field 22 of /proc/pid/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            data = stream.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    if fields and fields[0] == b"Z":  # a zombie has ended
        return None
    return int(fields[19])


__all__ = ["LocalExecutor"]
