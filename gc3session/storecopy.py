"""``gsession copy``: move a session (or a whole store) to another store, ids intact.

``copy_session(session_dir, dst_url)`` copies the records the session needs
(its listed tasks and every record they refer to, transitively) from the
store named in ``<session>/store.url`` into the store ``dst_url``, then
switches the session to that store.  In order:

1. refuse a local destination whose directory does not exist (the copy
   makes the store directory or SQLite file, never the directories above
   it); take the session's driver lock (refuse while a driver runs it);
2. read each record's bytes and the ids it refers to; a record that cannot
   be decoded stops the copy before anything is written (``gsession fsck``
   says more);
3. refuse if the destination already holds one of these ids with other
   bytes (a rerun after an interrupted copy finds identical bytes and goes
   on);
4. write the record bytes verbatim (:meth:`Store.write_records`, one unit
   per batch): ids, references and classes stay exactly as they were, and
   the destination's id counter moves past every copied id, so new tasks
   never get an id that was copied;
5. read every record back from the destination and compare the bytes and
   the states;
6. under the session directory's exclusive lock, catch up with what
   changed meanwhile (records rewritten, tasks added: copied and verified
   the same way), and replace ``store.url`` atomically (without the
   password).

A script that has the session open without driving it (plain
:class:`~gc3session.session.Session` use) is not stopped by the driver
lock.  Its record writes hold the same directory lock shared and check
``store.url`` first, so each of them lands either before step 6 (which
then copies it too) or after it (and the handle refuses to write to the
old store:
:class:`~gc3session.exceptions.StoreSwitchedError`).  Nothing is ever
written to the old store unseen.

:func:`copy_store` copies a whole store, for stores that no session
directory names or that several sessions share.

Until step 6 the session uses the old store and a crash changes nothing for
it; after it, the new one.  The old store is never modified: delete it
yourself once satisfied.  Records of the old store that the session does
not reach (orphans, other sessions' tasks) are not copied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from . import index, sessiondir
from .exceptions import LoadError, SessionError
from .persistence.record import parse_header
from .persistence.records import read_records, record_references
from .persistence.registry import make_store
from .persistence.store import Store
from .persistence.url import StoreUrl
from .sessionlock import driver_lock

BATCH = 500


class CopyError(SessionError):
    """A copy was refused or failed; the session still uses its old store (exit status 1)."""

    exit_status = 1


@dataclass
class CopyResult:
    """What :func:`copy_session` did."""

    session: str
    source: str
    destination: str
    tasks: int
    records: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return dict(self.__dict__)


def copy_session(path: "str | os.PathLike[str]", dst_url: "str | StoreUrl", *,
                 trusted: bool = True, **store_kwargs: Any) -> CopyResult:
    """Copy the session at ``path`` into the store ``dst_url`` and switch it there.

    :param trusted: False decodes records (to find references) with the
        allow-list of untrusted loads.
    :param store_kwargs: passed to :func:`make_store` for the destination.
    :raises CopyError: naming the id or the reason; the session is unchanged.
    :raises SessionBusyError: if a driver runs the session.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(os.path.join(path, index.INDEX_FILENAME)):
        raise sessiondir.not_a_session(path)
    dst = check_destination(dst_url)
    with driver_lock(path):
        src_url = sessiondir.read_store_url(path)
        if dst.without_password() == src_url.without_password():
            raise CopyError(f"{dst} is already the store of session {path}", path=path)
        listed = sessiondir.read_index(path)
        with make_store(src_url, readonly=True, trusted=trusted) as source:
            records = _gather(source, listed)
            with make_store(dst, **store_kwargs) as target:
                _write(target, records)
                _verify(target, records)
                with index.locked_dir(path):
                    listed = _catch_up(source, target, path, listed, records)
                    sessiondir.write_store_url(path, dst)
    return CopyResult(path, str(src_url), str(dst.without_password()), len(listed), len(records))


def copy_store(src_url: "str | StoreUrl", dst_url: "str | StoreUrl",
               **store_kwargs: Any) -> CopyResult:
    """Copy every record of the store ``src_url`` into ``dst_url``, verbatim and verified.

    For stores that no session directory names (or that several sessions
    share): ids, references and states stay exactly as they were, and the
    destination's counter moves past every copied id.  Records are copied
    :data:`BATCH` at a time, each batch read back and compared before the
    next; the source is opened read-only and never modified.

    :raises CopyError: naming the id or the reason (an unreadable source
        record, a destination holding other bytes under a copied id).
    """
    src, dst = StoreUrl.parse(src_url), check_destination(dst_url)
    if dst.without_password() == src.without_password():
        raise CopyError(f"{dst} is the source store itself", url=str(dst))
    copied = 0
    with make_store(src, readonly=True) as source:
        if not source.exists():
            raise CopyError(f"no session or store at {source.describe()['location']}", url=str(src))
        with make_store(dst, **store_kwargs) as target:
            copied = _copy_all(source, target)
    return CopyResult("", str(src.without_password()), str(dst.without_password()), 0, copied)


