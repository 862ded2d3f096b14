"""Job results as PlainBox keeps them, and the IO log files they point to.

A result records one run of a job: the ``outcome`` string (kept verbatim,
one of :data:`OUTCOMES` or None), ``return_code``, ``execution_duration``
(seconds, a float), ``comments``, and the job's output as IO log records
``(delay, stream_name, data)``.  The output lives either in the result
(:class:`MemoryJobResult`, inlined in the checkpoint as base64) or in a file
(:class:`DiskJobResult`, only its name is in the checkpoint).

IO log file format (PlainBox's ``*.record.gz``): gzip of UTF-8 text, one
JSON array per line, ``[delay, "stdout"|"stderr", "<base64 data>"]``, compact
separators, each line ending in ``\\n``; ``delay`` is the number of seconds
since the previous record.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from typing import Any, Iterable, Mapping, NamedTuple

from .. import fsio
from ..exceptions import CorruptRecordError, InvalidType, InvalidValue

#: The outcomes PlainBox accepts (None means "no outcome yet").
OUTCOMES = ("pass", "fail", "skip", "skipped-dependency", "skipped-resource", "skipped-manifest",
            "not-supported", "not-implemented", "undecided", "crash")
#: The streams an IO log record can come from.
STREAMS = ("stdout", "stderr")
#: The file name suffix of IO log files.
IO_LOG_SUFFIX = ".record.gz"


class IOLogRecord(NamedTuple):
    """One chunk of a job's output: seconds since the previous chunk, stream, bytes."""

    delay: float
    stream_name: str
    data: bytes


def make_record(delay: Any, stream_name: Any, data: Any) -> IOLogRecord:
    """Check and build one :class:`IOLogRecord`.

    :raises InvalidValue: for a negative delay or an unknown stream.
    :raises InvalidType: for a delay that is not a number or data that is not bytes.
    """
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        raise InvalidType(f"IO log delay must be a number, not {type(delay).__name__}")
    if delay < 0:
        raise InvalidValue(f"IO log delay cannot be negative ({delay})")
    if stream_name not in STREAMS:
        raise InvalidValue(f"IO log stream must be one of {', '.join(STREAMS)}, not {stream_name!r}")
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidType(f"IO log data must be bytes, not {type(data).__name__}")
    return IOLogRecord(delay, stream_name, bytes(data))


class JobResult:
    """What one run of a job gave; built from a mapping, as PlainBox's results are.

    ``JobResult({"outcome": "pass", "return_code": 0})``.  Missing keys are
    None.  A result that holds nothing (every field None, no output) is
    *hollow*: it is not kept in a job's history.  Results are immutable
    (setting a field raises ``AttributeError``): a history records what
    happened, and a checkpoint encodes each result once, not at every save.

    :raises InvalidValue: for an outcome outside :data:`OUTCOMES`.
    :raises InvalidType: for a field of the wrong type.
    """

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        data = dict(data or {})
        outcome = data.get("outcome")
        if outcome is not None and outcome not in OUTCOMES:
            raise InvalidValue(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)} or None")
        self.outcome: str | None = outcome
        self.return_code: int | None = _optional(data, "return_code", int)
        duration = _optional(data, "execution_duration", (int, float))
        self.execution_duration: float | None = None if duration is None else float(duration)
        self.comments: str | None = _optional(data, "comments", str)
        self._set_output(data)
        #: Encodings of this result kept by the checkpoint writer (by format).
        self.encoded: dict[Any, Any] = {}
        self._frozen = True

    def _set_output(self, data: Mapping[str, Any]) -> None:
        """Subclasses take their output fields from ``data`` here."""

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_frozen"):
            raise AttributeError(f"{type(self).__name__} is immutable: record a new result instead")
        object.__setattr__(self, name, value)

    def _fields(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "return_code": self.return_code,
                "execution_duration": self.execution_duration, "comments": self.comments}

    @property
    def is_hollow(self) -> bool:
        """True when the result holds no data at all."""
        return all(value is None for value in self._fields().values())

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._fields() == self._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(tuple(self._fields().items()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._fields().items() if v is not None)
        return f"<{type(self).__name__} {shown}>"


class MemoryJobResult(JobResult):
    """A result whose output (``io_log``, a tuple of :class:`IOLogRecord`) is kept inline."""

    def _set_output(self, data: Mapping[str, Any]) -> None:
        records: Iterable[Any] = data.get("io_log") or ()
        self.io_log: tuple[IOLogRecord, ...] = tuple(make_record(*record) for record in records)

    def _fields(self) -> dict[str, Any]:
        fields = super()._fields()
        fields["io_log"] = self.io_log or None
        return fields


class DiskJobResult(JobResult):
    """A result whose output is in the IO log file ``io_log_filename``."""

    def _set_output(self, data: Mapping[str, Any]) -> None:
        self.io_log_filename: str | None = _optional(data, "io_log_filename", str)

    def _fields(self) -> dict[str, Any]:
        fields = super()._fields()
        fields["io_log_filename"] = self.io_log_filename
        return fields

    @property
    def io_log(self) -> tuple[IOLogRecord, ...]:
        """The records of the IO log file (read on each access; none without a file name)."""
        return () if self.io_log_filename is None else read_io_log(self.io_log_filename)


def _optional(data: Mapping[str, Any], key: str, types: Any) -> Any:
    value = data.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
        raise InvalidType(f"result field {key!r} cannot be a {type(value).__name__}")
    return value


def encode_io_log(records: Iterable[IOLogRecord]) -> bytes:
    """The bytes of an IO log file holding ``records``."""
    lines = [json.dumps([r.delay, r.stream_name, base64.standard_b64encode(r.data).decode("ascii")],
                        separators=(",", ":")) + "\n" for r in records]
    return gzip.compress("".join(lines).encode("utf-8"), compresslevel=6)


def write_io_log(path: str, records: Iterable[IOLogRecord], *, durable: bool = True) -> None:
    """Write an IO log file atomically (and durably unless told not to), replacing any of that name."""
    fsio.atomic_write(path, encode_io_log(records), durable=durable, mode=0o644)


def read_io_log(path: str) -> tuple[IOLogRecord, ...]:
    """Read the records of an IO log file.

    :raises CorruptRecordError: naming the file if it is not a valid IO log.
    :raises OSError: if it cannot be read.
    """
    raw = fsio.read_bytes(path)
    try:
        text = gzip.decompress(raw).decode("utf-8")
        return tuple(make_record(delay, stream, base64.b64decode(data, validate=True))
                     for delay, stream, data in (json.loads(line) for line in text.splitlines()))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError, TypeError,
            binascii.Error) as err:
        raise CorruptRecordError(f"{path} is not a valid IO log file: {err}",
                                 location=path, cause=str(err)) from err


__all__ = ["DiskJobResult", "IOLogRecord", "IO_LOG_SUFFIX", "JobResult", "MemoryJobResult",
           "OUTCOMES", "STREAMS", "encode_io_log", "make_record", "read_io_log", "write_io_log"]
