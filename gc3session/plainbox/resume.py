"""Resume: rebuild a session state from checkpoint bytes of format versions 1 to 11.

Resuming is done in two phases so that a bad checkpoint never changes
anything on disk: first the bytes are decoded and *every* value is checked
(:mod:`gc3session.plainbox.parse`), and the saved jobs are checked against the
jobs the application defines now; only then is the state opened and filled.

As in PlainBox, each format has its own helper, ``SessionResumeHelper1`` to
``SessionResumeHelper11`` (and ``SessionPeekHelper1`` to ``11``), whose
``resume_json(json_repr, early_cb=None)`` (``peek_json(json_repr)``) reads a
decoded checkpoint of exactly that format: code that pins a format uses
them.  The facades :class:`SessionResumeHelper` and :class:`SessionPeekHelper`
decode the bytes and hand the document to the helper of its version.

Errors: see :mod:`gc3session.plainbox.parse` for what cannot be read; a
version outside 1..11, or a document given to the helper of another format,
raises :class:`IncompatibleSessionError`; a saved job that the application
does not define, or whose checksum changed, :class:`IncompatibleJobError` --
unless ``flags`` holds :data:`FLAG_IGNORE_JOB_CHECKSUMS` (a changed job is
kept, with its results, under its new definition) or
:data:`FLAG_DISCARD_INCOMPATIBLE_JOBS` (unknown and changed jobs are dropped
with their results).  PlainBox 0.38 reads formats 1 to 6 and calls 7 and
later unsupported; they are read here (PlainBox wrote them later).

The exception classes are importable from here, where PlainBox defines them.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from ..exceptions import InvalidType, InvalidValue
from ..task import Task
from .envelope import check_format, check_root, loads
from .errors import (
    BrokenReferenceToExternalFile,
    CorruptedSessionError,
    IncompatibleJobError,
    IncompatibleSessionError,
    SessionResumeError,
)
from .parse import SavedSession, parse, parse_metadata, parse_session
from .peek import (
    PEEK_HELPERS,
    FormatPeekHelper,
    SessionPeekHelper,
    SessionPeekHelper1,
    SessionPeekHelper2,
    SessionPeekHelper3,
    SessionPeekHelper4,
    SessionPeekHelper5,
    SessionPeekHelper6,
    SessionPeekHelper7,
    SessionPeekHelper8,
    SessionPeekHelper9,
    SessionPeekHelper10,
    SessionPeekHelper11,
)
from .state import SessionState

#: Keep a job whose checksum changed (and its results) instead of raising.
FLAG_IGNORE_JOB_CHECKSUMS = "ignore-job-checksums"
#: Drop jobs that are unknown or whose checksum changed, with their results.
FLAG_DISCARD_INCOMPATIBLE_JOBS = "discard-incompatible-jobs"
#: Check that every IO log file named by a result exists.
FLAG_FILE_REFERENCE_CHECKS = "file-reference-checks"


def job_id(job: Any) -> str:
    """The PlainBox id of a job: a task's ``jobname``, else the unit's ``id``.

    :raises InvalidType: if the job has neither as a string.
    """
    name = getattr(job, "jobname", None)
    if not isinstance(name, str):
        name = getattr(job, "id", None)
    if not isinstance(name, str):
        raise InvalidType(f"a job needs a jobname (or a PlainBox id), {job!r} has none")
    return name


class ResumeDiscardQualifier:
    """The jobs a resume drops: every job whose id is not in ``retain_id_set``.

    PlainBox's job qualifier of that name, with its vote numbers: a retained
    job gets :attr:`VOTE_IGNORE`, any other :attr:`VOTE_INCLUDE` (included
    in what is discarded).  Ids match exactly, never as patterns.
    """

    VOTE_EXCLUDE = 0
    VOTE_INCLUDE = 1
    VOTE_IGNORE = 2

    def __init__(self, retain_id_set: Iterable[str]) -> None:
        self._retain_id_set = frozenset(retain_id_set)

    def get_simple_match(self, job: Any) -> bool:
        """True if ``job`` is to be discarded."""
        return job_id(job) not in self._retain_id_set

    def get_vote(self, job: Any) -> int:
        """:attr:`VOTE_INCLUDE` for a job to discard, :attr:`VOTE_IGNORE` for one to keep."""
        return self.VOTE_INCLUDE if self.get_simple_match(job) else self.VOTE_IGNORE

    def designates(self, job: Any) -> bool:
        """True if ``job`` is to be discarded."""
        return self.get_vote(job) == self.VOTE_INCLUDE


class FormatResumeHelper:
    """Rebuilds a :class:`SessionState` from a checkpoint of format :attr:`VERSION`.

    The base of ``SessionResumeHelper1`` to ``SessionResumeHelper11``.

    :param job_list: the jobs (tasks) the application defines now; every
        saved job is matched to one of them by id and checksum.
    :param flags: resume flags (``FLAG_*`` of this module); unknown ones are ignored.
    :param location: the storage directory the state lives in (and that
        relative IO log names refer to); None restores into a detached state
        (:meth:`SessionState.detached`).
    """

    VERSION = 0

    def __init__(self, job_list: Iterable[Task], flags: Iterable[str] | None = None,
                 location: str | None = None) -> None:
        self.job_list = list(job_list)
        self.flags = frozenset(flags or ())
        self.location = location

    def resume_json(self, json_repr: Any, early_cb: Callable[[SessionState], Any] | None = None
                    ) -> SessionState:
        """Resume the session of a decoded checkpoint (``{"session": ..., "version": N}``).

        The state holds the application's job objects for every job saved in
        the checkpoint or named in its desired and mandatory lists, in the
        order of ``job_list``, with their result histories, and the saved
        metadata.  ``early_cb(state)`` is called once the checkpoint has been
        checked, before the state is filled; if it returns a state, that one
        is filled instead.

        :raises CorruptedSessionError: if a value cannot be read.
        :raises IncompatibleSessionError: for a document of another format or a malformed structure.
        :raises IncompatibleJobError: if a saved job is unknown or changed (see the flags).
        :raises BrokenReferenceToExternalFile: with ``file-reference-checks``,
            if a result names a missing IO log file.
        """
        session = check_format(json_repr, self.VERSION, type(self).__name__)
        return self._restore(parse_session(self.VERSION, session, self.location), early_cb)

    def _restore(self, saved: SavedSession, early_cb: Callable[[SessionState], Any] | None
                 ) -> SessionState:
        units = self._units()
        keep, rewrite = self._match_jobs(saved, units)
        lists = {name: self._known(name, getattr(saved, name), units)
                 for name in ("desired_job_list", "mandatory_job_list")}
        discard = ResumeDiscardQualifier([*keep, *lists["desired_job_list"], *lists["mandatory_job_list"]])
        if FLAG_FILE_REFERENCE_CHECKS in self.flags:
            self._check_files(saved, keep)
        state = SessionState(self.location) if self.location is not None else SessionState.detached()
        try:
            if early_cb is not None:
                replacement = early_cb(state)
                if replacement is not None and replacement is not state:
                    if not isinstance(replacement, SessionState):
                        raise InvalidType("early_cb must return None or a SessionState, not "
                                          f"{type(replacement).__name__}")
                    state.close()
                    state = replacement
            state._take_jobs([job for job in units.values() if not discard.designates(job)], changed=rewrite)
        except BaseException:
            state.close()
            raise
        for name in keep:
            state.job_state_map[name].result_history.extend(saved.results.get(name, ()))
        state.metadata = saved.metadata
        state.mandatory_job_list = lists["mandatory_job_list"]
        state.desired_job_list = lists["desired_job_list"]
        state.system_information = saved.system_information
        return state

    def _units(self) -> dict[str, Task]:
        units: dict[str, Task] = {}
        for job in self.job_list:
            name = job_id(job)
            known = units.setdefault(name, job)
            if known is not job and known.checksum != job.checksum:
                raise InvalidValue(f"job_list has two different jobs named {name!r}", id=name)
        return units

    def _match_jobs(self, saved: SavedSession, units: dict[str, Task]) -> tuple[list[str], set[str]]:
        """The saved job ids to keep, and those kept despite a changed checksum."""
        discard = FLAG_DISCARD_INCOMPATIBLE_JOBS in self.flags
        keep: list[str] = []
        rewrite: set[str] = set()
        for name in sorted(saved.jobs):
            unit = units.get(name)
            if unit is None:
                if discard:
                    continue
                raise IncompatibleJobError(f"Unknown job {name!r}: the application no longer defines it",
                                           id=name)
            if unit.checksum != saved.jobs[name]:
                if discard:
                    continue
                if FLAG_IGNORE_JOB_CHECKSUMS not in self.flags:
                    raise IncompatibleJobError(f"Definition of job {name!r} has changed", id=name,
                                               saved_checksum=saved.jobs[name],
                                               current_checksum=unit.checksum)
                rewrite.add(name)
            keep.append(name)
        return keep, rewrite

    def _known(self, what: str, ids: list[str], units: dict[str, Task]) -> list[str]:
        unknown = [name for name in ids if name not in units]
        if unknown and FLAG_DISCARD_INCOMPATIBLE_JOBS not in self.flags:
            raise IncompatibleJobError(f"{what!r} refers to unknown job {unknown[0]!r}", id=unknown[0])
        return [name for name in ids if name in units]

    @staticmethod
    def _check_files(saved: SavedSession, keep: list[str]) -> None:
        for name in keep:
            for result in saved.results.get(name, ()):
                path = getattr(result, "io_log_filename", None)
                if path is not None and not os.path.exists(path):
                    raise BrokenReferenceToExternalFile(f"cannot access file: {path!r}",
                                                        path=path, id=name)


class SessionResumeHelper1(FormatResumeHelper):
    """Resumes format 1: current results only, no ``app_blob`` or ``app_id``."""

    VERSION = 1


class SessionResumeHelper2(FormatResumeHelper):
    """Resumes format 2: adds ``metadata.app_blob``."""

    VERSION = 2


class SessionResumeHelper3(FormatResumeHelper):
    """Resumes format 3: adds ``metadata.app_id``."""

    VERSION = 3


class SessionResumeHelper4(FormatResumeHelper):
    """Resumes format 4: whole result histories."""

    VERSION = 4


class SessionResumeHelper5(FormatResumeHelper):
    """Resumes format 5: IO log names relative to the storage."""

    VERSION = 5


class SessionResumeHelper6(FormatResumeHelper):
    """Resumes format 6: ``mandatory_job_list`` (the newest PlainBox 0.38 reads)."""

    VERSION = 6


class SessionResumeHelper7(FormatResumeHelper):
    """Resumes format 7: adds ``metadata.last_job_start_time``."""

    VERSION = 7


class SessionResumeHelper8(FormatResumeHelper):
    """Resumes format 8: adds ``system_information``."""

    VERSION = 8


class SessionResumeHelper9(FormatResumeHelper):
    """Resumes format 9 (read as format 8)."""

    VERSION = 9


class SessionResumeHelper10(FormatResumeHelper):
    """Resumes format 10 (read as format 8)."""

    VERSION = 10


class SessionResumeHelper11(FormatResumeHelper):
    """Resumes format 11: adds ``metadata.remaining_todo_jobs``."""

    VERSION = 11


#: The resume helper of each format version.
RESUME_HELPERS: dict[int, type[FormatResumeHelper]] = {
    helper.VERSION: helper for helper in (
        SessionResumeHelper1, SessionResumeHelper2, SessionResumeHelper3, SessionResumeHelper4,
        SessionResumeHelper5, SessionResumeHelper6, SessionResumeHelper7, SessionResumeHelper8,
        SessionResumeHelper9, SessionResumeHelper10, SessionResumeHelper11)}


class SessionResumeHelper:
    """Resumes checkpoints of any format: decodes them and hands them to the helper of their version.

    Parameters as :class:`FormatResumeHelper`.
    """

    def __init__(self, job_list: Iterable[Task], flags: Iterable[str] | None = None,
                 location: str | None = None) -> None:
        self.job_list = list(job_list)
        self.flags = frozenset(flags or ())
        self.location = location

    def resume(self, data: bytes, early_cb: Callable[[SessionState], Any] | None = None) -> SessionState:
        """Resume the session saved in ``data`` (see :meth:`FormatResumeHelper.resume_json`).

        :raises CorruptedSessionError: if ``data`` cannot be decoded.
        :raises IncompatibleSessionError: for an unsupported version or a malformed structure.
        """
        return self.resume_json(loads(data), early_cb)

    def resume_json(self, json_repr: Any, early_cb: Callable[[SessionState], Any] | None = None
                    ) -> SessionState:
        """Resume a decoded checkpoint of any supported format."""
        version, _ = check_root(json_repr)
        return RESUME_HELPERS[version](self.job_list, self.flags, self.location).resume_json(
            json_repr, early_cb)


__all__ = [
    "FLAG_DISCARD_INCOMPATIBLE_JOBS", "FLAG_FILE_REFERENCE_CHECKS", "FLAG_IGNORE_JOB_CHECKSUMS",
    "BrokenReferenceToExternalFile", "CorruptedSessionError", "FormatPeekHelper", "FormatResumeHelper",
    "IncompatibleJobError", "IncompatibleSessionError", "PEEK_HELPERS", "RESUME_HELPERS",
    "ResumeDiscardQualifier", "SavedSession", "SessionPeekHelper", "SessionPeekHelper1",
    "SessionPeekHelper2", "SessionPeekHelper3", "SessionPeekHelper4", "SessionPeekHelper5",
    "SessionPeekHelper6", "SessionPeekHelper7", "SessionPeekHelper8", "SessionPeekHelper9",
    "SessionPeekHelper10", "SessionPeekHelper11", "SessionResumeError", "SessionResumeHelper",
    "SessionResumeHelper1", "SessionResumeHelper2", "SessionResumeHelper3", "SessionResumeHelper4",
    "SessionResumeHelper5", "SessionResumeHelper6", "SessionResumeHelper7", "SessionResumeHelper8",
    "SessionResumeHelper9", "SessionResumeHelper10", "SessionResumeHelper11", "job_id", "parse",
    "parse_metadata",
]
