"""The persistence API: stores, records, ids and the store registry.

Import names from here (or from :mod:`gc3session`); the submodules are an
implementation detail.
"""

from __future__ import annotations

from .classes import allow as allow
from .classes import relocate as relocate
from .home import fresh_copy as fresh_copy
from .idfactory import Id as Id
from .idfactory import IdFactory as IdFactory
from .record import PICKLE_PROTOCOL as PICKLE_PROTOCOL
from .recordstore import RecordStore as RecordStore
from .registry import known_schemes as known_schemes
from .registry import make_store as make_store
from .registry import register as register
from .registry import unregister as unregister
from .serialization import Persistable as Persistable
from .store import Finding as Finding
from .store import RawRecordsUnsupported as RawRecordsUnsupported
from .store import Store as Store
from .url import StoreUrl as StoreUrl

__all__ = [
    "Finding",
    "Id",
    "IdFactory",
    "PICKLE_PROTOCOL",
    "Persistable",
    "RawRecordsUnsupported",
    "RecordStore",
    "Store",
    "StoreUrl",
    "allow",
    "fresh_copy",
    "known_schemes",
    "make_store",
    "register",
    "relocate",
    "unregister",
]
