"""Which store an object in memory belongs to: the guard against two tasks under one id.

An id is unique within one store, not across stores: ``Task.7`` of one
session and ``Task.7`` of another are different tasks.  An object loaded
from (or saved in) store A carries A's id, so saving it into store B under
that id would overwrite B's own ``Task.7``, or be overwritten by it later.

Each store therefore notes, for every object it saves or loads, that the
object is at *home* there under its id (:func:`settle`).  Before a store
writes an object that already has an id, it asks :func:`home_of`; an object
at home in another store is refused
(:class:`~gc3session.exceptions.ForeignTaskError`), never written under a
borrowed id.

The registry holds the objects weakly (it never keeps a task alive) and is
keyed by object identity, so it needs no cooperation from the objects'
classes and adds nothing to their records.  A home only holds while the
object keeps the id it had when it was noted: assigning ``persistent_id``
(what :func:`fresh_copy` and ``Store.replace`` do) detaches it.  Objects
that no store of this process saved or loaded (built with an explicit
``persistent_id``, or copied with ``copy``/``pickle`` outside gc3session)
have no home; they are saved under the id they carry, as in GC3Pie.
"""

from __future__ import annotations

import copy
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from .serialization import Persistable


@dataclass(frozen=True)
class Home:
    """Where an object belongs: its store, the id it has there, and the session if known."""

    store: str
    id: str
    session: str | None = None

    def describe(self) -> str:
        """``session PATH (store URL)``, or ``store URL`` when no session is known."""
        return f"session {self.session} (store {self.store})" if self.session else f"store {self.store}"


#: id(obj) -> (weak reference to obj, store, id, session); dead entries are purged in bulk.
_homes: dict[int, tuple["weakref.ref[Any]", str, str, "str | None"]] = {}
_lock = threading.Lock()
_purge_at = 1024


def settle(obj: Any, store: str, pid: str, session: str | None = None) -> None:
    """Note that ``obj`` is at home in ``store`` under the id ``pid``.

    Objects that cannot be referenced weakly are not noted (they have no
    home).  Entries of dead objects are dropped when the registry has
    doubled since the last purge: the cost per object stays O(1).
    """
    global _purge_at
    try:
        ref = weakref.ref(obj)
    except TypeError:
        return
    with _lock:
        _homes[id(obj)] = (ref, store, pid, session)
        if len(_homes) >= _purge_at:
            for key in [key for key, entry in _homes.items() if entry[0]() is None]:
                del _homes[key]
            _purge_at = max(1024, 2 * len(_homes))


def home_of(obj: Any) -> Home | None:
    """The home of ``obj``, or None if no store noted it under the id it has now."""
    entry = _homes.get(id(obj))
    if entry is None or entry[0]() is not obj or entry[2] != str(getattr(obj, "persistent_id", None)):
        return None
    return Home(entry[1], entry[2], entry[3])


def fresh_copy(obj: Any) -> Any:
    """A deep copy of ``obj`` whose Persistable parts carry no id, ready to join any session.

    Adding the copy gives it (and every copied child) a fresh id in the
    session it joins; the original keeps its id and its home.
    """
    memo: dict[int, Any] = {}
    clone = copy.deepcopy(obj, memo)
    # the memo maps every copied object to its copy (and itself to a keep-alive list)
    for copied in [clone, *memo.values()]:
        if isinstance(copied, Persistable) and getattr(copied, "persistent_id", None) is not None:
            copied.persistent_id = None
            copied.changed = True
    return clone


__all__ = ["Home", "fresh_copy", "home_of", "settle"]
