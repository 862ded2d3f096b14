"""The record format: the bytes a store keeps for one object.

Record format (version 1)
-------------------------
A record is one ASCII header line followed by the payload::

    GC3S 1 pickle4 gc3session.task:Task TERMINATED\\n<payload>

The fields are: a magic word, the record format version, the serializer name
(``pickle4``: pickle protocol 4, pinned so that every Python >= 3.4 can read
it, never "highest available"), the ``module:qualname`` of the object's
class (so a load failure can say which class is missing, and tools can list a
store without importing user code) and the task state (``-`` for objects that
have none).  The header is at most :data:`MAX_HEADER` bytes.

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

from dataclasses import dataclass
from typing import Any

from .idfactory import Id

#: The pinned pickle protocol of records.
PICKLE_PROTOCOL = 4
#: Current record format version.
FORMAT_VERSION = 1
MAGIC = b"GC3S"
SERIALIZER = "pickle4"
MAX_HEADER = 512
#: The state field of an object that has no state.
NO_STATE = "-"
#: The tag of a reference to another record in a payload: ``(REF_TAG, id)``.
REF_TAG = "gc3s"


@dataclass
class Record:
    """One object encoded for storage."""

    id: Id
    data: bytes
    obj: Any
    state: str | None
    cls: str


def task_state(obj: Any) -> str | None:
    """The ``execution.state`` of a task, or None for objects without one."""
    execution = getattr(obj, "execution", None)
    state = getattr(execution, "state", None)
    return str(state) if state is not None else None


def class_path(cls: type) -> str:
    """``module:qualname`` of a class, the form written in record headers."""
    return f"{cls.__module__}:{cls.__qualname__}"


def header_line(cls: type, state: str | None) -> bytes:
    """The header line (newline included) of a record of class ``cls`` in ``state``."""
    return b" ".join([MAGIC, str(FORMAT_VERSION).encode(), SERIALIZER.encode(),
                      class_path(cls).encode(), (state or NO_STATE).encode()]) + b"\n"


@dataclass(frozen=True)
class Header:
    """The parsed header line of a record."""

    version: int
    serializer: str
    cls: str
    state: str | None
    size: int


def parse_header(data: bytes) -> Header:
    """Parse a record header.

    :raises ValueError: with a description of what is wrong (the caller turns
        it into a :class:`CorruptRecordError` naming the id and location).
    """
    end = data.find(b"\n", 0, MAX_HEADER)
    if end < 0:
        raise ValueError("no record header (empty, truncated or not a gc3session record)")
    fields = data[:end].split(b" ")
    if len(fields) != 5 or fields[0] != MAGIC:
        raise ValueError("not a gc3session record header")
    try:
        version = int(fields[1])
        text = [f.decode("ascii") for f in fields[2:]]
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"malformed record header: {err}") from err
    if version != FORMAT_VERSION:
        raise ValueError(f"unsupported record format version {version}")
    if text[0] != SERIALIZER:
        raise ValueError(f"unknown serializer {text[0]!r}")
    return Header(version, text[0], text[1], None if text[2] == NO_STATE else text[2], end + 1)


__all__ = ["FORMAT_VERSION", "Header", "MAGIC", "MAX_HEADER", "NO_STATE", "PICKLE_PROTOCOL",
           "REF_TAG", "Record", "SERIALIZER", "class_path", "header_line", "parse_header",
           "task_state"]
