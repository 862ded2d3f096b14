"""The session manager: one storage and the device context whose session state lives in it.

:class:`SessionManager` is how applications create, checkpoint, resume and
destroy PlainBox sessions::

    manager = SessionManager.create(SessionStorageRepository("sessions"))
    manager.add_local_device_context()
    manager.state.add(Task(jobname="disk-smart", command="smartctl -a /dev/sda"))
    manager.checkpoint()
    ...
    again = SessionManager.load_session(jobs, manager.storage)

A checkpoint saves every task that changed (normally none: jobs are saved
when added), serializes the state and writes it with the storage's atomic
protocol: one serialization and one atomic file write.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterable, Iterator

from .. import fsio
from ..exceptions import InvalidValue, SessionNotFoundError
from ..sessiondir import same_directory
from ..task import Task
from .envelope import CURRENT_VERSION
from .errors import LockedStorageError, SessionResumeError
from .resume import SessionResumeHelper
from .signals import Signal
from .state import IO_LOGS_DIR, SessionDeviceContext, SessionState
from .storage import SessionStorage, SessionStorageRepository
from .suspend import SessionSuspendHelper


class WellKnownDirsHelper:
    """The directories every storage has (``io-logs``), and :meth:`populate` to make them."""

    def __init__(self, storage: SessionStorage) -> None:
        self.storage = storage

    @property
    def io_log_pathname(self) -> str:
        """The directory of the per-job IO log files."""
        return os.path.join(self.storage.location, IO_LOGS_DIR)

    @property
    def all_directories(self) -> list[str]:
        """Every well-known directory of the storage."""
        return [self.io_log_pathname]

    def populate(self) -> None:
        """Create the well-known directories that are missing (durably)."""
        for path in self.all_directories:
            fsio.make_dirs(path)


class SessionManager:
    """Couples a :class:`SessionStorage` with the device context holding the session state.

    As in PlainBox 0.38, a manager holds at most one
    :class:`SessionDeviceContext` (the local machine's) and :attr:`state`
    is that context's state, None while there is no context:
    :meth:`create` makes a manager without one (call
    :meth:`add_local_device_context`), the other class methods make it with
    one.  ``close()`` (or a ``with`` block) releases the state's store.

    :param device_context_list: the contexts to start with (none or one).
    :raises ValueError: for more than one context.
    """

    def __init__(self, device_context_list: Iterable[SessionDeviceContext],
                 storage: SessionStorage) -> None:
        self._storage = storage
        self._device_context_list: list[SessionDeviceContext] = []
        #: Fired with the context after :meth:`add_device_context` adds it.
        self.on_device_context_added = Signal("on_device_context_added")
        #: Fired with the context after :meth:`remove_device_context` removes it.
        self.on_device_context_removed = Signal("on_device_context_removed")
        #: The format version :meth:`checkpoint` writes; 6 lets PlainBox 0.38
        #: (which reads versions 1 to 6) resume the session.
        self.suspend_version: int = CURRENT_VERSION
        for context in device_context_list:
            self.add_device_context(context)

    @property
    def storage(self) -> SessionStorage:
        """The storage of this session."""
        return self._storage

    @property
    def device_context_list(self) -> list[SessionDeviceContext]:
        """The device contexts (a copy: change them with the add and remove methods)."""
        return list(self._device_context_list)

    @property
    def default_device_context(self) -> SessionDeviceContext | None:
        """The first device context, or None if there is none."""
        return self._device_context_list[0] if self._device_context_list else None

    @property
    def state(self) -> SessionState | None:
        """The session state of the default device context; None without a context."""
        context = self.default_device_context
        return context.state if context is not None else None

    def add_device_context(self, context: SessionDeviceContext) -> SessionDeviceContext:
        """Add ``context`` and fire :attr:`on_device_context_added`; return it.

        :raises ValueError: if a context for the same device is there
            already, or any context at all (PlainBox 0.38's limit of one).
        :raises InvalidValue: (a ValueError) if the context's state lives
            in another directory than this storage: a checkpoint would then
            refer to jobs and IO logs outside it (a detached state's are
            removed at exit).  :meth:`add_local_device_context` and
            :meth:`create_with_state` put the state in the storage.
        """
        self._refuse_another(context.device)
        state = context.state
        if isinstance(state, SessionState) and not same_directory(state.location, self._storage.location):
            raise InvalidValue(f"the state of {context!r} lives in {state.location}, not in this"
                               f" manager's storage {self._storage.location}; use"
                               " add_local_device_context() or SessionManager.create_with_state(state)")
        self._device_context_list.append(context)
        self.on_device_context_added(context)
        return context

    def _refuse_another(self, device: object) -> None:
        if any(other.device == device for other in self._device_context_list):
            raise ValueError(f"the device {device!r} already has a context in this session manager")
        if self._device_context_list:
            raise ValueError("a session manager holds one device context at most")

    def add_local_device_context(self) -> SessionDeviceContext:
        """Add a context for this machine whose state lives in the storage; return it.

        PlainBox's local context holds a state in memory; here the state is
        a gc3session session in ``<storage>/tasks``.
        """
        self._refuse_another(None)
        return self.add_device_context(SessionDeviceContext(location=self._storage.location))

    def remove_device_context(self, context: SessionDeviceContext) -> None:
        """Remove ``context`` and fire :attr:`on_device_context_removed`.

        Its state stays open: the caller who removed it owns it.

        :raises ValueError: if ``context`` is not in this manager.
        """
        if context not in self._device_context_list:
            raise ValueError(f"{context!r} is not a device context of this session manager")
        self._device_context_list.remove(context)
        self.on_device_context_removed(context)

    def _required_state(self) -> SessionState:
        state = self.state
        if state is None:
            raise InvalidValue(f"the session manager of {self._storage.location} has no device context:"
                               " call add_local_device_context() first")
        return state

    @classmethod
    def create(cls, repo: SessionStorageRepository | None = None, legacy_mode: bool = False,
               prefix: str = "pbox-") -> "SessionManager":
        """A new storage in ``repo`` (default repository if None), without a device context.

        :param legacy_mode: see :meth:`SessionStorage.create` (the
            repository's ``last-session`` link points at the new storage).
        """
        return cls([], cls._new_storage(repo, legacy_mode, prefix))

    @classmethod
    def create_with_unit_list(cls, unit_list: Iterable[Task] | None = None,
                              repo: SessionStorageRepository | None = None,
                              legacy_mode: bool = False) -> "SessionManager":
        """A new storage whose local context holds the jobs of ``unit_list`` (one batch of writes)."""
        storage = cls._new_storage(repo, legacy_mode)
        with _removed_on_failure(storage):
            state = SessionState(storage.location, jobs=unit_list or ())
        return cls([SessionDeviceContext(state)], storage)

    @classmethod
    def create_with_state(cls, state: SessionState, repo: SessionStorageRepository | None = None,
                          legacy_mode: bool = False) -> "SessionManager":
        """A new storage whose local context holds a copy of ``state`` (jobs, results, metadata).

        The copy is the manager's state; ``state`` itself is left as it is
        (a gc3session session cannot move between directories).
        """
        storage = cls._new_storage(repo, legacy_mode)
        with _removed_on_failure(storage):
            copy = state.copy_to(storage.location)
        return cls([SessionDeviceContext(copy)], storage)

    @staticmethod
    def _new_storage(repo: SessionStorageRepository | None, legacy_mode: bool,
                     *prefix: str) -> SessionStorage:
        """A new storage of ``repo`` (the default repository if None) with its directories.

        ``prefix`` is passed on only when given: PlainBox's ``create_with_*``
        call ``SessionStorage.create`` with the default prefix, unnamed.
        """
        repo = repo if repo is not None else SessionStorageRepository()
        storage = SessionStorage.create(repo.location, legacy_mode, *prefix)
        WellKnownDirsHelper(storage).populate()
        return storage

    @classmethod
    def load_session(cls, unit_list: Iterable[Task], storage: SessionStorage,
                     early_cb: Callable[[SessionState], Any] | None = None,
                     flags: Iterable[str] | None = None) -> "SessionManager":
        """Resume the session last checkpointed in ``storage``, in a local device context.

        :param unit_list: every job the application defines now.
        :param early_cb: see :meth:`SessionResumeHelper.resume`.
        :param flags: resume flags (see :mod:`gc3session.plainbox.resume`).

        If the storage directory no longer exists, a fresh state holding
        ``unit_list`` is made there (PlainBox's behaviour); a storage that
        was never checkpointed raises :class:`CorruptedSessionError`.
        Nothing is written unless the checkpoint resumes.

        :raises SessionResumeError: (a subclass) as :meth:`SessionResumeHelper.resume`,
            its message naming the checkpoint file (``session_file``); the
            helper's error is its ``__cause__``.
        """
        unit_list = list(unit_list)
        try:
            data = storage.load_checkpoint()
        except SessionNotFoundError:
            WellKnownDirsHelper(storage).populate()
            return cls([SessionDeviceContext(SessionState(storage.location, jobs=unit_list))], storage)
        helper = SessionResumeHelper(unit_list, flags, storage.location)
        try:
            state = helper.resume(data, early_cb)
        except SessionResumeError as err:  # say which session could not be resumed
            raise type(err)(f"cannot resume {storage.session_file}: {err}",
                            **{**err.context, "session_file": storage.session_file}) from err
        try:
            WellKnownDirsHelper(storage).populate()
        except BaseException:
            state.close()
            raise
        return cls([SessionDeviceContext(state)], storage)

    def checkpoint(self) -> None:
        """Make the current state durable: the next :meth:`load_session` returns it.

        A ``session.next`` left by an interrupted checkpoint is removed once
        and the save retried.

        :raises InvalidValue: if the manager has no device context.
        :raises StoreWriteError: if the checkpoint cannot be written; the
            previous one is intact, unless what failed is the directory
            ``fsync`` after the rename (then the new one is in place).
        """
        state = self._required_state()
        state.save_all()
        data = SessionSuspendHelper(self.suspend_version).suspend(state, self._storage.location)
        try:
            self._storage.save_checkpoint(data)
        except LockedStorageError:
            self._storage.break_lock()
            self._storage.save_checkpoint(data)

    def destroy(self) -> None:
        """Remove the storage and everything in it (the states are closed first)."""
        self.close()
        self._storage.remove()

    def close(self) -> None:
        """Release the store of every context's state (the session stays on disk)."""
        for context in self._device_context_list:
            context.state.close()

    def __enter__(self) -> "SessionManager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = self.state
        jobs = f"{len(state)} jobs" if state is not None else "no device context"
        return f"<SessionManager {self._storage.location} ({jobs})>"


@contextlib.contextmanager
def _removed_on_failure(storage: SessionStorage) -> Iterator[None]:
    """Remove ``storage``, just created and holding nothing of the user's yet, if the block fails.

    A failed ``create_with_*`` then leaves no empty session in the
    repository (in legacy mode the ``last-session`` link is left dangling,
    which :meth:`SessionStorageRepository.get_last_storage` reads as none).
    """
    try:
        yield
    except BaseException:
        storage.remove()
        raise


__all__ = ["SessionDeviceContext", "SessionManager", "WellKnownDirsHelper"]
