"""One driver at a time per session: an exclusive lock that dies with its holder.

The lock is an ``flock`` on ``<session>/driver.lock``.  The kernel releases
it when the process ends, however it ends, so a crashed driver never leaves
a lock that needs removing by hand; the file itself stays, holding the last
owner's note (``pid N on HOST since TIME``) so that a second driver can say
who is in the way.  Short index updates use a different lock (the session
directory's own ``flock``, see :mod:`gc3session.index`), so readers and
``gsession`` commands are never blocked by a running driver.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from typing import Iterator

from . import fsio
from .exceptions import SessionError, StoreWriteError

LOCK_FILENAME = "driver.lock"


class SessionBusyError(SessionError, BlockingIOError):
    """Another process is driving this session; the message names it."""


@contextlib.contextmanager
def driver_lock(session_path: str) -> Iterator[None]:
    """Hold the session's driver lock for the duration of the block.

    The file is opened close-on-exec, so commands started by the driver
    never inherit the lock and cannot keep it after the driver died.

    :raises SessionBusyError: at once (no waiting) if another process holds it,
        with "session in use by pid N on HOST since TIME (PATH)".
    """
    path = os.path.join(session_path, LOCK_FILENAME)
    try:
        # Only a regular file, never through a symlink: a link planted as
        # driver.lock must not make the owner note overwrite a file outside the
        # session, and a FIFO or device must not block or swallow it.
        fd = fsio.open_regular(path, os.O_RDWR | os.O_CREAT)
    except OSError as err:
        raise StoreWriteError(f"cannot open the driver lock {path}: {err.strerror}",
                              path=path, step="lock", errno=err.errno) from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            owner = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            raise SessionBusyError(f"session in use by {owner} ({session_path})",
                                   path=path, owner=owner) from err
        note = (f"pid {os.getpid()} on {socket.gethostname()} since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, note, 0)
        yield
    finally:
        os.close(fd)


def lock_owner(session_path: str) -> str | None:
    """The note of the process driving the session now, or None if nobody does."""
    path = os.path.join(session_path, LOCK_FILENAME)
    try:
        fd = fsio.open_regular(path, os.O_RDONLY)
    except OSError:  # missing, a symlink (ELOOP), a FIFO...: nobody can hold it through this path
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
        return None
    finally:
        os.close(fd)
