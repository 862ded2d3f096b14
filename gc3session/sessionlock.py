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
import os
import socket
import time
from typing import Iterator

from . import fsio, locking
from .exceptions import SessionError

LOCK_FILENAME = "driver.lock"


class SessionBusyError(SessionError, BlockingIOError):
    """Another process is driving this session; the message names it."""


@contextlib.contextmanager
def driver_lock(session_path: str) -> Iterator[None]:
    """Hold the session's driver lock for the duration of the block.

    The lock file is opened close-on-exec, only if it is a regular file and
    never through a symlink (a link planted as ``driver.lock`` must not make
    the owner note overwrite a file outside the session), so commands
    started by the driver never inherit the lock either.

    :raises SessionBusyError: at once (no waiting) if another process holds it,
        with "session in use by pid N on HOST since TIME (PATH)".
    """
    path = os.path.join(session_path, LOCK_FILENAME)
    with contextlib.ExitStack() as held:
        try:
            fd = held.enter_context(locking.flocked(path, wait=False))
        except BlockingIOError as err:
            owner = lock_owner(session_path) or "another process"
            raise SessionBusyError(f"session in use by {owner} ({session_path})",
                                   path=path, owner=owner) from err
        locking.write_note(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                               f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        yield


def lock_owner(session_path: str) -> str | None:
    """The note of the process driving the session now, or None if nobody does."""
    path = os.path.join(session_path, LOCK_FILENAME)
    if not locking.is_locked(path):
        return None
    try:
        fd = fsio.open_regular(path, os.O_RDONLY)
    except OSError:
        return "another process"
    try:
        return locking.read_note(fd) or "another process"
    finally:
        os.close(fd)
