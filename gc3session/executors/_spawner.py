"""The spawner: a small long-lived process that starts a driver's commands and records how they end.

The local executor runs one spawner per executor (see
:mod:`gc3session.executors.local`); this file is that process.  It uses the
standard library only and runs as ``python -I _spawner.py SOCKET_FD
EXIT_FILE``, so it imports nothing of gc3session and starts in a few
milliseconds.

Why a process of its own
------------------------
A command must be able to outlive its driver, and the next driver must
still learn whether it ended and with which status.  Only the parent of a
process can read its exit status, and the parent of an orphan is ``init``.
So the parent of the commands is this spawner, which outlives the driver:
it reaps each command and writes the status into the run's directory (the
exit-status file named on its command line, ``"<status>\\n"`` in one
``write``), as the ``/bin/sh`` wrapper of each command did before.  One
process for all the commands instead of one shell per command saves an
``exec`` of the shell, a fork and the shell's own start-up per command
(about 0.65 ms of CPU each on the machine of ``benchmarks/RESULTS.md``).

The spawner detaches at once (it forks, and the first process exits), so it
is nobody's child and nothing has to reap it.  It ends when the driver
closed its end of the socket and its last command ended.

Protocol
--------
The socket is a Unix stream socket pair.  Both directions carry frames: a
4-byte big-endian length, then a pickle.  The driver sends batches of
requests ``("spawn", token, argv, environment, workdir, stdout, stderr)``:
``environment`` is added to the spawner's (the driver's at start-up),
``stdout`` / ``stderr`` are file names in ``workdir`` or None (``/dev/null``),
and ``stderr == stdout`` sends both to one file.  For each request it
answers ``("started", token, pid, start)`` (``start``: the process start time
in clock ticks, field 22 of ``/proc/<pid>/stat``) or ``("failed", token,
message)``, and later ``("ended", pid, status)`` with a shell-style status
(the exit code, or 128 + the signal number).

The run lock
------------
Before a command starts, the spawner takes an exclusive ``flock`` on its
working directory and hands the descriptor to the command as descriptor 3;
the spawner keeps its own copy until the status is written.  So the lock is
held from before the command starts until its status is on file, however
either process ends, and a restarted driver that finds the lock free and no
status knows the run is gone.  A command that cannot be started gets
status 127 (like a shell's "not found") in its exit-status file too.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import select
import signal
import socket
import struct
import sys
from typing import Any

#: The descriptor under which a command holds the lock of its working directory.
LOCK_FD = 3
_HEADER = struct.Struct(">I")
#: Signals that Python (SIGPIPE, SIGXFSZ) or the spawner ignores or handles, back to their
#: defaults in a command.
_RESET_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ,
                  signal.SIGCHLD)


def frame(message: Any) -> bytes:
    """One frame of the protocol: length, then pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def unframe(buffer: bytearray) -> list[Any]:
    """Take the complete frames off the front of ``buffer``; return their messages."""
    messages = []
    while len(buffer) >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buffer)
        if len(buffer) < _HEADER.size + size:
            break
        messages.append(pickle.loads(bytes(buffer[_HEADER.size:_HEADER.size + size])))
        del buffer[:_HEADER.size + size]
    return messages


def start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (also of a zombie), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            data = stream.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return int(fields[19]) if len(fields) > 19 else None


