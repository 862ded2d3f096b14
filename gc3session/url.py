"""GC3Pie's URL values: :class:`Url`, :class:`UrlKeyDict` and :class:`UrlValueDict`.

Ported code builds ``gc3libs.url.Url`` objects for input and output
locations and keeps them in dicts whose keys (or values) are URLs; these are
the same values, with the same fields and the same field order
(``scheme, netloc, path, hostname, port, query, username, password,
fragment``, so ``url[2]`` is the path), parsed the same way:

* a string without a scheme is a path, scheme ``file``; a relative path is
  made absolute unless ``force_abs=False``;
* ``//host/path`` names a host (RFC 3986), ``#`` starts the fragment;
* keyword arguments alone give exactly those fields.

Two differences, both on purpose: a password never appears in ``str()`` or
``repr()`` (``***`` stands for it; :meth:`Url.render` with
``hide_password=False`` is the one way to get the text back with it), and a
pickled URL keeps its fragment (GC3Pie's loses it).  Equality compares the
fields, so a string is equal to the URL it parses to; because the text of a
URL hides its password, text is never what is compared.

A :class:`Url` is what :func:`gc3session.make_store` also accepts in place
of a URL string.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, NamedTuple
from urllib.parse import urlsplit

from .exceptions import InvalidValue


class _UrlFields(NamedTuple):
    scheme: str
    netloc: str
    path: str
    hostname: str | None
    port: int | None
    query: str
    username: str | None
    password: str | None
    fragment: str


class Url(_UrlFields):
    """An immutable URL, parsed from a string or given field by field.

    >>> u = Url("postgresql://bob:s3cret@db.example:5433/jobs#table=runs")
    >>> u.scheme, u.hostname, u.port, u.username, u.path, u.fragment
    ('postgresql', 'db.example', 5433, 'bob', '/jobs', 'table=runs')
    >>> u
    Url('postgresql://bob:***@db.example:5433/jobs#table=runs')
    >>> Url("/tmp/data").scheme, Url("data", force_abs=False).path
    ('file', 'data')
    >>> Url("/tmp/data") == "file:///tmp/data" == Url(scheme="file", path="/tmp/data")
    True
    >>> str(Url("http://example.org/data").adjoin("more"))
    'http://example.org/data/more'

    :param urlstring: the text to parse (or a path, or another Url to copy);
        None builds the URL from the keyword arguments alone.
    :param force_abs: make a relative ``file`` path absolute (default True).
    :param scheme: the scheme when the text has none (default ``file``);
        the other keywords likewise give defaults for missing parts.
    :raises InvalidValue: if the text cannot be parsed (a bad port, say).
    """

    __slots__ = ()

    def __new__(cls, urlstring: "str | os.PathLike[str] | Url | None" = None, force_abs: bool = True,
                scheme: str = "file", netloc: str = "", path: str = "",
                hostname: str | None = None, port: int | None = None, query: str = "",
                username: str | None = None, password: str | None = None,
                fragment: str = "") -> "Url":
        if urlstring is None:
            return super().__new__(cls, scheme, netloc, path, hostname, port, query,
                                   username, password, fragment)
        if isinstance(urlstring, Url):
            return super().__new__(cls, *urlstring)
        text = os.fspath(urlstring) if isinstance(urlstring, os.PathLike) else urlstring
        if not isinstance(text, str):
            raise InvalidValue(f"a URL is parsed from a string, not {type(text).__name__}")
        try:
            parts = urlsplit(text, scheme=scheme)
            parsed_port = parts.port
        except ValueError as err:
            raise InvalidValue(f"cannot parse {_mask(text)!r} as a URL: {err}") from err
        parsed_path = parts.path
        if parts.scheme == "file" and force_abs and not os.path.isabs(parsed_path):
            parsed_path = os.path.abspath(parsed_path)
        return super().__new__(
            cls, parts.scheme or scheme, parts.netloc or netloc, parsed_path,
            parts.hostname or hostname, parsed_port or port, parts.query or query,
            parts.username or username, parts.password or password,
            parts.fragment or fragment)

    def __getnewargs__(self) -> tuple[Any, ...]:  # type: ignore[override]
        # what __new__ takes: no text, the fields as keywords in positional order
        return (None, False, *self)

    def render(self, hide_password: bool = True) -> str:
        """The URL as text; the password shows as ``***`` unless ``hide_password`` is False."""
        netloc = self.netloc
        if self.password is not None and hide_password:
            host = netloc.rpartition("@")[2]
            netloc = f"{self.username or ''}:***@{host}"
        path = self.path
        if path and not path.startswith("/"):
            path = "/" + path
        text = f"{self.scheme}://{netloc}{path}" if self.scheme else f"//{netloc}{path}"
        if self.query:
            text += "?" + self.query
        if self.fragment:
            text += "#" + self.fragment
        return text

    def adjoin(self, relpath: str) -> "Url":
        """The URL with ``relpath`` appended to its path (a leading ``/`` is ignored)."""
        return self._replace(path=os.path.join(self.path or "/", relpath.lstrip("/")))

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"Url({self.render()!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, tuple):
            return tuple.__eq__(self, other)
        if isinstance(other, (str, os.PathLike)):
            try:
                return tuple.__eq__(self, Url(other))
            except InvalidValue:
                return False
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = _UrlFields.__hash__


def _mask(text: str) -> str:
    """``text`` with the password of a ``user:password@`` part replaced by ``***``."""
    head, sep, tail = text.partition("://")
    userinfo, at, rest = tail.partition("@")
    if not sep or not at or ":" not in userinfo:
        return text
    return f"{head}{sep}{userinfo.split(':', 1)[0]}:***@{rest}"


class _UrlDict(dict):  # type: ignore[type-arg]
    """A dict that turns keys or values into :class:`Url` objects (see the subclasses)."""

    __slots__ = ("_force_abs",)

    def __init__(self, iter_or_dict: "Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None" = None,
                 force_abs: bool = False, **extra: Any) -> None:
        super().__init__()
        self._force_abs = force_abs
        if iter_or_dict is not None:
            self.update(iter_or_dict)
        self.update(extra)

    def _url(self, value: Any) -> Url:
        # unpickling sets items before the slot: items are Urls by then
        return value if isinstance(value, Url) else Url(value, getattr(self, "_force_abs", False))

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Set every pair through ``self[key] = value``, so each is converted."""
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:  # type: ignore[override]
        """``self[key]``, set to ``default`` first if missing (converted like any item)."""
        if key not in self:
            self[key] = default
        return self[key]

    def copy(self) -> Any:  # type: ignore[override]
        """A shallow copy of the same class, with the same ``force_abs``."""
        return type(self)(self, force_abs=self._force_abs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)}, force_abs={self._force_abs})"


