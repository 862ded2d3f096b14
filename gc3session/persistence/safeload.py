"""The unpickler of untrusted loads: every call and every change it makes is checked.

pickle's C unpickler can only be told which names resolve (``find_class``);
it then calls what it resolved with whatever arguments the data holds, and
lets the data set attributes on anything it holds, classes included.  Loads
with ``trusted=False`` therefore run on pickle's pure-Python unpickler, whose
opcodes can be checked one by one (it is about ten times slower; trusted
loads keep the C unpickler):

* a call (``REDUCE``, ``NEWOBJ``, ``NEWOBJ_EX``, ``INST``, ``OBJ``) only
  calls an object this load resolved by name, and the arguments of the
  callables that could allocate or compute without bound are checked:
  ``bytearray`` is only rebuilt from bytes (or text and an encoding), never
  from a size or an iterable, and ``copyreg._reconstructor`` only as
  ``object.__new__(cls)``;
* a change (``BUILD``, ``APPEND(S)``, ``SETITEM(S)``, ``ADDITEMS``) never
  applies to an object resolved by name: a record cannot set attributes of
  a class or a function, which would change them for the whole process;
* integers are at most :data:`MAX_INT_BYTES` bytes in binary form
  (``LONG4``) and :data:`MAX_INT_DIGITS` characters in text form (``INT``,
  ``LONG``): converting a larger one to ``Decimal``, or comparing it with
  one, costs time quadratic in its size (seconds for a 100 kB record);
* extension codes (``EXT1``/``EXT2``/``EXT4``) are refused: they resolve
  through a process-wide cache instead of the allow-list.

Every refusal raises :class:`~gc3session.exceptions.UnsafeRecordError`.
Which names resolve at all is decided by the caller's ``resolve`` (the
allow-list of :mod:`gc3session.persistence.serialization`).
"""

from __future__ import annotations

import copyreg
import io
import pickle
import struct
from typing import Any, Callable, cast

from ..exceptions import UnsafeRecordError

#: The largest integer an untrusted record may hold, in bytes (16384 bits).
MAX_INT_BYTES = 2048
#: The longest integer an untrusted record may spell in text (Python's own default limit).
MAX_INT_DIGITS = 4300


