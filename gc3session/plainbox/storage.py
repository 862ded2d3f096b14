"""Session storage: PlainBox's directory per session and its atomic checkpoint file.

A *repository* is a directory of *storages*; a storage is one directory
``<prefix><UTC timestamp>[_(n)].session`` holding the checkpoint file
``session`` (written with the protocol below), the well-known ``io-logs/``
directory and the gc3session session of the jobs (``tasks/``, see
:mod:`gc3session.plainbox.state`).

The checkpoint protocol is PlainBox's, step by step, with every step going
through :mod:`gc3session.fsio`:

1. create ``session.next`` exclusively: if it exists, an earlier save was
   interrupted and :class:`LockedStorageError` is raised;
2. write every byte (short writes are looped), ``fdatasync`` it;
3. rename it over ``session`` (atomic), ``fsync`` the directory.

A reader therefore always finds the last complete checkpoint, or none.

Unlike PlainBox, a failing write, fsync or rename raises the real error
(:class:`~gc3session.exceptions.StoreWriteError`, naming the file, the step
and the errno) instead of being logged or reported as success; a failed
save removes its ``session.next`` whenever the disk lets it.

*Legacy mode* (PlainBox's single-session mode, ``create(..., legacy_mode=True)``)
also points the symlink ``last-session`` of the repository at the new
storage, replaced atomically; :meth:`SessionStorageRepository.get_last_storage`
follows it.  Unlike PlainBox, the storage the link pointed to before is kept
(PlainBox removed it with everything in it): a session is never deleted as a
side effect of starting another.
"""

from __future__ import annotations

import datetime
import errno
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
from typing import Any, Iterator

from .. import fsio
from ..exceptions import InvalidType, SessionNotFoundError, StoreWriteError
from .errors import LockedStorageError

logger = logging.getLogger(__name__)

#: The name of the checkpoint file, and of the file a save writes first.
SESSION_FILE = "session"
SESSION_FILE_NEXT = "session.next"
#: Storage directories end with this; the id is the name without it.
STORAGE_SUFFIX = ".session"
#: The ``strftime`` format of the timestamp in storage names (UTC, as PlainBox).
TIMESTAMP_FORMAT = "%Y-%m-%dT%H.%M.%S"
#: The symlink of a repository that legacy mode points at its newest storage.
LAST_SESSION_SYMLINK = "last-session"
#: How many ``_(n)`` suffixes ``create`` tries before giving up.
MAX_CLASHES = 10_000

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def slugify(text: str) -> str:
    """Replace every character outside ``[A-Za-z0-9._-]`` by ``_`` (PlainBox's rule)."""
    return _UNSAFE.sub("_", text)


class SessionStorageRepository:
    """A directory of session storages, listed youngest first.

    :param location: the repository directory; None means
        :meth:`get_default_location`.  It need not exist yet:
        :meth:`SessionStorage.create` creates it.
    """

    #: PlainBox's name for :data:`LAST_SESSION_SYMLINK` (its tests and tools use it).
    _LAST_SESSION_SYMLINK = LAST_SESSION_SYMLINK

    def __init__(self, location: "str | os.PathLike[str] | None" = None) -> None:
        self._location = os.fspath(location) if location is not None else self.get_default_location()

    @property
    def location(self) -> str:
        """The pathname of the repository."""
        return self._location

    def __repr__(self) -> str:
        return f"<{type(self).__name__} location:{self._location!r}>"

    @classmethod
    def get_default_location(cls) -> str:
        """The repository to use when none is given.

        ``$PLAINBOX_SESSION_REPOSITORY`` (made absolute) if set, else
        ``${XDG_CACHE_HOME:-~/.cache}/plainbox/sessions`` (an empty
        ``XDG_CACHE_HOME`` counts as unset).  If that path exists but is not a
        directory, or is not writable, a fresh temporary directory is used
        instead and a warning is logged, as PlainBox does.
        """
        repo_dir: str | None
        env = os.environ.get("PLAINBOX_SESSION_REPOSITORY")
        if env is not None:
            repo_dir = os.path.abspath(env)
        else:
            cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            repo_dir = os.path.join(cache, "plainbox", "sessions")
        if os.path.exists(repo_dir) and not os.path.isdir(repo_dir):
            logger.warning("session repository %s is not a directory", repo_dir)
            repo_dir = None
        elif os.path.exists(repo_dir) and not os.access(repo_dir, os.W_OK):
            logger.warning("session repository %s is read-only", repo_dir)
            repo_dir = None
        if repo_dir is None:
            repo_dir = tempfile.mkdtemp(prefix="plainbox-sessions-")
            logger.warning("using the temporary directory %s as session repository", repo_dir)
        return repo_dir

    def get_storage_list(self) -> list["SessionStorage"]:
        """The storages of the repository, youngest (last checkpointed) first.

        Only non-hidden directories whose name ends with ``.session`` count;
        symlinks are never followed.  A missing repository gives ``[]``.  An
        entry removed while the list is being made is left out (PlainBox
        returned an empty list then).  Ties in modification time are broken
        by name, newest timestamp first.
        """
        try:
            names = os.listdir(self._location)
        except FileNotFoundError:
            return []
        found: list[tuple[float, str]] = []
        for name in names:
            if name.startswith(".") or not name.endswith(STORAGE_SUFFIX):
                continue
            try:
                info = os.lstat(os.path.join(self._location, name))
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(info.st_mode):
                found.append((info.st_mtime, name))
        found.sort(reverse=True)
        return [SessionStorage(os.path.join(self._location, name)) for _, name in found]

    def __iter__(self) -> Iterator["SessionStorage"]:
        return iter(self.get_storage_list())

    def get_last_storage(self) -> "SessionStorage | None":
        """The storage the ``last-session`` symlink points to (legacy mode), or None.

        None when there is no such link, or when it does not lead to a
        directory (a dangling link).  A relative link is taken relative to
        the repository.
        """
        link = os.path.join(self._location, LAST_SESSION_SYMLINK)
        try:
            target = os.readlink(link)
        except FileNotFoundError:
            return None
        except OSError as err:
            if err.errno == errno.EINVAL:  # a plain file or directory of that name, not a link
                return None
            raise
        location = os.path.join(self._location, target)
        return SessionStorage(location) if os.path.isdir(location) else None


