"""The record format: the bytes a store keeps for one object.

Record format (version 2)
-------------------------
A record is one ASCII header line followed by the payload::

    GC3S 2 pickle4 gc3session.task:Task TERMINATED {"jobname":"align-1",...}\\n<payload>

The fields are: a magic word, the record format version, the serializer name
(``pickle4``: pickle protocol 4, pinned so that every Python >= 3.4 can read
it, never "highest available"), the ``module:qualname`` of the object's
class (so a load failure can say which class is missing, and tools can list a
store without importing user code), the task state (``-`` for objects that
have none) and the task's *summary*: a JSON object, ASCII-only, that says
what ``gsession list`` and ``report`` show (:func:`task_summary`), ``{}`` for
objects that are not tasks.  The header is at most :data:`MAX_HEADER` bytes.
Records of version 1 (written before the summary existed: the same header
without it) are still read; their summary is empty until they are saved
again.

The payload of ``pickle4`` is two consecutive pickles: first the constructor
arguments of the object (``cls.__new__(cls, *args)``), then its state (what
``__getstate__`` returns, plus list and dict items for container subclasses).
Splitting them lets the loader create the (empty) object and register it
under its id *before* unpickling its state, so reference cycles between
records terminate and every id maps to one object within a load.

The header lets tools list a store (ids, classes, states) without
unpickling anything; :func:`parse_header` reads it.  How objects become the
payload is :mod:`~gc3session.persistence.serialization`'s job, how the
payload becomes objects again :mod:`~gc3session.persistence.decoding`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from .idfactory import Id

#: The pinned pickle protocol of records.
PICKLE_PROTOCOL = 4
#: Current record format version (version 1 is read too).
FORMAT_VERSION = 2
MAGIC = b"GC3S"
SERIALIZER = "pickle4"
#: The longest header read (the summary lists a collection's children).
MAX_HEADER = 16 << 20
#: Text fields of a summary (job names, messages) are cut to this many characters.
SUMMARY_TEXT_LIMIT = 200
#: The state field of an object that has no state.
NO_STATE = "-"
#: The tag of a reference to another record in a payload: ``(REF_TAG, id)``.
REF_TAG = "gc3s"


@dataclass
class Record:
    """One object encoded for storage (``summary``: the JSON of its header)."""

    id: Id
    data: bytes
    obj: Any
    state: str | None
    cls: str
    summary: bytes = b"{}"


def task_state(obj: Any) -> str | None:
    """The ``execution.state`` of a task, or None for objects without one."""
    execution = getattr(obj, "execution", None)
    state = getattr(execution, "state", None)
    return str(state) if state is not None else None


def class_path(cls: type) -> str:
    """``module:qualname`` of a class, the form written in record headers."""
    return f"{cls.__module__}:{cls.__qualname__}"


def task_summary(obj: Any, state: str | None) -> dict[str, Any]:
    """What ``gsession list`` and ``report`` say about a task in ``state``, from its attributes.

    Keys (None where the task does not say; a header leaves those out): ``jobname``;
    ``exitcode`` and ``signal``; ``submitted``, ``started`` and ``ended``,
    the epoch times the task last entered SUBMITTED, RUNNING and TERMINATED
    (``ended`` only while it is TERMINATED); ``changed``, when its state last
    changed; ``attempts``, how many times it ran; ``stdout`` and ``stderr``,
    the paths of its output files; ``info``, its newest history message;
    ``children``, the ids of a collection's tasks.  Text is cut to
    :data:`SUMMARY_TEXT_LIMIT` characters.  Objects without ``execution``
    (not tasks) have an empty summary.  Runs on every save: a few attribute
    reads, no I/O.
    """
    execution = getattr(obj, "execution", None)
    if execution is None:
        return {}
    stamps = getattr(execution, "timestamp", None) or {}
    output_dir = getattr(obj, "output_dir", None)
    messages = getattr(getattr(execution, "history", None), "_messages", None)
    children = getattr(obj, "tasks", None)
    jobname = getattr(obj, "jobname", None)
    return {
        "jobname": None if jobname is None else str(jobname)[:SUMMARY_TEXT_LIMIT],
        "exitcode": getattr(execution, "exitcode", None),
        "signal": getattr(execution, "signal", None),
        "submitted": stamps.get("SUBMITTED"),
        "started": stamps.get("RUNNING"),
        "ended": stamps.get("TERMINATED") if state == "TERMINATED" else None,
        "changed": getattr(execution, "state_last_changed", None),
        "attempts": getattr(execution, "attempt", 0) or 0,
        "stdout": _output(output_dir, getattr(obj, "stdout", None)),
        "stderr": _output(output_dir, getattr(obj, "stderr", None)),
        "info": str(messages[-1][0])[:SUMMARY_TEXT_LIMIT] if messages else None,
        "children": None if children is None else
        [str(getattr(child, "persistent_id", None)) for child in children],
    }


def _output(directory: Any, name: Any) -> str | None:
    if not isinstance(name, str) or not isinstance(directory, str):
        return None
    return f"{directory}/{name}" if directory else name


#: The keys of a task summary (:func:`task_summary`), each None unless a summary says otherwise.
SUMMARY_KEYS = ("jobname", "exitcode", "signal", "submitted", "started", "ended", "changed",
                "attempts", "stdout", "stderr", "info", "children")
_NO_SUMMARY = dict.fromkeys(SUMMARY_KEYS)


def summary_dict(cls: str, state: str | None, summary_json: bytes) -> dict[str, Any]:
    """A record's summary as tools get it: its ``class`` and ``state``, then every key of
    :data:`SUMMARY_KEYS` (None where the header's JSON leaves it out)."""
    try:
        summary = json.loads(summary_json)
    except ValueError:
        summary = {}
    return {"class": cls, "state": state, **_NO_SUMMARY,
            **(summary if isinstance(summary, dict) else {})}


def summary_dicts(entries: list[tuple[str, str | None, bytes]]) -> list[dict[str, Any]]:
    """:func:`summary_dict` of many ``(class, state, summary JSON)`` entries at once.

    All the JSON is decoded in one call (one array), which for 100,000
    summaries is several times faster than a call each; if one of them is
    damaged, each is decoded alone and the damaged ones are empty.
    """
    try:
        decoded = json.loads(b"[" + b",".join(summary for _, _, summary in entries) + b"]")
    except ValueError:
        return [summary_dict(cls, state, summary) for cls, state, summary in entries]
    return [{"class": cls, "state": state, **_NO_SUMMARY,
             **(summary if isinstance(summary, dict) else {})}
            for (cls, state, _), summary in zip(entries, decoded)]


_SUMMARY_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, default=str)
# The C encoder behind _SUMMARY_ENCODER, made once: JSONEncoder.encode builds
# a new one on every call, which costs as much as the encoding of a summary.
# (No check for circular references: a summary holds numbers, strings and a
# list of strings.)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)  # None without the C accelerator
_c_encode = None if _c_make_encoder is None else _c_make_encoder(
    None, str, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)


