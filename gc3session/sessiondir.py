"""The session directory: its metadata files and how a new one is created.

Layout (GC3Pie's, so GC3Pie tools can read our sessions and vice versa)::

    <session>/
        session_ids.txt   top-level task ids, one per line (gc3session.index)
        store.url         the store URL, no trailing newline, *no password*
        created           the command line that created the session; its
                          mtime is the start time
        finished          empty; its mtime is the end time (absent until set)
        jobs/             the default filesystem store, made at the first save

A new session is assembled in a hidden sibling directory and renamed into
place (over an empty directory if one is there), so a crash during creation
leaves either nothing or a complete session: never a half-written one that a
later open would have to guess about.  Directories are created 0700 and
files 0600: sessions often hold command lines and paths that are nobody
else's business.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile

from . import fsio, index
from .exceptions import CorruptSessionError, SessionError, StoreWriteError
from .persistence.url import StoreUrl, mask_passwords

STORE_URL_FILENAME = "store.url"
TIMESTAMP_FILES = {"start": "created", "end": "finished"}
DEFAULT_JOBS_DIR = "jobs"
METADATA_FILES = (index.INDEX_FILENAME, STORE_URL_FILENAME, TIMESTAMP_FILES["start"])


def create(path: str, url: StoreUrl, *, durable: bool = True) -> None:
    """Create a complete session directory at ``path`` for the store ``url``.

    :raises CorruptSessionError: if ``path`` exists and is not an empty
        directory (its content is never touched).
    """
    parent = os.path.dirname(path) or "."
    fsio.make_dirs(parent, durable=durable)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".creating", dir=parent)
    try:
        write_store_url(staging, url, durable=durable)
        index.create(os.path.join(staging, index.INDEX_FILENAME), durable=durable)
        fsio.atomic_write(os.path.join(staging, TIMESTAMP_FILES["start"]),
                          (command_line() + "\n").encode("utf-8", "replace"), durable=durable)
        os.chmod(staging, 0o700)
        try:
            os.rename(staging, path)
        except OSError as err:
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise CorruptSessionError(
                    f"cannot create a session in {path}: it exists and is not an empty"
                    " directory (nothing there was changed)", path=path) from err
            raise StoreWriteError(f"cannot create session {path}: {err.strerror}",
                                  path=path, step="rename", errno=err.errno) from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if durable:
        fsio.fsync_dir(parent)


def command_line() -> str:
    """``sys.argv`` as one line, with the password of any URL in it replaced by ``***``.

    It goes into ``created``, and a store URL given on the command line
    (``-u postgresql://user:secret@host/db``) must not leave its password there.

    >>> saved, sys.argv = sys.argv, ["run.py", "-u", "postgresql://bob:s3cret@db/jobs"]
    >>> command_line()
    'run.py -u postgresql://bob:***@db/jobs'
    >>> sys.argv = saved
    """
    return " ".join(mask_passwords(arg) for arg in sys.argv)


def write_store_url(path: str, url: StoreUrl, *, durable: bool = True) -> None:
    """Write ``store.url`` atomically, without the password."""
    fsio.atomic_write(os.path.join(path, STORE_URL_FILENAME),
                      url.without_password().render().encode("utf-8"), durable=durable)


def read_store_url(path: str) -> StoreUrl:
    """Read ``store.url`` (GC3Pie's format: the URL, whitespace stripped).

    :raises CorruptSessionError: naming the file if it is missing, unreadable
        or not a URL, with how to repair it.
    """
    filename = os.path.join(path, STORE_URL_FILENAME)
    try:
        text = fsio.read_bytes(filename).decode("utf-8").strip()
        if "://" not in text and not text.startswith("/"):
            raise ValueError(f"{text[:80]!r} is not a store URL")
        return StoreUrl.parse(text)
    except (OSError, UnicodeDecodeError, SessionError, ValueError) as err:
        raise CorruptSessionError(
            f"{filename} is missing or unreadable ({err}); the session was not"
            f" opened and nothing was changed. Restore the file: it holds one store URL,"
            f" e.g. {StoreUrl.for_path('file', os.path.join(path, DEFAULT_JOBS_DIR))}"
            " for the default store.",
            path=filename) from err


def store_url_stamp(path: str) -> tuple[int, int, int, int] | None:
    """What identifies the current ``store.url`` of session ``path`` (None if absent).

    ``store.url`` is only ever replaced atomically, so a new inode, size or
    mtime means it may name another store now (``gsession copy``); a handle
    compares this before it writes, at the cost of one ``stat``.
    """
    try:
        info = os.lstat(os.path.join(path, STORE_URL_FILENAME))
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def read_index(path: str) -> list[str]:
    """Read ``session_ids.txt``, turning a missing/unreadable file into a typed error."""
    filename = os.path.join(path, index.INDEX_FILENAME)
    try:
        return index.read(filename)
    except OSError as err:
        raise CorruptSessionError(
            f"{filename} is missing or unreadable ({err.strerror}); the session was not"
            " opened and nothing was changed. Restore it from a backup, or rebuild it"
            " with `gsession fsck --repair` (one task id per line).",
            path=filename) from err


def touch_timestamp(path: str, which: str, when: float | None, *, durable: bool = True) -> float:
    """Create the ``created``/``finished`` file if missing, set its mtime; return the mtime."""
    filename = os.path.join(path, TIMESTAMP_FILES[which])
    if not os.path.exists(filename):
        fsio.atomic_write(filename, b"", durable=durable)
    return fsio.set_mtime(filename, when, durable=durable)


def clear_timestamp(path: str, which: str, *, durable: bool = True) -> None:
    """Remove the ``created``/``finished`` file (a session started anew is not finished)."""
    if fsio.unlink(os.path.join(path, TIMESTAMP_FILES[which])) and durable:
        fsio.fsync_dir(path)


def read_timestamp(path: str, which: str) -> float:
    """The mtime of the ``created``/``finished`` file, or -1 when it is absent."""
    try:
        return os.lstat(os.path.join(path, TIMESTAMP_FILES[which])).st_mtime
    except FileNotFoundError:
        return -1.0
