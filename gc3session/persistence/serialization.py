"""Records: how one persistent object becomes bytes, and back.

Record format (version 1)
-------------------------
A record is one ASCII header line followed by the payload::

    GC3S 1 pickle4 gc3session.task:Task TERMINATED\\n<payload>

The fields are: a magic word, the record format version, the serializer name
(``pickle4``: pickle protocol 4, pinned so that every Python >= 3.4 can read
it, never "highest available"), the ``module:qualname`` of the object's
class (so a load failure can say which class is missing, and tools can list a
store without importing user code) and the task state (``-`` for objects that
have none).  The header is at most :data:`MAX_HEADER` bytes.

The payload of ``pickle4`` is two consecutive pickles: first the constructor
arguments of the object (``cls.__new__(cls, *args)``), then its state (what
``__getstate__`` returns, plus list and dict items for container subclasses).
Splitting them lets the loader create the (empty) object and register it
under its id *before* unpickling its state, so reference cycles between
records terminate and every id maps to one object within a load.

References
----------
A :class:`Persistable` met while pickling another object is not embedded: it
is saved as its own record (if it is new or ``changed``) and the parent keeps
the reference ``("gc3s", id)``.  :func:`encode` returns the records of the
root and of every child it had to save, children first, so a store can write
them in one transaction.

Class relocation
----------------
:func:`relocate` maps an old ``module:qualname`` (or an old module prefix) to
its new place, so records written before a rename keep loading.

Trust
-----
Pickle runs code named by the data it reads.  A load with ``trusted=False``
admits exactly this, and raises
:class:`~gc3session.exceptions.UnsafeRecordError` for anything else:

* names resolve from an allow-list only (:func:`find_class`): classes (never
  functions, never names a module merely imports) defined in gc3session's
  and its stores' modules that are records (:class:`Persistable`
  subclasses) or exceptions, the classes of the plain-data modules (tasks,
  ids, store URLs); the builtins ``set``, ``frozenset``, ``complex``,
  ``bytearray``, ``slice`` and ``object``; ``collections.OrderedDict``,
  ``deque`` and ``defaultdict``; ``datetime``'s ``datetime``, ``date``,
  ``time``, ``timedelta`` and ``timezone``; ``decimal.Decimal``;
  ``uuid.UUID``; ``pathlib``'s ``PurePosixPath``, ``PosixPath`` and
  ``Path``; ``copyreg._reconstructor``; the helper that rebuilds
  gc3session's exceptions; and what :func:`allow` added.  Left out on
  purpose although task state could hold them: ``range`` (it makes
  ``set(range(10**10))`` out of a few bytes), ``fractions.Fraction``
  (``Fraction("1e1000000000")`` computes a billion-digit number) and
  ``enum.Enum`` (its functional API builds classes);
* the header names a record class: a :class:`Persistable` subclass or a
  class :func:`allow` added (never ``frozenset`` or ``timedelta``);
* the pickle stream runs on :class:`~.safeload.UntrustedUnpickler`: only
  objects resolved by name are called, ``bytearray`` only from bytes (never
  a size), ``copyreg._reconstructor`` only as ``object.__new__(cls)``; no
  attribute of a class or function is ever set; integers are at most
  2 kB; extension codes are refused;
* references name valid ids (``Prefix.N``), as everywhere.

So no single call a record makes can compute or allocate far beyond the
record's own size, and no record can change a class or a function of the
process.  The price is speed: the checks run in Python, and a session loads
about four times slower untrusted than trusted.  Loads with
``trusted=True`` (the default) run plain pickle: records from someone else
must be loaded with ``trusted=False``.

Every failure of a load, trusted or not, is a
:class:`~gc3session.exceptions.LoadError` subclass naming the id and where
the record lives.
"""

from __future__ import annotations

import contextlib
import copyreg
import importlib
import io
import pickle
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..exceptions import (
    ClassNotFoundError,
    CorruptRecordError,
    InvalidValue,
    LoadError,
    SerializationError,
    UnsafeRecordError,
)
from .idfactory import Id, is_valid_id
from .safeload import UntrustedUnpickler

#: The pinned pickle protocol of records.
PICKLE_PROTOCOL = 4
#: Current record format version.
FORMAT_VERSION = 1
MAGIC = b"GC3S"
SERIALIZER = "pickle4"
MAX_HEADER = 512
_NO_STATE = "-"
_REF_TAG = "gc3s"


