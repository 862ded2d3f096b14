"""Store URLs as immutable values that never show a password.

A store is chosen by URL (``make_store``).  Accepted forms:

* a plain path, absolute or relative, or ``file:///abs/path``: a filesystem
  store in that directory (relative paths are made absolute at parse time, so
  the URL keeps meaning the same directory when the process changes its
  working directory);
* ``sqlite:///relative.db`` and ``sqlite:////abs/path.db`` (SQLAlchemy's
  convention: three slashes then the path); GC3Pie's four-slash URLs read the
  same;
* ``postgresql[+driver]://user[:password]@host[:port]/db[?query]`` and
  ``mysql[+driver]://...``, likewise;
* any scheme a third-party store registered;
* a URL object (:class:`gc3session.url.Url`, or GC3Pie's ``gc3libs.url.Url``):
  it means what its text (password included) means, except that the path of
  a ``file`` URL is taken as it is, as GC3Pie does.

A ``#table=NAME`` fragment selects the SQL table.  ``str(url)`` and
``repr(url)`` hide the password (``***``); :meth:`StoreUrl.render` with
``hide_password=False`` is the only way to get it back, and
:meth:`StoreUrl.without_password` is what gets written to ``store.url``.

Paths in URLs
-------------
A URL for a path is built from its parts (:meth:`StoreUrl.for_path`), never
by pasting the path into a string: a directory named ``run#1`` pasted into
``sqlite:///...`` would name ``run`` (the rest is a fragment) and two
sessions would share one store.  :meth:`StoreUrl.render` percent-escapes,
in the path of every scheme, the characters that would change what the URL
means or not survive ``store.url``: ``%``, ``#``, ``?``, whitespace and
non-printable characters (a file name that is not UTF-8 keeps its bytes:
``%FF``).  Every other character, non-ASCII letters and the delimiters
``!$&'()*+,;=:@[]`` included, is written as it is, the way GC3Pie writes
it.  :meth:`StoreUrl.parse` unescapes every ``%XX``, so
``StoreUrl.parse(url.render()) == url`` for every path, and URLs written by
earlier versions or by GC3Pie read as before as long as their paths hold
none of ``%#?`` (which never read back right there either).

Path or URL?  Text is a URL when it contains ``://`` and does not start with
``/``, ``./`` or ``../``; anything else, and any :class:`os.PathLike`, is a
path.  So ``/data/odd://name`` is a directory, ``odd://name`` is a URL with
the scheme ``odd``, and a relative path containing ``://`` is written
``./odd://name``.  Whether something exists on disk never decides it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ..exceptions import InvalidUrlError


@dataclass(frozen=True)
class StoreUrl:
    """A parsed store URL.

    >>> u = StoreUrl.parse("postgresql+psycopg://bob:s3cret@db.example:5433/jobs#table=runs")
    >>> u.scheme, u.base_scheme, u.host, u.port, u.database, u.table
    ('postgresql+psycopg', 'postgresql', 'db.example', 5433, 'jobs', 'runs')
    >>> str(u)
    'postgresql+psycopg://bob:***@db.example:5433/jobs#table=runs'
    >>> str(u.without_password())
    'postgresql+psycopg://bob@db.example:5433/jobs#table=runs'
    >>> StoreUrl.parse("/tmp/jobs").scheme
    'file'
    >>> print(StoreUrl.for_path("sqlite", "/data/run#1/jobs.db"))
    sqlite:////data/run%231/jobs.db
    """

    scheme: str
    path: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    query: str = ""
    fragment: str = ""

    @classmethod
    def parse(cls, text: "str | os.PathLike[str] | StoreUrl | Any") -> "StoreUrl":
        """Parse a URL, a plain path or a URL object (``scheme``, ``path``, ``hostname``...).

        :raises InvalidUrlError: for an empty string, a NUL byte or a bad port.
        """
        if isinstance(text, StoreUrl):
            return text
        if not isinstance(text, (str, os.PathLike)) and _is_url_object(text):
            text = _url_object_text(text)
        path_like = isinstance(text, os.PathLike)
        if path_like:
            text = os.fspath(text)
        if not isinstance(text, str):
            raise InvalidUrlError(f"a store URL must be a string or a path, not {type(text).__name__}",
                                  url=repr(text))
        if not text.strip():
            raise InvalidUrlError("empty store URL", url=text)
        if "\x00" in text:
            raise InvalidUrlError("NUL byte in store URL", url=repr(text))
        if path_like or "://" not in text or text.startswith(_PATH_PREFIXES):
            return cls(scheme="file", path=os.path.abspath(text))
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
            raise InvalidUrlError(f"invalid scheme in store URL {mask_passwords(text)!r} (a relative path"
                                  " containing '://' is written './PATH')", url=mask_passwords(text))
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise InvalidUrlError(f"file URLs cannot name a host: {mask_passwords(text)!r}",
                                      url=mask_passwords(text))
            return cls(scheme="file", path=os.path.abspath(_unquote_path(parts.path) or "/"),
                       fragment=parts.fragment)
        try:
            port = parts.port
        except ValueError as err:
            raise InvalidUrlError(f"invalid port in store URL: {err}", url=mask_passwords(text)) from err
        path = _unquote_path(parts.path)
        if scheme.split("+")[0] == "sqlite":
            # SQLAlchemy: "sqlite:///rel.db" is relative, "sqlite:////abs.db" absolute;
            # "sqlite://" and "sqlite:///:memory:" are a database in memory.
            if path.startswith("/") and path not in ("/", "/:memory:"):
                path = os.path.abspath(path[1:])
            elif path in ("/", "/:memory:"):
                path = path[1:]
        return cls(
            scheme=scheme,
            path=path,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            host=parts.hostname,
            port=port,
            query=parts.query,
            fragment=parts.fragment,
        )

    @classmethod
    def for_path(cls, scheme: str, path: "str | os.PathLike[str]") -> "StoreUrl":
        """The URL of the store at ``path`` (made absolute), for a scheme whose URL is a path.

        Use it instead of formatting a path into a URL string: the path is
        kept as it is and :meth:`render` escapes what needs escaping.

        >>> StoreUrl.for_path("file", "/data/run?1/jobs").render()
        'file:///data/run%3F1/jobs'

        :param scheme: ``file`` or ``sqlite`` (with or without a ``+driver``).
        :raises InvalidUrlError: for any other scheme, or an empty path.
        """
        base = scheme.lower().split("+", 1)[0]
        if base not in ("file", "sqlite"):
            raise InvalidUrlError(f"a {scheme} URL is not a local path; build it with parse()",
                                  url=scheme)
        text = os.fspath(path)
        if not text.strip() or "\x00" in text:
            raise InvalidUrlError(f"not a path: {text!r}", url=repr(text))
        return cls(scheme=scheme.lower(), path=os.path.abspath(text))

    @property
    def base_scheme(self) -> str:
        """The scheme without its ``+driver`` suffix (``postgresql+psycopg`` -> ``postgresql``)."""
        return self.scheme.split("+", 1)[0]

    @property
    def database(self) -> str:
        """The database name of a server URL (the path without its leading slash)."""
        return self.path.lstrip("/")

    @property
    def table(self) -> str | None:
        """The ``table=NAME`` of the fragment, or None (the last value wins)."""
        values = parse_qs(self.fragment).get("table")
        return values[-1] if values else None

    def without_password(self) -> "StoreUrl":
        """The same URL with the password dropped (what ``store.url`` holds)."""
        return replace(self, password=None)

    def without_fragment(self) -> "StoreUrl":
        """The same URL without its ``#fragment`` (what the database driver gets)."""
        return replace(self, fragment="")

    def render(self, hide_password: bool = True) -> str:
        """Render as text; the password is ``***`` unless ``hide_password`` is False."""
        if self.scheme == "file":
            text = "file://" + _quote_path(self.path)
        elif self.base_scheme == "sqlite":
            text = f"{self.scheme}://" + (f"/{_quote_path(self.path)}" if self.path else "")
        else:
            netloc = ""
            if self.username is not None:
                netloc = quote(self.username, safe="")
                if self.password is not None:
                    netloc += ":" + ("***" if hide_password else quote(self.password, safe=""))
                netloc += "@"
            if self.host:
                netloc += f"[{self.host}]" if ":" in self.host else self.host
            if self.port is not None:
                netloc += f":{self.port}"
            text = f"{self.scheme}://{netloc}{_quote_path(self.path)}"
        if self.query:
            text += "?" + self.query
        if self.fragment:
            text += "#" + self.fragment
        return text

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"StoreUrl({self.render()!r})"


