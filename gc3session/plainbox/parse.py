"""Reading the ``session`` object of a checkpoint, format by format, into checked values.

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

Every value is checked before anything is built from it: undecodable bytes
and values of the wrong type raise :class:`CorruptedSessionError`, a missing
key or object :class:`MalformedSessionError` (a corrupted *and* incompatible
session).  Unlike PlainBox, no ``KeyError``, ``TypeError``, ``EOFError`` or
``zlib.error`` ever escapes.  Matching the saved jobs to the application's is
:mod:`gc3session.plainbox.resume`'s part.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InvalidValue
from .envelope import METADATA_FIELDS, decode
from .errors import CorruptedSessionError, MalformedSessionError
from .metadata import SessionMetaData
from .results import OUTCOMES, STREAMS, DiskJobResult, IOLogRecord, JobResult, MemoryJobResult

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


def parse_session(version: int, session: dict[str, Any], location: str | None = None) -> SavedSession:
    """Check the ``session`` object of a format ``version`` checkpoint, without touching any job or file.

    :param location: the storage directory that relative IO log names
        (format 5 on) are joined to.
    :raises SessionResumeError: (a subclass) for anything that cannot be read.
    :raises InvalidValue: for a relative IO log name when ``location`` is None.
    """
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


def parse(data: bytes, location: str | None = None) -> SavedSession:
    """Decode and check checkpoint bytes (any format) without touching any job or file.

    :raises SessionResumeError: (a subclass) for anything that cannot be read.
    """
    version, session = decode(data)
    return parse_session(version, session, location)


__all__ = ["SavedSession", "parse", "parse_metadata", "parse_session"]
