"""Small data helpers with GC3Pie's names: :class:`Struct`, the attribute dict.

GC3Pie hands out and accepts ``gc3libs.utils.Struct`` objects: mappings whose
keys are attributes too (``s["x"]`` is ``s.x``).  Ported code builds them,
passes them as keyword bags and stores them on tasks, so gc3session has one
with the same behaviour.  It is a real :class:`dict` (GC3Pie's is a
``MutableMapping`` kept in ``__dict__``): ``json.dumps``, ``dict(s)``,
``isinstance(s, dict)`` and pickling work as on any dict, and the keys live
in one place only.

This module imports nothing of gc3session.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping


class Struct(dict):  # type: ignore[type-arg]
    """A dict whose keys are also attributes.

    >>> s = Struct(x=1)
    >>> s.y = 2
    >>> s["y"], s.x, sorted(s)
    (2, 1, ['x', 'y'])
    >>> Struct([("a", 1)]).a, Struct({"b": 2}, c=3)
    (1, Struct({'b': 2, 'c': 3}))
    >>> del s.x; s
    Struct({'y': 2})
    >>> s.nope
    Traceback (most recent call last):
    ...
    AttributeError: 'Struct' object has no attribute 'nope'

    A key that is not a valid identifier is still reachable with ``[...]``
    (and with :func:`getattr`).  Dict methods win over keys of the same name:
    ``s.items`` is the method even if ``s["items"]`` exists.

    :param initializer: a mapping, or an iterable of ``(key, value)`` pairs.
    :param extra: more keys, as keyword arguments (they win over
        ``initializer``, as for ``dict``).
    """

    def __init__(self, initializer: "Mapping[str, Any] | Iterable[tuple[str, Any]] | None" = None,
                 **extra: Any) -> None:
        super().__init__()
        if initializer is not None:
            self.update(initializer)
        self.update(extra)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup (methods, class attributes) fails
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}") from None

    def copy(self) -> "Struct":
        """A shallow copy, itself a :class:`Struct` (``dict.copy`` would give a plain dict)."""
        return type(self)(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *(k for k in self if isinstance(k, str))})


__all__ = ["Struct"]
