"""A session over an existing store, in a directory of its own that goes away at exit.

GC3Pie's ``TemporarySession``: a way to look at (and work on) the records of
a store without making a session directory by hand, for example for a
store that several sessions share or that a tool wrote.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from typing import Any, Iterable

from .persistence.store import Store
from .persistence.url import StoreUrl
from .session import Session


class TemporarySession(Session):
    """A session in a fresh temporary directory, over an existing store.

    Its tasks are ``task_ids``, or every record of the store.  With
    ``delete=True`` the directory (never the store) is removed at exit.
    """

    _own_directory = False

    def __init__(self, store_or_url: "Store | str | StoreUrl", task_ids: Iterable[str] | None = None,
                 delete: bool = True, **kwargs: Any) -> None:
        path = tempfile.mkdtemp(prefix="gc3session.TemporarySession.", suffix=".d")
        if delete:
            atexit.register(shutil.rmtree, path, True)
        kwargs.setdefault("load", True)
        load = kwargs.pop("load")
        super().__init__(path, create=True, store_or_url=store_or_url, load=False, **kwargs)
        ids = [str(i) for i in (task_ids if task_ids is not None else self.store.list())]
        self._ids = dict.fromkeys(ids)
        self._pending.add = dict.fromkeys(ids)
        self.flush()
        if load:
            self.load_many(ids, add=False)
        self.name = str(self.store.url)


__all__ = ["TemporarySession"]