class SessionStorage:
    """One session directory and its checkpoint file.

    The constructor touches nothing on disk; :meth:`create` makes a new,
    empty storage.  Everything under :attr:`location` belongs to the session
    and goes with :meth:`remove`.
    """

    def __init__(self, location: "str | os.PathLike[str]") -> None:
        self._location = os.fspath(location)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} location:{self._location!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SessionStorage) and other._location == self._location

    def __hash__(self) -> int:
        return hash(self._location)

    @property
    def location(self) -> str:
        """The pathname of the storage directory."""
        return self._location

    @property
    def id(self) -> str:
        """The name of the storage directory without ``.session``."""
        return os.path.splitext(os.path.basename(self._location))[0]

    @property
    def session_file(self) -> str:
        """The pathname of the checkpoint file."""
        return os.path.join(self._location, SESSION_FILE)

    @property
    def next_session_file(self) -> str:
        """The pathname of the file a save writes before renaming it over :attr:`session_file`."""
        return os.path.join(self._location, SESSION_FILE_NEXT)

    @classmethod
    def create(cls, base_dir: "str | os.PathLike[str]", legacy_mode: bool = False,
               prefix: str = "pbox-") -> "SessionStorage":
        """Create a new, empty storage in ``base_dir`` (created if needed).

        Its name is ``slugify(prefix)`` + the UTC time to the second +
        ``.session``; if that is taken, ``_(1)``, ``_(2)``, ... are tried
        before ``.session``.  Each candidate is claimed with one ``mkdir``,
        which fails if another process got there first, so two processes
        never share a storage (PlainBox checked, then created).

        :param legacy_mode: also point ``base_dir/last-session`` at the new
            storage (the link is replaced atomically; the storage it pointed
            to before is kept).
        :raises InvalidType: if ``legacy_mode`` is not a bool (the second
            positional parameter was the prefix before PlainBox's signature
            was adopted: pass ``prefix=`` by name).
        :raises StoreWriteError: if ``base_dir``, the storage or the link
            cannot be created.
        """
        if not isinstance(legacy_mode, bool):
            raise InvalidType(f"legacy_mode must be a bool, not {type(legacy_mode).__name__}"
                              " (pass the prefix as prefix=...)")
        base = os.fspath(base_dir)
        fsio.make_dirs(base)
        stem = slugify(prefix) + datetime.datetime.now(datetime.timezone.utc).strftime(TIMESTAMP_FORMAT)
        for uniq in range(MAX_CLASHES):
            name = stem + (f"_({uniq})" if uniq else "") + STORAGE_SUFFIX
            location = os.path.join(base, name)
            try:
                if fsio.make_dirs(location):
                    break
            except StoreWriteError as err:
                if err.context.get("errno") != errno.EEXIST:
                    raise
                continue  # a file of that name: try the next suffix
        else:
            raise StoreWriteError(f"cannot create a storage in {base!r}: {MAX_CLASHES} names taken",
                                  path=base, step="mkdir", errno=errno.EEXIST)
        if legacy_mode:
            _point_last_session(base, location)
        return cls(location)

    def load_checkpoint(self) -> bytes:
        """The data of the last complete checkpoint; ``b''`` if there is none yet.

        ``session.next`` is never read: it is what an interrupted save left.
        Short reads are looped, and the file is never read through a symlink.

        :raises SessionNotFoundError: (a ``FileNotFoundError``) if the storage
            directory itself does not exist.
        :raises OSError: if the file cannot be read.
        """
        def missing() -> bytes:
            if os.path.isdir(self._location):
                return b""
            raise SessionNotFoundError(f"no session storage in {self._location}",
                                       path=self._location, errno=errno.ENOENT,
                                       filename=self._location)
        return fsio.read_bytes(self.session_file, on_missing=missing)

    def save_checkpoint(self, data: bytes) -> None:
        """Make ``data`` the new checkpoint, atomically and durably.

        Cost: one exclusive create, the writes, one ``fdatasync``, one
        rename and one directory ``fsync``.  When this returns the new
        checkpoint survives a power cut; if it raises, ``session`` still
        holds the previous checkpoint, except after a failed directory
        ``fsync`` (the rename was done: ``session`` holds the new data, whose
        durability is unknown).

        :raises InvalidType: (a ``TypeError``) if ``data`` is not ``bytes``.
        :raises LockedStorageError: if ``session.next`` exists (an earlier save
            was interrupted); :meth:`break_lock` clears it.
        :raises StoreWriteError: if a step fails, naming the file, the step and the errno.
        """
        if not isinstance(data, bytes):
            raise InvalidType(f"checkpoint data must be bytes, not {type(data).__name__}",
                              path=self.session_file)
        next_file = self.next_session_file
        if not fsio.create_private(next_file):
            raise LockedStorageError(
                f"{next_file} exists: an earlier checkpoint was interrupted"
                " (break_lock() removes it)", path=next_file, filename=next_file,
                errno=errno.EEXIST)
        self._fill(next_file, data)
        fsio.commit_tmp(next_file, self.session_file)
        fsio.fsync_dir(self._location)

    @staticmethod
    def _fill(next_file: str, data: bytes) -> None:
        """Write every byte to the freshly created ``session.next`` and sync it; remove it on failure."""
        try:
            fsio.append(next_file, data, create=False)
        except StoreWriteError:
            try:
                fsio.discard(next_file)
            except OSError:
                pass  # it stays: the next save reports the lock, break_lock() clears it
            raise

    def break_lock(self) -> bool:
        """Remove a ``session.next`` left by an interrupted save; True if there was one.

        PlainBox raised ``FileNotFoundError`` when there was none; there is
        nothing to unlock then, so this returns False.

        :raises StoreWriteError: if the file exists and cannot be removed.
        """
        return fsio.unlink(self.next_session_file)

    def remove(self) -> None:
        """Remove the storage directory and everything in it; never raises.

        What cannot be removed is logged and left (a missing directory is fine).
        """
        def complain(function: Any, path: str, excinfo: Any) -> None:
            logger.warning("cannot remove %s", path)

        if not os.path.lexists(self._location):
            return
        if sys.version_info >= (3, 12):
            shutil.rmtree(self._location, onexc=complain)
        else:
            shutil.rmtree(self._location, onerror=complain)


def _point_last_session(base: str, location: str) -> None:
    """Make ``base/last-session`` a symlink to ``location``: a new link renamed over the old one."""
    link = os.path.join(base, LAST_SESSION_SYMLINK)
    tmp = os.path.join(base, fsio.tmp_name(LAST_SESSION_SYMLINK))
    try:
        os.symlink(location, tmp)
    except OSError as err:
        raise StoreWriteError(f"cannot create the symlink {tmp!r}: {err.strerror or err}",
                              path=tmp, step="symlink", errno=err.errno) from err
    fsio.commit_tmp(tmp, link)
    fsio.fsync_dir(base)


__all__ = ["LAST_SESSION_SYMLINK", "LockedStorageError", "SESSION_FILE", "SESSION_FILE_NEXT",
           "SessionStorage", "SessionStorageRepository", "slugify"]
