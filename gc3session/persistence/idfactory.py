"""Task ids: ``<Prefix>.<N>`` strings that behave as the strings they are.

An :class:`Id` *is* a ``str`` (equal to, and hashing like, ``"Task.17"``), so
a dict keyed by ids finds an entry whether it is looked up with the object or
with its text.  (GC3Pie's ``Id`` hashes its ``(prefix, seqno)`` tuple instead,
which silently misses such lookups.)

Uniqueness across processes and hosts sharing a store is the store's job: it
hands out sequence numbers from a counter kept *in the store* (a locked file
for the filesystem store, a row for SQL stores) in blocks, so that most ids
cost no I/O.  :class:`IdFactory` only caches the current block; it holds no
class-level state, so two stores never share a pool.  A factory built
without a number source (GC3Pie's ``IdFactory()``) numbers from one counter
of the process: see :class:`IdFactory` for what that guarantees, and why
stores never use it.
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
    """Make ids for objects: GC3Pie's ``IdFactory(prefix=None, next_id_fn=None, id_class=Id)``.

    :param prefix: a fixed prefix; by default the object's class name.
    :param next_id_fn: GC3Pie's number source: ``next_id_fn()`` returns one
        fresh number, ``next_id_fn(n)`` a list of ``n`` of them (what
        :meth:`reserve` asks for).  Uniqueness is the function's business.
    :param id_class: builds an id from ``(prefix, number)``; a store keeps
        only ids of the form ``Prefix.N``.
    :param allocate: gc3session's number source (keyword only), which a
        store passes: ``allocate(n) -> first`` reserves the ``n`` consecutive
        numbers ``first .. first+n-1`` durably in the store, for every process
        and host that shares it.  Numbers are then taken in blocks growing
        from 8 to 1024, so a short script wastes few numbers and a bulk load
        pays one counter update per thousand objects.  Numbers of an unused
        block are skipped, never reused.

    With neither ``next_id_fn`` nor ``allocate`` (``IdFactory()``, GC3Pie's
    everyday default) numbers come from one counter shared by every such
    factory of this process, so the process never hands out one id twice.
    GC3Pie keeps that counter in ``~/.gc3/next_id.txt``, shared by the user's
    processes; gc3session does not write there (GC3Pie's lock on that file is
    not one gc3session can take safely alongside it), so these ids are
    unique within one process only.  That is why a store never numbers its
    records with such a factory: given one, it takes only its prefix and id
    class and numbers from its own counter (:meth:`for_store`).  An object
    given an id this way and saved later keeps it, as an object built with
    an explicit ``persistent_id`` does: let the store assign ids to what it
    saves.

    Each factory keeps its own reserved numbers (GC3Pie pools them in the
    class, so every factory drew from every other's reservation).  A lock
    makes a factory safe to share between threads.
    """

    MIN_BLOCK = 8
    MAX_BLOCK = 1024

    def __init__(self, prefix: str | None = None, next_id_fn: Callable[..., Any] | None = None,
                 id_class: Callable[[str, int], Any] = Id, *,
                 allocate: Callable[[int], int] | None = None) -> None:
        if next_id_fn is not None and allocate is not None:
            raise InvalidValue("give an IdFactory next_id_fn or allocate, not both")
        if prefix is not None and not isinstance(prefix, str):
            raise InvalidValue(f"an id prefix is a string, not {prefix!r}"
                               " (the number source is next_id_fn= or allocate=)")
        self._prefix = prefix
        self._next_id_fn = next_id_fn
        self._id_class = id_class
        self._by_process = next_id_fn is None and allocate is None
        self._allocate = allocate if allocate is not None else _process_counter
        self._pool: list[int] = []  # numbers reserved through next_id_fn, in its order
        self._next = 0
        self._end = 0
        self._block = self.MIN_BLOCK
        self._lock = threading.Lock()

    @property
    def numbered_by_process(self) -> bool:
        """True if this factory draws from the process-wide counter (built with no number source)."""
        return self._by_process

    def for_store(self, allocate: Callable[[int], int]) -> "IdFactory":
        """The factory a store numbers its records with, given this one.

        A factory with a number source of its own (``next_id_fn`` or
        ``allocate``) is used as it is.  One without (``IdFactory()``) would
        number from a counter that starts again in every process, and two
        processes would write different objects under one id: the store
        gets a new factory with this one's prefix and id class, numbered by
        ``allocate``, the store's own counter.
        """
        if not self.numbered_by_process:
            return self
        return IdFactory(self._prefix, id_class=self._id_class, allocate=allocate)

    def reserve(self, n: int) -> None:
        """Make sure the next ``n`` ids need no further allocation (gc3libs API).

        :raises InvalidValue: if ``n`` is not a positive number.
        """
        if not isinstance(n, int) or n <= 0:
            raise InvalidValue(f"reserve() needs a positive count, not {n!r}")
        with self._lock:
            if self._next_id_fn is not None:
                self._pool.extend(int(seqno) for seqno in self._next_id_fn(n))
            elif self._end - self._next < n:
                self._next = self._allocate(n)
                self._end = self._next + n

    def new(self, obj: Any) -> Any:
        """Return a fresh id for ``obj`` (prefix: its class name, unless fixed)."""
        with self._lock:
            if self._next_id_fn is not None:
                seqno = self._pool.pop(0) if self._pool else int(self._next_id_fn())
            else:
                if self._next >= self._end:
                    self._next = self._allocate(self._block)
                    self._end = self._next + self._block
                    self._block = min(self._block * 2, self.MAX_BLOCK)
                seqno = self._next
                self._next += 1
        prefix = self._prefix or type(obj).__name__
        return self._id_class(prefix, seqno)

    def forget_block(self) -> None:
        """Drop the reserved numbers (after ``fork()``: the child must not reuse them).

        The lock is made anew: a thread of the parent may have held it at the
        fork, and in the child nobody would ever release it.
        """
        self._lock = threading.Lock()
        self._next = self._end = 0
        self._pool = []

    def skip_past(self, seqno: int) -> None:
        """Never hand out ``seqno`` or a lower number from the reserved ones.

        Called after records were written under ids that did not come from
        this factory (copied records): the store's counter has been moved
        past them, and reserved numbers below that point are dropped.
        """
        with self._lock:
            if self._next <= seqno:
                self._next = self._end = 0
            self._pool = [n for n in self._pool if n > seqno]


class _ProcessCounter:
    """The numbers of factories built without a number source: 1, 2, 3, ... in this process."""

    def __init__(self) -> None:
        self._next = 1
        self._lock = threading.Lock()

    def __call__(self, n: int) -> int:
        with self._lock:
            first = self._next
            self._next += n
            return first


_process_counter = _ProcessCounter()
