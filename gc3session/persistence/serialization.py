"""How objects become records: :class:`Persistable` and :func:`encode`.

The bytes of a record are described in :mod:`gc3session.persistence.record`.

References
----------
A :class:`Persistable` met while pickling another object is not embedded: it
is saved as its own record (if it is new or ``changed``) and the parent keeps
the reference ``("gc3s", id)``.  :func:`encode` returns the records of the
root and of every child it had to save, children first, so a store can write
them in one transaction.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import threading
from typing import Any, Callable

from ..exceptions import SerializationError
from .idfactory import Id, check_id
from .record import (
    PICKLE_PROTOCOL,
    REF_TAG,
    Record,
    class_path,
    encode_summary,
    header_line,
    task_state,
    task_summary,
)

#: GC3Pie's name for the pickle protocol of records (gc3session pins it: see
#: :mod:`gc3session.persistence.record`).  Stores accept a ``protocol``
#: argument for GC3Pie's sake and ignore it.
DEFAULT_PROTOCOL = PICKLE_PROTOCOL


class Persistable:
    """Base class of the objects a store saves as records of their own.

    ``persistent_id`` is set by the store on the first save; ``changed`` is
    set on creation and cleared by a successful save (subclasses such as
    :class:`gc3session.task.Task` set it again on every change).

    Equality is GC3Pie's: an object equals itself, and two objects that both
    have a ``persistent_id`` are equal when their ids are (the same task
    loaded through two session handles is one task); an object without an
    id equals only itself.  The hash follows: the id's, or the identity's
    while there is no id.  So an object that gets its id (its first save)
    changes its hash: do not keep unsaved objects in a set or as dict keys
    across a save (gc3session's own code keys them by ``id(obj)``).  Ids are
    unique per store: objects of two different sessions may carry the same
    id and compare equal.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "persistent_id" in kwargs:
            self.persistent_id = kwargs.pop("persistent_id")
        self.changed = True
        super().__init__(*args, **kwargs)

    def __str__(self) -> str:
        pid = getattr(self, "persistent_id", None)
        return str(pid) if pid is not None else super().__str__()

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        mine = getattr(self, "persistent_id", None)
        theirs = getattr(other, "persistent_id", None)
        return mine is not None and theirs is not None and str(mine) == str(theirs)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        pid = getattr(self, "persistent_id", None)
        return object.__hash__(self) if pid is None else hash(str(pid))

    def __reduce_ex__(self, protocol: Any) -> Any:
        if _fast_path.active:  # met inside a state being pickled: it needs a reference
            raise _NeedsReferences
        return super().__reduce_ex__(protocol)


class _FastPath(threading.local):
    """Per thread: set while a state is pickled without the reference hook (see
    :func:`_encode_one`), and the pickler that path reuses from record to record."""

    active = False
    #: ``(buffer, pickler)``, made at the first fast-path encoding of the thread
    tools: "tuple[io.BytesIO, pickle.Pickler] | None" = None


_fast_path = _FastPath()


class _NeedsReferences(Exception):
    """A Persistable was met on the fast path: pickle again with references."""


def encode(root: Any, assign_id: Callable[[Any], Id],
           claim: Callable[[Any], None] | None = None, *, claim_root: bool = True) -> list[Record]:
    """Encode ``root`` and every new or changed :class:`Persistable` it references.

    ``assign_id(obj)`` gives an object without ``persistent_id`` a fresh id.
    ``claim(obj)`` is called for every object of the save that already has
    an id (``root`` only if ``claim_root``), whether it is written or only
    referenced; it raises to refuse an object that belongs to another store
    (see :mod:`gc3session.persistence.home`).  Returns the records, children
    first and ``root`` last.

    :raises SerializationError: if some part of the object cannot be pickled.
    """
    records: list[Record] = []
    seen: set[int] = set()

    def visit(obj: Any) -> Id:
        if getattr(obj, "persistent_id", None) is None:
            obj.persistent_id = assign_id(obj)
        seen.add(id(obj))
        record = _encode_one(obj, child_ref)
        records.append(record)
        return record.id

    def child_ref(obj: Any) -> tuple[str, str] | None:
        if id(obj) in seen:  # the root or an object already in this save: a back-reference
            return (REF_TAG, str(obj.persistent_id))
        if not isinstance(obj, Persistable):
            return None
        pid = getattr(obj, "persistent_id", None)
        if pid is not None and claim is not None:
            claim(obj)
        if pid is None or getattr(obj, "changed", True):
            pid = visit(obj)
        return (REF_TAG, str(pid))

    if claim is not None and claim_root and getattr(root, "persistent_id", None) is not None:
        claim(root)
    visit(root)
    # visit() appends each record when its own pickling is done, so children
    # (finished first) precede their parents and the root comes last.
    return records


def _encode_one(obj: Any, child_ref: Callable[[Any], Any]) -> Record:
    cls = type(obj)
    pid = check_id(obj.persistent_id)  # a valid Id as it is; raises InvalidValue for a path
    try:
        reduced = obj.__reduce_ex__(PICKLE_PROTOCOL)
    except Exception as err:  # any failure of user code in __reduce_ex__
        raise SerializationError(f"cannot serialize {pid}: {err}", id=pid) from err
    if not (type(reduced) is tuple and reduced[0] is _NEWOBJ and reduced[1][0] is cls):
        raise SerializationError(
            f"cannot serialize {pid}: {class_path(cls)} must pickle through"
            " __getstate__/__setstate__, not a custom __reduce__", id=pid)
    args = reduced[1][1:]
    state = reduced[2] if len(reduced) > 2 else None
    listitems = list(reduced[3]) if len(reduced) > 3 and reduced[3] is not None else None
    dictitems = dict(reduced[4]) if len(reduced) > 4 and reduced[4] is not None else None
    state_str = task_state(obj)
    if state_str is not None and state_str not in _GOOD_STATES:
        if not state_str or state_str.split() != [state_str]:
            raise SerializationError(f"cannot serialize {pid}: invalid state {state_str!r}", id=pid)
        if len(_GOOD_STATES) < 256:
            _GOOD_STATES.add(state_str)
    try:
        payload = _fast_payload(args, (state, listitems, dictitems))
        if payload is None:
            slow = io.BytesIO()
            pickler = _RefPickler(slow, child_ref)
            pickler.dump(args)
            pickler.dump((state, listitems, dictitems))
            payload = slow.getvalue()
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as err:
        raise SerializationError(f"cannot serialize {pid}: {err}", id=pid) from err
    # the summary after the payload: pickling gave new children their ids
    summary = encode_summary(task_summary(obj, state_str))
    return Record(pid, header_line(cls, state_str, summary) + payload, obj, state_str,
                  class_path(cls), summary)


#: Task states already checked to be one word (the check costs more than the look-up).
_GOOD_STATES: set[str] = set()
_NEWOBJ = copyreg.__newobj__  # type: ignore[attr-defined]


def _fast_payload(args: tuple[Any, ...], state: tuple[Any, Any, Any]) -> bytes | None:
    """The payload pickled at C speed, without the reference hook; None if it needs references.

    Most states hold no reference to another record.  A Persistable met on
    the way raises _NeedsReferences (its ``__reduce_ex__`` checks
    ``_fast_path.active``), and the caller pickles again with the hook.
    Both pickles come from one pickler, as on the slow path: the loader reads
    them with one unpickler, whose memo spans both, so memo indices must
    count across the two pickles.  The pickler and its buffer are reused
    from record to record (making them costs about as much as pickling a
    small task); a pickling nested in another one (a ``__getstate__`` that
    saves) gets its own.
    """
    local = _fast_path
    nested = local.active
    tools = None if nested else local.tools
    if tools is None:
        buffer = io.BytesIO()
        tools = (buffer, pickle.Pickler(buffer, PICKLE_PROTOCOL))
        if not nested:
            local.tools = tools
    buffer, pickler = tools
    local.active = True
    try:
        pickler.dump(args)
        pickler.dump(state)
        return buffer.getvalue()
    except _NeedsReferences:
        return None
    finally:
        local.active = nested
        pickler.clear_memo()  # the memo holds the objects pickled: let them go
        buffer.seek(0)
        buffer.truncate()


class _RefPickler(pickle.Pickler):
    """Pickle the state of one object, turning references to records into ids.

    The object itself is never pickled whole (its constructor arguments and
    state are dumped separately), so a reference back to it is a reference
    like any other.
    """

    def __init__(self, stream: io.BytesIO, child_ref: Callable[[Any], Any]) -> None:
        super().__init__(stream, protocol=PICKLE_PROTOCOL)
        self._child_ref = child_ref

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) in _PLAIN_TYPES:  # the bulk of any state: skip the bookkeeping
            return None
        return self._child_ref(obj)


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), bytes, tuple, list, dict, set})


__all__ = ["DEFAULT_PROTOCOL", "Persistable", "encode"]
