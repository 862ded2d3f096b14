"""Taking ids out of a session while keeping their records: quarantine, forget, adopt.

A record that cannot be loaded (damaged bytes, a class that no longer
imports, a missing file) must not stop the work on every other task.  A
:class:`~gc3session.cmdline.SessionBasedScript` therefore *quarantines*
it: the id leaves ``session_ids.txt`` and the script goes on with the
rest.  ``gsession forget SESSION ID...`` does the same by hand, and
``gsession adopt SESSION ID...`` undoes either.

Where a quarantined record goes
-------------------------------
Nowhere: the record stays in the store, byte for byte, in every kind of
store (a file of a filesystem store, a row of an SQL table, a record of a
third-party store).  Moving the file into the session directory was the
alternative; it works for one kind of store only, has a moment where the
record is in both places or in neither, and takes the record away from
the tools that can still read it (``gsession show``, ``gsession fsck``,
``gsession copy``).  What changes is the index, and a note is written
first, so that no id ever leaves the index without one::

    <session>/quarantine/<id>     text, one "key: value" per line:
        id: Task.7
        record: /data/s/jobs/0/Task.7 (kept as it was)
        cause: the error that made the record unloadable, or who forgot it
        when: 2024-05-01 12:00:00
        undo: gsession adopt /data/s Task.7

``adopt`` appends the id to the index again (under the session
directory's lock, as every index change) and then removes its note.
``gsession fsck`` reports a quarantined record as such (a leftover it never
adopts or deletes, whatever ``--orphans`` says).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Iterable, Mapping

from . import fsio, index
from .exceptions import LoadError, NotListedError, RecordNotFoundError
from .persistence.idfactory import check_id
from .persistence.store import RawRecordsUnsupported, Store
from .session import Session

QUARANTINE_DIR = "quarantine"


@dataclass(frozen=True)
class Quarantined:
    """An id taken out of a session: where its record stays, why, and the note that says so."""

    id: str
    location: str
    cause: str
    note: str

    def describe(self, session: str) -> str:
        """One line: the id, the cause, where the record is kept, how to undo."""
        return (f"{self.id} was taken out of session {session} ({self.cause}); its record is kept"
                f" in {self.location} (note: {self.note}; undo: gsession adopt {session} {self.id})")


def quarantine(session: Session, errors: Mapping[str, LoadError]) -> list[Quarantined]:
    """Take the ids of ``errors`` (id -> why it cannot load) out of ``session``; keep their records.

    One note per id, then one index rewrite for all of them.
    """
    return _take_out(session, {pid: f"cannot be loaded: {err}" for pid, err in errors.items()})


def forget(session: Session, ids: Iterable[str]) -> list[Quarantined]:
    """Take listed ids out of ``session`` (``gsession forget``); their records stay.

    :raises NotListedError: if an id is not a top-level task of the
        session; nothing was changed then.
    """
    wanted = list(dict.fromkeys(str(i) for i in ids))
    for pid in wanted:
        if pid not in session:
            raise NotListedError(f"{pid} is not listed in session {session.path} (gsession list"
                                 " shows its tasks); nothing was changed", id=pid, path=session.path)
    return _take_out(session, dict.fromkeys(wanted, "forgotten with gsession forget"))


def adopt(session: Session, ids: Iterable[str]) -> list[str]:
    """List ids in ``session`` again (undo of :func:`quarantine` and :func:`forget`).

    Each id must have a record in the session's store (one that cannot be
    loaded is fine: the point may be to look at it again after a fix).
    Ids listed already are left as they are.

    :returns: the ids that were added to the index.
    :raises RecordNotFoundError: if an id has no record; nothing was changed then.
    """
    wanted = [str(check_id(i)) for i in dict.fromkeys(ids)]
    for pid in wanted:
        if not _has_record(session.store, pid):
            raise RecordNotFoundError(
                f"{pid} has no record in {session.store.location(pid)}: there is nothing to adopt"
                " (nothing was changed)", id=pid, location=session.store.location(pid),
                cause="missing")
    filename = os.path.join(session.path, index.INDEX_FILENAME)
    with index.locked_dir(session.path):
        listed = set(index.read(filename))
        added = [pid for pid in wanted if pid not in listed]
        index.append(filename, added, durable=session.durable)
    removed = [fsio.unlink(note_path(session.path, pid)) for pid in wanted]
    if any(removed) and session.durable:
        fsio.fsync_dir(os.path.join(session.path, QUARANTINE_DIR))
    return added


def note_path(session: str, pid: str) -> str:
    """Where the note about ``pid`` is kept (ids hold no path separator)."""
    return os.path.join(session, QUARANTINE_DIR, str(check_id(pid)))


def _take_out(session: Session, causes: Mapping[str, str]) -> list[Quarantined]:
    """Write a note per id (durably), then drop the ids from the index in one rewrite."""
    if not causes:
        return []
    fsio.make_dirs(os.path.join(session.path, QUARANTINE_DIR), durable=session.durable)
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    done = []
    for pid, cause in causes.items():
        item = Quarantined(pid, session.store.location(pid), " ".join(cause.split()),
                           note_path(session.path, pid))
        text = (f"id: {pid}\nrecord: {item.location} (kept as it was)\ncause: {item.cause}\n"
                f"when: {now}\nundo: gsession adopt {session.path} {pid}\n")
        fsio.atomic_write(item.note, text.encode("utf-8", "replace"), durable=session.durable)
        done.append(item)
    for item in done:
        session.forget(item.id, flush=False)
    session.flush()
    return done


def _has_record(store: Store, pid: str) -> bool:
    """Whether ``store`` holds a record under ``pid`` (readable or not)."""
    try:
        store.read_record(pid)
    except RecordNotFoundError:
        return False
    except RawRecordsUnsupported:
        try:
            store.load(pid)
        except RecordNotFoundError:
            return False
        except LoadError:
            return True
    except LoadError:
        return True
    return True


__all__ = ["QUARANTINE_DIR", "Quarantined", "adopt", "forget", "note_path", "quarantine"]