def encode_summary(summary: dict[str, Any]) -> bytes:
    """The JSON of a summary as it goes into a header: compact, ASCII, one line.

    Keys whose value is None are left out (readers take a missing key as None).
    """
    present = {key: value for key, value in summary.items() if value is not None}
    if _c_encode is None:
        return _SUMMARY_ENCODER.encode(present).encode("ascii")
    return "".join(_c_encode(present, 0)).encode("ascii")


_HEADER_PREFIX = b"%s %d %s " % (MAGIC, FORMAT_VERSION, SERIALIZER.encode())


def header_line(cls: type, state: str | None, summary: bytes = b"{}") -> bytes:
    """The header line (newline included) of a record of class ``cls`` in ``state``."""
    return b"%s%s %s %s\n" % (_HEADER_PREFIX, class_path(cls).encode(),
                              (state or NO_STATE).encode(), summary)


class Header(NamedTuple):
    """The parsed header line of a record (``summary_json``: the raw JSON, ``b"{}"`` in version 1).

    A named tuple: every load parses a header, and a tuple is made at a
    fraction of the cost of a frozen dataclass.
    """

    version: int
    serializer: str
    cls: str
    state: str | None
    size: int
    summary_json: bytes = b"{}"

    @property
    def summary(self) -> dict[str, Any]:
        """The record's summary: ``class``, ``state`` and the keys of :func:`task_summary`."""
        return summary_dict(self.cls, self.state, self.summary_json)


_CURRENT = (str(FORMAT_VERSION).encode(), SERIALIZER.encode())


def parse_header(data: bytes) -> Header:
    """Parse a record header (format version 1 or 2).

    :raises ValueError: with a description of what is wrong (the caller turns
        it into a :class:`CorruptRecordError` naming the id and location).
    """
    end = data.find(b"\n", 0, MAX_HEADER)
    if end < 0:
        raise ValueError("no record header (empty, truncated or not a gc3session record)")
    fields = data[:end].split(b" ", 5)
    if len(fields) not in (5, 6) or fields[0] != MAGIC:
        raise ValueError("not a gc3session record header")
    try:
        if len(fields) == 6 and (fields[1], fields[2]) == _CURRENT:
            # the header of every record written by this version: no number to parse
            version, serializer = FORMAT_VERSION, SERIALIZER
        else:
            version, serializer = int(fields[1]), fields[2].decode("ascii")
        cls, state = fields[3].decode("ascii"), fields[4].decode("ascii")
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"malformed record header: {err}") from err
    if version not in (1, FORMAT_VERSION) or len(fields) != (5 if version == 1 else 6):
        raise ValueError(f"unsupported record format version {fields[1][:20]!r}")
    if serializer != SERIALIZER:
        raise ValueError(f"unknown serializer {serializer!r}")
    summary = fields[5] if version == 2 else b"{}"
    if summary[:1] != b"{" or not summary.isascii():
        raise ValueError("malformed record header: the summary is not a JSON object")
    return Header(version, serializer, cls, None if state == NO_STATE else state, end + 1, summary)


__all__ = ["FORMAT_VERSION", "Header", "MAGIC", "MAX_HEADER", "NO_STATE", "PICKLE_PROTOCOL",
           "REF_TAG", "Record", "SERIALIZER", "SUMMARY_TEXT_LIMIT", "class_path", "encode_summary",
           "SUMMARY_KEYS", "header_line", "parse_header", "summary_dict", "summary_dicts", "task_state",
           "task_summary"]
