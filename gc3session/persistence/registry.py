"""Choosing a store by URL: :func:`make_store` and :func:`register`.

Lookup order for a URL's scheme (``postgresql+psycopg`` is looked up as
itself, then as its base scheme ``postgresql``):

1. constructors given to :func:`register` in this process;
2. the built-in stores, kept as import strings so that importing
   gc3session does not import SQLAlchemy;
3. the ``gc3session.stores`` entry-point group, so a third-party package
   adds a scheme with one line in its ``setup.cfg``::

       [options.entry_points]
       gc3session.stores =
           s3 = mypackage.s3store:make_s3store

A constructor is called as ``constructor(url, **kwargs)`` with a parsed
:class:`~gc3session.persistence.url.StoreUrl`.

:mod:`gc3session.persistence.store` re-exports :func:`make_store`, where
GC3Pie keeps it (``gc3libs.persistence.store.make_store``).  So this module
imports nothing of the persistence layer at load time but the URL: the
:class:`~gc3session.persistence.store.Store` class is needed only to refuse a
store passed where a URL is expected, and is looked up then.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from typing import TYPE_CHECKING, Any, Callable

from ..exceptions import InvalidArgument, InvalidType, SchemeAlreadyRegistered, UnknownSchemeError
from .url import StoreUrl

if TYPE_CHECKING:
    from .store import Store

ENTRY_POINT_GROUP = "gc3session.stores"

Constructor = Callable[..., "Store"]

_BUILTIN: dict[str, str] = {
    "file": "gc3session.stores.filesystem:make_filesystemstore",
    "sqlite": "gc3session.stores.sql:make_sqlstore",
    "postgresql": "gc3session.stores.sql:make_sqlstore",
    "mysql": "gc3session.stores.sql:make_sqlstore",
}
_registered: dict[str, Constructor] = {}


def register(scheme: str, constructor: Constructor, *, replace: bool = False) -> None:
    """Make ``make_store`` build URLs of ``scheme`` with ``constructor``.

    :raises SchemeAlreadyRegistered: if ``scheme`` was registered before and
        ``replace`` is False (a silent overwrite hides plugin clashes).
    :raises InvalidType: if ``constructor`` is not callable.
    """
    if not callable(constructor):
        raise InvalidType(f"store constructor for {scheme!r} is not callable: {constructor!r}")
    scheme = scheme.lower()
    if scheme in _registered and not replace:
        raise SchemeAlreadyRegistered(
            f"scheme {scheme!r} is already registered; pass replace=True to replace it",
            scheme=scheme)
    _registered[scheme] = constructor


def unregister(scheme: str) -> None:
    """Forget a scheme given to :func:`register` (built-ins stay)."""
    _registered.pop(scheme.lower(), None)


def known_schemes() -> list[str]:
    """Every scheme :func:`make_store` can handle now."""
    names = set(_registered) | set(_BUILTIN)
    names.update(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def _import(target: str) -> Constructor:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def _lookup(scheme: str) -> Constructor | None:
    candidates = [scheme, scheme.split("+", 1)[0]]
    for name in candidates:
        if name in _registered:
            return _registered[name]
    for name in candidates:
        if name in _BUILTIN:
            return _import(_BUILTIN[name])
    entry_points = {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    for name in candidates:
        if name in entry_points:
            return entry_points[name].load()  # type: ignore[no-any-return]
    return None


def make_store(url: "str | os.PathLike[str] | StoreUrl", **kwargs: Any) -> Store:
    """Build the store a URL (or a plain directory path) names.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> type(make_store(os.path.join(d, "jobs"))).__name__
    'FilesystemStore'
    >>> make_store("nosuch://x")
    Traceback (most recent call last):
    ...
    gc3session.exceptions.UnknownSchemeError: no store is registered for URL scheme 'nosuch'; ...

    :raises UnknownSchemeError: listing the known schemes.
    :raises InvalidUrlError: if ``url`` cannot be parsed.
    """
    from .store import Store  # at call time: store imports this module (see above)

    if isinstance(url, Store):
        raise InvalidArgument("make_store() takes a URL; this is already a store", url=str(url.url))
    parsed = StoreUrl.parse(url)
    constructor = _lookup(parsed.scheme)
    if constructor is None:
        raise UnknownSchemeError(parsed.scheme, known_schemes())
    return constructor(parsed, **kwargs)
