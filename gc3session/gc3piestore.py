"""Read a session directory written by GC3Pie 2.6.8, without changing a byte of it.

GC3Pie's layout (see ``docs/gc3libs-session.md``): ``session_ids.txt``
lists the top-level ids (whitespace-separated), ``store.url`` names the
store, and the store keeps one pickle per object:

* ``file:///DIR``: a file ``DIR/<id>`` per record, ``<id>`` being
  ``Prefix.N``; a write in progress leaves the previous version as
  ``<id>.OLD``, which GC3Pie reads when ``<id>`` does not unpickle;
* ``sqlite:///PATH`` (GC3Pie reads three slashes and four alike, as an
  absolute path) or another SQL URL, ``#table=NAME`` (default ``store``):
  rows ``(id INTEGER, data BLOB, state, <extra fields>...)``, the ids plain
  integers.

A record is GC3Pie's pickle of one object.  Every other persistable object
it holds (a collection's children) is not embedded: the pickle holds a
*persistent id* instead, the child's ``Id`` object (``IntId`` in SQL stores),
and GC3Pie's unpickler loads that record in its place.  :func:`gc3session.persistence.inert.unpickle`
does the same through a ``persistent_load`` callback, but it never imports
what the pickle names: every class outside a short list of standard data
types (sets, ordered dicts, dates...) becomes a
:class:`~gc3session.persistence.inert.Shadow`, an inert stand-in that keeps
the class path and what pickle handed it (constructor arguments, state,
items).  So reading a GC3Pie session runs no code of
GC3Pie's, nor of the scripts that wrote it, and needs neither installed.

Files are opened only if they are regular files (:func:`fsio.read_bytes`);
SQLite databases are opened with ``mode=ro``.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import sqlite3
import urllib.parse
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from . import fsio
from .exceptions import InvalidArgument, SessionError
from .persistence.url import StoreUrl

INDEX_FILENAME = "session_ids.txt"
STORE_URL_FILENAME = "store.url"
BACKUP_SUFFIX = ".OLD"
_FS_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\.(?:0|[1-9][0-9]{0,18})$")
_SQL_ID = re.compile(r"^(?:0|[1-9][0-9]{0,18})$")
_SQL_BATCH = 500


class GC3PieImportError(SessionError):
    """A GC3Pie session cannot be imported; nothing was written (exit status 1)."""

    exit_status = 1


class NotAGC3PieSessionError(GC3PieImportError, FileNotFoundError):
    """The source is not a readable GC3Pie session directory (``path`` says which file)."""


class GC3PieStoreError(GC3PieImportError, OSError):
    """The store that a GC3Pie session's ``store.url`` names cannot be read."""


class ImportTargetError(GC3PieImportError, FileExistsError):
    """The new session cannot be written where it was asked to go."""


# --- pickles --------------------------------------------------------------------------

def record_class(data: bytes) -> str | None:
    """The ``module:qualname`` of the object a GC3Pie record holds, or None if unreadable.

    That is the first class the pickle names: pickle writes the class of an
    object before anything it holds.
    """
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST"):
                return str(arg).replace(" ", ":", 1)
            if opcode.name == "STACK_GLOBAL":
                return f"{strings[-2]}:{strings[-1]}" if len(strings) >= 2 else None
            if isinstance(arg, str):
                strings.append(arg)
    except (ValueError, pickle.UnpicklingError, IndexError, UnicodeDecodeError):
        return None
    return None


# --- the session directory ------------------------------------------------------------

def read_index(path: str) -> list[str]:
    """The ids of ``session_ids.txt``, as GC3Pie reads them (split on whitespace).

    :raises NotAGC3PieSessionError: naming the file if it is missing or unreadable.
    """
    filename = os.path.join(path, INDEX_FILENAME)
    try:
        return fsio.read_bytes(filename).decode("utf-8").split()
    except (OSError, UnicodeDecodeError) as err:
        raise NotAGC3PieSessionError(f"{filename} is missing or unreadable ({err}): {path} is not"
                                     " a GC3Pie session", path=filename) from err


def read_store_url(path: str) -> str:
    """The text of ``store.url`` (GC3Pie writes it without a newline)."""
    filename = os.path.join(path, STORE_URL_FILENAME)
    try:
        text = fsio.read_bytes(filename).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise NotAGC3PieSessionError(f"{filename} is missing or unreadable ({err}): {path} is not"
                                     " a GC3Pie session", path=filename) from err
    if not text:
        raise NotAGC3PieSessionError(f"{filename} is empty: {path} is not a GC3Pie session",
                                     path=filename)
    return text


