"""The exceptions of the PlainBox adapter, under PlainBox's class names.

Code written for PlainBox catches ``CorruptedSessionError``,
``IncompatibleJobError`` or ``LockedStorageError`` by name; code written for
gc3session catches :class:`gc3session.exceptions.Error`.  Every class here is
both, and keeps the builtin base PlainBox gave it (``LockedStorageError`` is an
``OSError``).  Like every gc3session error they carry their context (the file,
the job id, the version) as attributes and pickle.
"""

from __future__ import annotations

from ..exceptions import Error


class SessionResumeError(Error):
    """Base of every error raised while resuming a dormant session."""


class CorruptedSessionError(SessionResumeError):
    """The checkpoint bytes cannot be decoded: bad gzip, truncated data, bad JSON, wrong types.

    The low-level exception (``EOFError``, ``zlib.error``, ...) is kept as
    ``__cause__``; it never escapes on its own.
    """


class IncompatibleSessionError(SessionResumeError):
    """The checkpoint has an unsupported format version or a malformed structure."""


class MalformedSessionError(CorruptedSessionError, IncompatibleSessionError):
    """The checkpoint decodes but lacks a part every version has (a key, an object).

    PlainBox reports these as corruption and its users catch
    ``CorruptedSessionError``; they are also structural incompatibilities, so
    ``except IncompatibleSessionError`` sees them too.
    """


class IncompatibleJobError(SessionResumeError):
    """A saved job is unknown to the application, or its definition (checksum) changed."""


class BrokenReferenceToExternalFile(SessionResumeError):
    """A saved result names an IO log file that is not there (``file-reference-checks``)."""


class LockedStorageError(Error, OSError):
    """``save_checkpoint`` found ``session.next`` left over by an interrupted save.

    The file is a crash marker, not a lock held by a live process:
    ``SessionStorage.break_lock()`` removes it (``SessionManager.checkpoint``
    does so once by itself and retries).
    """


__all__ = ["BrokenReferenceToExternalFile", "CorruptedSessionError", "IncompatibleJobError",
           "IncompatibleSessionError", "LockedStorageError", "MalformedSessionError",
           "SessionResumeError"]
