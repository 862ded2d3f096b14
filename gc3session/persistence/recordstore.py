"""The fast way to write a store: on gc3session's records (:class:`RecordStore`).

A record store implements the public methods of
:class:`~gc3session.persistence.store.Store` once, on top of a handful of
primitives a concrete store provides:

=====================================  =======================================
primitive                              contract
=====================================  =======================================
``_allocate_ids(n) -> first``          reserve ``n`` fresh sequence numbers,
                                       durably, unique across every process
                                       and host sharing the store
``_write(records)``                    write all records as one unit (a
                                       transaction, or one batch of atomic
                                       renames); on error nothing new is
                                       visible *or* each record is old-or-new
``_read(id) -> bytes``                 the record bytes, or raise
                                       :class:`RecordNotFoundError`
``_delete(ids)``                       delete records; missing ones are fine
``_list_ids() -> list[str]``           every record id
``location(id) -> str``                a human-readable place (path or table)
=====================================  =======================================

and, where the store can do better than the defaults, ``_read_many``
(batched reads), ``_states`` (states without unpickling) and
``_peek_counter`` (read the id counter).

The serialization of objects and of their references lives in
:mod:`gc3session.persistence.serialization`, so every record store writes
the same record bytes and records can be copied between them verbatim
(:meth:`RecordStore.read_record` / :meth:`RecordStore.write_records`).
"""

from __future__ import annotations

import abc
import builtins
from typing import Any, Iterable, Mapping

from ..exceptions import CorruptRecordError, LoadError, SerializationError
from .decoding import Decoder
from .home import settle
from .idfactory import Id, IdFactory, check_id, is_valid_id
from .objectcache import CacheMemo, WeakCache
from .record import Record, parse_header
from .serialization import encode
from .store import Store
from .url import StoreUrl


