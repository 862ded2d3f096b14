"""gc3session: persistent, resumable collections of batch tasks.

A GC3Pie-compatible session and persistence layer (``Session``, ``Task``,
``make_store``, ...) with atomic, durable writes, and a PlainBox-compatible
checkpoint adapter in :mod:`gc3session.plainbox`.
"""

from __future__ import annotations

from .persistence import Id as Id
from .persistence import Persistable as Persistable
from .persistence import Store as Store
from .persistence import make_store as make_store
from .persistence import register as register

__version__ = "0.1.0"

__all__ = [
    "Id",
    "Persistable",
    "Store",
    "__version__",
    "make_store",
    "register",
]