class Persistable:
    """Base class of the objects a store saves as records of their own.

    ``persistent_id`` is set by the store on the first save; ``changed`` is
    set on creation and cleared by a successful save (subclasses such as
    :class:`gc3session.task.Task` set it again on every change).  Identity is
    plain object identity: two loads within one session return the same
    object for the same id, and comparing ids is what ``x.persistent_id ==
    y.persistent_id`` is for.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "persistent_id" in kwargs:
            self.persistent_id = kwargs.pop("persistent_id")
        self.changed = True
        super().__init__(*args, **kwargs)

    def __str__(self) -> str:
        pid = getattr(self, "persistent_id", None)
        return str(pid) if pid is not None else super().__str__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        if _fast_path.active:  # met inside a state being pickled: it needs a reference
            raise _NeedsReferences
        return super().__reduce_ex__(protocol)


class _FastPath(threading.local):
    """Set while a state is pickled without the reference hook (see :func:`_encode_one`)."""

    active = False


_fast_path = _FastPath()


class _NeedsReferences(Exception):
    """A Persistable was met on the fast path: pickle again with references."""


def class_path(cls: type) -> str:
    """``module:qualname`` of a class, the form written in record headers."""
    return f"{cls.__module__}:{cls.__qualname__}"


# --- relocation and trust (process-wide registries) -------------------------

_relocations: dict[str, str] = {}
_allowed_classes: set[str] = set()
_ALLOWED_MODULE_PREFIXES = ("gc3session.",)
#: What untrusted loads resolve besides gc3session's own data classes (see the
#: module docstring for what is left out, and why).
_ALLOWED_BUILTINS = {
    "builtins:set", "builtins:frozenset", "builtins:complex", "builtins:bytearray",
    "builtins:slice", "builtins:object",
    "collections:OrderedDict", "collections:deque", "collections:defaultdict",
    "datetime:datetime", "datetime:date", "datetime:time", "datetime:timedelta",
    "datetime:timezone", "decimal:Decimal", "uuid:UUID",
    "pathlib:PurePosixPath", "pathlib:PosixPath", "pathlib:Path",
    "copyreg:_reconstructor",
    "gc3session.exceptions:_rebuild",  # how gc3session's exceptions pickle
}


def relocate(old: str, new: str) -> None:
    """Load records written under ``old`` from ``new``.

    Both are ``module:qualname`` class paths, or both module names (then every
    class under the old module, and its submodules, moves).

    >>> relocate("oldpkg.tasks:MyTask", "newpkg.tasks:MyTask")
    >>> _resolve_path("oldpkg.tasks:MyTask")
    'newpkg.tasks:MyTask'
    >>> del _relocations["oldpkg.tasks:MyTask"]; _class_cache.clear()
    """
    if (":" in old) != (":" in new):
        raise InvalidValue(f"relocate() needs two class paths or two module names,"
                           f" not {old!r} and {new!r}")
    _relocations[old] = new
    _class_cache.clear()


def allow(path: str) -> None:
    """Put a ``module:qualname`` class on the allow-list of untrusted loads."""
    _allowed_classes.add(path)
    _class_cache.clear()


def _resolve_path(path: str) -> str:
    if path in _relocations:
        return _relocations[path]
    module, _, name = path.partition(":")
    parts = module.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in _relocations:
            return f"{_relocations[prefix]}{module[len(prefix):]}:{name}"
    return path


def _is_allowed(path: str) -> bool:
    module = path.partition(":")[0]
    return (path in _ALLOWED_BUILTINS or path in _allowed_classes
            or module + "." in _ALLOWED_MODULE_PREFIXES
            or module.startswith(_ALLOWED_MODULE_PREFIXES))


#: Modules of gc3session whose classes are plain data (their constructors touch nothing).
_DATA_MODULES = ("gc3session.task", "gc3session.persistence.idfactory",
                 "gc3session.persistence.url")


def _is_own_data_class(obj: Any, path: str) -> bool:
    """Tell whether ``obj``, found under an allowed module prefix, may be built by a load.

    A pickle can *call* whatever it resolves, so the module-prefix allowance
    covers only classes defined exactly at ``path`` (not functions, and not
    names a module merely imports: ``gc3session.stores.filesystem:os.system`` resolves
    to ``os.system``), and only data classes: records, exceptions and the
    classes of the data modules.  A session or store class, whose
    constructor creates files, is never built by an untrusted load.
    """
    if not isinstance(obj, type) or class_path(obj) != path:
        return False
    return (issubclass(obj, (Persistable, BaseException))
            or obj.__module__ in _DATA_MODULES)


def find_class(path: str, *, trusted: bool = True) -> Any:
    """Import the class named by ``path`` (after relocation).

    Successful look-ups are cached (every record of a session names the same
    few classes); :func:`relocate` and :func:`allow` clear the cache.

    :raises UnsafeRecordError: if not trusted and not allow-listed.
    :raises ClassNotFoundError: if it cannot be imported.
    """
    try:
        return _class_cache[path, trusted]
    except KeyError:
        pass
    found = _find_class(path, trusted)
    _class_cache[path, trusted] = found
    return found


_class_cache: dict[tuple[str, bool], Any] = {}


def _find_class(path: str, trusted: bool) -> Any:
    path = _resolve_path(path)
    if not trusted and not _is_allowed(path):
        raise UnsafeRecordError(f"class {path} is not allowed in an untrusted load",
                                cls=path, cause="not on the allow-list")
    module_name, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as err:
        raise ClassNotFoundError(f"cannot import class {path}: {err}",
                                 cls=path, cause=str(err)) from err
    if (not trusted and path not in _ALLOWED_BUILTINS and path not in _allowed_classes
            and not _is_own_data_class(obj, path)):
        raise UnsafeRecordError(f"{path} is not a data class of gc3session and is not allowed"
                                " in an untrusted load", cls=path, cause="not on the allow-list")
    return obj


# --- encoding ----------------------------------------------------------------

@dataclass
class Record:
    """One object encoded for storage."""

    id: Id
    data: bytes
    obj: Any
    state: str | None
    cls: str


def task_state(obj: Any) -> str | None:
    """The ``execution.state`` of a task, or None for objects without one."""
    execution = getattr(obj, "execution", None)
    state = getattr(execution, "state", None)
    return str(state) if state is not None else None


def encode(root: Any, assign_id: Callable[[Any], Id],
           claim: Callable[[Any], None] | None = None, *, claim_root: bool = True) -> list[Record]:
    """Encode ``root`` and every new or changed :class:`Persistable` it references.

    ``assign_id(obj)`` gives an object without ``persistent_id`` a fresh id.
    ``claim(obj)`` is called for every object of the save that already has
    an id (``root`` only if ``claim_root``), whether it is written or only
    referenced; it raises to refuse an object that belongs to another store
    (see :mod:`gc3session.persistence.home`).  Returns the records, children
    first and ``root`` last.

    :raises SerializationError: if some part of the object cannot be pickled.
    """
    records: list[Record] = []
    seen: set[int] = set()

    def visit(obj: Any) -> Id:
        if getattr(obj, "persistent_id", None) is None:
            obj.persistent_id = assign_id(obj)
        seen.add(id(obj))
        records.append(_encode_one(obj, child_ref))
        return Id.parse(str(obj.persistent_id))

    def child_ref(obj: Any) -> tuple[str, str] | None:
        if id(obj) in seen:  # the root or an object already in this save: a back-reference
            return (_REF_TAG, str(obj.persistent_id))
        if not isinstance(obj, Persistable):
            return None
        pid = getattr(obj, "persistent_id", None)
        if pid is not None and claim is not None:
            claim(obj)
        if pid is None or getattr(obj, "changed", True):
            pid = visit(obj)
        return (_REF_TAG, str(pid))

    if claim is not None and claim_root and getattr(root, "persistent_id", None) is not None:
        claim(root)
    visit(root)
    # visit() appends each record when its own pickling is done, so children
    # (finished first) precede their parents and the root comes last.
    return records


def _encode_one(obj: Any, child_ref: Callable[[Any], Any]) -> Record:
    cls = type(obj)
    pid = Id.parse(str(obj.persistent_id))
    try:
        reduced = obj.__reduce_ex__(PICKLE_PROTOCOL)
    except Exception as err:  # any failure of user code in __reduce_ex__
        raise SerializationError(f"cannot serialize {pid}: {err}", id=pid) from err
    if not (isinstance(reduced, tuple) and reduced[0] is copyreg.__newobj__  # type: ignore[attr-defined]
            and reduced[1][0] is cls):
        raise SerializationError(
            f"cannot serialize {pid}: {class_path(cls)} must pickle through"
            " __getstate__/__setstate__, not a custom __reduce__", id=pid)
    args = reduced[1][1:]
    state = reduced[2] if len(reduced) > 2 else None
    listitems = list(reduced[3]) if len(reduced) > 3 and reduced[3] is not None else None
    dictitems = dict(reduced[4]) if len(reduced) > 4 and reduced[4] is not None else None
    buffer = io.BytesIO()
    state_str = task_state(obj)
    if state_str is not None and (not state_str or any(c.isspace() for c in state_str)):
        raise SerializationError(f"cannot serialize {pid}: invalid state {state_str!r}", id=pid)
    buffer.write(b" ".join([MAGIC, str(FORMAT_VERSION).encode(), SERIALIZER.encode(),
                            class_path(cls).encode(), (state_str or _NO_STATE).encode()])
                 + b"\n")
    try:
        # Fast path: most states hold no reference to another record, and
        # pickle runs at C speed without a Python hook per object.  A
        # Persistable met on the way raises _NeedsReferences (its
        # __reduce_ex__ checks _fast_path), and the state is pickled again
        # with the reference hook.  Both pickles come from one pickler, as on
        # the slow path: the loader reads them with one unpickler, whose memo
        # spans both, so memo indices must count across the two pickles.
        fast = io.BytesIO()
        _fast_path.active = True
        try:
            pickler = pickle.Pickler(fast, PICKLE_PROTOCOL)
            pickler.dump(args)
            pickler.dump((state, listitems, dictitems))
            payload = fast.getvalue()
        except _NeedsReferences:
            payload = b""
        finally:
            _fast_path.active = False
        if payload:
            buffer.write(payload)
        else:
            pickler = _RefPickler(buffer, child_ref)
            pickler.dump(args)
            pickler.dump((state, listitems, dictitems))
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as err:
        raise SerializationError(f"cannot serialize {pid}: {err}", id=pid) from err
    return Record(id=pid, data=buffer.getvalue(), obj=obj, state=state_str, cls=class_path(cls))


class _RefPickler(pickle.Pickler):
    """Pickle the state of one object, turning references to records into ids.

    The object itself is never pickled whole (its constructor arguments and
    state are dumped separately), so a reference back to it is a reference
    like any other.
    """

    def __init__(self, stream: io.BytesIO, child_ref: Callable[[Any], Any]) -> None:
        super().__init__(stream, protocol=PICKLE_PROTOCOL)
        self._child_ref = child_ref

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) in _PLAIN_TYPES:  # the bulk of any state: skip the bookkeeping
            return None
        return self._child_ref(obj)


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), bytes, tuple, list, dict, set})


# --- decoding ----------------------------------------------------------------

@dataclass(frozen=True)
class Header:
    """The parsed header line of a record."""

    version: int
    serializer: str
    cls: str
    state: str | None
    size: int


def parse_header(data: bytes) -> Header:
    """Parse a record header.

    :raises ValueError: with a description of what is wrong (the caller turns
        it into a :class:`CorruptRecordError` naming the id and location).
    """
    end = data.find(b"\n", 0, MAX_HEADER)
    if end < 0:
        raise ValueError("no record header (empty, truncated or not a gc3session record)")
    fields = data[:end].split(b" ")
    if len(fields) != 5 or fields[0] != MAGIC:
        raise ValueError("not a gc3session record header")
    try:
        version = int(fields[1])
        text = [f.decode("ascii") for f in fields[2:]]
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"malformed record header: {err}") from err
    if version != FORMAT_VERSION:
        raise ValueError(f"unsupported record format version {version}")
    if text[0] != SERIALIZER:
        raise ValueError(f"unknown serializer {text[0]!r}")
    return Header(version, text[0], text[1], None if text[2] == _NO_STATE else text[2], end + 1)


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
        try:
            return self.memo[pid]
        except KeyError:
            pass
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
        stream = io.BytesIO(data)
        stream.seek(header.size)
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
                    raise CorruptRecordError(f"a {header.cls} object cannot hold a persistent_id:"
                                             " the header does not name a record class") from err
            with contextlib.suppress(AttributeError):  # a read-only ``changed`` computes itself
                obj.changed = False
        except Exception as err:  # anything the bytes of a record can make pickle or a class raise
            self.memo.pop(pid, None)
            if isinstance(err, LoadError) and getattr(err, "id", None) is not None:
                raise  # a referenced record's own error already names it
            raise self._error(pid, err, cls=header.cls) from err
        return obj

    def _record_class(self, path: str) -> type:
        """The class a record header names, if a record may be of that class."""
        cls = find_class(path, trusted=self._trusted)
        if not isinstance(cls, type):
            raise CorruptRecordError(f"the header names {path}, which is not a class",
                                     cls=path, cause="not a class")
        if not self._trusted and not (issubclass(cls, Persistable)
                                      or class_path(cls) in _allowed_classes):
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
    if not (isinstance(ref, tuple) and len(ref) == 2 and ref[0] == _REF_TAG):
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
