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
* any scheme a third-party store registered.

A ``#table=NAME`` fragment selects the SQL table.  ``str(url)`` and
``repr(url)`` hide the password (``***``); :meth:`StoreUrl.render` with
``hide_password=False`` is the only way to get it back, and
:meth:`StoreUrl.without_password` is what gets written to ``store.url``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
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
    def parse(cls, text: "str | os.PathLike[str] | StoreUrl") -> "StoreUrl":
        """Parse a URL or a plain path.

        :raises InvalidUrlError: for an empty string, a NUL byte or a bad port.
        """
        if isinstance(text, StoreUrl):
            return text
        if isinstance(text, os.PathLike):
            text = os.fspath(text)
        if not isinstance(text, str):
            raise InvalidUrlError(f"a store URL must be a string or a path, not {type(text).__name__}",
                                  url=repr(text))
        if not text.strip():
            raise InvalidUrlError("empty store URL", url=text)
        if "\x00" in text:
            raise InvalidUrlError("NUL byte in store URL", url=repr(text))
        if "://" not in text:
            return cls(scheme="file", path=os.path.abspath(text))
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
            raise InvalidUrlError(f"invalid scheme in store URL {text!r}", url=text)
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise InvalidUrlError(f"file URLs cannot name a host: {text!r}", url=text)
            return cls(scheme="file", path=os.path.abspath(unquote(parts.path) or "/"),
                       fragment=parts.fragment)
        try:
            port = parts.port
        except ValueError as err:
            raise InvalidUrlError(f"invalid port in store URL: {err}", url=_redact(text)) from err
        path = unquote(parts.path)
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
            text = "file://" + quote(self.path)
        elif self.base_scheme == "sqlite":
            text = f"{self.scheme}://" + (f"/{self.path}" if self.path else "")
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
            text = f"{self.scheme}://{netloc}{quote(self.path)}"
        if self.query:
            text += "?" + self.query
        if self.fragment:
            text += "#" + self.fragment
        return text

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"StoreUrl({self.render()!r})"


def _redact(text: str) -> str:
    """Best-effort password masking for a URL that failed to parse."""
    head, sep, tail = text.partition("://")
    userinfo, at, rest = tail.rpartition("@")
    if not at or ":" not in userinfo:
        return text
    return f"{head}{sep}{userinfo.split(':', 1)[0]}:***@{rest}"
