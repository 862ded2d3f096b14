"""Which class a record names: relocation of renamed classes, and the allow-list of untrusted loads.

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

import importlib
from typing import Any

from ..exceptions import ClassNotFoundError, InvalidValue, UnsafeRecordError
from .record import class_path
from .serialization import Persistable

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


def has_relocations() -> bool:
    """Whether any class or module was relocated (:func:`relocate`)."""
    return bool(_relocations)


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
                 "gc3session.persistence.url", "gc3session.url", "gc3session.utils")


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


def is_record_class(cls: type) -> bool:
    """May a record header name ``cls`` in an untrusted load (a Persistable, or allowed)?"""
    return issubclass(cls, Persistable) or class_path(cls) in _allowed_classes


__all__ = ["allow", "find_class", "is_record_class", "relocate"]