@dataclass(frozen=True)
class Version:
    """One stored version of a record: its bytes, or why they could not be read."""

    where: str
    data: bytes | None
    error: str = ""


class Source:
    """The records of a GC3Pie store, read-only.

    :meth:`read` gives the stored versions of a record, in the order GC3Pie
    tries them; :attr:`extra_columns` and :meth:`extras` the SQL extra
    fields (none for a filesystem store).
    """

    kind = ""
    extra_columns: list[sa.Column]  # type: ignore[type-arg]

    def valid_id(self, key: str) -> bool:
        """Tell whether ``key`` is an id this store can hold."""
        raise NotImplementedError

    def read(self, key: str) -> list[Version]:
        """Each version of record ``key`` that GC3Pie would try, in order; [] if none."""
        raise NotImplementedError

    def prefetch(self, keys: list[str]) -> None:
        """Read the records of ``keys`` ahead, in bulk where the store can."""

    def overlaps(self, url: StoreUrl) -> bool:
        """Tell whether writing a store at ``url`` would change this store's files or table."""
        raise NotImplementedError

    def state(self, key: str) -> str | None:
        """The state GC3Pie recorded next to the record (SQL stores only), or None."""
        return None

    def extras(self, key: str) -> dict[str, Any]:
        """The extra-field values of record ``key`` (SQL stores only)."""
        return {}

    def unlisted(self, reached: set[str]) -> list[str]:
        """Records of the store that are not in ``reached`` (filesystem stores only)."""
        return []

    def close(self) -> None:
        """Release the connection, if any."""


class FilesystemSource(Source):
    """A GC3Pie ``FilesystemStore`` directory."""

    kind = "file"

    def __init__(self, directory: str) -> None:
        if not os.path.isdir(directory):
            raise GC3PieStoreError(f"the GC3Pie store {directory} does not exist or is not a"
                                   " directory", path=directory)
        self.directory = directory
        self.extra_columns = []

    def valid_id(self, key: str) -> bool:
        return _FS_ID.fullmatch(key) is not None

    def overlaps(self, url: StoreUrl) -> bool:
        return url.base_scheme == "file" and _inside(url.path, self.directory)

    def read(self, key: str) -> list[Version]:
        found = []
        for name in (key, key + BACKUP_SUFFIX):
            filename = os.path.join(self.directory, name)
            try:
                found.append(Version(filename, fsio.read_bytes(filename)))
            except FileNotFoundError:
                continue
            except OSError as err:  # NotRegularFileError included: never opened
                found.append(Version(filename, None, str(err)))
        return found

    def unlisted(self, reached: set[str]) -> list[str]:
        names = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                key = entry.name[:-len(BACKUP_SUFFIX)] if entry.name.endswith(BACKUP_SUFFIX) \
                    else entry.name
                if key not in reached and _FS_ID.fullmatch(key):
                    names.append(key)
        return sorted(set(names))


