"""A store in a ``dbm`` key-value file, written the gc3libs way: five public methods, no more.

It shows the short way to add a store to gc3session (``docs/stores.md`` has
both ways): subclass :class:`gc3session.Store`, implement ``save``,
``load``, ``replace``, ``remove`` and ``list``, and register a URL scheme.
Everything else a session needs (batches, states, the checks tools run) has
a default built on those five.

Each object is pickled whole under its id (its children travel inside
it), and ids come from a counter kept in the same file.  It is an example,
not a production store: a ``dbm`` file is for one process at a time, and
its writes are not fsynced.

Use it from Python::

    import dbm_store                      # registers the "dbm" scheme
    from gc3session import Session, Task

    session = Session("my-session", store_or_url="dbm:///tmp/my-session.dbm")
    session.add(Task(jobname="hello"))

or run this file to see a session kept in it: ``python examples/dbm_store.py DIR``.
"""

from __future__ import annotations

import dbm
import pickle
import sys
from typing import Any

from gc3session import Id, Session, Store, StoreUrl, Task, register
from gc3session.exceptions import InvalidValue, RecordNotFoundError

_COUNTER = b"__next_id__"


class DbmStore(Store):
    """Objects pickled whole into the ``dbm`` file named by a ``dbm:///path`` URL."""

    def __init__(self, url: "StoreUrl | str", *, durable: bool = True, trusted: bool = True,
                 readonly: bool = False) -> None:
        super().__init__(url, durable=durable, trusted=trusted, readonly=readonly)
        if self.url is None or not self.url.path:
            raise InvalidValue(f"a dbm store needs a file: dbm:///path, not {url}", url=str(url))
        self.path = self.url.path

    def _open(self, flag: str) -> Any:
        if flag != "r":
            self._check_writable()
        try:
            return dbm.open(self.path, flag, 0o600)
        except dbm.error as err:  # no such file, for a read
            raise RecordNotFoundError(f"no dbm file {self.path}", location=self.path,
                                      cause=str(err)) from err

    def save(self, obj: Any) -> Id:
        """Pickle ``obj`` under its id, giving it the next id of the counter if it has none."""
        with self._open("c") as db:
            if getattr(obj, "persistent_id", None) is None:
                number = int(db.get(_COUNTER, b"1"))
                db[_COUNTER] = b"%d" % (number + 1)
                obj.persistent_id = Id(type(obj).__name__, number)
            db[str(obj.persistent_id).encode()] = pickle.dumps(obj, protocol=4)
        obj.changed = False
        return obj.persistent_id  # type: ignore[no-any-return]

    def load(self, id_: str) -> Any:
        """Unpickle the object kept under ``id_``."""
        with self._open("r") as db:
            data = db.get(str(id_).encode())
        if data is None:
            raise RecordNotFoundError(f"no object {id_} in {self.path}", id=str(id_),
                                      location=self.path, cause="missing")
        obj = pickle.loads(data)
        obj.changed = False
        return obj

    def replace(self, id_: str, obj: Any) -> None:
        """Keep ``obj`` under ``id_``."""
        obj.persistent_id = Id.parse(str(id_))
        self.save(obj)

    def remove(self, id_: str) -> None:
        """Forget the object kept under ``id_`` (nothing happens if there is none)."""
        with self._open("c") as db:
            key = str(id_).encode()
            if key in db:
                del db[key]

    def list(self) -> list[Id]:
        """The ids of every object in the file."""
        try:
            with self._open("r") as db:
                return [Id.parse(key.decode()) for key in db.keys() if key != _COUNTER]
        except RecordNotFoundError:
            return []


def make_dbm_store(url: StoreUrl, **kwargs: Any) -> DbmStore:
    """The constructor ``make_store`` calls for ``dbm://`` URLs."""
    return DbmStore(url, **kwargs)


register("dbm", make_dbm_store, replace=True)


def main(directory: str) -> None:
    """Keep a session's tasks in ``DIRECTORY/tasks.dbm``; run it twice to see them stay."""
    session = Session(f"{directory}/session", store_or_url=f"dbm:///{directory}/tasks.dbm")
    session.add(Task(jobname=f"task-{len(session) + 1}"))
    print(f"{len(session)} tasks: {', '.join(t.jobname for t in session)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
