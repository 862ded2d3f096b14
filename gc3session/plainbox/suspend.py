"""Suspend: turn a session state into checkpoint bytes (format version 11 by default).

The ``session`` object written (keys as PlainBox names them)::

    jobs                {job id: checksum}, every job of the session
    results             {job id: [result, ...]}, oldest first, only jobs with results
    desired_job_list    [job id, ...], mandatory jobs first, no repeats
    mandatory_job_list  [job id, ...]
    metadata            title, flags (sorted), running_job_name, app_blob
                        (base64 text, null for None), app_id, custom_joblist,
                        rejected_jobs, last_job_start_time, remaining_todo_jobs
    system_information  {tool: {...}}, kept as it was given

A result is ``{"outcome", "return_code", "execution_duration", "comments"}``
plus either ``"io_log"`` (``[[delay, stream, base64 data], ...]``, output kept
inline) or ``"io_log_filename"`` (output in a file, named relative to the
storage directory when ``session_dir`` is given and the file is inside it).
Durations and times are written as floats, as PlainBox's reader requires.

An older version can be asked for, to hand a session to an older PlainBox
(0.38 reads versions 1 to 6), with ``SessionSuspendHelper(version)`` or the
helper named after it (``SessionSuspendHelper1`` to ``SessionSuspendHelper11``,
as in PlainBox): it leaves out the metadata fields and
``system_information`` that version did not have, writes absolute IO log
names before version 5, and before version 4 the current result of every
job instead of the histories.  Version 6 writes ``custom_joblist`` and
``rejected_jobs`` only when they hold something (PlainBox 0.38's version 6
had neither, so an empty session is byte for byte what it writes).
"""

from __future__ import annotations

import base64
import os
from typing import Any

from ..exceptions import InvalidValue
from .envelope import CURRENT_VERSION, METADATA_FIELDS, SUPPORTED_VERSIONS, encode
from .results import DiskJobResult, JobResult, MemoryJobResult
from .state import SessionState