#: Text starting with one of these is a path even if it contains "://".
_PATH_PREFIXES = ("/", "./", "../")


def _quote_path(path: str) -> str:
    """Escape ``%``, ``#``, ``?``, whitespace and non-printable characters as ``%XX``.

    ``urlsplit`` would cut the path at ``#`` or ``?`` and drop tabs and
    newlines; ``store.url`` is stripped when read, so a trailing space would
    go too.  Other characters stay readable (and readable by GC3Pie, which
    never unescapes).  A surrogate that stands for an undecodable file-name
    byte becomes that byte.
    """
    return "".join(
        quote(char.encode("utf-8", "surrogateescape"), safe="")
        if char in "%#?" or char.isspace() or not char.isprintable() else char
        for char in path)


def _unquote_path(text: str) -> str:
    """Undo :func:`_quote_path` (and any other ``%XX``); bytes that are not UTF-8 come back as surrogates."""
    return unquote(text, errors="surrogateescape")


def _is_url_object(obj: Any) -> bool:
    """Tell whether ``obj`` has the fields of a URL object (gc3session's or GC3Pie's ``Url``)."""
    return all(isinstance(getattr(obj, name, None), str) for name in ("scheme", "path", "query")) \
        and hasattr(obj, "hostname") and hasattr(obj, "password")


