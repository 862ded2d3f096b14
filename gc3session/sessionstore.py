"""Opening a session directory and its store, and keeping a handle's writes in that store.

:func:`open_session` decides whether a path is a session to open, a new
session to create, or neither, and gives the handle its store
(:class:`~gc3session.persistence.store.Store`) from ``store.url``
(:mod:`gc3session.sessiondir`).  It never creates over damage: a directory
with metadata is opened, and a non-empty one without is opened too, so that
its damage is reported.  It refuses the cases where using the store would
hide a loss: a store that vanished while the index still lists tasks (a
new, empty one would hand out the same ids again), and a ``jobs`` symlink
planted to send the records elsewhere.

Once a handle has its store, another process may move the session to
another store (``gsession copy``).  :class:`StoreGuard` makes every record
write of the handle either land before the copy's last check, which then
copies it, or fail having written nothing: never go unseen into the old
store.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator

from . import index, sessiondir
from .exceptions import CorruptSessionError, InvalidArgument, StoreSwitchedError
from .persistence.registry import make_store
from .persistence.store import Store
from .persistence.url import StoreUrl


@dataclass
class Opened:
    """What a handle learns when it opens or creates a session."""

    store: Store
    url: StoreUrl
    guard: "StoreGuard"
    #: The ids ``session_ids.txt`` lists.
    listed: list[str]
    #: The start and end times (epoch seconds, -1.0 when there is none).
    created: float
    finished: float


def open_session(path: str, store_or_url: "Store | str | StoreUrl | None",
                 store_kwargs: dict[str, Any], *, create: bool, readonly: bool, durable: bool,
                 own_directory: bool, partial: bool) -> Opened:
    """Open the session in ``path``, or create it (``create``, not ``readonly``).

    ``own_directory``: refuse to create a session whose store lies inside
    another session's directory.  ``partial``: the handle asked for some of
    the tasks only, which makes no sense for a new session.

    :raises SessionNotFoundError: if there is no session and none may be created.
    :raises CorruptSessionError: if the directory holds a damaged session.
    """
    metadata = any(os.path.lexists(os.path.join(path, name))
                   for name in (index.INDEX_FILENAME, sessiondir.STORE_URL_FILENAME))
    if metadata or (create and not readonly and _is_nonempty_dir(path)):
        return _open(path, store_or_url, store_kwargs)
    if readonly or not create:
        raise sessiondir.not_a_session(path)
    if partial:
        raise InvalidArgument("creating a new session with task_ids makes no sense", path=path)
    try:
        return _create(path, store_or_url, store_kwargs, durable=durable,
                       own_directory=own_directory)
    except CorruptSessionError:
        if not os.path.exists(os.path.join(path, index.INDEX_FILENAME)):
            raise
        return _open(path, store_or_url, store_kwargs)  # another process created it just now


def _create(path: str, store_or_url: "Store | str | StoreUrl | None", store_kwargs: dict[str, Any],
            *, durable: bool, own_directory: bool) -> Opened:
    store, url = _new_store(path, store_or_url, store_kwargs)
    try:
        if own_directory:
            sessiondir.check_store_place(path, url)
        sessiondir.create(path, url, durable=durable)
    except BaseException:
        store.close()
        raise
    return Opened(store, url, StoreGuard(path, url, sessiondir.store_url_stamp(path)), [],
                  sessiondir.read_timestamp(path, "start"), -1.0)


def _open(path: str, store_or_url: "Store | str | StoreUrl | None",
          store_kwargs: dict[str, Any]) -> Opened:
    stamp = sessiondir.store_url_stamp(path)  # before reading: a change after it is noticed
    url = sessiondir.read_store_url(path)
    listed = sessiondir.read_index(path)
    store = _existing_store(path, url, store_or_url, store_kwargs, len(listed))
    return Opened(store, url, StoreGuard(path, url, stamp), listed,
                  sessiondir.read_timestamp(path, "start"), sessiondir.read_timestamp(path, "end"))


def _new_store(path: str, store_or_url: "Store | str | StoreUrl | None",
              store_kwargs: dict[str, Any]) -> tuple[Store, StoreUrl]:
    """The store of a session being created in ``path`` (the one given, or ``<path>/jobs``),
    and its URL.

    :raises InvalidArgument: for a store without a URL (the session could
        not name it in ``store.url``, so it could not be opened again).
    """
    if isinstance(store_or_url, Store):
        store = store_or_url
    else:
        url = store_or_url if store_or_url is not None else \
            os.path.join(path, sessiondir.DEFAULT_JOBS_DIR)
        store = make_store(url, **store_kwargs)
    if store.url is None:
        raise InvalidArgument(f"{store!r} has no URL: a session names its store by URL in"
                              f" {sessiondir.STORE_URL_FILENAME}, so that it can be opened again",
                              path=path)
    return store, store.url


def _existing_store(path: str, store_url: StoreUrl, store_or_url: "Store | str | StoreUrl | None",
               store_kwargs: dict[str, Any], listed: int) -> Store:
    """The store of the existing session ``path``, whose ``store.url`` says ``store_url``.

    ``store_or_url`` may be the store itself, or a URL that names the same
    database with a password (``store.url`` never holds one).  ``listed`` is
    the number of ids the index lists.

    :raises CorruptSessionError: if ``<path>/jobs`` is a symlink, or if the
        store is missing although the index lists tasks; nothing is changed.
    """
    if isinstance(store_or_url, Store):
        store = store_or_url
    else:
        url = store_url
        if store_or_url is not None:
            given = StoreUrl.parse(store_or_url)
            if given.without_password() == url.without_password() and given.password:
                url = given
        jobs = os.path.join(path, sessiondir.DEFAULT_JOBS_DIR)
        if url.base_scheme == "file" and url.path == jobs and os.path.islink(jobs):
            raise CorruptSessionError(
                f"{jobs} is a symlink; refusing to use a store planted outside the session"
                " (replace the link by the directory it points to if that is intended)",
                path=jobs)
        store = make_store(url, **store_kwargs)
    if listed and not store.exists():
        store.close()
        raise CorruptSessionError(
            f"the store {store_url} of session {path} is missing although"
            f" {index.INDEX_FILENAME} lists {listed} tasks; restore it (nothing was changed)",
            path=path, url=str(store_url))
    return store


class StoreGuard:
    """Refuses record writes of a handle once ``store.url`` names another store.

    ``stamp`` is :func:`~gc3session.sessiondir.store_url_stamp` of
    ``store.url`` taken *before* it was read, so a change made in between is
    noticed too.
    """

    def __init__(self, path: str, store_url: StoreUrl,
                 stamp: "tuple[int, int, int, int] | None") -> None:
        self.path = path
        self.store_url = store_url
        self._stamp = stamp

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the session directory's lock shared while records are written.

        ``gsession copy`` takes it exclusively to switch the session to
        another store, so a write either lands before the copy's last check
        (which then sees it) or after the switch (which :meth:`check`
        notices and refuses).
        """
        with index.locked_dir(self.path, shared=True):
            self.check()
            yield

    def check(self) -> None:
        """Raise :class:`StoreSwitchedError` if ``store.url`` now names another store.

        Costs one ``stat`` while ``store.url`` is unchanged.
        """
        stamp = sessiondir.store_url_stamp(self.path)
        if stamp == self._stamp:
            return
        try:
            now = sessiondir.read_store_url(self.path)
        except CorruptSessionError as err:
            raise StoreSwitchedError(
                f"{self.path}/{sessiondir.STORE_URL_FILENAME} changed since session {self.path}"
                f" was opened and cannot be read now ({err}); nothing was written",
                path=self.path) from err
        if now.without_password() != self.store_url.without_password():
            raise StoreSwitchedError(
                f"session {self.path} was moved to the store {now} by another process (gsession"
                f" copy) while this handle still wrote to {self.store_url}; nothing was written."
                " Open the session again to go on in its new store.",
                path=self.path, old=str(self.store_url), new=str(now))
        self._stamp = stamp


def _is_nonempty_dir(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(True for _ in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False


__all__ = ["Opened", "StoreGuard", "open_session"]