class SessionSuspendHelper:
    """Writes checkpoints in format ``version`` (default :attr:`VERSION`: the current one, 11).

    :raises InvalidValue: for a version outside 1 to 11.
    """

    VERSION = CURRENT_VERSION

    def __init__(self, version: int | None = None) -> None:
        version = self.VERSION if version is None else version
        if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
            raise InvalidValue(f"cannot write checkpoint format version {version!r}; one of 1 to 11",
                               version=version)
        self.version = version

    def suspend(self, state: SessionState, session_dir: str | None = None) -> bytes:
        """The checkpoint bytes of ``state`` (gzip of UTF-8 JSON).

        :param session_dir: the storage directory; IO log file names inside
            it are written relative to it (version 5 on), so the storage can
            be moved.
        """
        return encode(self.session_repr(state, session_dir), self.version)

    def session_repr(self, state: SessionState, session_dir: str | None = None) -> dict[str, Any]:
        """The ``session`` object of the checkpoint, before encoding (shares the results' cached parts)."""
        relative_to = session_dir if self.version >= 5 else None
        jobs: dict[str, str] = {}
        results: dict[str, list[dict[str, Any]]] = {}
        for name, job_state in state.job_state_map.items():
            jobs[name] = job_state.checksum
            if self.version < 4:
                results[name] = [self._result_repr(job_state.result, relative_to)]
            elif job_state.result_history:
                results[name] = [self._result_repr(r, relative_to) for r in job_state.result_history]
        session = {"jobs": jobs, "results": results,
                   "desired_job_list": state.desired_job_list,
                   "mandatory_job_list": state.mandatory_job_list,
                   "metadata": self._metadata_repr(state)}
        if self.version >= 8:
            session["system_information"] = state.system_information
        return session

    def _metadata_repr(self, state: SessionState) -> dict[str, Any]:
        meta = state.metadata
        blob = meta.app_blob
        start = meta.last_job_start_time
        values = {"title": meta.title, "flags": sorted(meta.flags),
                  "running_job_name": meta.running_job_name,
                  "app_blob": None if blob is None else base64.standard_b64encode(blob).decode("ascii"),
                  "app_id": meta.app_id, "custom_joblist": bool(meta.custom_joblist),
                  "rejected_jobs": list(meta.rejected_jobs),
                  "last_job_start_time": None if start is None else float(start),
                  "remaining_todo_jobs": bool(meta.remaining_todo_jobs)}
        defaults = {"custom_joblist": False, "rejected_jobs": []}
        return {key: values[key] for since, key, _, _, required in METADATA_FIELDS
                if self.version >= since
                and (required or self.version > since or values[key] != defaults.get(key))}

    @staticmethod
    def _result_repr(result: JobResult, session_dir: str | None) -> dict[str, Any]:
        """The JSON object of ``result``, encoded once per storage directory and kept.

        Results are immutable, so a checkpoint re-encodes only the results
        recorded since the previous one (base64 of the output is most of the
        cost of a result).
        """
        encoded = result.encoded.get(session_dir)
        if encoded is None:
            encoded = result.encoded[session_dir] = SessionSuspendHelper._encode_result(result, session_dir)
        return encoded

    @staticmethod
    def _encode_result(result: JobResult, session_dir: str | None) -> dict[str, Any]:
        duration = result.execution_duration
        out: dict[str, Any] = {"outcome": result.outcome, "return_code": result.return_code,
                               "execution_duration": None if duration is None else float(duration),
                               "comments": result.comments}
        if isinstance(result, DiskJobResult) and result.io_log_filename is not None:
            name = result.io_log_filename
            if session_dir is not None and os.path.isabs(name):
                relative = os.path.relpath(name, session_dir)
                if not relative.startswith(os.pardir + os.sep) and relative != os.pardir:
                    name = relative
            out["io_log_filename"] = name
        else:
            records = result.io_log if isinstance(result, MemoryJobResult) else ()  # no file: no output
            out["io_log"] = [[record.delay, record.stream_name,
                              base64.standard_b64encode(record.data).decode("ascii")]
                             for record in records]
        return out


class SessionSuspendHelper1(SessionSuspendHelper):
    """Writes format 1: current results, title, flags and running job only."""

    VERSION = 1


class SessionSuspendHelper2(SessionSuspendHelper):
    """Writes format 2: adds ``app_blob``."""

    VERSION = 2


class SessionSuspendHelper3(SessionSuspendHelper):
    """Writes format 3: adds ``app_id``."""

    VERSION = 3


class SessionSuspendHelper4(SessionSuspendHelper):
    """Writes format 4: whole result histories."""

    VERSION = 4


class SessionSuspendHelper5(SessionSuspendHelper):
    """Writes format 5: IO log names relative to the storage."""

    VERSION = 5


class SessionSuspendHelper6(SessionSuspendHelper):
    """Writes format 6: the newest one PlainBox releases before 2020 (0.38 among them) read."""

    VERSION = 6


class SessionSuspendHelper7(SessionSuspendHelper):
    """Writes format 7: adds ``last_job_start_time``."""

    VERSION = 7


class SessionSuspendHelper8(SessionSuspendHelper):
    """Writes format 8: adds ``system_information``."""

    VERSION = 8


class SessionSuspendHelper9(SessionSuspendHelper):
    """Writes format 9 (as format 8)."""

    VERSION = 9


class SessionSuspendHelper10(SessionSuspendHelper):
    """Writes format 10 (as format 8)."""

    VERSION = 10


class SessionSuspendHelper11(SessionSuspendHelper):
    """Writes format 11, the current one."""

    VERSION = 11


__all__ = ["SessionSuspendHelper", "SessionSuspendHelper1", "SessionSuspendHelper2",
           "SessionSuspendHelper3", "SessionSuspendHelper4", "SessionSuspendHelper5",
           "SessionSuspendHelper6", "SessionSuspendHelper7", "SessionSuspendHelper8",
           "SessionSuspendHelper9", "SessionSuspendHelper10", "SessionSuspendHelper11"]