def _url_object_text(url: Any) -> str:
    """The text a URL object stands for, password included.

    The fields of a parsed URL are raw text (GC3Pie keeps ``%XX`` escapes
    as they were), so they are joined as they are, the way GC3Pie renders a
    URL, and parsed like that string; never ``str(url)``, which hides the
    password in gc3session's ``Url``.  The path of a ``file`` URL is the
    directory itself, as for GC3Pie's stores: it is made absolute and
    escaped, so that it reads back unchanged.
    """
    if url.scheme == "file":
        text = "file://" + _quote_path(os.path.abspath(url.path))
    else:
        netloc = getattr(url, "netloc", "") or ""
        if not netloc and url.hostname:
            userinfo = url.username or ""
            if url.password is not None:
                userinfo += f":{url.password}"
            netloc = (f"{userinfo}@" if userinfo else "") + url.hostname
            netloc += f":{url.port}" if url.port is not None else ""
        text = f"{url.scheme}://{netloc}{url.path}"
    if url.query:
        text += "?" + url.query
    if getattr(url, "fragment", ""):
        text += "#" + url.fragment
    return text


_PASSWORD_IN_TEXT = re.compile(r"(://[^/\s:@]*):[^/\s]*@")


def mask_passwords(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``.

    The one place that hides passwords in free text: URLs that did not
    parse, command lines kept in ``created``, and messages printed by the
    command-line tools.  A password may itself contain ``@``: everything up
    to the last ``@`` of the authority is hidden.

    >>> mask_passwords("copy s postgresql://bob:p@ss@db/jobs and sqlite:///x.db")
    'copy s postgresql://bob:***@db/jobs and sqlite:///x.db'
    """
    return _PASSWORD_IN_TEXT.sub(r"\1:***@", text)
