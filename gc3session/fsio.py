"""Durable file-system primitives: the only place that writes, renames or fsyncs.

Every metadata or record write of gc3session goes through this module, so
the crash-safety argument is made once, and tests can inject faults at every
step (:func:`inject_faults`):

* :func:`atomic_write` -- write a temporary file in the target's directory
  (exclusive create, so two writers never share one), loop until every byte is
  written, ``fsync`` it, ``os.replace`` it over the target, then ``fsync`` the
  directory so the rename itself survives a power cut.  A crash at any point
  leaves either the old or the new content; a failure unlinks the temporary
  file and raises :class:`~gc3session.exceptions.StoreWriteError` naming the
  path and the step.
* :func:`append` -- append bytes with one ``write`` on an ``O_APPEND``
  descriptor and ``fdatasync`` them: O(1) in the size of the file.  With
  ``cut_tail`` a final line left without its newline by a crash is cut off
  first, so the new line never glues onto a torn one; bytes that no
  interrupted append leaves are refused instead of cut.
* :func:`read_bytes` and :func:`open_regular` (from :mod:`gc3session.regularfile`,
  re-exported here) -- every file gc3session reads, appends to or locks is
  opened without following a symlink and without blocking, and only if it
  is a regular file.

``durable=False`` skips every ``fsync`` (kill -9 safe, not power-cut safe); it
is the explicit "GC3Pie durability" option, never the default.

Temporary files are named ``.<target>.<pid>.<random>.tmp`` so that listings
can ignore them and ``fsck`` can find leftovers of a killed writer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from typing import Callable, Iterator

from .exceptions import StoreWriteError
from .regularfile import open_regular as open_regular
from .regularfile import open_regular_stat
from .regularfile import read_bytes as read_bytes

TMP_SUFFIX = ".tmp"
_TAIL = 4096

#: Steps at which :func:`inject_faults` hooks are called.
STEPS = ("create", "write", "fsync", "rename", "fsync-dir", "unlink", "mkdir", "truncate")

FaultHook = Callable[[str, str], None]
_fault_hook: FaultHook | None = None


@contextlib.contextmanager
def inject_faults(hook: FaultHook) -> Iterator[None]:
    """Call ``hook(step, path)`` before every step of every write (tests only).

    The hook may raise an ``OSError`` (ENOSPC, EIO, EACCES...) to simulate a
    failing disk, or kill the process to simulate a crash at that step.
    """
    global _fault_hook
    previous, _fault_hook = _fault_hook, hook
    try:
        yield
    finally:
        _fault_hook = previous


def _step(step: str, path: str) -> None:
    if _fault_hook is not None:
        _fault_hook(step, path)


def _fail(step: str, path: str, err: OSError) -> StoreWriteError:
    return StoreWriteError(f"cannot {step} {path!r}: {err.strerror or err}",
                           path=path, step=step, errno=err.errno)


def tmp_name(target_name: str) -> str:
    """The temporary file name used while writing ``target_name``."""
    return f".{target_name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}"


def is_tmp_name(name: str) -> bool:
    """Tell whether a directory entry is a temporary file of this module."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def tmp_writer_pid(name: str) -> int | None:
    """The pid of the process that made the temporary file ``name`` (see :func:`tmp_name`)."""
    parts = name[: -len(TMP_SUFFIX)].rsplit(".", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def write_all(fd: int, data: bytes | memoryview, path: str = "") -> None:
    """Write every byte of ``data`` to ``fd``, looping over short writes."""
    _step("write", path)
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(path: str) -> None:
    """``fsync`` a directory so that entries created or renamed in it are durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise _fail("open directory", path, err) from err
    try:
        _step("fsync-dir", path)
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
        _step("create", path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as err:
        raise _fail("create", path, err) from err
    step = "write"
    try:
        write_all(fd, data, path)
        if durable:
            step = "fsync"
            _step(step, path)
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
        _step("rename", target)
        os.replace(tmp_path, target)
    except OSError as err:
        discard(tmp_path)
        raise _fail("rename", target, err) from err


def discard(path: str) -> None:
    """Remove a temporary file after a failure, best effort.

    It runs while another error is being reported, which must not be
    replaced by an untyped one; a temporary file that stays behind is
    ignored by readers and listed by ``gsession fsck``.
    """
    with contextlib.suppress(OSError):
        os.unlink(path)


def unlink(path: str) -> bool:
    """Remove a file; False if it was not there.

    :raises StoreWriteError: for any other failure.
    """
    try:
        _step("unlink", path)
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as err:
        raise _fail("unlink", path, err) from err
    return True


def atomic_write(path: str, data: bytes, *, durable: bool = True, mode: int = 0o600) -> None:
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


def append(path: str, data: bytes, *, durable: bool = True,
           cut_tail: Callable[[bytes], bool] | None = None, max_tail: int | None = None,
           create: bool = True, mode: int = 0o600,
           clean_end: tuple[int, int] | None = None) -> tuple[int, int]:
    """Append ``data`` to ``path`` with one write, then ``fdatasync`` it.

    :param cut_tail: if given, a final line that lacks its newline is first
        cut off when ``cut_tail(line)`` says it is the remains of an append
        interrupted by a crash; any other unterminated tail is an error.
    :param max_tail: a final line longer than this is never the remains of
        an append (it is refused without being read into memory).
    :param create: create the file if missing (else a missing file is an error).
    :param clean_end: what an earlier call returned: if the file is still
        that inode and that size, it ends where that append ended (with a
        complete line), and its tail is not read again.
    :returns: ``(inode, size)`` of the file after the append.
    :raises StoreWriteError: naming ``path`` and the step; for a tail that
        is refused, ``offset`` and ``length`` say where its bytes are, and
        nothing was written.
    """
    try:
        fd, status = open_regular_stat(path, os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0),
                                   mode)
    except OSError as err:
        raise _fail("open", path, err) from err
    step = "write"
    size = None
    end = status.st_size
    try:
        if cut_tail is not None and (status.st_ino, status.st_size) != clean_end:
            step = "truncate"
            size = _cut_torn_tail(fd, path, cut_tail, max_tail, status.st_size)
            step = "write"
        else:
            size = status.st_size
        write_all(fd, data, path)
        end = size + len(data)
        if durable:
            step = "fsync"
            _step(step, path)
            os.fdatasync(fd)
    except OSError as err:
        if size is not None:
            # The call fails, so what it appended must not stay behind (a retry
            # would otherwise append the same lines twice).  Best effort: the
            # error of the failed step is the one reported.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
        if isinstance(err, StoreWriteError):
            raise
        raise _fail(step, path, err) from err
    finally:
        os.close(fd)
    return status.st_ino, end


def _cut_torn_tail(fd: int, path: str, is_torn: Callable[[bytes], bool],
                   max_tail: int | None, size: int) -> int:
    """Cut an unterminated last line that ``is_torn`` accepts; return the file's size then."""
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    # Walk back block by block to the last newline: a batch append torn by a
    # power cut can leave a tail (a prefix of a line) longer than a block.
    keep, end = 0, size
    while end > 0:
        start = max(0, end - _TAIL)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    length = size - keep
    if (max_tail is not None and length > max_tail) or not is_torn(os.pread(fd, length, keep)):
        raise StoreWriteError(
            f"cannot append to {path}: the {length} bytes at byte offset {keep}, after its last"
            " complete line, are not what an interrupted append leaves; refusing to cut them"
            " (nothing was written)", path=path, step="check-tail", offset=keep, length=length,
            errno=errno.EILSEQ)
    _step("truncate", path)
    os.ftruncate(fd, keep)
    return keep


def _load_syncfs() -> Callable[[int], None] | None:
    """``syncfs(fd)`` from the C library, raising OSError; None where there is none."""
    try:
        import ctypes  # absent from Pythons built without libffi: fsync file by file then
        libc_syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (ImportError, OSError, AttributeError):
        return None

    def syncfs(fd: int) -> None:
        if libc_syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


_syncfs = _load_syncfs()


def sync_filesystem(path: str) -> bool:
    """Flush every dirty page of the file system holding ``path`` (``syncfs``).

    One call makes a whole batch of unsynced files durable, which is much
    cheaper than an ``fsync`` per file.  Returns False where ``syncfs`` is not
    available (the caller then fsyncs file by file).
    """
    if _syncfs is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        _step("fsync", path)
        _syncfs(fd)
    except OSError as err:
        raise _fail("fsync", path, err) from err
    finally:
        os.close(fd)
    return True


def sync_files(paths: list[str]) -> None:
    """Make the given files, and their entries in their directories, durable.

    One ``syncfs`` per file system when there are several files (it flushes
    the whole file system at once, directories included); otherwise an
    ``fsync`` of each file (directories are fsynced, not followed) and of
    each directory.
    """
    if len(paths) > 1 and _syncfs is not None:
        devices: dict[int, str] = {}
        for path in paths:
            with contextlib.suppress(OSError):
                devices.setdefault(os.lstat(path).st_dev, path)
        for path in devices.values():
            sync_filesystem(path)
        return
    for path in paths:
        if os.path.isfile(path):
            fsync_file(path)
    for directory in sorted({os.path.dirname(p) for p in paths}):
        fsync_dir(directory)


def fsync_file(path: str) -> None:
    """``fsync`` one existing regular file by path (never a FIFO: its open would block)."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except OSError as err:
        raise _fail("open", path, err) from err
    try:
        _step("fsync", path)
        os.fsync(fd)
    except OSError as err:
        raise _fail("fsync", path, err) from err
    finally:
        os.close(fd)


def make_dirs(path: str, *, mode: int = 0o700, durable: bool = True) -> bool:
    """Create ``path`` (and missing parents); return True if it was created.

    The parent is fsynced so that the new directory entry survives a crash.
    Creation is attempted first and an existing directory accepted after,
    so processes creating the same directories at once all succeed.

    :raises StoreWriteError: (``step="mkdir"``) if ``path`` or a parent exists
        and is not a directory, or cannot be created.
    """
    if os.path.isdir(path):
        return False
    parent = os.path.dirname(os.path.abspath(path))
    if parent and not os.path.isdir(parent):
        make_dirs(parent, mode=mode, durable=durable)
    try:
        _step("mkdir", path)
        os.mkdir(path, mode)
    except OSError as err:
        if err.errno == errno.EEXIST and os.path.isdir(path):
            return False  # made by someone else meanwhile
        raise _fail("mkdir", path, err) from err
    if durable:
        fsync_dir(parent)
    return True


def set_mtime(path: str, when: float | None, *, durable: bool = True) -> float:
    """Set the modification time of ``path`` (now if ``when`` is None); return it."""
    try:
        _step("write", path)
        if os.path.islink(path):
            raise OSError(errno.ELOOP, "refusing to follow a symlink", path)
        os.utime(path, None if when is None else (when, when))
        if durable:
            fsync_file(path)
        return os.stat(path).st_mtime
    except OSError as err:
        raise _fail("utime", path, err) from err


def create_private(path: str) -> bool:
    """Create an empty file with mode 0600 if it does not exist; True if created."""
    try:
        _step("create", path)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        return False
    except OSError as err:
        raise _fail("create", path, err) from err
    return True
