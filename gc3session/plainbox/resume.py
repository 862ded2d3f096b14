"""Resume: rebuild a session state from checkpoint bytes of format versions 1 to 11.

Resuming is done in two phases so that a bad checkpoint never changes
anything on disk: first the bytes are decoded and *every* value is checked
(:func:`parse`), and the saved jobs are checked against the jobs the
application defines now; only then is the state opened and filled.

What each version holds (each adds to the one before):

====  =======================================================================
 1    ``jobs``, ``results`` (the current result of every job), ``desired_job_list``,
      ``metadata`` {``title``, ``flags``, ``running_job_name``}
 2    ``metadata.app_blob`` (base64 text or null)
 3    ``metadata.app_id``
 4    ``results`` holds each job's whole history
 5    ``io_log_filename`` may be relative to the storage directory
 6    ``mandatory_job_list`` is read; ``metadata.custom_joblist``, ``rejected_jobs``
      (optional: PlainBox 0.38 wrote version 6 without them)
 7    ``metadata.last_job_start_time``
 8    ``system_information`` (an object)
 9-10 no change to what is read
 11   ``metadata.remaining_todo_jobs``
====  =======================================================================

Errors: undecodable bytes and values of the wrong type raise
:class:`CorruptedSessionError`; a missing key or object
:class:`MalformedSessionError` (a corrupted *and* incompatible session); a
version outside 1..11 :class:`IncompatibleSessionError`; a saved job that the
application does not define, or whose checksum changed,
:class:`IncompatibleJobError` -- unless ``flags`` holds
:data:`FLAG_IGNORE_JOB_CHECKSUMS` (a changed job is kept, with its results,
under its new definition) or :data:`FLAG_DISCARD_INCOMPATIBLE_JOBS` (unknown
and changed jobs are dropped with their results).  Unlike PlainBox, no
``KeyError``, ``TypeError``, ``EOFError`` or ``zlib.error`` ever escapes.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..exceptions import InvalidType, InvalidValue
from ..task import Task
from .envelope import METADATA_FIELDS, decode
from .errors import (
    BrokenReferenceToExternalFile,
    CorruptedSessionError,
    IncompatibleJobError,
    MalformedSessionError,
)
from .metadata import SessionMetaData
from .results import OUTCOMES, STREAMS, DiskJobResult, IOLogRecord, JobResult, MemoryJobResult
from .state import SessionState

#: Keep a job whose checksum changed (and its results) instead of raising.
FLAG_IGNORE_JOB_CHECKSUMS = "ignore-job-checksums"
#: Drop jobs that are unknown or whose checksum changed, with their results.
FLAG_DISCARD_INCOMPATIBLE_JOBS = "discard-incompatible-jobs"
#: Check that every IO log file named by a result exists.
FLAG_FILE_REFERENCE_CHECKS = "file-reference-checks"

_MISSING = object()


@dataclass
class SavedSession:
    """Everything a checkpoint holds, checked, before it is matched to any job."""

    version: int
    metadata: SessionMetaData
    jobs: dict[str, str] = field(default_factory=dict)
    results: dict[str, list[JobResult]] = field(default_factory=dict)
    desired_job_list: list[str] = field(default_factory=list)
    mandatory_job_list: list[str] = field(default_factory=list)
    system_information: dict[str, Any] = field(default_factory=dict)


def _get(obj: dict[str, Any], key: str, types: tuple[type, ...], nullable: bool = False) -> Any:
    """``obj[key]``, checked: missing is malformed, a wrong type is corruption."""
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        raise MalformedSessionError(f"Missing value for key {key!r}")
    if value is None:
        if nullable:
            return None
        raise CorruptedSessionError(f"Value of key {key!r} cannot be None")
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise CorruptedSessionError(
            f"Value of key {key!r} is of incorrect type {type(value).__name__}")
    return value


def _strings(values: list[Any], what: str) -> list[str]:
    if not all(isinstance(value, str) for value in values):
        raise CorruptedSessionError(f"Each {what} must be a string")
    return list(values)


def parse_metadata(version: int, session: dict[str, Any]) -> SessionMetaData:
    """The metadata of a ``session`` object of format ``version``."""
    meta = _get(session, "metadata", (dict,))
    values = {key: _get(meta, key, types, nullable)
              for since, key, types, nullable, required in METADATA_FIELDS
              if version >= since and (required or key in meta)}
    values["flags"] = _strings(values["flags"], "flag")
    if "rejected_jobs" in values:
        values["rejected_jobs"] = _strings(values["rejected_jobs"], "rejected job id")
    if values.get("app_blob") is not None:
        try:
            values["app_blob"] = base64.b64decode(values["app_blob"].encode("ascii"), validate=True)
        except UnicodeEncodeError as err:
            raise CorruptedSessionError("app_blob is not ASCII") from err
        except binascii.Error as err:
            raise CorruptedSessionError("Cannot base64 decode app_blob") from err
    if values.get("last_job_start_time") is not None:
        values["last_job_start_time"] = float(values["last_job_start_time"])
    return SessionMetaData(**values)


def _parse_record(index: int, record: Any) -> IOLogRecord:
    if not isinstance(record, list):
        raise CorruptedSessionError(f"IO log record {index} is of incorrect type {type(record).__name__}")
    if len(record) < 3:
        raise MalformedSessionError(f"Missing value for key {len(record)} of IO log record {index}")
    delay, stream, data = record[:3]
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        raise CorruptedSessionError(f"IOLogRecord has invalid delay {delay!r}")
    if delay < 0:
        raise CorruptedSessionError(f"IOLogRecord delay cannot be negative ({delay})")
    if stream not in STREAMS:
        raise CorruptedSessionError(f"IOLogRecord has invalid stream name {stream!r}")
    if not isinstance(data, str):
        raise CorruptedSessionError(f"IOLogRecord data is of incorrect type {type(data).__name__}")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except UnicodeEncodeError as err:
        raise CorruptedSessionError(f"record data {data[:40]!r} is not ASCII") from err
    except binascii.Error as err:
        raise CorruptedSessionError(f"record data {data[:40]!r} is not correct base64") from err
    return IOLogRecord(delay, stream, raw)


def _parse_result(obj: Any, version: int, location: str | None) -> JobResult:
    if not isinstance(obj, dict):
        raise CorruptedSessionError(f"Value of result is of incorrect type {type(obj).__name__}")
    outcome = _get(obj, "outcome", (str,), nullable=True)
    if outcome is not None and outcome not in OUTCOMES:
        allowed = sorted([*OUTCOMES, None], key=str)
        raise CorruptedSessionError(f"Value for key 'outcome' not in allowed set {allowed!r}")
    fields = {"outcome": outcome,
              "comments": _get(obj, "comments", (str,), nullable=True),
              "return_code": _get(obj, "return_code", (int,), nullable=True),
              "execution_duration": _get(obj, "execution_duration", (float, int), nullable=True)}
    if "io_log_filename" in obj:
        name = _get(obj, "io_log_filename", (str,))
        if version >= 5 and not os.path.isabs(name):
            if location is None:
                raise InvalidValue(f"IO log file name {name!r} is relative to the storage:"
                                   " resuming it needs the storage location")
            name = os.path.join(location, name)
        return DiskJobResult({**fields, "io_log_filename": name})
    records = _get(obj, "io_log", (list,))
    return MemoryJobResult({**fields, "io_log": [_parse_record(i, r) for i, r in enumerate(records)]})


def parse(data: bytes, location: str | None = None) -> SavedSession:
    """Decode and check checkpoint bytes without touching any job or file.

    :raises SessionResumeError: (a subclass) for anything that cannot be read.
    """
    version, session = decode(data)
    saved = SavedSession(version, parse_metadata(version, session))
    jobs = _get(session, "jobs", (dict,))
    for job_id, checksum in jobs.items():
        if not isinstance(checksum, str):
            raise CorruptedSessionError(
                f"Value of key {job_id!r} is of incorrect type {type(checksum).__name__}")
    saved.jobs = dict(jobs)
    for job_id, entries in _get(session, "results", (dict,)).items():
        if job_id not in jobs:
            raise MalformedSessionError(f"job {job_id!r} has results but no checksum in 'jobs'",
                                        id=job_id)
        if not isinstance(entries, list):
            raise CorruptedSessionError(
                f"Value of key {job_id!r} is of incorrect type {type(entries).__name__}")
        history = [_parse_result(entry, version, location) for entry in entries]
        saved.results[job_id] = [result for result in history if not result.is_hollow]
    saved.desired_job_list = _strings(_get(session, "desired_job_list", (list,)), "job id")
    if version >= 6:
        saved.mandatory_job_list = _strings(_get(session, "mandatory_job_list", (list,)), "job id")
    if version >= 8:
        saved.system_information = _get(session, "system_information", (dict,))
    return saved


class SessionPeekHelper:
    """Reads only the metadata of a checkpoint (cheap: no job is matched or rebuilt)."""

    def peek(self, data: bytes) -> SessionMetaData:
        """The metadata saved in ``data``.

        :raises SessionResumeError: (a subclass) if the envelope or the
            metadata cannot be read.
        """
        version, session = decode(data)
        return parse_metadata(version, session)


class SessionResumeHelper:
    """Rebuilds a :class:`SessionState` from checkpoint bytes.

    :param job_list: the jobs (tasks) the application defines now; every
        saved job is matched to one of them by id and checksum.
    :param flags: resume flags (``FLAG_*`` of this module); unknown ones are ignored.
    :param location: the storage directory the state lives in (and that
        relative IO log names refer to); None restores into a detached state
        (:meth:`SessionState.detached`).
    """

    def __init__(self, job_list: Iterable[Task], flags: Iterable[str] | None = None,
                 location: str | None = None) -> None:
        self.job_list = list(job_list)
        self.flags = frozenset(flags or ())
        self.location = location

    def resume(self, data: bytes, early_cb: Callable[[SessionState], Any] | None = None) -> SessionState:
        """Resume the session saved in ``data`` and return its state.

        The state holds the application's job objects for every job saved in
        the checkpoint or named in its desired and mandatory lists, in the
        order of ``job_list``, with their result histories, and the saved
        metadata.  ``early_cb(state)`` is called once the checkpoint has been
        checked, before the state is filled; if it returns a state, that one
        is filled instead.

        :raises CorruptedSessionError: if ``data`` cannot be decoded.
        :raises IncompatibleSessionError: for an unsupported version or a malformed structure.
        :raises IncompatibleJobError: if a saved job is unknown or changed (see the flags).
        :raises BrokenReferenceToExternalFile: with ``file-reference-checks``,
            if a result names a missing IO log file.
        """
        saved = parse(data, self.location)
        units = self._units()
        keep, rewrite = self._match_jobs(saved, units)
        lists = {name: self._known(name, getattr(saved, name), units)
                 for name in ("desired_job_list", "mandatory_job_list")}
        wanted = set(keep) | set(lists["desired_job_list"]) | set(lists["mandatory_job_list"])
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
            state._take_jobs([job for name, job in units.items() if name in wanted], changed=rewrite)
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
            name = getattr(job, "jobname", None)
            if not isinstance(name, str):
                raise InvalidType(f"job_list holds jobs with a jobname, not {job!r}")
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


__all__ = ["FLAG_DISCARD_INCOMPATIBLE_JOBS", "FLAG_FILE_REFERENCE_CHECKS", "FLAG_IGNORE_JOB_CHECKSUMS",
           "SavedSession", "SessionPeekHelper", "SessionResumeHelper", "parse", "parse_metadata"]