class UrlKeyDict(_UrlDict):
    """A dict whose keys are :class:`Url` objects; strings are parsed on the way in.

    Look-ups with the text of a key find it too:

    >>> d = UrlKeyDict({"/tmp/in.txt": "in.txt"})
    >>> list(d)
    [Url('file:///tmp/in.txt')]
    >>> d["/tmp/in.txt"], "file:///tmp/in.txt" in d, d.get("http://x/", "none")
    ('in.txt', True, 'none')
    >>> UrlKeyDict(force_abs=True, **{"rel": 1})  # doctest: +ELLIPSIS
    UrlKeyDict({Url('file:///.../rel'): 1}, force_abs=True)
    """

    __slots__ = ()

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(self._url(key), value)

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(self._url(key))

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(self._url(key))

    def __contains__(self, key: object) -> bool:
        try:
            return super().__contains__(self._url(key))
        except InvalidValue:
            return False

    def get(self, key: Any, default: Any = None) -> Any:
        """``self[key]``, or ``default`` if missing."""
        return self[key] if key in self else default

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its value (or ``default``, if given and missing)."""
        return super().pop(self._url(key), *default)


class UrlValueDict(_UrlDict):
    """A dict whose values are :class:`Url` objects; strings are parsed on the way in.

    >>> d = UrlValueDict(result="out/result.txt")
    >>> d["result"].scheme, d["result"].path
    ('file', 'out/result.txt')
    """

    __slots__ = ()

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, self._url(value))


__all__ = ["Url", "UrlKeyDict", "UrlValueDict"]
