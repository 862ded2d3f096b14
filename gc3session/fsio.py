"""Durable file-system primitives: the only place that renames, fsyncs or appends.

Every metadata or record write of gc3session goes through this module so that
the crash-safety argument has to be made once:

* :func:`atomic_write` -- write a temporary file in the target's directory
  (exclusive create, so two writers never share one), loop until every byte is
  written, ``fsync`` it, ``os.replace`` it over the target, then ``fsync`` the
  directory so the rename itself survives a power cut.  A crash at any point
  leaves either the old or the new content; a failure unlinks the temporary
  file and raises :class:`~gc3session.exceptions.StoreWriteError` naming the
  path and the step.
* :func:`append_line` -- append one line with a single ``write`` on an
  ``O_APPEND`` descriptor and ``fdatasync`` it.  Readers may see the line or
  not, never half of it *after* the call returned; a torn tail left by a crash
  *during* the call is detected by the reader (no trailing newline).

``durable=False`` skips every ``fsync`` (kill -9 safe, not power-cut safe); it
is the explicit "GC3Pie durability" option, never the default.

Temporary files are named ``.<target>.<pid>.<random>.tmp`` so that listings
can ignore them and ``fsck`` can find leftovers of a killed writer.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
from typing import Callable

from .exceptions import StoreWriteError

TMP_SUFFIX = ".tmp"


def tmp_name(target_name: str) -> str:
    """The temporary file name used while writing ``target_name``."""
    return f".{target_name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}"


def is_tmp_name(name: str) -> bool:
    """Tell whether a directory entry is a temporary file of :func:`atomic_write`."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def _fail(step: str, path: str, err: OSError) -> StoreWriteError:
    return StoreWriteError(
        f"cannot {step} {path!r}: {err.strerror or err}",
        path=path, step=step, errno=err.errno)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data`` to ``fd``, looping over short writes."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(path: str) -> None:
    """``fsync`` a directory so that entries created or renamed in it are durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise _fail("open directory", path, err) from err
    try:
        os.fsync(fd)
    except OSError as err:
        raise _fail("fsync-dir", path, err) from err
    finally:
        os.close(fd)


def write_tmp(directory: str, target_name: str, data: bytes, *,
              durable: bool = True, mode: int = 0o600) -> str:
    """Write ``data`` to a fresh temporary file in ``directory``; return its path.

    The caller renames it with :func:`commit_tmp` (possibly after writing
    several, to group the directory fsync) or removes it with :func:`discard`.
    """
    path = os.path.join(directory, tmp_name(target_name))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as err:
        raise _fail("create", path, err) from err
    step = "write"
    try:
        write_all(fd, data)
        if durable:
            step = "fsync"
            os.fsync(fd)
    except OSError as err:
        os.close(fd)
        discard(path)
        raise _fail(step, path, err) from err
    os.close(fd)
    return path


def commit_tmp(tmp_path: str, target: str) -> None:
    """Rename a temporary file over its target (atomic on POSIX)."""
    try:
        os.replace(tmp_path, target)
    except OSError as err:
        discard(tmp_path)
        raise _fail("rename", target, err) from err


def discard(path: str) -> None:
    """Remove a temporary file, ignoring only "it is already gone"."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def atomic_write(path: str, data: bytes, *, durable: bool = True,
                 mode: int = 0o600) -> None:
    """Replace the file at ``path`` with ``data``, atomically and durably.

    Cost: one file fsync and one directory fsync when ``durable``.

    :raises StoreWriteError: naming ``path`` and the failed step; the old
        content (if any) is intact and no temporary file is left behind.
    """
    directory, name = os.path.split(os.path.abspath(path))
    tmp = write_tmp(directory, name, data, durable=durable, mode=mode)
    commit_tmp(tmp, path)
    if durable:
        fsync_dir(directory)


def append_line(path: str, line: bytes, *, durable: bool = True,
                mode: int = 0o600) -> None:
    """Append one ``\\n``-terminated line to ``path`` with a single write.

    Cost: one ``fdatasync`` when ``durable`` (O(1) in the size of the file).
    """
    if not line.endswith(b"\n"):
        raise ValueError("append_line needs a newline-terminated line")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
    except OSError as err:
        raise _fail("open", path, err) from err
    step = "write"
    try:
        write_all(fd, line)
        if durable:
            step = "fsync"
            os.fdatasync(fd)
    except OSError as err:
        raise _fail(step, path, err) from err
    finally:
        os.close(fd)


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()


def sync_filesystem(path: str) -> bool:
    """Flush every dirty page of the file system holding ``path`` (``syncfs``).

    One call makes a whole batch of unsynced files durable, which is much
    cheaper than an ``fsync`` per file.  Returns False where ``syncfs`` is not
    available (the caller then fsyncs file by file).
    """
    if _syncfs is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise _fail("syncfs", path, OSError(err, os.strerror(err)))
    finally:
        os.close(fd)
    return True


def fsync_file(path: str) -> None:
    """``fsync`` one existing file by path."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise _fail("open", path, err) from err
    try:
        os.fsync(fd)
    except OSError as err:
        raise _fail("fsync", path, err) from err
    finally:
        os.close(fd)


def make_dirs(path: str, *, mode: int = 0o700, durable: bool = True) -> bool:
    """Create ``path`` (and missing parents); return True if it was created.

    The parent is fsynced so that the new directory entry survives a crash.
    """
    if os.path.isdir(path):
        return False
    parent = os.path.dirname(os.path.abspath(path))
    if parent and not os.path.isdir(parent):
        make_dirs(parent, mode=mode, durable=durable)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if os.path.isdir(path):
            return False
        raise
    except OSError as err:
        raise _fail("create directory", path, err) from err
    if durable:
        fsync_dir(parent)
    return True


def read_bytes(path: str, on_missing: Callable[[], bytes] | None = None) -> bytes:
    """Read a whole file; ``on_missing`` supplies the result for ENOENT if given."""
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as err:
        if on_missing is not None and err.errno == errno.ENOENT:
            return on_missing()
        raise
