"""The session directory: its metadata files and how a new one is created.

Layout (GC3Pie's, so GC3Pie tools can read our sessions and vice versa)::

    <session>/
        session_ids.txt   top-level task ids, one per line (gc3session.index)
        store.url         the store URL, no trailing newline, *no password*
        created           the command line that created the session; its
                          mtime is the start time
        finished          empty; its mtime is the end time (absent until set)
        jobs/             the default filesystem store, made at the first save
        quarantine/       notes on the ids taken out of the index
                          (gc3session.quarantine; absent until needed)

``store.url``
-------------
A store that lives inside the session directory is named *relative* to it,
as ``<scheme>:<path>`` with no ``//`` after the colon: ``file:jobs`` is the
filesystem store ``<session>/jobs``, ``sqlite:jobs.db#table=runs`` the table
``runs`` of the SQLite file ``<session>/jobs.db``.  The path is escaped as in
any store URL (``%``, ``#``, ``?`` and white space as ``%XX``) and never
leaves the directory (no ``..``, no leading ``/``).  So ``cp -a``, ``mv`` and
``rsync`` of a session directory give a session that works where it lands
and uses its own copy of the store, never the original's.  Any other store
(PostgreSQL, a file or database outside the session) is written as an
absolute URL, as GC3Pie writes every store.  Absolute URLs written before
(``file:///data/s/jobs``) read as they always did.  (GC3Pie reads a relative
form as relative to its working directory: a session whose store is inside
it opens in GC3Pie only from the session's parent directory.)

A store that lies inside the directory of *another* session (the nearest
directory above the store that holds a ``session_ids.txt`` is not this
session) is refused when ``store.url`` is read
(:class:`~gc3session.exceptions.ForeignStoreError`): it is that session's
store, and writing through it is what a copy of a session made before store
URLs were relative would do to the original.  The message says which line
to write into ``store.url`` to use the copy's own store.

A new session is assembled in a hidden sibling directory and renamed into
place (over an empty directory if one is there), so a crash during creation
leaves either nothing or a complete session: never a half-written one that a
later open would have to guess about.  Directories are created 0700 and
files 0600: sessions often hold command lines and paths that are nobody
else's business.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import shutil
import sys
import tempfile
from urllib.parse import unquote

from . import fsio, index
from .exceptions import (
    CorruptSessionError,
    ForeignStoreError,
    SessionError,
    SessionNotFoundError,
    StoreWriteError,
)
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
        write_store_url(staging, url, durable=durable, session=path)
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


def write_store_url(path: str, url: StoreUrl, *, durable: bool = True,
                    session: str | None = None) -> None:
    """Write ``store.url`` into directory ``path`` atomically, without the password.

    :param session: where the session will be, if not at ``path`` (a new
        session is written in a staging directory): a store inside it is
        written relative to it (module docstring).
    """
    text = store_url_text(session or path, url)
    fsio.atomic_write(os.path.join(path, STORE_URL_FILENAME), text.encode("utf-8"),
                      durable=durable)


def store_url_text(session: str, url: StoreUrl) -> str:
    """What ``store.url`` of ``session`` holds for ``url``: relative if the store is inside.

    >>> store_url_text("/data/s", StoreUrl.for_path("sqlite", "/data/s/jobs.db"))
    'sqlite:jobs.db'
    >>> store_url_text("/data/s", StoreUrl.parse("/data/elsewhere/jobs"))
    'file:///data/elsewhere/jobs'
    """
    url = url.without_password()
    inside = _path_inside(session, url)
    if inside is None:
        return url.render()
    # render the URL with the relative path (escaped as any path), then drop the "//"
    rendered = dataclasses.replace(url, path=inside).render()
    prefix = f"{url.scheme}://" + ("/" if url.base_scheme == "sqlite" else "")
    return f"{url.scheme}:{rendered[len(prefix):]}"


#: Schemes whose store is a local path, which ``store.url`` may name relative to the session.
RELATIVE_SCHEMES = ("file", "sqlite")
_RELATIVE_FORM = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(?!//)(.+)\Z", re.DOTALL)


def _path_inside(session: str, url: StoreUrl) -> str | None:
    """The path of the store of ``url`` relative to ``session`` if it lies inside, else None."""
    if url.base_scheme not in RELATIVE_SCHEMES or not os.path.isabs(url.path):
        return None
    relative = os.path.relpath(url.path, os.path.abspath(session))
    if relative == "." or relative.split(os.sep)[0] == "..":
        return None
    return relative.replace(os.sep, "/")


def parse_store_url(session: str, text: str) -> StoreUrl:
    """The store URL that the text of ``store.url`` of ``session`` means (module docstring).

    >>> print(parse_store_url("/data/s", "sqlite:jobs.db#table=runs"))
    sqlite:////data/s/jobs.db#table=runs
    >>> print(parse_store_url("/data/s", "file:///data/old/jobs"))
    file:///data/old/jobs

    :raises ValueError: if ``text`` is neither form, or a relative path leaves the session.
    """
    relative = _RELATIVE_FORM.match(text) if "://" not in text else None
    if relative is not None:
        scheme, rest = relative[1].lower(), relative[2]
        path = unquote(re.split("[?#]", rest, maxsplit=1)[0])
        if scheme.split("+", 1)[0] not in RELATIVE_SCHEMES:
            raise ValueError(f"{text[:80]!r}: only {' and '.join(RELATIVE_SCHEMES)} stores"
                             " are named relative to the session")
        if not path or path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"{text[:80]!r} does not name a place inside the session")
        return StoreUrl.parse(f"{StoreUrl.for_path(scheme, session).render()}/{rest}")
    if "://" not in text and not text.startswith("/"):
        raise ValueError(f"{text[:80]!r} is not a store URL")
    return StoreUrl.parse(text)


def read_store_url(path: str) -> StoreUrl:
    """Read ``store.url`` (module docstring: an absolute URL, or a relative one).

    :raises CorruptSessionError: naming the file if it is missing, unreadable
        or not a URL, with how to repair it.
    :raises ForeignStoreError: if the store lies in another session's directory.
    """
    filename = os.path.join(path, STORE_URL_FILENAME)
    try:
        url = parse_store_url(path, fsio.read_bytes(filename).decode("utf-8").strip())
    except (OSError, UnicodeDecodeError, SessionError, ValueError) as err:
        raise CorruptSessionError(
            f"{filename} is missing or unreadable ({err}); the session was not"
            f" opened and nothing was changed. Restore the file: it holds one store URL,"
            f" e.g. file:{DEFAULT_JOBS_DIR} for the default store.",
            path=filename) from err
    check_store_place(path, url)
    return url


def check_store_place(session: str, url: StoreUrl) -> None:
    """Refuse a store that lies in the directory of another session (module docstring).

    Costs one ``stat`` per directory above the store, up to the nearest
    session directory.

    :raises ForeignStoreError: naming both sessions and the line that makes
        ``session`` use its own copy, if it has one.
    """
    if url.base_scheme not in RELATIVE_SCHEMES or not os.path.isabs(url.path):
        return
    owner = _session_around(url.path, session)
    if owner is None or same_directory(owner, session):
        return
    own_copy = os.path.join(session, os.path.relpath(url.path, owner))
    if os.path.lexists(own_copy):
        fix = (f"If {session} is a copy of {owner}, write"
               f" {store_url_text(session, dataclasses.replace(url, path=own_copy))}"
               f" into {os.path.join(session, STORE_URL_FILENAME)} to use its own copy of the store.")
    else:
        fix = (f"Name a store of its own in {os.path.join(session, STORE_URL_FILENAME)}"
               f" (e.g. file:{DEFAULT_JOBS_DIR}).")
    raise ForeignStoreError(
        f"the store {url} of session {session} lies in the directory of another session"
        f" ({owner}): writing there would change that session's tasks, so the session was not"
        f" opened and nothing was changed. {fix} A store that several sessions share must"
        " lie outside every session directory.",
        path=os.path.join(session, STORE_URL_FILENAME), url=str(url), owner=owner)


def _session_around(path: str, session: str) -> str | None:
    """The nearest session directory above ``path`` (``session`` counts even before it exists)."""
    parent = os.path.dirname(path)
    while True:
        if parent == session or os.path.isfile(os.path.join(parent, index.INDEX_FILENAME)):
            return parent
        above = os.path.dirname(parent)
        if above == parent:
            return None
        parent = above


def same_directory(one: str, other: str) -> bool:
    """The same directory, even when reached through a symlink."""
    if os.path.abspath(one) == os.path.abspath(other):
        return True
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def not_a_session(path: str) -> SessionNotFoundError:
    """The error for a path that holds no session: the same words for every caller.

    It says what a session directory is, so that someone who typed the
    wrong path (or a store's path) knows what to look for.
    """
    if not os.path.lexists(path):
        why = "it does not exist"
    elif not os.path.isdir(path):
        why = "it is not a directory"
    else:
        why = f"it holds no {index.INDEX_FILENAME}"
    return SessionNotFoundError(
        f"no session in {path} ({why}): a session directory holds {index.INDEX_FILENAME} (the"
        f" ids of its tasks) and {STORE_URL_FILENAME} (the store that keeps them); a script"
        " makes one with -s DIR (default: ./<script name>), Python with Session(DIR)",
        path=path)


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
