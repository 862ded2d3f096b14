"""The exceptions of gc3session: one root, typed subclasses that carry context.

Every error about stored data names what it concerns (the task id, the file
path or the SQL table) because the user who meets it has to find that thing on
disk to repair it.  gc3libs' names (:class:`Error`, :class:`LoadError`,
:class:`InvalidArgument`, :class:`InvalidValue`) are kept, with their builtin
bases, so ``except`` clauses of ported scripts keep working; each new subclass
also inherits the builtin it resembles (``KeyError``, ``OSError``, ...).

All exceptions pickle (they are raised in worker processes and sent back to a
parent), which is why the ones with keyword context implement ``__reduce__``.
"""

from __future__ import annotations

from typing import Any


class Error(Exception):
    """Root of every exception raised on purpose by gc3session."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context
        for key, value in context.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.context))


def _rebuild(cls: type[Error], message: str, context: dict[str, Any]) -> Error:
    """Unpickle helper: rebuild an exception without calling a subclass __init__."""
    err = cls.__new__(cls)
    Error.__init__(err, message, **context)
    return err


# --- arguments -------------------------------------------------------------

class InvalidArgument(Error, AssertionError):
    """A caller passed an argument that cannot be used (kept from gc3libs)."""


class InvalidValue(InvalidArgument, ValueError):
    """An argument has the right type but an unusable value (kept from gc3libs)."""


class InvalidType(InvalidArgument, TypeError):
    """An argument or stored value has the wrong type."""


class InvalidUsage(Error, ValueError):
    """A command line is wrong (kept from gc3libs): a script reports it with exit status 64.

    :class:`gc3session.cliplumbing.UsageError` is the one the command lines raise.
    """


class UnknownSchemeError(InvalidArgument, KeyError):
    """No store is registered for a URL scheme; the message lists the known ones."""

    def __init__(self, scheme: str, known: list[str]) -> None:
        super().__init__(
            f"no store is registered for URL scheme {scheme!r};"
            f" known schemes: {', '.join(sorted(known))}",
            scheme=scheme, known=sorted(known))


class InvalidUrlError(InvalidValue):
    """A store URL cannot be parsed or names something unusable."""


class InvalidTableName(InvalidValue):
    """An SQL table name is not a plain identifier (guards against injection)."""


class ForeignTaskError(InvalidArgument):
    """An object that belongs to another store (another session) was to be saved here.

    Ids are unique per store only: writing the object here under its id could
    overwrite this store's own record of that id.  ``id`` is the object's id,
    ``home`` where it belongs, ``here`` where it was to be saved.
    """


class SchemeAlreadyRegistered(InvalidArgument):
    """:func:`register` was asked to replace a scheme without ``replace=True``."""


# --- stored data -----------------------------------------------------------

class LoadError(Error):
    """A stored object cannot be loaded (kept from gc3libs).

    ``id`` is the id asked for, ``location`` the file path or ``table`` name
    that holds it, and ``cause`` a short description of what went wrong.
    """


class RecordNotFoundError(LoadError, KeyError):
    """No record with the given id exists in the store."""


class CorruptRecordError(LoadError):
    """A record exists but its bytes cannot be decoded (bad header or payload)."""


class ClassNotFoundError(LoadError):
    """A record names a class that can no longer be imported."""


class UnsafeRecordError(LoadError):
    """An untrusted load met a class that is not on the allow-list, or a call it refuses.

    What an untrusted load admits is listed in
    :mod:`gc3session.persistence.serialization` (calls with arguments that
    could compute or allocate without bound, changes to classes, huge
    integers are refused).
    """


class SerializationError(Error, TypeError):
    """An object cannot be serialized (for example it holds an open file)."""


class StoreWriteError(Error, OSError):
    """Writing to a store failed; nothing previously committed was changed.

    ``step`` names the step that failed (``write``, ``fsync``, ``rename``,
    ``fsync-dir``, ``commit``...) so a full disk can be told from an I/O error.
    """


class NotRegularFileError(Error, OSError):
    """A file gc3session reads, appends to or locks is a FIFO, socket, device or directory.

    Such a file is never read or written: opening a FIFO would block until
    someone writes to it, and a device would hand out or swallow bytes.
    ``path`` names it and ``kind`` says what it is; ``strerror`` is set, so
    code that reports an ``OSError`` by its ``strerror`` says the same.
    """


class StoreUnavailableError(Error, ConnectionError):
    """The database of a store cannot be reached or set up; the URL hides the password."""


class ExecutorUnavailableError(Error, ConnectionError):
    """Where tasks run cannot be reached (a Dask scheduler that is down); nothing was started.

    The engine leaves the tasks it could not start NEW, saves, and raises
    this: it is a reason to stop and retry later, not a failure of the
    tasks.  A script reports it in one line with exit status 75
    (``EX_TEMPFAIL``).
    """


class StoreLockedError(StoreWriteError):
    """A database stayed locked by other writers past the retry deadline."""


class IdAllocationError(StoreWriteError):
    """The store could not hand out a fresh id (counter unreadable or unwritable)."""


# --- sessions --------------------------------------------------------------

class SessionError(Error):
    """Base of the errors about a session directory."""


class SessionNotFoundError(SessionError, InvalidArgument, FileNotFoundError):
    """The session directory does not exist and ``create=False`` was given."""


class CorruptSessionError(SessionError, InvalidArgument):
    """A session directory exists but its metadata is missing or unreadable.

    The session is never re-created over it: the message says which file is at
    fault and how to repair it.
    """


class CorruptIndexError(CorruptSessionError):
    """``session_ids.txt`` holds something that is not a list of ids."""


class ForeignStoreError(CorruptSessionError):
    """A session's ``store.url`` names a store inside the directory of another session.

    ``owner`` is that other session, ``url`` the store (password hidden).
    Nothing was opened: writing through it would change the other session's
    tasks (what a copy made before store URLs were relative would do).
    """


class NotListedError(SessionError, KeyError):
    """An id given for a session's task is not one of its top-level tasks (``id``, ``path``)."""


class StoreSwitchedError(SessionError, RuntimeError):
    """Another process moved the session to another store while this handle was open.

    Nothing was written; ``old`` and ``new`` are the two store URLs.  Open the
    session again to work in its new store.
    """


class ReadOnlySessionError(SessionError, PermissionError):
    """A write was attempted on a session opened read-only."""


class ReadOnlyStoreError(Error, PermissionError):
    """A write was attempted on a store opened read-only."""
