"""Opening files that must be regular files: never a symlink, never a FIFO that hangs.

Every file gc3session reads, appends to or locks is opened here: without
following a symlink (``O_NOFOLLOW``: a link planted in a session or store
directory cannot make it read or write a file elsewhere), without blocking
(``O_NONBLOCK``: the open of a FIFO returns at once), and kept only if the
open descriptor is a regular file.  A FIFO, socket or device planted in
place of a record or of the id counter therefore raises
:class:`~gc3session.exceptions.NotRegularFileError` at once, naming the path
and what is there, instead of hanging the reader (possibly while it holds a
lock).  :mod:`gc3session.fsio` builds its appends on these and re-exports
:func:`open_regular` and :func:`read_bytes`.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Callable

from .exceptions import NotRegularFileError


def open_regular(path: str, flags: int, mode: int = 0o600) -> int:
    """Open ``path`` with ``flags``, only if it is a regular file; return the descriptor.

    The open never follows a symlink (ELOOP) and never blocks: ``O_NONBLOCK``
    makes the open of a FIFO return at once instead of waiting for a writer
    (or a reader), and the ``fstat`` of the open descriptor -- not of the name,
    which could be swapped in between -- then refuses anything but a regular
    file.  On a regular file ``O_NONBLOCK`` changes nothing.

    :raises NotRegularFileError: for a FIFO, socket, device or directory.
    :raises OSError: as ``os.open`` does otherwise (ENOENT, ELOOP, EACCES...).
    """
    return open_regular_stat(path, flags, mode)[0]


def open_regular_stat(path: str, flags: int, mode: int = 0o600) -> tuple[int, os.stat_result]:
    """:func:`open_regular`, also returning the ``fstat`` of the descriptor (no second call)."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as err:
        # A socket (ENXIO), a FIFO opened for writing without a reader (ENXIO),
        # a directory opened for writing (EISDIR): say what is there.
        if err.errno not in (errno.ENXIO, errno.ENODEV, errno.EISDIR):
            raise
        try:
            kind = os.lstat(path).st_mode
        except OSError:
            raise err from None  # gone meanwhile: the open's own error says enough
        if stat.S_ISREG(kind):
            raise
        raise _not_regular(path, kind) from err
    try:
        status = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise _not_regular(path, status.st_mode)
    return fd, status


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISDIR, "a directory"))


def _not_regular(path: str, mode: int) -> NotRegularFileError:
    kind = next((name for test, name in _KINDS if test(mode)), "an unknown kind of file")
    reason = f"not a regular file but {kind}"
    return NotRegularFileError(f"{path} is {reason}; it was neither read nor written",
                               path=path, kind=kind, strerror=reason, errno=errno.EINVAL)


def read_bytes(path: str, on_missing: Callable[[], bytes] | None = None) -> bytes:
    """Read a whole regular file, looping over short reads (see :func:`open_regular`).

    ``on_missing`` supplies the result for ENOENT if given.  Refusing
    symlinks keeps a link planted in a session or store directory from
    making gc3session read a file outside it; refusing FIFOs and devices
    keeps it from blocking forever or reading endless bytes.

    :raises NotRegularFileError: for a FIFO, socket, device or directory.

    The first read asks for one byte more than the file's size: fewer bytes
    than asked for mean the end of the file, so a file that did not grow is
    read with one ``read`` (a record load makes one system call less).
    """
    try:
        fd, status = open_regular_stat(path, os.O_RDONLY)
    except FileNotFoundError:
        if on_missing is not None:
            return on_missing()
        raise
    try:
        first = os.read(fd, status.st_size + 1)
        if len(first) <= status.st_size:
            return first
        chunks = [first]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


__all__ = ["open_regular", "open_regular_stat", "read_bytes"]
