"""The session manager: one storage and the session state living in it.

:class:`SessionManager` is how applications create, checkpoint, resume and
destroy PlainBox sessions::

    manager = SessionManager.create(SessionStorageRepository("sessions"))
    manager.state.add(Task(jobname="disk-smart", command="smartctl -a /dev/sda"))
    manager.checkpoint()
    ...
    again = SessionManager.load_session(jobs, manager.storage)

A checkpoint saves every task that changed (normally none: jobs are saved
when added), serializes the state and writes it with the storage's atomic
protocol: one serialization and one atomic file write.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from .. import fsio
from ..exceptions import SessionNotFoundError
from ..task import Task
from .envelope import CURRENT_VERSION
from .errors import LockedStorageError, SessionResumeError
from .resume import SessionResumeHelper
from .state import IO_LOGS_DIR, SessionState
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
    """Couples a :class:`SessionStorage` with the :class:`SessionState` living in it.

    Use the class methods to get one; ``close()`` (or a ``with`` block)
    releases the state's store.
    """

    def __init__(self, storage: SessionStorage, state: SessionState) -> None:
        self._storage = storage
        self._state = state
        #: The format version :meth:`checkpoint` writes; 6 lets PlainBox 0.38
        #: (which reads versions 1 to 6) resume the session.
        self.suspend_version: int = CURRENT_VERSION

    @property
    def storage(self) -> SessionStorage:
        """The storage of this session."""
        return self._storage

    @property
    def state(self) -> SessionState:
        """The session state (never None)."""
        return self._state

    @classmethod
    def create(cls, repo: SessionStorageRepository | None = None, legacy_mode: bool = False,
               prefix: str = "pbox-") -> "SessionManager":
        """A new session with no jobs, in a new storage of ``repo`` (default repository if None).

        :param legacy_mode: see :meth:`SessionStorage.create` (the
            repository's ``last-session`` link points at the new storage).
        """
        storage = cls._new_storage(repo, legacy_mode, prefix)
        return cls(storage, SessionState(storage.location))

    @classmethod
    def create_with_unit_list(cls, unit_list: Iterable[Task] | None = None,
                              repo: SessionStorageRepository | None = None,
                              legacy_mode: bool = False) -> "SessionManager":
        """A new session holding the jobs of ``unit_list`` (one batch of record writes)."""
        manager = cls.create(repo, legacy_mode)
        manager._state_add_all(unit_list or ())
        return manager

    def _state_add_all(self, jobs: Iterable[Task]) -> None:
        try:
            for job in jobs:
                self._state.add(job, flush=False)
            self._state.flush()
        except BaseException:
            self._state.close()
            raise

    @classmethod
    def create_with_state(cls, state: SessionState, repo: SessionStorageRepository | None = None,
                          legacy_mode: bool = False) -> "SessionManager":
        """A new storage holding a copy of ``state`` (its jobs, results and metadata).

        The copy is the manager's state; ``state`` itself is left as it is
        (a gc3session session cannot move between directories).
        """
        storage = cls._new_storage(repo, legacy_mode, "pbox-")
        return cls(storage, state.copy_to(storage.location))

    @staticmethod
    def _new_storage(repo: SessionStorageRepository | None, legacy_mode: bool,
                     prefix: str) -> SessionStorage:
        repo = repo if repo is not None else SessionStorageRepository()
        storage = SessionStorage.create(repo.location, legacy_mode, prefix)
        WellKnownDirsHelper(storage).populate()
        return storage

    @classmethod
    def load_session(cls, unit_list: Iterable[Task], storage: SessionStorage,
                     early_cb: Callable[[SessionState], Any] | None = None,
                     flags: Iterable[str] | None = None) -> "SessionManager":
        """Resume the session last checkpointed in ``storage``.

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
            manager = cls(storage, SessionState(storage.location))
            manager._state_add_all(unit_list)
            return manager
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
        return cls(storage, state)

    def checkpoint(self) -> None:
        """Make the current state durable: the next :meth:`load_session` returns it.

        A ``session.next`` left by an interrupted checkpoint is removed once
        and the save retried.

        :raises StoreWriteError: if the checkpoint cannot be written; the
            previous one is intact, unless what failed is the directory
            ``fsync`` after the rename (then the new one is in place).
        """
        self._state.save_all()
        data = SessionSuspendHelper(self.suspend_version).suspend(self._state, self._storage.location)
        try:
            self._storage.save_checkpoint(data)
        except LockedStorageError:
            self._storage.break_lock()
            self._storage.save_checkpoint(data)

    def destroy(self) -> None:
        """Remove the storage and everything in it (the state is closed first)."""
        self._state.close()
        self._storage.remove()

    def close(self) -> None:
        """Release the state's store (the session stays on disk)."""
        self._state.close()

    def __enter__(self) -> "SessionManager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SessionManager {self._storage.location} ({len(self._state)} jobs)>"


__all__ = ["SessionManager", "WellKnownDirsHelper"]