class Spawner:
    """The spawner's state: the socket to the driver and the commands not yet reaped."""

    def __init__(self, sock: socket.socket, exit_file: str) -> None:
        self.sock = sock
        self.exit_file = exit_file
        self.connected = True
        self.children: dict[int, tuple[int, str]] = {}  # pid -> (lock descriptor, workdir)
        self.outbox: list[bytes] = []
        self.environ = dict(os.environ)

    def spawn(self, token: int, argv: list[str], environment: dict[str, str], workdir: str,
              stdout: str | None, stderr: str | None) -> None:
        """Start one command (request ``spawn``) and queue the answer.

        ``posix_spawnp`` (a ``vfork``: no copy of this process's memory; a
        plain ``fork`` measured 2.5 times slower per command), after a
        ``chdir`` to the working directory, since Python's ``posix_spawn``
        has no action for it (safe: the spawner has one thread).
        """
        lock = -1
        try:
            lock = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another run's directory: leave it alone
            os.close(lock)
            message = f"its working directory {workdir} is locked by another process"
            self.outbox.append(frame(("failed", token, message)))
            return
        except OSError as err:
            self._fail(token, lock, workdir, str(err))
            return
        try:
            actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                       _stream(1, workdir, stdout),
                       (os.POSIX_SPAWN_DUP2, 1, 2) if stderr is not None and stderr == stdout
                       else _stream(2, workdir, stderr),
                       (os.POSIX_SPAWN_DUP2, lock, LOCK_FD)]
            env = self.environ if not environment else {**self.environ, **environment}
            os.chdir(workdir)
            try:
                pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True,
                                      setsigdef=_RESET_SIGNALS)
            finally:
                os.chdir("/")
        except (OSError, ValueError, TypeError, IndexError) as err:
            self._fail(token, lock, workdir, str(err) or type(err).__name__)
            return
        self.children[pid] = (lock, workdir)
        self.outbox.append(frame(("started", token, pid, start_time(pid))))

    def _fail(self, token: int, lock: int, workdir: str, message: str) -> None:
        if lock >= 0:
            self._record(workdir, 127)
            os.close(lock)
        self.outbox.append(frame(("failed", token, message)))

    def reap(self) -> None:
        """Record the status of every command that ended, then let go of its lock."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            lock, workdir = self.children.pop(pid, (-1, ""))
            code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            if workdir:
                self._record(workdir, code)
            if lock >= 0:
                os.close(lock)  # the run is over, and its status is on file
            self.outbox.append(frame(("ended", pid, code)))

    def _record(self, workdir: str, code: int) -> None:
        try:
            fd = os.open(os.path.join(workdir, self.exit_file),
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except OSError:
            return  # the directory is gone: nobody can look for the status there
        try:
            os.write(fd, b"%d\n" % code)
        except OSError:
            pass  # a full disk: the run reads as lost, and the resume policy decides
        finally:
            os.close(fd)

    def flush(self) -> None:
        """Send what is queued; a driver that went away only stops the answers."""
        if self.outbox and self.connected:
            try:
                self.sock.sendall(b"".join(self.outbox))
            except OSError:
                self.connected = False
        self.outbox.clear()

    def serve(self) -> None:
        """Answer requests and reap commands until the driver left and every command ended."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        poller = select.poll()
        poller.register(wake_r, select.POLLIN)
        poller.register(self.sock.fileno(), select.POLLIN)
        buffer = bytearray()
        while self.connected or self.children:
            try:
                events = poller.poll(1000 if self.children else None)
            except InterruptedError:
                events = []
            for fd, _ in events:
                if fd == wake_r:
                    _drain(wake_r)
                elif self.connected:
                    try:
                        data = self.sock.recv(1 << 20)
                    except OSError:
                        data = b""
                    if not data:
                        self.connected = False
                        poller.unregister(self.sock.fileno())
                        continue
                    buffer += data
                    for request in unframe(buffer):
                        if request[0] == "spawn":
                            self.spawn(*request[1:])
            self.reap()
            self.flush()


def _stream(fd: int, workdir: str, name: str | None) -> tuple[Any, ...]:
    path = os.devnull if name is None else os.path.join(workdir, name)
    return (os.POSIX_SPAWN_OPEN, fd, path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def main(argv: list[str]) -> int:
    """``_spawner.py SOCKET_FD EXIT_FILE``: detach, then serve the driver on SOCKET_FD."""
    sock = socket.socket(fileno=int(argv[1]))
    sock.set_inheritable(False)
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)  # it lives as long as its commands
    if os.fork():
        os._exit(0)  # the driver reaps this one at once; the spawner is nobody's child
    os.chdir("/")
    # descriptor 3 taken, so that a lock is never opened as 3 (a dup2 onto itself would keep
    # its close-on-exec flag, and the command would not get the lock)
    while True:
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        if fd >= LOCK_FD:
            break
    Spawner(sock, argv[2]).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
