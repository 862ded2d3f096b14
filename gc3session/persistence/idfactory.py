"""Task ids: ``<Prefix>.<N>`` strings that behave as the strings they are.

An :class:`Id` *is* a ``str`` (equal to, and hashing like, ``"Task.17"``), so
a dict keyed by ids finds an entry whether it is looked up with the object or
with its text.  (GC3Pie's ``Id`` hashes its ``(prefix, seqno)`` tuple instead,
which silently misses such lookups.)

Uniqueness across processes and hosts sharing a store is the store's job: it
hands out sequence numbers from a counter kept *in the store* (a locked file
for the filesystem store, a row for SQL stores) in blocks, so that most ids
cost no I/O.  :class:`IdFactory` only caches the current block; it holds no
class-level state, so two stores never share a pool.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable

from ..exceptions import InvalidValue

_PREFIX = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
_SEQNO = r"0|[1-9][0-9]{0,18}"  # no leading zeros: "Task.01" would alias "Task.1"
#: An id as a regular expression (no groups, no anchors), for parsers of id lists.
ID_PATTERN = rf"{_PREFIX}\.(?:{_SEQNO})"
#: What an id can begin with: empty, or a prefix of some id (every prefix of
#: ``_PREFIX`` and of ``_SEQNO`` is empty or matches it again, so this is
#: exactly the set of prefixes of :data:`ID_PATTERN`).
ID_START_PATTERN = rf"(?:{_PREFIX}(?:\.(?:{_SEQNO})?)?)?"
#: The length of the longest id: a 128-character prefix, a dot, 19 digits.
MAX_ID_LENGTH = 128 + 1 + 19
_ID_RE = re.compile(rf"^(?P<prefix>{_PREFIX})\.(?P<seqno>{_SEQNO})$")


class Id(str):
    """A persistent id, ``"<prefix>.<seqno>"``.

    >>> i = Id("Task", 17)
    >>> i, i.prefix, i.seqno
    ('Task.17', 'Task', 17)
    >>> i == "Task.17" and hash(i) == hash("Task.17")
    True
    >>> {"Task.17": 1}[i]
    1
    """

    prefix: str
    seqno: int

    def __new__(cls, prefix: str, seqno: int) -> "Id":
        self = super().__new__(cls, f"{prefix}.{seqno:d}")
        self.prefix = prefix
        self.seqno = int(seqno)
        return self

    __hash__ = str.__hash__

    def __getnewargs__(self) -> tuple[str, int]:  # type: ignore[override]
        return (self.prefix, self.seqno)

    def __repr__(self) -> str:
        return str.__repr__(str(self))

    @classmethod
    def parse(cls, text: str) -> "Id":
        """Parse ``"Prefix.N"``; anything else (paths, blanks, NULs) is rejected.

        :raises InvalidValue: naming the offending text.
        """
        if isinstance(text, Id):
            return text
        match = _ID_RE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidValue(f"not a valid task id: {text!r} (expected 'Prefix.N')",
                               id=text)
        return cls(match["prefix"], int(match["seqno"]))


def is_valid_id(text: Any) -> bool:
    """Tell whether ``text`` has the ``Prefix.N`` form (safe as a file name)."""
    return isinstance(text, str) and _ID_RE.fullmatch(text) is not None


def check_id(id_: Any) -> Id:
    """``id_`` as an :class:`Id`, for ids given by a caller (this keeps paths out of file names).

    An :class:`Id` that is valid is returned as it is (one regex match, no
    copy): the store's hot paths check every id they are given.

    :raises InvalidValue: naming the id if it is not ``Prefix.N``.
    """
    match = _ID_RE.fullmatch(id_) if isinstance(id_, str) else None
    if match is None:
        raise InvalidValue(f"not a valid task id: {id_!r} (expected 'Prefix.N')", id=id_)
    if type(id_) is Id:
        return id_
    return Id(match["prefix"], int(match["seqno"]))


def seqno_of(id_: str) -> int:
    """The number of a valid id (``Task.17`` -> 17), without building an :class:`Id`."""
    return int(id_.rpartition(".")[2])


class IdFactory:
    """Make ids for objects from blocks of sequence numbers.

    :param allocate: ``allocate(n) -> first`` reserves ``n`` consecutive fresh
        numbers ``first .. first+n-1`` for this process, durably, in the store.
    :param prefix: a fixed prefix; by default the object's class name.

    Blocks grow from 8 to 1024 numbers, so a short script wastes few numbers
    and a bulk load pays one counter update per thousand objects.  Numbers of
    an unused block are skipped, never reused.  A lock makes a factory safe
    to share between threads (two threads must never take the same number).
    """

    MIN_BLOCK = 8
    MAX_BLOCK = 1024

    def __init__(self, allocate: Callable[[int], int], prefix: str | None = None) -> None:
        self._allocate = allocate
        self._prefix = prefix
        self._next = 0
        self._end = 0
        self._block = self.MIN_BLOCK
        self._lock = threading.Lock()

    def reserve(self, n: int) -> None:
        """Make sure the next ``n`` ids need no further allocation (gc3libs API)."""
        if n <= 0:
            raise InvalidValue(f"reserve() needs a positive count, not {n!r}")
        with self._lock:
            if self._end - self._next < n:
                self._next = self._allocate(n)
                self._end = self._next + n

    def new(self, obj: Any) -> Id:
        """Return a fresh id for ``obj`` (prefix: its class name)."""
        with self._lock:
            if self._next >= self._end:
                self._next = self._allocate(self._block)
                self._end = self._next + self._block
                self._block = min(self._block * 2, self.MAX_BLOCK)
            seqno = self._next
            self._next += 1
        prefix = self._prefix or type(obj).__name__
        return Id(prefix, seqno)

    def forget_block(self) -> None:
        """Drop the cached block (after ``fork()``: the child must not reuse it).

        The lock is made anew: a thread of the parent may have held it at the
        fork, and in the child nobody would ever release it.
        """
        self._lock = threading.Lock()
        self._next = self._end = 0

    def skip_past(self, seqno: int) -> None:
        """Never hand out ``seqno`` or a lower number from the cached block.

        Called after records were written under ids that did not come from
        this factory (copied records): the store's counter has been moved
        past them, and a cached block below that point is dropped.
        """
        with self._lock:
            if self._next <= seqno:
                self._next = self._end = 0
