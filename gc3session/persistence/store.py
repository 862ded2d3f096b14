"""The :class:`Store` contract: what a session needs from a store.

A store maps ids to objects.  There are two ways to write one:

* **gc3libs style**: subclass :class:`Store` and override the five public
  methods GC3Pie's stores have -- :meth:`Store.save`, :meth:`Store.load`,
  :meth:`Store.replace`, :meth:`Store.remove`, :meth:`Store.list` -- and,
  optionally, give the store an ``idfactory``.  Everything else a session
  uses has a default here, built on those five (one call per object).
  ``examples/dbm_store.py`` is a complete store of this kind.
* **on records**: subclass
  :class:`~gc3session.persistence.recordstore.RecordStore` and provide its
  primitives (write a batch of record bytes, read one, delete some,
  allocate ids).  It implements the public methods once, with gc3session's
  record format, batching, object references, the home of each object and
  raw record access for ``gsession fsck`` and ``copy``.  Both built-in stores
  are of this kind.

``docs/stores.md`` walks through both.  Tools (``Session``, ``fsck``,
``copy``) use only what is declared here: :meth:`Store.exists`,
:meth:`Store.describe` and :meth:`Store.check` stand for whatever a store
keeps besides its objects, so no tool needs to know how a store keeps them.
"""

from __future__ import annotations

import abc
import builtins
import functools
import os
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

from .. import fsio
from ..exceptions import ForeignTaskError, InvalidArgument, LoadError, ReadOnlyStoreError
from .home import home_of
from .idfactory import Id, IdFactory
from .record import class_path, task_state, task_summary
from .registry import make_store as make_store  # GC3Pie's place for it (gc3libs.persistence.store)
from .url import StoreUrl