class SqlSource(Source):
    """A GC3Pie ``SqlStore`` table, read with SELECT only."""

    kind = "sql"

    def __init__(self, url_text: str) -> None:
        parts = urllib.parse.urlsplit(url_text)
        self.table_name = (urllib.parse.parse_qs(parts.fragment).get("table") or ["store"])[-1]
        self.where = StoreUrl.parse(url_text).without_fragment().render()
        self.filename = _sqlite_filename(parts)
        try:
            self._engine = _engine(url_text, parts)
            self._table = sa.Table(self.table_name, sa.MetaData(), autoload_with=self._engine)
        except (sa.exc.SQLAlchemyError, sqlite3.Error) as err:
            raise GC3PieStoreError(f"cannot read table {self.table_name!r} of the GC3Pie store"
                                   f" {self.where}: {getattr(err, 'orig', None) or err}",
                                   url=self.where) from err
        missing = {"id", "data"} - set(self._table.c.keys())
        if missing:
            raise GC3PieStoreError(f"table {self.table_name!r} of {self.where} is not a GC3Pie"
                                   f" store (no column {', '.join(sorted(missing))})", url=self.where)
        self.extra_columns = [sa.Column(col.name, col.type) for col in self._table.c
                              if col.name not in ("id", "data", "state")]
        self._rows: dict[str, Any] = {}

    def valid_id(self, key: str) -> bool:
        return _SQL_ID.fullmatch(key) is not None

    def overlaps(self, url: StoreUrl) -> bool:
        if self.filename is not None:  # any table: a write changes the database file
            return url.base_scheme == "sqlite" and bool(url.path) and _inside(url.path, self.filename)
        return (url.without_password().without_fragment().render() == self.where
                and (url.table or "store") == self.table_name)

    def prefetch(self, keys: list[str]) -> None:
        """Read the rows of ``keys`` in a few queries (each is read once anyway)."""
        wanted = [int(k) for k in keys if k not in self._rows and self.valid_id(k)]
        for start in range(0, len(wanted), _SQL_BATCH):
            chunk = wanted[start:start + _SQL_BATCH]
            query = sa.select(self._table).where(self._table.c.id.in_(chunk))
            with self._engine.connect() as conn:
                for row in conn.execute(query).mappings():
                    self._rows[str(row["id"])] = dict(row)
            for key in chunk:
                self._rows.setdefault(str(key), None)

    def _row(self, key: str) -> Any:
        if key not in self._rows:
            self.prefetch([key])
        return self._rows.get(key)

    def read(self, key: str) -> list[Version]:
        row = self._row(key)
        if row is None:
            return []
        return [Version(f"row {key} of table {self.table_name} in {self.where}",
                        bytes(row["data"] or b""))]

    def state(self, key: str) -> str | None:
        row = self._row(key)
        return None if row is None else row.get("state")

    def extras(self, key: str) -> dict[str, Any]:
        row = self._row(key) or {}
        return {col.name: row.get(col.name) for col in self.extra_columns}

    def close(self) -> None:
        self._engine.dispose()


def _inside(path: str, top: str) -> bool:
    """Tell whether ``path`` is ``top`` or lies below it (symlinks resolved)."""
    real, real_top = os.path.realpath(path), os.path.realpath(top)
    return real == real_top or real.startswith(real_top.rstrip(os.sep) + os.sep)


def _sqlite_filename(parts: urllib.parse.SplitResult) -> str | None:
    """The database file of a GC3Pie ``sqlite:`` URL, None for other schemes.

    GC3Pie's SqlStore makes ``"sqlite://" + netloc + "/" + path`` of it: the
    path is absolute however many slashes precede it.
    """
    if parts.scheme != "sqlite":
        return None
    return "/" + urllib.parse.unquote(parts.path).lstrip("/")


def _engine(url_text: str, parts: urllib.parse.SplitResult) -> sa.Engine:
    """A read-only engine for GC3Pie's store URL (its own reading of SQLite paths)."""
    filename = _sqlite_filename(parts)
    if filename is not None:
        if not os.path.isfile(filename):
            raise GC3PieStoreError(f"the GC3Pie database {filename} does not exist", path=filename)
        return sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(
            f"file:{urllib.parse.quote(filename)}?mode=ro", uri=True))
    url = StoreUrl.parse(url_text)
    drivername = "postgresql+psycopg" if url.scheme == "postgresql" else url.scheme
    return sa.create_engine(sa.URL.create(drivername, username=url.username, password=url.password,
                                          host=url.host, port=url.port,
                                          database=url.database or None))


def open_source(path: str) -> Source:
    """The :class:`Source` of the GC3Pie session at ``path``, as its ``store.url`` names it.

    :raises NotAGC3PieSessionError: if ``path`` holds no GC3Pie session.
    :raises GC3PieStoreError: if its store cannot be read.
    """
    url_text = read_store_url(path)
    scheme = urllib.parse.urlsplit(url_text).scheme
    if scheme in ("", "file"):
        try:
            directory = StoreUrl.parse(url_text).path
        except InvalidArgument as err:
            raise GC3PieStoreError(f"{os.path.join(path, STORE_URL_FILENAME)}: {err}",
                                   path=path) from err
        return FilesystemSource(directory)
    if scheme.split("+")[0] in ("sqlite", "postgresql", "mysql"):
        return SqlSource(url_text)
    raise GC3PieStoreError(f"the GC3Pie store {StoreUrl.parse(url_text)} has a scheme that cannot be"
                           " imported (file, sqlite, postgresql, mysql)", path=path)


__all__ = ["GC3PieImportError", "GC3PieStoreError", "ImportTargetError", "NotAGC3PieSessionError",
           "Source", "Version", "open_source", "read_index", "record_class"]
