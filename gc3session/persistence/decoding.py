"""How records become objects again: :class:`Decoder`.

One decoder is one load: records are decoded by their header's class (found
by :mod:`~gc3session.persistence.classes`, which also decides what an
untrusted load admits), and references to other records are followed
through the store, so that every id maps to one object.  Every failure is a
:class:`~gc3session.exceptions.LoadError` subclass naming the id and where
its record lives.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from typing import Any, Callable, Iterable

from ..exceptions import CorruptRecordError, LoadError, UnsafeRecordError
from .classes import find_class, has_relocations, is_record_class
from .idfactory import Id, is_valid_id
from .record import REF_TAG, parse_header
from .safeload import UntrustedUnpickler


class Decoder:
    """Decode records into objects, re-linking references through ``fetch``.

    One decoder is one "load": every id maps to one object (``memo``), so
    shared children are shared again and cycles terminate.

    :param fetch: ``fetch(id) -> bytes`` reads a record (raising
        :class:`~gc3session.exceptions.LoadError` if absent).
    :param location: ``location(id) -> str`` names where the record lives,
        for error messages.
    :param trusted: if False, only allow-listed classes are resolved.
    """

    def __init__(self, fetch: Callable[[str], bytes], location: Callable[[str], str],
                 memo: dict[str, Any], *, trusted: bool = True) -> None:
        self._fetch = fetch
        self._location = location
        self.memo = memo
        self._trusted = trusted

    def load(self, pid: str) -> Any:
        """Return the object with id ``pid``, loading it (and its children) if needed."""
        pid = str(pid)
        obj = self.memo.get(pid)  # no KeyError raised and caught per load: it is the usual case
        if obj is not None:
            return obj
        data = self._fetch(pid)
        return self.decode(pid, data)

    def decode(self, pid: str, data: bytes) -> Any:
        """Decode the record bytes ``data`` of id ``pid``.

        :raises LoadError: (a subclass) for whatever goes wrong, naming
            ``pid`` and where its record lives, or naming the referenced
            record that failed to load.
        """
        try:
            header = parse_header(data)
        except ValueError as err:
            raise self._error(pid, err, str(err)) from err
        try:
            cls = self._record_class(header.cls)
        except LoadError as err:
            raise self._error(pid, err) from err
        if self._trusted and not has_relocations():
            # pickle's own find_class, in C: what classes.find_class does when no
            # class is relocated, except for the error a missing class raises, so
            # a failure is decoded again the slow way to say what is wrong.
            try:
                return self._build(pid, header.size, header.cls, cls, data, fast=True)
            except Exception:  # the slow decode below raises the error to report
                pass
        return self._build(pid, header.size, header.cls, cls, data, fast=False)

    def _build(self, pid: str, offset: int, cls_path: str, cls: type, data: bytes,
               fast: bool) -> Any:
        """The object of record ``pid`` whose payload starts at ``offset`` of ``data``."""
        stream = io.BytesIO(data)
        stream.seek(offset)
        if fast:
            unpickler = pickle.Unpickler(stream)
            unpickler.persistent_load = (  # type: ignore[method-assign]
                lambda ref: _follow_reference(self, ref))
        else:
            unpickler = self._unpickler(stream)
        try:
            args = unpickler.load()
            obj = cls.__new__(cls, *args)
            self.memo[pid] = obj
            state, listitems, dictitems = unpickler.load()
            _apply_state(obj, state, listitems, dictitems)
            if getattr(obj, "persistent_id", None) != pid:
                try:
                    obj.persistent_id = Id.parse(pid)
                except AttributeError as err:
                    raise CorruptRecordError(f"a {cls_path} object cannot hold a persistent_id:"
                                             " the header does not name a record class") from err
            with contextlib.suppress(AttributeError):  # a read-only ``changed`` computes itself
                obj.changed = False
        except Exception as err:  # anything the bytes of a record can make pickle or a class raise
            self.memo.pop(pid, None)
            if fast:
                raise
            if isinstance(err, LoadError) and getattr(err, "id", None) is not None:
                raise  # a referenced record's own error already names it
            raise self._error(pid, err, cls=cls_path) from err
        return obj

    def _record_class(self, path: str) -> type:
        """The class a record header names, if a record may be of that class."""
        cls = find_class(path, trusted=self._trusted)
        if not isinstance(cls, type):
            raise CorruptRecordError(f"the header names {path}, which is not a class",
                                     cls=path, cause="not a class")
        if not self._trusted and not is_record_class(cls):
            raise UnsafeRecordError(
                f"the header names {path}, which is not a record class (a Persistable or a"
                " class passed to allow()); an untrusted load does not build it",
                cls=path, cause="not a record class")
        return cls

    def _unpickler(self, stream: io.BytesIO) -> Any:
        if self._trusted:
            return _RefUnpickler(stream, self)
        return UntrustedUnpickler(stream, lambda path: find_class(path, trusted=False),
                                  lambda ref: _follow_reference(self, ref))

    def _error(self, pid: str, err: Exception, cause: str | None = None,
               cls: str | None = None) -> LoadError:
        """``err``, met while loading ``pid`` (of class ``cls``), as a LoadError naming ``pid``."""
        where = self._location(pid)
        if isinstance(err, LoadError):
            return type(err)(f"cannot load {pid} from {where}: {err}",
                             **{**err.context, "id": pid, "location": where,
                                "cause": getattr(err, "cause", None) or str(err)})
        cause = cause or f"{type(err).__name__}: {err}"
        of_class = f" (a {cls} record)" if cls else ""
        return CorruptRecordError(f"cannot load {pid} from {where}: {cause}{of_class}",
                                  id=pid, location=where, cause=cause)


class _RefUnpickler(pickle.Unpickler):
    """The unpickler of trusted loads (pickle's C one): it only re-links references."""

    def __init__(self, stream: io.BytesIO, decoder: Decoder) -> None:
        super().__init__(stream)
        self._decoder = decoder

    def persistent_load(self, pid: Any) -> Any:
        return _follow_reference(self._decoder, pid)

    def find_class(self, module: str, name: str) -> Any:
        return find_class(f"{module}:{name}", trusted=True)


def _follow_reference(decoder: Decoder, ref: Any) -> Any:
    """The object a persistent reference ``("gc3s", id)`` stands for.

    The id is checked before anything is fetched: a reference is data of the
    record, and ``../../x`` must never become a path.
    """
    if not (isinstance(ref, tuple) and len(ref) == 2 and ref[0] == REF_TAG):
        raise pickle.UnpicklingError(f"unknown persistent reference {ref!r:.80}")
    if not is_valid_id(ref[1]):
        raise pickle.UnpicklingError(f"a reference to {ref[1]!r:.80}, which is not a task id")
    return decoder.load(ref[1])


def _apply_state(obj: Any, state: Any, listitems: Iterable[Any] | None,
                 dictitems: dict[Any, Any] | None) -> None:
    """Restore ``state`` on ``obj`` the way pickle's BUILD opcode does."""
    if state is not None:
        setstate = getattr(obj, "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            slotstate = None
            if isinstance(state, tuple) and len(state) == 2:
                state, slotstate = state
            if state:
                obj.__dict__.update(state)
            if slotstate:
                for key, value in slotstate.items():
                    setattr(obj, key, value)
    if listitems:
        obj.extend(listitems)
    if dictitems:
        for key, value in dictitems.items():
            obj[key] = value


__all__ = ["Decoder"]
