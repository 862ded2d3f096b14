"""gc3session: persistent, resumable collections of batch tasks.

A GC3Pie-compatible session and persistence layer (``Session``, ``Task``,
``make_store``, ...) whose every write is atomic and durable.  A GC3Pie
script ports by changing its imports::

    from gc3session import Session, Task
"""

from __future__ import annotations

from .persistence import Id as Id
from .persistence import Persistable as Persistable
from .persistence import Store as Store
from .persistence import fresh_copy as fresh_copy
from .persistence import StoreUrl as StoreUrl
from .persistence import make_store as make_store
from .persistence import register as register
from .session import Session as Session
from .session import TemporarySession as TemporarySession
from .task import ParallelTaskCollection as ParallelTaskCollection
from .task import Run as Run
from .task import SequentialTaskCollection as SequentialTaskCollection
from .task import Application as Application
from .task import Task as Task
from .task import TaskCollection as TaskCollection

__version__ = "0.1.0"

__all__ = [
    "Application",
    "Id",
    "ParallelTaskCollection",
    "Persistable",
    "Run",
    "SequentialTaskCollection",
    "Session",
    "Store",
    "StoreUrl",
    "Task",
    "TaskCollection",
    "TemporarySession",
    "__version__",
    "fresh_copy",
    "make_store",
    "register",
]


def __getattr__(name: str) -> object:
    """Give ``gc3session.FilesystemStore`` / ``SqlStore`` without importing SQLAlchemy eagerly."""
    if name == "FilesystemStore":
        from gc3session.stores.filesystem import FilesystemStore
        return FilesystemStore
    if name == "SqlStore":
        from gc3session.stores.sql import SqlStore
        return SqlStore
    raise AttributeError(f"module 'gc3session' has no attribute {name!r}")
