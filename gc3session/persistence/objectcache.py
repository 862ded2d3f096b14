"""The objects a store has handed out, so that loading an id twice gives one object.

A record store keeps what it saved or loaded in a :class:`WeakCache`, for as
long as someone else holds the object: a second ``load`` of the id, and a
reference to it inside another record, give the same object.  A load fills
it through :class:`CacheMemo`, the memo its decoder uses, which is also
where each object a load creates is noted as being at home in the store
(:func:`~gc3session.persistence.home.settle`).
"""

from __future__ import annotations

import weakref
from typing import Any

from .home import settle


class WeakCache:
    """Objects by id, held weakly: what a store saved or loaded, while someone holds it.

    A plain dict of weak references without callbacks, purged of dead ones
    when it has doubled since the last purge (O(1) per object), instead of a
    ``WeakValueDictionary``: its references carry a callback each, so they
    cannot be shared, and the home registry (:func:`settle`) takes a weak
    reference to the same object right after; a plain one is made once and
    handed out again by ``weakref.ref``.
    """

    def __init__(self) -> None:
        self._refs: dict[str, weakref.ref[Any]] = {}
        self._purge_at = 1024

    def get(self, key: str) -> Any:
        """The live object cached under ``key``, or None."""
        ref = self._refs.get(key)
        return None if ref is None else ref()

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, obj: Any) -> None:
        """Cache ``obj`` under ``key`` (objects that cannot be referenced weakly are not cached)."""
        try:
            self._refs[key] = weakref.ref(obj)
        except TypeError:
            self._refs.pop(key, None)
            return
        if len(self._refs) >= self._purge_at:
            self._refs = {k: ref for k, ref in self._refs.items() if ref() is not None}
            self._purge_at = max(1024, 2 * len(self._refs))

    def pop(self, key: str, default: Any = None) -> Any:
        """Forget ``key``; return its object if it was alive, else ``default``."""
        ref = self._refs.pop(key, None)
        found = None if ref is None else ref()
        return default if found is None else found

    def clear(self) -> None:
        """Forget every object."""
        self._refs.clear()


class CacheMemo(dict):  # type: ignore[type-arg]
    """A load's memo that also consults and fills a store's :class:`WeakCache`.

    Every object a load creates passes through :meth:`__setitem__`: that is
    where it is noted as being at home in the store.
    """

    def __init__(self, cache: WeakCache, home: str, owner: str | None) -> None:
        super().__init__()
        self._cache = cache
        self._home = home
        self._owner = owner

    def __getitem__(self, key: str) -> Any:
        try:
            return super().__getitem__(key)
        except KeyError:
            found = self._cache.get(key)
            if found is None:
                raise
            return found

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        found = super().get(key)
        if found is None:
            found = self._cache.get(key)
        return default if found is None else found

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._cache.put(key, value)
        settle(value, self._home, key, self._owner)

    def pop(self, key: str, *default: Any) -> Any:
        self._cache.pop(key, None)
        return super().pop(key, *default)


__all__ = ["CacheMemo", "WeakCache"]