def _check_bytearray(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if kwargs or not (not args or (len(args) == 1 and isinstance(args[0], (bytes, bytearray)))
                      or (1 < len(args) <= 3 and all(isinstance(a, str) for a in args))):
        given = ", ".join(type(a).__name__ for a in args) or "keywords"
        raise UnsafeRecordError(
            f"bytearray({given}) is not rebuilt in an untrusted load: only bytes (or text"
            " and an encoding) are, never a size or an iterable, which could allocate"
            " without bound", cause="bytearray from a size or an iterable")


def _check_reconstructor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if kwargs or len(args) != 3 or not isinstance(args[0], type) or args[1] is not object \
            or args[2] is not None:
        raise UnsafeRecordError(
            "copyreg._reconstructor is only run as object.__new__(cls) in an untrusted load:"
            " another base class would run its constructor with arguments of the record's"
            " choosing", cause="_reconstructor with a base other than object")


#: Callables whose arguments are checked before an untrusted load calls them.
ARGUMENT_CHECKS: tuple[tuple[Any, Callable[[tuple[Any, ...], dict[str, Any]], None]], ...] = (
    (bytearray, _check_bytearray),
    (copyreg._reconstructor, _check_reconstructor),  # type: ignore[attr-defined]
)


#: pickle's pure-Python unpickler (typeshed describes it as the C one, without its opcode methods).
_PurePythonUnpickler: Any = pickle._Unpickler  # type: ignore[attr-defined]


class UntrustedUnpickler(_PurePythonUnpickler):
    """Unpickle one stream, calling ``resolve(module:name)`` for every name it meets.

    :param resolve: returns the object a ``module:qualname`` path names, or
        raises (the allow-list).
    :param follow: ``follow(reference)`` returns the object a persistent
        reference stands for (another record).
    """

    dispatch: dict[int, Callable[[Any], None]] = dict(_PurePythonUnpickler.dispatch)

    def __init__(self, stream: io.BytesIO, resolve: Callable[[str], Any],
                 follow: Callable[[Any], Any]) -> None:
        super().__init__(stream)
        self._resolve = resolve
        self._follow = follow
        self._named: dict[int, str] = {}  # id() of each object resolved by name -> its path

    def find_class(self, module: str, name: str) -> Any:
        path = f"{module}:{name}"
        obj = self._resolve(path)
        # Resolved objects live in their modules for the whole process, so no
        # other object of this load can share their id().
        self._named[id(obj)] = path
        return obj

    def persistent_load(self, pid: Any) -> Any:
        return self._follow(pid)

    # --- calls ---------------------------------------------------------------
    def _checked(self, func: Any, args: Any, kwargs: Any) -> None:
        if id(func) not in self._named:
            raise UnsafeRecordError(
                f"the record calls a {type(func).__name__} object it did not name by an allowed"
                " class path", cause="call of an object not resolved by name")
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise pickle.UnpicklingError("call arguments are not a tuple and a dict")
        for callable_, check in ARGUMENT_CHECKS:
            if func is callable_:
                check(args, kwargs)

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        self._checked(func, args, {})
        self.stack[-1] = func(*args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _new(self, cls: Any, args: Any, kwargs: Any) -> None:
        if not isinstance(cls, type):
            raise pickle.UnpicklingError(f"NEWOBJ of a {type(cls).__name__}, not of a class")
        self._checked(cls, args, kwargs)
        self.append(cls.__new__(cls, *args, **kwargs))

    def load_newobj(self) -> None:
        args = self.stack.pop()
        self._new(self.stack.pop(), args, {})

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        self._new(self.stack.pop(), args, kwargs)

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass: Any, args: list[Any]) -> None:  # INST and OBJ
        self._checked(klass, tuple(args), {})
        if args or not isinstance(klass, type) or hasattr(klass, "__getinitargs__"):
            self.append(klass(*args))
        else:  # as pickle does: a class without arguments is created, not initialized
            self.append(cast(Any, klass).__new__(klass))

    # --- changes -------------------------------------------------------------
    def _check_target(self, target: Any) -> None:
        path = self._named.get(id(target))
        if path is not None:
            raise UnsafeRecordError(
                f"the record would change {path}, a class or function of this process, not an"
                " object of its own", cls=path, cause="change of an object resolved by name")

    def load_build(self) -> None:
        self._check_target(self.stack[-2])
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def load_append(self) -> None:
        self._check_target(self.stack[-2])
        super().load_append()

    dispatch[pickle.APPEND[0]] = load_append

    def load_setitem(self) -> None:
        self._check_target(self.stack[-3])
        super().load_setitem()

    dispatch[pickle.SETITEM[0]] = load_setitem

    def _check_marked_target(self) -> None:
        # APPENDS, SETITEMS and ADDITEMS change the object below the mark
        self._check_target(self.metastack[-1][-1])

    def load_appends(self) -> None:
        self._check_marked_target()
        super().load_appends()

    dispatch[pickle.APPENDS[0]] = load_appends

    def load_setitems(self) -> None:
        self._check_marked_target()
        super().load_setitems()

    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_additems(self) -> None:
        self._check_marked_target()
        super().load_additems()

    dispatch[pickle.ADDITEMS[0]] = load_additems

    # --- sizes and names ---------------------------------------------------------
    def load_long4(self) -> None:
        size, = struct.unpack("<i", self.read(4))
        if size < 0:
            raise pickle.UnpicklingError("LONG4 with a negative byte count")
        if size > MAX_INT_BYTES:
            raise _too_big(f"{size} bytes")
        self.append(pickle.decode_long(self.read(size)))

    dispatch[pickle.LONG4[0]] = load_long4

    def load_long(self) -> None:
        text = self.readline()[:-1]
        if len(text) > MAX_INT_DIGITS:
            raise _too_big(f"{len(text)} digits")
        self.append(int(text[:-1] if text.endswith(b"L") else text, 0))

    dispatch[pickle.LONG[0]] = load_long

    def load_int(self) -> None:
        text = self.readline()
        if len(text) > MAX_INT_DIGITS:
            raise _too_big(f"{len(text)} digits")
        if text in (b"00\n", b"01\n"):  # protocol 0 spells False and True this way
            self.append(text == b"01\n")
        else:
            self.append(int(text, 0))

    dispatch[pickle.INT[0]] = load_int

    def _refuse_extension(self) -> None:
        raise UnsafeRecordError("the record uses a pickle extension code, which an untrusted"
                                " load does not resolve", cause="extension code")

    for _opcode in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_opcode[0]] = _refuse_extension
    del _opcode


def _too_big(size: str) -> UnsafeRecordError:
    return UnsafeRecordError(
        f"the record holds an integer of {size}; an untrusted load takes at most"
        f" {MAX_INT_BYTES} bytes ({MAX_INT_DIGITS} digits), as larger ones can cost seconds"
        " to convert or compare", cause="integer too large")


__all__ = ["ARGUMENT_CHECKS", "MAX_INT_BYTES", "MAX_INT_DIGITS", "UntrustedUnpickler"]
