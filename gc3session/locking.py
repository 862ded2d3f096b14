"""Advisory locks that die with their process: the one ``flock`` helper of gc3session.

Every lock of gc3session is an ``flock`` on an open descriptor.  The kernel
releases it when the descriptor is closed, which happens however the process
ends (``kill -9`` included), so no lock ever goes stale or needs removing by
hand.  Descriptors are close-on-exec, so commands a process starts never
inherit its locks.

* :func:`flocked` holds a lock for the duration of a block: on a file
  (opened only if it is a regular file, never through a symlink, created if
  missing) or on a directory itself (a directory inode is never replaced,
  so a waiter never ends up holding a lock on a stale file), shared or
  exclusive, waiting or not.
* :func:`is_locked` tells whether some process holds a lock on a path,
  without waiting and without taking it.
* A lock file may hold a note saying who holds it (:func:`write_note`,
  :func:`read_note`), for messages such as "session in use by pid 12 on
  host since 10:02".

Why not a library: the well-known ones (``filelock`` and the like) lock
files only, exclusively, and truncate the lock file when they take it; here
directories are locked, shared locks are needed (record writes share what a
store switch takes exclusively), and the owner note must stay readable by
the process that finds the lock taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Iterator

from . import fsio
from .exceptions import StoreWriteError

_NOTE_SIZE = 512


@contextlib.contextmanager
def flocked(path: str, *, shared: bool = False, wait: bool = True,
            directory: bool = False) -> Iterator[int]:
    """Hold an ``flock`` on ``path`` while the block runs; yield the open descriptor.

    :param shared: a shared lock (many holders) instead of an exclusive one.
    :param wait: wait until the lock is free; else raise ``BlockingIOError``
        at once if another process holds it (the descriptor is closed).
    :param directory: lock the directory ``path`` itself (it must exist);
        else lock the regular file ``path``, created (mode 0600) if missing.
    :raises StoreWriteError: (``step="lock"``) naming the path if it cannot
        be opened: missing directory, a symlink, a FIFO or device, no access.
    """
    try:
        if directory:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            fd = fsio.open_regular(path, os.O_RDWR | os.O_CREAT)
    except OSError as err:
        raise StoreWriteError(f"cannot open {'directory' if directory else 'lock file'} {path}"
                              f" to lock it: {err.strerror}", path=path, step="lock",
                              errno=err.errno) from err
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                    | (0 if wait else fcntl.LOCK_NB))
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def is_locked(path: str) -> bool:
    """True if some process holds an ``flock`` on ``path`` (a missing path: nobody).

    Takes no lock: a shared probe that is refused means an exclusive holder.
    A FIFO, device or symlink cannot be held through this path: False.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def write_note(fd: int, note: str) -> None:
    """Replace the note of the lock file open as ``fd`` (its holder writes who it is)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, note.encode("utf-8")[:_NOTE_SIZE], 0)


def read_note(fd: int) -> str:
    """The note of the lock file open as ``fd`` (empty if none)."""
    return os.pread(fd, _NOTE_SIZE, 0).decode("utf-8", "replace").strip()


__all__ = ["flocked", "is_locked", "read_note", "write_note"]