class RecordStore(Store):
    """Base of the stores that keep gc3session records (both built-in stores are).

    Takes the parameters of :class:`~gc3session.persistence.store.Store`;
    ids come from the store's own counter (:meth:`_allocate_ids`) unless an
    ``idfactory`` with a number source of its own is given (a bare
    ``IdFactory()`` lends only its prefix: see
    :meth:`~gc3session.persistence.idfactory.IdFactory.for_store`).

    Saved and loaded objects are cached by id (weakly), so loading an id twice
    returns the same object while someone holds it.  They are also noted as
    being at home here (:mod:`~gc3session.persistence.home`): saving an
    object that is at home in another store raises
    :class:`~gc3session.exceptions.ForeignTaskError` instead of writing it
    under an id that means another task here.
    """

    url: StoreUrl
    idfactory: IdFactory

    def __init__(self, url: StoreUrl | str, *, durable: bool = True,
                 trusted: bool = True, readonly: bool = False,
                 idfactory: IdFactory | None = None) -> None:
        factory = IdFactory(allocate=self._allocate_counted) if idfactory is None \
            else idfactory.for_store(self._allocate_counted)
        super().__init__(url, durable=durable, trusted=trusted, readonly=readonly,
                         idfactory=factory)
        self._cache = WeakCache()
        #: every sequence number below this one is known to be handed out by the counter
        self._counter_floor = 0

    # --- primitives --------------------------------------------------------
    @abc.abstractmethod
    def _allocate_ids(self, n: int) -> int:
        """Reserve ``n`` consecutive sequence numbers; return the first."""

    @abc.abstractmethod
    def _write(self, records: list[Record]) -> None:
        """Write ``records`` (children first) as one unit."""

    @abc.abstractmethod
    def _read(self, pid: str) -> bytes:
        """Return the bytes of record ``pid``."""

    @abc.abstractmethod
    def _delete(self, pids: list[str]) -> None:
        """Delete the records ``pids`` (absent ones are ignored)."""

    @abc.abstractmethod
    def _list_ids(self) -> list[str]:
        """Return the ids of every record."""

    @abc.abstractmethod
    def location(self, pid: str) -> str:
        """Where record ``pid`` lives (a path, or ``table`` at URL), for messages."""

    def _allocate_counted(self, n: int) -> int:
        """:meth:`_allocate_ids`, noting how far the counter is known to be."""
        first = self._allocate_ids(n)
        self._counter_floor = max(self._counter_floor, first + n)
        return first

    def _read_many(self, pids: list[str]) -> dict[str, bytes]:
        """Bytes of several records (absent ones left out); stores may batch this."""
        result = {}
        for pid in pids:
            try:
                result[pid] = self._read(pid)
            except LoadError:
                continue  # reported with its cause when the load asks for it again
        return result

    def _summaries(self, pids: list[str] | None) -> dict[str, dict[str, Any]]:
        """``{id: summary}`` from the record headers; stores with an index override this."""
        wanted = self._list_ids() if pids is None else pids
        result: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):
            for pid, data in self._read_many(wanted[start:start + 500]).items():
                try:
                    result[pid] = parse_header(data).summary
                except ValueError:
                    continue  # not a record: fsck says why
        return result

    def _states(self, pids: list[str] | None) -> dict[str, str | None]:
        """``{id: state}`` of the given (or all) records; stores override this."""
        wanted = self._list_ids() if pids is None else pids
        result: dict[str, str | None] = {}
        for pid in wanted:
            try:
                result[pid] = parse_header(self._read(pid)).state
            except (LoadError, ValueError):
                continue
        return result

    def ensure_counter_past(self, seqno: int) -> None:
        """Make sure the id counter never hands out ``seqno`` or a lower number.

        Reads the counter (:meth:`_peek_counter`) and writes only when it is
        behind, so calling it costs one read in the usual case.
        """
        if seqno < self._counter_floor:
            return
        current = self._peek_counter()
        if current is not None and current > seqno:
            self._counter_floor = max(self._counter_floor, current)
            return
        self._check_writable()
        self._advance_counter_past(seqno)

    def _peek_counter(self) -> int | None:
        """The next number the counter would hand out, or None if unknown (stores may tell)."""
        return None

    # --- public API (gc3libs names) -----------------------------------------
    def save(self, obj: Any) -> Id:
        """Save ``obj`` (and new or changed objects it references); return its id.

        The first save assigns ``obj.persistent_id``; saving again overwrites
        the same record.  The object and the children saved with it are
        written as one unit.

        :raises ForeignTaskError: if ``obj`` or an object it refers to was
            loaded from, or saved in, another store (it has that store's id).
        :raises SerializationError: if it cannot be pickled; nothing is written.
        """
        self._check_writable()
        self._save_records(self._encode([obj]))
        return obj.persistent_id

    def save_many(self, objs: Iterable[Any]) -> list[Id]:
        """Save several objects as one unit (one transaction or one batch).

        :raises SerializationError: naming the object that cannot be pickled
            and its ``position`` in ``objs``; nothing is written.
        """
        self._check_writable()
        objs = list(objs)
        new = sum(1 for o in objs if getattr(o, "persistent_id", None) is None)
        if new:
            self.idfactory.reserve(new)
        self._save_records(self._encode(objs))
        return [o.persistent_id for o in objs]

    def replace(self, id_: str, obj: Any) -> None:
        """Overwrite record ``id_`` with ``obj`` (which takes that id)."""
        self._check_writable()
        obj.persistent_id = check_id(id_)
        self._save_records(self._encode([obj], claim_roots=False))

    def load(self, id_: str) -> Any:
        """Load the object with id ``id_`` (from the cache if it is there).

        :raises LoadError: (a subclass of it) naming the id and the location;
            the record is left as it is.
        """
        pid = _checked(id_)
        cached = self._cache.get(pid)
        if cached is not None:
            return cached
        return self._decoder().load(pid)

    def load_many(self, ids: Iterable[str],
                  errors: dict[str, LoadError] | None = None) -> dict[str, Any]:
        """Load several objects in one "load" (shared references stay shared).

        Records are read in bulk where the store can (one query per 500 ids
        for SQL stores).  With an ``errors`` dict, ids that fail to load are
        put there (id -> :class:`LoadError`) and left out of the result;
        without one the first failure is raised.
        """
        pids = [_checked(i) for i in ids]
        if not pids:
            return {}
        batch = self._read_many([p for p in pids if p not in self._cache])

        def fetch(pid: str) -> bytes:
            data = batch.pop(pid, None)
            return data if data is not None else self._read(pid)

        decoder = Decoder(fetch, self.location, self._memo(), trusted=self.trusted)
        result: dict[str, Any] = {}
        for pid in pids:
            try:
                result[pid] = decoder.load(pid)
            except LoadError as err:
                if errors is None:
                    raise
                errors[pid] = err
        return result

    def remove(self, id_: str) -> None:
        """Delete record ``id_`` (no error if it is already gone)."""
        pid = _checked(id_)
        self._check_writable()
        self._delete([pid])
        self._cache.pop(pid, None)

    def remove_many(self, ids: Iterable[str]) -> None:
        """Delete several records as one unit."""
        self._check_writable()
        pids = [_checked(i) for i in ids]
        if pids:
            self._delete(pids)
        for pid in pids:
            self._cache.pop(pid, None)

    def list(self) -> list[Id]:
        """Ids of every record in the store (children included)."""
        return [Id.parse(pid) for pid in self._list_ids()]

    def states(self, ids: Iterable[str] | None = None) -> dict[str, str | None]:
        """``{id: state}`` for ``ids`` (default: all) without loading the objects.

        Ids without a record are left out.
        """
        if ids is None:
            return self._states(None)
        # a session passes its dict of str ids: no copy needed to read them
        return self._states(list(ids) if isinstance(ids, dict) else [str(i) for i in ids])

    def summaries(self, ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """``{id: summary}`` for ``ids`` (default: all), read without unpickling anything.

        See :meth:`Store.summaries <gc3session.persistence.store.Store.summaries>`.
        """
        return self._summaries(None if ids is None else [str(i) for i in ids])

    def read_record(self, id_: str) -> bytes:
        """The raw bytes of a record (for copying between stores and for fsck)."""
        return self._read(_checked(id_))

    def read_records(self, ids: Iterable[str]) -> dict[str, bytes]:
        """Raw bytes of several records, in bulk where the store can.

        Records that cannot be read are left out; :meth:`read_record` of one
        of them raises the error that says why.
        """
        return self._read_many([_checked(i) for i in ids])

    def write_records(self, records: Mapping[str, bytes]) -> None:
        """Write raw record bytes verbatim, as one unit (the copy of :meth:`read_record`).

        The id counter is first moved past every id written, so that later
        saves never hand out (and overwrite) a copied record's id.
        """
        self._check_writable()
        batch = []
        for pid, data in records.items():
            record_id = check_id(pid)
            try:
                header = parse_header(data)
            except ValueError as err:  # refused before anything is written
                raise CorruptRecordError(f"refusing to write {record_id} to {self.location(record_id)}:"
                                         f" {err}", id=record_id, location=self.location(record_id),
                                         cause=str(err)) from err
            batch.append(Record(id=record_id, data=data, obj=None, state=header.state,
                                cls=header.cls, summary=header.summary_json))
        if batch:
            self._advance_counter_past(max(record.id.seqno for record in batch))
        self._write(batch)
        for record in batch:
            self._cache.pop(record.id, None)

    def _advance_counter_past(self, seqno: int) -> None:
        """Make the id counter never hand out ``seqno`` or a lower number again.

        Built on :meth:`_allocate_ids` alone: one number is taken to learn
        where the counter stands, and the gap up to ``seqno`` is taken too if
        the counter is behind.  Other processes only move the counter up
        meanwhile, which keeps this correct without a lock.
        """
        first = self._allocate_ids(1)
        if first < seqno:
            self._allocate_ids(seqno - first)
        self.idfactory.skip_past(seqno)
        self._counter_floor = max(self._counter_floor, seqno + 1, first + 1)

    def invalidate_cache(self) -> None:
        """Forget every cached object, so the next load reads the store."""
        self._cache.clear()

    # --- helpers -------------------------------------------------------------
    def _encode(self, objs: builtins.list[Any],
                claim_roots: bool = True) -> tuple[builtins.list[Record], int]:
        """Records of ``objs`` (each id once), and the highest id number they brought along.

        Objects at home in another store are refused.  Objects with an id
        but no home (built with an explicit id, copied outside gc3session)
        are written under that id, as GC3Pie does; the number returned lets
        :meth:`_save_records` move the counter past their ids first.
        """
        carried = 0

        def claim(obj: Any) -> None:
            nonlocal carried
            if self.claim(obj):
                carried = max(carried, Id.parse(str(obj.persistent_id)).seqno)

        records: builtins.list[Record] = []
        batch_ids: set[str] = set()
        for position, root in enumerate(objs):
            try:
                encoded = encode(root, self.idfactory.new, claim, claim_root=claim_roots)
            except SerializationError as err:
                raise SerializationError(str(err), **{**err.context, "position": position}) from err
            for record in encoded:
                if record.id not in batch_ids:
                    batch_ids.add(record.id)
                    records.append(record)
        return records, carried

    def _save_records(self, encoded: tuple[builtins.list[Record], int]) -> None:
        records, carried = encoded
        if carried and carried >= self._counter_floor:
            self._advance_counter_past(carried)
        self._commit(records)

    def _commit(self, records: builtins.list[Record]) -> None:
        self._write(records)
        here = self.home
        for record in records:
            try:
                record.obj.changed = False
            except AttributeError:
                pass  # a read-only ``changed`` property computes itself
            self._cache.put(record.id, record.obj)
            settle(record.obj, here, record.id, self.owner)

    def _decoder(self) -> Decoder:
        return Decoder(self._read, self.location, self._memo(), trusted=self.trusted)

    def _memo(self) -> CacheMemo:
        """The memo of one load: it consults and fills this store's object cache."""
        return CacheMemo(self._cache, self.home, self.owner)


def _checked(id_: Any) -> str:
    """``id_`` as a plain string, once it is checked to be ``Prefix.N`` (see :func:`check_id`)."""
    if not is_valid_id(id_):
        check_id(id_)  # raises InvalidValue naming it
    return str(id_)


__all__ = ["RecordStore"]
