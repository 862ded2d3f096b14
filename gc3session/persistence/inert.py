"""Unpickling that imports nothing: a pickle's objects as inert data (:class:`Shadow`).

Some tools must read what a record holds without running the code of the
classes it names: ``gsession show`` and ``log`` on a session whose task
classes cannot be imported (defined in ``__main__``, or in a module no
longer on the path), and ``gsession import`` on GC3Pie's records.  An inert
unpickling builds plain data of the standard library for real (sets,
ordered dicts, dates...) and turns every other class a pickle names into a
:class:`Shadow`: a stand-in that keeps the class path and what pickle handed
it (constructor arguments, state, items).  It imports nothing and calls no
code of the classes named.
"""

from __future__ import annotations

import importlib
import io
import pickle
from typing import Any, Callable

from .idfactory import is_valid_id
from .record import REF_TAG, parse_header
from .safeload import UntrustedUnpickler


class Shadow:
    """An object of a class that a pickle names, kept as data.

    ``path`` is ``module:qualname``; ``args`` and ``kwargs`` what pickle
    passed to the class, ``state`` what it passed to ``__setstate__``,
    ``items`` what it appended and ``pairs`` the ``(key, value)`` pairs it
    set, in order.
    """

    __slots__ = ("args", "items", "kwargs", "pairs", "state")
    path = ""
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> "Shadow":
        self = object.__new__(cls)
        self.args, self.kwargs = args, kwargs
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Called when pickle calls the class itself (``REDUCE``): nothing to do."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        """Pickle's ``APPEND``."""
        self.slot("items", []).append(item)

    def extend(self, items: Any) -> None:
        """Pickle's ``APPENDS``."""
        self.slot("items", []).extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.slot("pairs", []).append((key, value))

    def slot(self, slot: str, default: Any = None) -> Any:
        """The slot ``slot`` (``args``, ``state``...), set to ``default`` first if empty."""
        try:
            return getattr(self, slot)
        except AttributeError:  # copyreg._reconstructor bypasses __new__
            setattr(self, slot, default)
            return default

    def __repr__(self) -> str:
        return f"<{self.path}>"


_shadow_classes: dict[str, type[Shadow]] = {}

#: Classes whose objects an inert unpickling builds for real: plain data of
#: the standard library.  Everything else a pickle names becomes a Shadow.
_REAL = {
    "builtins": ("set", "frozenset", "complex", "bytearray", "slice", "object", "list", "dict",
                 "tuple", "str", "int", "float", "bool", "bytes"),
    "collections": ("OrderedDict", "deque", "defaultdict"),
    "datetime": ("datetime", "date", "time", "timedelta", "timezone"),
    "decimal": ("Decimal",),
    "uuid": ("UUID",),
    "pathlib": ("PurePosixPath", "PosixPath", "Path"),
    "copyreg": ("_reconstructor",),
}


def shadow_class(path: str) -> type[Shadow]:
    """The Shadow subclass standing for the class ``module:qualname``."""
    cls = _shadow_classes.get(path)
    if cls is None:
        cls = type(path.rpartition(":")[2] or "Shadow", (Shadow,), {"__slots__": (), "path": path})
        _shadow_classes[path] = cls
    return cls


def _resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    if name in _REAL.get(module, ()):
        return getattr(importlib.import_module(module), name)
    return shadow_class(path)


class _InertUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BytesIO, follow: Callable[[Any], Any]) -> None:
        super().__init__(stream)
        self._follow = follow

    def find_class(self, module: str, name: str) -> Any:
        return _resolve(f"{module}:{name}")

    def persistent_load(self, pid: Any) -> Any:
        return self._follow(pid)


def inert_unpickler(stream: io.BytesIO, follow: Callable[[Any], Any], *,
                    trusted: bool = True) -> Any:
    """An unpickler of ``stream`` that imports and runs nothing a pickle names.

    ``follow(pid)`` gives what a persistent reference stands for.  With
    ``trusted=False`` it also checks every call and every number as untrusted
    loads do (:mod:`~gc3session.persistence.safeload`): slower, and safe
    with data from anyone.
    """
    if trusted:
        return _InertUnpickler(stream, follow)
    return UntrustedUnpickler(stream, _resolve, follow)


def unpickle(data: bytes, follow: Callable[[Any], Any], *, trusted: bool = True) -> Any:
    """Unpickle ``data`` inertly (:func:`inert_unpickler`).

    Raises whatever the bytes make pickle raise (a truncated or garbled
    record can raise almost anything).
    """
    return inert_unpickler(io.BytesIO(data), follow, trusted=trusted).load()


def attributes(shadow: Shadow) -> dict[str, Any] | None:
    """The attributes pickle gave ``shadow``: its state dict, plus the slots of ``(dict, slots)``."""
    state = shadow.slot("state")
    if isinstance(state, tuple) and len(state) == 2 and all(isinstance(p, (dict, type(None)))
                                                            for p in state):
        return {**(state[0] or {}), **(state[1] or {})}
    return state if isinstance(state, dict) else None


class Reference:
    """A reference to another record, in what :func:`record_attributes` returns."""

    __slots__ = ("id",)

    def __init__(self, id_: str) -> None:
        self.id = id_

    def __repr__(self) -> str:
        return f"<{self.id}>"


def record_attributes(data: bytes, *, trusted: bool = True) -> dict[str, Any]:
    """The attributes of the object of gc3session record ``data``, unpickled inertly.

    Objects of the classes it names are :class:`Shadow` data; references to
    other records are :class:`Reference` objects (nothing else is read).

    :raises ValueError: if ``data`` is not a record; anything the bytes make
        pickle raise if its payload is damaged.
    """
    header = parse_header(data)
    stream = io.BytesIO(data)
    stream.seek(header.size)

    def follow(ref: Any) -> Reference:
        if not (isinstance(ref, tuple) and len(ref) == 2 and ref[0] == REF_TAG
                and is_valid_id(ref[1])):
            raise pickle.UnpicklingError(f"unknown persistent reference {ref!r:.80}")
        return Reference(ref[1])

    unpickler = inert_unpickler(stream, follow, trusted=trusted)
    unpickler.load()  # the constructor's arguments
    state, _items, _pairs = unpickler.load()
    holder = Shadow()
    holder.state = state
    return attributes(holder) or {}


__all__ = ["Reference", "Shadow", "attributes", "inert_unpickler", "record_attributes",
           "shadow_class", "unpickle"]
