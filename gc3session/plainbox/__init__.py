"""A PlainBox-compatible checkpoint/resume layer over gc3session sessions.

It keeps the API PlainBox users know -- ``SessionStorageRepository``,
``SessionStorage``, ``SessionManager``, ``SessionSuspendHelper``,
``SessionResumeHelper`` and their exceptions -- and its checkpoint format
(gzip of JSON, versions 1 to 11 read, 11 written), so PlainBox and
gc3session resume each other's sessions.  The jobs of a session are
gc3session tasks kept in a gc3session session inside the storage directory.
See ``docs/plainbox.md``.
"""

from __future__ import annotations

from .discovery import get_resumable_sessions as get_resumable_sessions
from .discovery import iter_session_metadata as iter_session_metadata
from .errors import BrokenReferenceToExternalFile as BrokenReferenceToExternalFile
from .errors import CorruptedSessionError as CorruptedSessionError
from .errors import IncompatibleJobError as IncompatibleJobError
from .errors import IncompatibleSessionError as IncompatibleSessionError
from .errors import LockedStorageError as LockedStorageError
from .errors import MalformedSessionError as MalformedSessionError
from .errors import SessionResumeError as SessionResumeError
from .manager import SessionManager as SessionManager
from .manager import WellKnownDirsHelper as WellKnownDirsHelper
from .metadata import SessionMetaData as SessionMetaData
from .results import DiskJobResult as DiskJobResult
from .results import IOLogRecord as IOLogRecord
from .results import JobResult as JobResult
from .results import MemoryJobResult as MemoryJobResult
from .resume import SessionPeekHelper as SessionPeekHelper
from .resume import SessionResumeHelper as SessionResumeHelper
from .state import JobState as JobState
from .state import SessionDeviceContext as SessionDeviceContext
from .state import SessionState as SessionState
from .storage import SessionStorage as SessionStorage
from .storage import SessionStorageRepository as SessionStorageRepository
from .suspend import SessionSuspendHelper as SessionSuspendHelper
from .suspend import SessionSuspendHelper6 as SessionSuspendHelper6

__all__ = [
    "BrokenReferenceToExternalFile",
    "CorruptedSessionError",
    "DiskJobResult",
    "IOLogRecord",
    "IncompatibleJobError",
    "IncompatibleSessionError",
    "JobResult",
    "JobState",
    "LockedStorageError",
    "MalformedSessionError",
    "MemoryJobResult",
    "SessionDeviceContext",
    "SessionManager",
    "SessionMetaData",
    "SessionPeekHelper",
    "SessionResumeError",
    "SessionResumeHelper",
    "SessionState",
    "SessionStorage",
    "SessionStorageRepository",
    "SessionSuspendHelper",
    "SessionSuspendHelper6",
    "WellKnownDirsHelper",
    "get_resumable_sessions",
    "iter_session_metadata",
]
