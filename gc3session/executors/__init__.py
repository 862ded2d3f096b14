"""Executors: where the engine runs commands.

``make_executor(spec)`` accepts an :class:`Executor` instance, ``"local"``
(subprocesses here, the default) or ``"dask://HOST:PORT"`` (a running
``dask.distributed`` scheduler); other names come from the
``gc3session.executors`` entry-point group (``name = module:factory``, the
factory called with the spec string).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from ..exceptions import InvalidValue
from .base import EXIT_FILE as EXIT_FILE
from .base import Executor as Executor
from .base import Outcome as Outcome

ENTRY_POINT_GROUP = "gc3session.executors"


def make_executor(spec: "str | Executor | None" = None, **kwargs: Any) -> Executor:
    """Build the executor named by ``spec`` (default: local processes)."""
    if isinstance(spec, Executor):
        return spec
    spec = spec or "local"
    scheme = spec.split("://", 1)[0]
    if scheme == "local":
        from .local import LocalExecutor
        return LocalExecutor()
    if scheme == "dask":
        from .dask import DaskExecutor
        return DaskExecutor(spec.split("://", 1)[1], **kwargs)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name == scheme:
            return entry_point.load()(spec, **kwargs)  # type: ignore[no-any-return]
    raise InvalidValue(f"unknown executor {spec!r}; known: {', '.join(known_executors())}",
                       executor=spec)


def known_executors() -> list[str]:
    """The executor names :func:`make_executor` accepts: built-in ones first, then plugins."""
    return ["local", "dask"] + [e.name for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]


__all__ = ["EXIT_FILE", "Executor", "Outcome", "known_executors", "make_executor"]
