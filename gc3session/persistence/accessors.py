"""Accessors: small callables that read a value out of an object, for ``extra_fields``.

An SQL store's ``extra_fields`` maps each column to a function of the saved
object.  GC3Pie scripts write those functions with its accessor notation,
which reads like the Python expression it evaluates::

    extra_fields = {
        sqlalchemy.Column("jobname", sqlalchemy.Text()): GET.jobname,
        sqlalchemy.Column("rc", sqlalchemy.Integer()): GET.execution.returncode,
        sqlalchemy.Column("cmd", sqlalchemy.Text()): GetValue(default=None).arguments[0],
    }

``GET.a.b[0]`` is a callable that returns ``obj.a.b[0]`` for the ``obj`` it
is given.  A missing attribute (``AttributeError``) or item (``KeyError``,
``IndexError``) raises, unless the chain was started with a default,
``GetValue(default=d)``, which it then returns.  ``.ONLY(cls)``, last in a
chain, applies the chain to instances of ``cls`` only and gives the default
(None if there is none) for anything else.

The names and their behaviour are those of ``gc3libs.persistence.accessors``
(:class:`GetValue`, :data:`GET`, :class:`GetAttributeValue`,
:class:`GetItemValue`, :class:`GetOnly`); every accessor also shows the
expression it stands for, so a warning about a failing extra field can name
it.  Attribute names starting with ``_`` cannot be chained (they would clash
with Python's own protocols), nor can the accessors' own attributes
(``default``, ``attr``, ``idx``, ``only``, ``xform``), as in gc3libs; use
``GetAttributeValue("name")`` for those.
"""

from __future__ import annotations

import functools
from typing import Any, Callable


class _NoDefault:
    """The "no default given" marker (None is a legitimate default)."""

    def __repr__(self) -> str:
        return "<no default>"


_NO_DEFAULT: Any = _NoDefault()


def _identity(obj: Any) -> Any:
    return obj


class GetValue:
    """The identity accessor, and the start of accessor chains (``GET.x[0]``).

    >>> from gc3session.utils import Struct
    >>> x = Struct(a=[21, 42], b="foo")
    >>> GET.a[1](x), GET(x) is x
    (42, True)
    >>> GetValue(default="none").a[3](x)
    'none'
    >>> GET.a[3]
    GET.a[3]

    :param default: what the chain gives when an attribute or item is missing.
    """

    __slots__ = ("default",)

    def __init__(self, default: Any = _NO_DEFAULT) -> None:
        self.default = default

    def __call__(self, obj: Any) -> Any:
        return obj

    def __getattr__(self, name: str) -> "GetAttributeValue":
        if name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return GetAttributeValue(name, xform=self, default=self.default)

    def __getitem__(self, place: Any) -> "GetItemValue":
        return GetItemValue(place, xform=self, default=self.default)

    def ONLY(self, specifier: "type | tuple[type, ...]") -> "GetOnly":
        """This chain for instances of ``specifier``; the default (or None) for anything else.

        It must come last: it tests the object the chain is given, not the
        value the chain has reached.

        >>> from gc3session.utils import Struct
        >>> only = GetValue(default="other").a[0].ONLY(Struct)
        >>> only(Struct(a=["bar"])), only({"a": ["bar"]})
        ('bar', 'other')
        """
        return GetOnly(specifier, xform=self, default=self.default)

    def _expression(self) -> str:
        return "GET" if self.default is _NO_DEFAULT else f"GetValue(default={self.default!r})"

    def __repr__(self) -> str:
        return self._expression()


#: The identity accessor without a default: the usual start of a chain.
GET = GetValue()


def _expression_of(xform: Callable[[Any], Any]) -> str:
    if isinstance(xform, GetValue):
        return xform._expression()
    return "GET" if xform is _identity else f"{getattr(xform, '__name__', 'f')}(...)"


class GetAttributeValue(GetValue):
    """The attribute ``attr`` of ``xform(obj)``; a dotted name reads attributes in turn.

    >>> from gc3session.utils import Struct
    >>> GetAttributeValue("x.y")(Struct(x=Struct(y=42)))
    42
    >>> GetAttributeValue("x", default=None)(Struct(z=3)) is None
    True
    >>> GetAttributeValue("x")(Struct(z=3))
    Traceback (most recent call last):
    ...
    AttributeError: 'Struct' object has no attribute 'x'

    :param attr: the attribute name (``a.b`` for ``obj.a.b``).
    :param xform: applied to the object first (default: the identity).
    :param default: returned instead of raising ``AttributeError``.
    """

    __slots__ = ("attr", "xform")

    def __init__(self, attr: str, xform: Callable[[Any], Any] = _identity,
                 default: Any = _NO_DEFAULT) -> None:
        super().__init__(default)
        self.attr = attr
        self.xform = xform

    def __call__(self, obj: Any) -> Any:
        try:
            return functools.reduce(getattr, self.attr.split("."), self.xform(obj))
        except AttributeError:
            if self.default is _NO_DEFAULT:
                raise
            return self.default

    def _expression(self) -> str:
        return f"{_expression_of(self.xform)}.{self.attr}"


class GetItemValue(GetValue):
    """The item ``place`` of ``xform(obj)``: ``xform(obj)[place]``.

    >>> GetItemValue(1)("abc"), GetItemValue("a", xform=dict)([("a", 1)])
    ('b', 1)
    >>> GetItemValue(42, default="none")(["x"])
    'none'

    :param place: the index or key.
    :param xform: applied to the object first (default: the identity).
    :param default: returned instead of raising ``KeyError`` or ``IndexError``.
    """

    __slots__ = ("idx", "xform")

    def __init__(self, place: Any, xform: Callable[[Any], Any] = _identity,
                 default: Any = _NO_DEFAULT) -> None:
        super().__init__(default)
        self.idx = place
        self.xform = xform

    def __call__(self, obj: Any) -> Any:
        try:
            return self.xform(obj)[self.idx]
        except (KeyError, IndexError):
            if self.default is _NO_DEFAULT:
                raise
            return self.default

    def _expression(self) -> str:
        return f"{_expression_of(self.xform)}[{self.idx!r}]"


class GetOnly(GetValue):
    """``xform(obj)`` if ``obj`` is an instance of ``only``; otherwise the default, or None.

    >>> from gc3session.utils import Struct
    >>> GetOnly(Struct, default=42)(dict(foo="bar")), GetOnly(Struct)({}) is None
    (42, True)

    :param only: a class or a tuple of classes.
    :param xform: the accessor applied to matching objects.
    :param default: given for other objects (None if not set).
    """

    __slots__ = ("only", "xform")

    def __init__(self, only: "type | tuple[type, ...]", xform: Callable[[Any], Any] = _identity,
                 default: Any = _NO_DEFAULT) -> None:
        super().__init__(default)
        self.only = only
        self.xform = xform

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, self.only):
            return self.xform(obj)
        return None if self.default is _NO_DEFAULT else self.default

    def _expression(self) -> str:
        names = self.only if isinstance(self.only, tuple) else (self.only,)
        spec = ", ".join(getattr(cls, "__name__", repr(cls)) for cls in names)
        return f"{_expression_of(self.xform)}.ONLY({spec})"


__all__ = ["GET", "GetAttributeValue", "GetItemValue", "GetOnly", "GetValue"]
