"""``session_ids.txt``: the list of a session's top-level task ids.

Format (GC3Pie's, byte for byte): one id per line, each line ending in
``\\n``, in the order the tasks were added; an empty session is an empty
file.  Every reader, GC3Pie included, finds a complete file at any moment.

Updates are *changes*, applied to what is on disk under a short ``flock`` of
the session directory (the lock dies with its process and leaves no file
behind):

* adding ids appends their lines with one ``write`` and one ``fdatasync``:
  O(1) in the size of the session;
* removing ids rewrites the file atomically (temporary file, fsync, rename,
  directory fsync) from its *current* content minus those ids, so a handle
  that loaded only some tasks, or a stale handle, never drops ids that
  others added.

A crash during an append can leave a final line without its newline; such a
line belongs to an ``add`` that never returned, so readers ignore it and the
next append cuts it off first.  Only the beginning of an id can be such a
*torn tail*: at most :data:`~gc3session.persistence.idfactory.MAX_ID_LENGTH`
bytes of letters, digits and ``_``, then perhaps a dot and digits.  Anything
else after the last newline (NUL bytes, a megabyte of garbage, a line longer
than any id) is damage: reading raises
:class:`~gc3session.exceptions.CorruptIndexError` naming the file and the
byte offset where the bad bytes start, an append refuses to cut them, and
``gsession fsck --repair`` cuts them after keeping a copy of the file.
"""

from __future__ import annotations

import re
from typing import ContextManager, Iterable

from . import fsio, locking
from .exceptions import CorruptIndexError, StoreWriteError
from .persistence.idfactory import ID_PATTERN, ID_START_PATTERN, MAX_ID_LENGTH, is_valid_id

INDEX_FILENAME = "session_ids.txt"


def locked_dir(path: str, *, shared: bool = False) -> ContextManager[int]:
    """Hold an exclusive (or ``shared``) ``flock`` on the session directory ``path`` itself.

    Locking the directory (not a file in it) keeps the session directory
    listing exactly GC3Pie's.  Index changes take it exclusively; record
    writes take it shared (many at once), so that switching the session's
    store, which takes it exclusively, never happens in the middle of one.
    """
    return locking.flocked(path, shared=shared, directory=True)


def parse(data: bytes, path: str) -> list[str]:
    """Parse the bytes of an index file into ids (order kept, duplicates dropped).

    Blank lines are tolerated (GC3Pie splits on white space); a last line
    without a newline is a torn append (:func:`is_torn_tail`) and is ignored.

    :raises CorruptIndexError: naming the file, the line and the byte
        ``offset`` of anything that is not an id, or of a tail after the last
        newline that no interrupted append leaves.
    """
    if not data:
        return []
    end = data.rfind(b"\n") + 1
    if _WELL_FORMED.fullmatch(data, 0, end) and is_torn_tail(data[end:]):
        # The common case, checked by one regex pass: every line is exactly an
        # id, so the ids are split out in C instead of line by line.  A set
        # tells at a third of the cost of dict.fromkeys that there is no
        # duplicate to drop (the session builds its own dict of them anyway).
        words = data[:end].decode("ascii").split()
        return words if len(set(words)) == len(words) else list(dict.fromkeys(words))
    if not is_torn_tail(data[end:]):
        raise damaged_tail_error(path, end, len(data) - end, line=data.count(b"\n", 0, end) + 1)
    ids: dict[str, None] = {}
    offset = 0
    for number, raw in enumerate(data[:end].split(b"\n")[:-1], 1):
        line = raw.strip()
        if line:
            try:
                text = line.decode("ascii")
            except UnicodeDecodeError:
                text = ""
            if not is_valid_id(text):
                raise CorruptIndexError(
                    f"{path}, line {number}, byte {offset}: {raw[:80]!r} is not a task id."
                    " Repair the file by hand (one id per line, e.g. Task.12) or restore it"
                    " from a backup; `gsession fsck --repair` can rebuild it from the store.",
                    path=path, line=number, offset=offset)
            ids[text] = None
        offset += len(raw) + 1
    return list(ids)


def damaged_tail_error(path: str, offset: int, length: int,
                       line: int | None = None) -> CorruptIndexError:
    """The error for ``length`` bytes at ``offset`` (on ``line``) that are not a torn tail."""
    where = f"line {line}, byte {offset}" if line is not None else f"byte {offset}"
    return CorruptIndexError(
        f"{path}, {where}: what follows the last newline ({length} byte"
        f"{'s' if length != 1 else ''}) is not the beginning of a task id, which is all an"
        " interrupted append leaves; the file is damaged. `gsession fsck --repair` cuts it"
        " off (keeping a copy of the file), or restore the file from a backup.",
        path=path, line=line, offset=offset)


#: A whole index of plain "Prefix.N" lines (blank lines and spaces take the slow path).
_WELL_FORMED = re.compile(rf"(?:{ID_PATTERN}\n)*".encode())
_TORN = re.compile(ID_START_PATTERN.encode())


def is_torn_tail(tail: bytes) -> bool:
    """Could ``tail`` be what an interrupted append of an id left (a prefix of one)?

    That is: empty, or at most :data:`MAX_ID_LENGTH` bytes that begin an id
    (``Tas``, ``Task.``, ``Task.1``), without NUL bytes.  Anything else after
    the last newline is damage, not a torn append, and is reported instead of
    being silently cut off.
    """
    return len(tail) <= MAX_ID_LENGTH and _TORN.fullmatch(tail) is not None


def read(path: str) -> list[str]:
    """Read and parse the index file at ``path`` (errors propagate as OSError)."""
    return parse(fsio.read_bytes(path), path)


def append(path: str, ids: Iterable[str], *, durable: bool = True) -> None:
    """Append ``ids`` to the index (the session directory lock must be held).

    A torn tail is cut off first.

    :raises CorruptIndexError: if the file ends with bytes that are not a torn
        tail (naming the byte offset); nothing is written then.
    :raises StoreWriteError: if the append itself fails.
    """
    data = _lines(ids)
    if not data:
        return
    try:
        fsio.append(path, data, durable=durable, cut_tail=is_torn_tail, max_tail=MAX_ID_LENGTH,
                    create=False)
    except StoreWriteError as err:
        offset = getattr(err, "offset", None)
        if offset is None:
            raise
        raise damaged_tail_error(path, offset, getattr(err, "length", 0)) from err


def rewrite_without(path: str, removed: set[str], *, durable: bool = True) -> None:
    """Atomically rewrite the index minus ``removed`` (the directory lock must be held)."""
    current = read(path)
    kept = [i for i in current if i not in removed]
    if len(kept) != len(current):
        write(path, kept, durable=durable)


def write(path: str, ids: Iterable[str], *, durable: bool = True) -> None:
    """Replace the index by ``ids``, atomically (temporary file, fsync, rename, directory fsync)."""
    fsio.atomic_write(path, _lines(ids), durable=durable, mode=0o600)


def create(path: str, *, durable: bool = True) -> None:
    """Write an empty index atomically."""
    write(path, [], durable=durable)


def _lines(ids: Iterable[str]) -> bytes:
    """The bytes of the index lines of ``ids``: each id, then ``\\n``."""
    return "".join(f"{i}\n" for i in ids).encode("ascii")
