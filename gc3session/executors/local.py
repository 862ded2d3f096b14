"""Run commands as local processes (the default executor).

Each command runs under ``/bin/sh`` in its own process group and session,
so Ctrl-C on the driver does not reach it.  The shell waits for the command
and writes its exit status to :data:`~gc3session.executors.base.EXIT_FILE`
in the working directory (one ``printf``: no partial content after a kill),
so a command that ends while no driver is watching (the driver was killed,
the machine is being drained) is still accounted for by the next driver.

The handle records the pid and the process start time from
``/proc/<pid>/stat``: a restarted driver only considers a process "still
running" if both match, never a recycled pid.
"""

from __future__ import annotations

import os
import resource
import select
import signal as signals
import socket
import subprocess
from typing import Any, Iterable

from ..exceptions import Error
from .base import EXIT_FILE, Executor, Outcome

# "$@" runs the command itself; the status is recorded before sh exits with it.
_WRAPPER = f'"$@"; rc=$?; printf "%d\\n" "$rc" > {EXIT_FILE}; exit "$rc"'


class LocalExecutor(Executor):
    """Run each command as a subprocess of this machine."""

    name = "local"

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._pidfds: dict[int, int] = {}
        self._host = socket.gethostname()

    def submit(self, task: Any, workdir: str) -> dict[str, Any]:
        """Start the command of ``task`` in ``workdir``."""
        env = None
        if task.environment:
            env = dict(os.environ)
            env.update({str(k): str(v) for k, v in task.environment.items()})
        stdout = _open_stream(workdir, task.stdout)
        stderr = subprocess.STDOUT if task.stderr is not None and task.stderr == task.stdout \
            else _open_stream(workdir, task.stderr)
        limit = task.requested_memory
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", _WRAPPER, "sh", *task.arguments], cwd=workdir,
                stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env,
                start_new_session=True,
                preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
                if limit else None)
        except OSError as err:
            raise Error(f"cannot start {task.arguments[0]!r} for {task}: {err}", id=str(task)) from err
        finally:
            for stream in (stdout, stderr):
                if isinstance(stream, int) and stream >= 0:
                    os.close(stream)
        self._procs[proc.pid] = proc
        return {"executor": self.name, "pid": proc.pid, "start": _start_time(proc.pid),
                "host": self._host, "workdir": workdir}

    def poll(self, task: Any, handle: dict[str, Any]) -> Outcome | None:
        """Reap the process if it ended; decode its status."""
        pid = handle["pid"]
        proc = self._procs.get(pid)
        if proc is not None:
            rc = proc.poll()
            if rc is None:
                return None
            self._forget(pid)
            if rc < 0:
                return Outcome(None, -rc)
            return _decode(rc)
        if self._alive(handle):
            return None
        self._forget(pid)
        return _read_exit_file(handle["workdir"])

    def reattach(self, task: Any, handle: dict[str, Any]) -> bool:
        """True if the process of ``handle`` (same pid and start time) still runs here."""
        return handle.get("host") == self._host and self._alive(handle)

    def kill(self, task: Any, handle: dict[str, Any]) -> None:
        """Kill the process group of the run (SIGKILL)."""
        pid = handle["pid"]
        if pid in self._procs or self._alive(handle):
            try:
                os.killpg(pid, signals.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self, handles: Iterable[dict[str, Any]], timeout: float) -> None:
        """Sleep until one of the processes ends (pidfd poll), or ``timeout``."""
        poller = select.poll()
        count = 0
        for handle in handles:
            fd = self._pidfd(handle["pid"])
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
        start = _start_time(handle["pid"])
        return start is not None and start == handle.get("start")

    def _pidfd(self, pid: int) -> int | None:
        if pid not in self._pidfds:
            try:
                self._pidfds[pid] = os.pidfd_open(pid)
            except (OSError, AttributeError):
                return None
        return self._pidfds[pid]

    def _forget(self, pid: int) -> None:
        self._procs.pop(pid, None)
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            os.close(fd)


def _open_stream(workdir: str, name: str | None) -> int:
    if name is None:
        return subprocess.DEVNULL
    return os.open(os.path.join(workdir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)


def _decode(status: int) -> Outcome:
    """A shell status: above 128 means killed by signal ``status - 128``."""
    if status > 128 and status - 128 < signals.NSIG:
        return Outcome(None, status - 128)
    return Outcome(status, None)


def _read_exit_file(workdir: str) -> Outcome:
    try:
        with open(os.path.join(workdir, EXIT_FILE), "rb") as stream:
            text = stream.read()
        if text.endswith(b"\n"):
            return _decode(int(text))
    except (OSError, ValueError):
        pass
    return Outcome(None, None, "the process ended while no driver watched it and left no exit status")


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