@dataclass
class Finding:
    """One thing a check found: its kind, what it means, where, and what was done.

    ``leftover`` findings are what a process killed in the middle of a write
    leaves by design (not errors); the others are problems.
    """

    kind: str
    message: str
    leftover: bool
    id: str | None = None
    path: str | None = None
    cause: str | None = None
    repaired: bool = False
    action: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The finding as JSON-ready data."""
        return asdict(self)

    def repair(self, action: str) -> None:
        """Note that the finding was repaired, and how."""
        self.repaired = True
        self.action = action


def tmp_file_findings(paths: list[str], repair: bool) -> list[Finding]:
    """``tmp-file`` leftovers for the temporary files ``paths`` (see :mod:`gc3session.fsio`).

    With ``repair`` each is removed, unless the process that wrote it (its
    pid is in the name) is still running: it may be about to rename it.
    """
    findings = []
    for tmp in paths:
        pid = fsio.tmp_writer_pid(os.path.basename(tmp))
        alive = pid is not None and _alive(pid)
        finding = Finding("tmp-file", f"temporary file {tmp} of "
                          + (f"process {pid}, still running" if alive else
                             f"a writer that was killed (pid {pid})"), leftover=True, path=tmp)
        findings.append(finding)
        if repair:
            if alive:
                finding.action = "kept: its writer is still running"
            else:
                fsio.discard(tmp)
                finding.repair("removed")
    return findings


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RawRecordsUnsupported(InvalidArgument, NotImplementedError):
    """The store keeps objects its own way: it has no raw records to read or write."""


class Store(abc.ABC):
    """Abstract base of all stores.

    :param url: the URL that :func:`~gc3session.persistence.make_store` would
        turn into this store (None for a store no URL names).
    :param durable: if True (the default) every write is on stable storage
        when the call returns.  False is GC3Pie's durability (survives a killed
        process, not a power cut): faster, never the default.
    :param trusted: if False, loads only resolve allow-listed classes.
    :param readonly: if True, every method that would write raises
        :class:`~gc3session.exceptions.ReadOnlyStoreError` and opening the
        store changes nothing on disk.
    :param idfactory: hands out ids before objects are saved (what
        ``session.add(task, flush=False)`` needs); without one, such a task
        is saved at once to get its id.

    ``owner`` names the session that uses the store (set by
    :class:`~gc3session.session.Session`), for messages only.  The attributes
    have class defaults, so a subclass whose ``__init__`` does not call this
    one still works.
    """

    url: StoreUrl | None = None
    durable: bool = True
    trusted: bool = True
    readonly: bool = False
    idfactory: IdFactory | None = None
    owner: str | None = None

    def __init__(self, url: "StoreUrl | str | None" = None, *, durable: bool = True,
                 trusted: bool = True, readonly: bool = False,
                 idfactory: IdFactory | None = None) -> None:
        self.url = None if url is None else StoreUrl.parse(url)
        self.durable = durable
        self.trusted = trusted
        self.readonly = readonly
        if idfactory is not None:
            self.idfactory = idfactory

    # --- what a gc3libs-style store provides -------------------------------------
    @abc.abstractmethod
    def save(self, obj: Any) -> Id:
        """Save ``obj``, giving it a ``persistent_id`` if it has none; return the id."""

    @abc.abstractmethod
    def load(self, id_: str) -> Any:
        """The object saved under ``id_``.

        :raises LoadError: (a subclass of it) naming the id if it cannot be loaded.
        """

    @abc.abstractmethod
    def replace(self, id_: str, obj: Any) -> None:
        """Save ``obj`` under the id ``id_``, overwriting what was there."""

    @abc.abstractmethod
    def remove(self, id_: str) -> None:
        """Delete the object saved under ``id_`` (no error if there is none)."""

    @abc.abstractmethod
    def list(self) -> list[Id]:
        """The ids of every object in the store."""

    # --- defaults built on those ---------------------------------------------------
    def save_many(self, objs: Iterable[Any]) -> builtins.list[Id]:
        """Save several objects (one call of :meth:`save` each; record stores batch)."""
        return [self.save(obj) for obj in objs]

    def load_many(self, ids: Iterable[str],
                  errors: dict[str, LoadError] | None = None) -> dict[str, Any]:
        """Load several objects; with ``errors``, failures go there instead of raising."""
        result: dict[str, Any] = {}
        for pid in ids:
            try:
                result[str(pid)] = self.load(pid)
            except LoadError as err:
                if errors is None:
                    raise
                errors[str(pid)] = err
        return result

    def remove_many(self, ids: Iterable[str]) -> None:
        """Delete several objects (one call of :meth:`remove` each)."""
        for pid in ids:
            self.remove(pid)

    def states(self, ids: Iterable[str] | None = None) -> dict[str, str | None]:
        """``{id: state}`` for ``ids`` (default: all); ids the store does not hold are left out.

        This default loads each object; record stores read a state index.
        """
        wanted = self.list() if ids is None else [str(i) for i in ids]
        result: dict[str, str | None] = {}
        for pid in wanted:
            try:
                result[str(pid)] = task_state(self.load(pid))
            except LoadError:
                continue
        return result

    def summaries(self, ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """``{id: summary}`` for ``ids`` (default: all): what ``gsession list`` shows of each.

        A summary has the object's ``class`` (``module:qualname``) and
        ``state``, then the keys of
        :func:`~gc3session.persistence.record.task_summary` (job name, exit
        code and signal, times, attempts, output paths, newest message,
        children).  Record stores read them from their indexes and record
        headers, never unpickling anything (so the task classes need not be
        importable); this default loads each object.  Ids the store does not
        hold are left out.
        """
        wanted = self.list() if ids is None else [str(i) for i in ids]
        result: dict[str, dict[str, Any]] = {}
        for pid in wanted:
            try:
                obj = self.load(pid)
            except LoadError:
                continue
            state = task_state(obj)
            result[str(pid)] = {"class": class_path(type(obj)), "state": state,
                                **task_summary(obj, state)}
        return result

    @functools.cached_property
    def home(self) -> str:
        """The name under which objects are at home here: the URL without its password.

        Two store objects on the same place (two handles of one session)
        share it; stores on different places never do.
        """
        if self.url is None:
            return f"{type(self).__module__}.{type(self).__qualname__}@{id(self):x}"
        return self.url.without_password().render()

    def claim(self, obj: Any) -> bool:
        """Check that ``obj``, which has an id, may be saved here under it.

        :returns: True if ``obj`` has no home (no store of this process saved
            or loaded it under this id), False if it is at home here.
        :raises ForeignTaskError: if it is at home in another store, naming
            both places.
        """
        home = home_of(obj)
        if home is None:
            return True
        if home.store != self.home:
            where = f"session {self.owner} (store {self.home})" if self.owner else f"store {self.home}"
            raise ForeignTaskError(
                f"{obj.persistent_id} belongs to {home.describe()}; saving it in {where} under"
                " the same id could overwrite another task. Add a copy instead:"
                " gc3session.fresh_copy(task) has no id and gets a fresh one here",
                id=str(obj.persistent_id), home=home.describe(), here=where)
        return False

    def ensure_counter_past(self, seqno: int) -> None:
        """Make sure ids handed out from now on have numbers above ``seqno``.

        A store that hands out ids from a counter overrides this; by default
        there is nothing to move.
        """

    def location(self, id_: str) -> str:
        """Where the object ``id_`` is kept, for messages (by default: the store)."""
        return str(self.url) if self.url is not None else repr(self)

    def exists(self) -> bool:
        """Whether the store is there (a session refuses to go on over a vanished one).

        By default a store exists; stores that can vanish (a directory, a
        database file, a table) say so.
        """
        return True

    def describe(self) -> dict[str, Any]:
        """What the store is, for people: its kind, URL (password hidden) and place."""
        return {"kind": type(self).__name__, "url": None if self.url is None else str(self.url),
                "location": self.location("-")}

    def check(self, repair: bool = False) -> builtins.list[Finding]:
        """Check what the store keeps besides its objects (indexes, temporary files).

        With ``repair``, repair what can be repaired without losing data.
        By default there is nothing to check.
        """
        return []

    # --- raw records (record stores only) -------------------------------------------
    def read_record(self, id_: str) -> bytes:
        """The raw bytes of a record (for copying between stores and for fsck)."""
        raise self._no_raw_records()

    def read_records(self, ids: Iterable[str]) -> dict[str, bytes]:
        """Raw bytes of several records; records that cannot be read are left out."""
        raise self._no_raw_records()

    def write_records(self, records: Mapping[str, bytes]) -> None:
        """Write raw record bytes verbatim, as one unit (the copy of :meth:`read_record`)."""
        raise self._no_raw_records()

    def _no_raw_records(self) -> RawRecordsUnsupported:
        return RawRecordsUnsupported(
            f"{type(self).__name__} keeps objects its own way, not as gc3session records;"
            " this needs a store built on RecordStore (gsession fsck and copy do)",
            url=str(self.url))

    # --- lifetime ------------------------------------------------------------------------
    def invalidate_cache(self) -> None:
        """Forget cached objects, so the next load reads the store (no cache by default)."""

    def pre_fork(self) -> None:
        """Release what must not cross a ``fork()`` (connections); no-op by default."""

    def post_fork(self) -> None:
        """Called in the child after ``fork()``: never reuse the parent's ids."""
        if self.idfactory is not None:
            self.idfactory.forget_block()

    def close(self) -> None:
        """Release connections and file handles; the store can be used again later."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.url)!r})"

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyStoreError(f"store {self.url} is open read-only", url=str(self.url))


__all__ = ["Finding", "RawRecordsUnsupported", "Store", "make_store", "tmp_file_findings"]
