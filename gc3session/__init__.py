"""gc3session: persistent, resumable collections of batch tasks.

A GC3Pie-compatible session and persistence layer (``Session``, ``Task``,
``make_store``, ...) whose every write is atomic and durable.  A GC3Pie
script ports by changing its imports::

    from gc3session import Session, Task

The names below are imported when first used: ``import gc3session.fsio``
loads the file-system primitives alone, not the session layer, the task
model or SQLAlchemy.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: The package's logger, GC3Pie's ``gc3libs.log``: ported ``gc3libs.log.info(...)``
#: calls become ``gc3session.log.info(...)``.  A SessionBasedScript shows its
#: messages on stderr (warnings and above; more with ``-v``).
log = logging.getLogger("gc3session")

#: Public name -> the module (relative to this package) that defines it.
_EXPORTS = {
    "Application": ".task",
    "ChunkedParameterSweep": ".workflow",
    "FilesystemStore": ".stores.filesystem",
    "Id": ".persistence",
    "ParallelTaskCollection": ".task",
    "Persistable": ".persistence",
    "RetryableTask": ".workflow",
    "Run": ".task",
    "SequentialTaskCollection": ".task",
    "Session": ".session",
    "SqlStore": ".stores.sql",
    "StagedTaskCollection": ".workflow",
    "Store": ".persistence",
    "StoreUrl": ".persistence",
    "Struct": ".utils",
    "Task": ".task",
    "TaskCollection": ".task",
    "TemporarySession": ".tempsession",
    "fresh_copy": ".persistence",
    "make_store": ".persistence",
    "register": ".persistence",
}

__all__ = [
    "Application",
    "ChunkedParameterSweep",
    "FilesystemStore",
    "Id",
    "ParallelTaskCollection",
    "Persistable",
    "RetryableTask",
    "Run",
    "SequentialTaskCollection",
    "Session",
    "SqlStore",
    "StagedTaskCollection",
    "Store",
    "StoreUrl",
    "Struct",
    "Task",
    "TaskCollection",
    "TemporarySession",
    "__version__",
    "fresh_copy",
    "log",
    "make_store",
    "register",
]


def __getattr__(name: str) -> object:
    """Import a public name from its module at first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gc3session' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


if TYPE_CHECKING:  # what the names are, for type checkers and readers
    from .persistence import Id as Id
    from .persistence import Persistable as Persistable
    from .persistence import Store as Store
    from .persistence import StoreUrl as StoreUrl
    from .persistence import fresh_copy as fresh_copy
    from .persistence import make_store as make_store
    from .persistence import register as register
    from .session import Session as Session
    from .stores.filesystem import FilesystemStore as FilesystemStore
    from .stores.sql import SqlStore as SqlStore
    from .task import Application as Application
    from .task import ParallelTaskCollection as ParallelTaskCollection
    from .task import Run as Run
    from .task import SequentialTaskCollection as SequentialTaskCollection
    from .task import Task as Task
    from .task import TaskCollection as TaskCollection
    from .tempsession import TemporarySession as TemporarySession
    from .utils import Struct as Struct
    from .workflow import ChunkedParameterSweep as ChunkedParameterSweep
    from .workflow import RetryableTask as RetryableTask
    from .workflow import StagedTaskCollection as StagedTaskCollection