def check_destination(dst_url: "str | StoreUrl") -> StoreUrl:
    """The destination URL, parsed; a local one must name a place in an existing directory.

    A store directory or SQLite file is created by the copy, but never the
    directories above it: a mistyped path must fail, not leave new
    directories behind.

    :raises CopyError: naming the missing directory; nothing was written.
    """
    dst = StoreUrl.parse(dst_url)
    if dst.base_scheme in sessiondir.RELATIVE_SCHEMES and os.path.isabs(dst.path):
        parent = os.path.dirname(dst.path)
        if not os.path.isdir(parent):
            raise CopyError(f"cannot copy into {dst}: the directory {parent} does not exist"
                            " (make it first if the store belongs there); nothing was written",
                            url=str(dst), path=parent)
    return dst


def _copy_all(source: Store, target: Store) -> int:
    """Every record of ``source`` into ``target``, :data:`BATCH` at a time, each verified."""
    copied = 0
    ids = [str(i) for i in source.list()]
    for start in range(0, len(ids), BATCH):
        batch: dict[str, bytes] = {}
        for pid, data in read_records(source, ids[start:start + BATCH]):
            if isinstance(data, LoadError):
                raise CopyError(f"cannot copy {pid}: {data} ({copied} records were copied"
                                " before it; the source was not changed)", id=pid) from data
            batch[pid] = data
        _write(target, batch)
        _verify(target, batch)
        copied += len(batch)
    return copied


def _catch_up(source: Store, target: Store, path: str, listed: list[str],
              records: dict[str, bytes]) -> list[str]:
    """Copy what changed in the session since ``records`` were gathered; the index now.

    Called with the session directory locked exclusively, so nothing changes
    while it runs: records rewritten since, and the records of tasks added
    since, are written over this copy's own records and verified.
    """
    now = sessiondir.read_index(path)
    changed: dict[str, bytes] = {}
    for pid, data in read_records(source, list(records)):
        if isinstance(data, LoadError):
            if getattr(data, "cause", None) == "missing":
                continue  # removed meanwhile: its copy stays behind as an unlisted record
            raise CopyError(f"cannot copy {pid}: {data} (it changed during the copy; nothing"
                            " was switched)", id=pid) from data
        if data != records[pid]:
            changed[pid] = data
    added = [pid for pid in now if pid not in records]
    delta = {**changed, **_gather(source, added, known=set(records))}
    for start in range(0, len(delta), BATCH):
        target.write_records(dict(list(delta.items())[start:start + BATCH]))
    _verify(target, delta)
    records.update(delta)
    return now


def _gather(source: Store, listed: list[str], known: set[str] | None = None) -> dict[str, bytes]:
    """The bytes of every record reachable from ``listed`` (but not in ``known``), level by level."""
    records: dict[str, bytes] = {}
    seen = set(listed) | (known or set())
    level = list(listed)
    while level:
        following: list[str] = []
        for pid, data in read_records(source, level):
            try:
                if isinstance(data, LoadError):
                    raise data
                refs = record_references(source, pid, data)
            except LoadError as err:
                raise CopyError(f"cannot copy {pid}: {err} (nothing was written; run"
                                " `gsession fsck` on the session)", id=pid) from err
            records[pid] = data
            following.extend(ref for ref in refs if ref not in seen)
            seen.update(refs)
        level = following
    return records


def _write(target: Store, records: dict[str, bytes]) -> None:
    present = target.states(list(records))
    for pid in present:
        try:
            same = target.read_record(pid) == records[pid]
        except LoadError:
            same = False
        if not same:
            raise CopyError(f"{target.location(pid)} already holds a different {pid};"
                            " copy into a new store (nothing was switched)", id=pid)
    pending = [pid for pid in records if pid not in present]
    for start in range(0, len(pending), BATCH):
        target.write_records({pid: records[pid] for pid in pending[start:start + BATCH]})


def _verify(target: Store, records: dict[str, bytes]) -> None:
    target.invalidate_cache()
    ids = list(records)
    states = target.states(ids)
    for pid, copied in read_records(target, ids):
        if isinstance(copied, LoadError):
            raise CopyError(f"{pid} did not reach {target.location(pid)}: {copied}"
                            " (nothing was switched)", id=pid) from copied
        if copied != records[pid]:
            raise CopyError(f"{pid} reads back different from {target.location(pid)}"
                            " (nothing was switched)", id=pid)
        expected = parse_header(records[pid]).state
        if states.get(pid) != expected:
            raise CopyError(f"{pid}: the state listed by {target.location(pid)} is"
                            f" {states.get(pid)!r}, not {expected!r} (nothing was switched)",
                            id=pid)


__all__ = ["CopyError", "CopyResult", "check_destination", "copy_session", "copy_store"]
