"""Sessions: a directory that owns a set of tasks kept in a store.

:class:`Session` follows gc3libs' API and directory layout (see
:mod:`gc3session.sessiondir`) and fixes what made GC3Pie lose work:

* ``add(task)`` costs one record write and one fsynced index append, O(1)
  in the size of the session, and the task survives a crash once ``add``
  returns;
* index updates are applied as changes under a short directory lock, never
  by writing an in-memory list over the file, so partial views
  (``task_ids=...``), stale handles and other processes never lose each
  other's tasks;
* a directory whose metadata is missing or unreadable is reported, never
  re-created over the old data; ``mode="r"`` opens a session that cannot
  write anything;
* objects that fail to load are reported with their id and cause; with
  ``ignore_errors=True`` the rest of the session loads and the failures are
  listed in :attr:`Session.load_errors`.  Nothing is ever deleted by a load.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
from typing import Any, Iterable, Iterator

from . import index, sessiondir
from .exceptions import (
    InvalidValue,
    LoadError,
    ReadOnlySessionError,
    RecordNotFoundError,
    SerializationError,
    SessionNotFoundError,
)
from .pending import Pending, task_tree
from .persistence.idfactory import Id, is_valid_id, seqno_of
from .persistence.store import Store
from .persistence.url import StoreUrl
from .sessionstore import open_session


class Session:
    """A persistent collection of tasks, kept in a directory.

    :param path: the session directory; its base name is the session name.
    :param create: create the session if ``path`` holds none (default True).
    :param store_or_url: the store for a *new* session: a :class:`Store`, a
        URL, or None for a filesystem store in ``<path>/jobs``.  An existing
        session uses the URL in its ``store.url`` (with the password of
        ``store_or_url`` if it names the same database).
    :param load: load every task now (default).  False opens the session
        without unpickling anything: ids and states are available at once and
        tasks load when first used.  (Unlike GC3Pie, False never discards an
        existing session.)
    :param task_ids: load only these tasks; the index on disk keeps all.
    :param mode: ``"a"`` (read-write, default) or ``"r"`` (read-only: every
        method that would write raises :class:`ReadOnlySessionError`).
    :param ignore_errors: load what can be loaded and record the failures in
        :attr:`load_errors` instead of raising the first one.
    :param durable: fsync every write (default); False is GC3Pie's durability.
    :param trusted: False loads only allow-listed classes (untrusted data).
    :param store_kwargs: passed to :func:`make_store` (e.g. ``table_name``).
    """

    INDEX_FILENAME = index.INDEX_FILENAME
    STORE_URL_FILENAME = sessiondir.STORE_URL_FILENAME
    TIMESTAMP_FILES = sessiondir.TIMESTAMP_FILES
    DEFAULT_JOBS_DIR = sessiondir.DEFAULT_JOBS_DIR
    #: A new session refuses a store inside another session's directory
    #: (:func:`gc3session.sessiondir.check_store_place`); a temporary one is
    #: made to look at such a store and does not.
    _own_directory = True

    def __init__(self, path: "str | os.PathLike[str]", create: bool = True,
                 store_or_url: "Store | str | StoreUrl | None" = None, load: bool = True,
                 task_ids: Iterable[str] | None = None, *, mode: str = "a",
                 ignore_errors: bool = False, durable: bool = True, trusted: bool = True,
                 **store_kwargs: Any) -> None:
        if mode not in ("a", "r"):
            raise InvalidValue(f"mode must be 'a' or 'r', not {mode!r}")
        self.path = os.path.abspath(os.fspath(path))
        self.name = os.path.basename(self.path)
        self.readonly = mode == "r"
        self.durable = durable
        self.tasks: dict[str, Any] = {}
        self.load_errors: dict[str, LoadError] = {}
        self._ids: dict[str, None] = {}
        self._pending = Pending()
        self._counter_checked = False
        self._destroyed = False
        self._ignore_errors = ignore_errors
        wanted = None if task_ids is None else [str(i) for i in task_ids]
        store_kwargs.setdefault("durable", durable)
        store_kwargs.setdefault("trusted", trusted)
        if self.readonly:
            store_kwargs["readonly"] = True
        opened = open_session(self.path, store_or_url, store_kwargs, create=create,
                              readonly=self.readonly, durable=durable,
                              own_directory=self._own_directory, partial=bool(wanted))
        self.store, self.store_url, self._guard = opened.store, opened.url, opened.guard
        self._index_ids = opened.listed
        self.created, self.finished = opened.created, opened.finished
        self.store.owner = self.path
        self._ids = dict.fromkeys(wanted if wanted is not None else self._index_ids)
        if load:
            self.load_many(list(self._ids), add=False)

    # --- the collection ---------------------------------------------------------
    def add(self, task: Any, flush: bool = True) -> Id:
        """Add ``task`` to the session, saving it if needed; return its id.

        With ``flush=True`` (the default) the task's record is written and its
        id appended to the index before this returns: one record write and
        one fsynced append, whatever the size of the session.  With
        ``flush=False`` the task only gets its id; :meth:`flush` then writes
        all such tasks in one batch (one transaction, or one group of file
        writes with a single sync) and appends their ids in one write, which
        is how to add thousands of tasks quickly.  Adding a task twice
        returns the same id; adding it again after :meth:`remove` writes
        its record again.

        An add that raises leaves the session (on disk) and this handle as
        they were: the task is not part of the session, and later adds work.

        :raises ForeignTaskError: if ``task`` (or a task it holds) was loaded
            from, or saved in, another session: its id is that session's.
            Add :func:`~gc3session.persistence.fresh_copy` of it instead.
        :raises SerializationError: if the task cannot be pickled.
        """
        self._check_writable()
        pid = getattr(task, "persistent_id", None)
        if pid is not None:
            self.store.claim(task)
            if str(pid) in self._ids:
                return pid
        before = self._pending.snapshot(str(pid), self._ids, self.tasks)
        needs_save = pid is None or getattr(task, "changed", True)
        if pid is None:
            pid = self.assign_id(task)
            needs_save = self.store.idfactory is not None  # else assign_id saved it
            self._pending.fresh.add(str(pid))
        key = str(pid)
        if self._pending.delete:  # a task that joins again keeps its records
            self._pending.keep({pid for pid, _ in task_tree(key, self.tasks, self.store)})
        if needs_save:
            self._pending.unsaved[key] = task
        self.tasks[key] = task
        self._ids[key] = None
        self._pending.remove.discard(key)
        self._pending.add[key] = None
        if flush:
            try:
                self._save_unsaved()
                self._write_index_changes()
            except BaseException:
                self._pending.restore(key, before, self._ids, self.tasks)
                raise
            self._delete_pending()
        return pid

    def assign_id(self, obj: Any) -> Id:
        """Give ``obj`` (which has none) its id in this session's store, and return it.

        From the store's id factory when it has one (nothing is written);
        a store without one gives ids only when it saves, so ``obj`` is saved.
        """
        self._check_writable()
        self._check_counter()
        if self.store.idfactory is not None:
            obj.persistent_id = self.store.idfactory.new(obj)
            return obj.persistent_id  # type: ignore[no-any-return]
        with self._guard.writing():
            return self.store.save(obj)

    def forget(self, task_id: str, flush: bool = True) -> None:
        """Drop ``task_id`` from the session, keeping its record in the store."""
        self._check_writable()
        key = str(task_id)
        self._ids.pop(key, None)
        self.tasks.pop(key, None)
        self._pending.unsaved.pop(key, None)
        if self._pending.add.pop(key, 0) is None and key in self._pending.fresh:
            self._pending.fresh.discard(key)  # never reached the index: nothing to take back
        else:
            self._pending.remove.add(key)  # the file may list it (another handle's add, too)
        if flush:
            self.flush()

    def remove(self, task_id: str, flush: bool = True) -> None:
        """Delete ``task_id`` and its children (recursively) from the store and the session.

        The index loses the id before the store loses the records, so a crash
        in between leaves unlisted records (``gsession fsck`` reports them),
        never an index entry without its record.  The removed objects that
        are still in memory are marked changed: they are no longer on disk,
        and adding one again writes it again.  Until a ``flush=False``
        removal is flushed, loading its ids raises as it will after.
        """
        self._check_writable()
        key = str(task_id)
        doomed = task_tree(key, self.tasks, self.store)
        self.forget(key, flush=False)
        self._pending.delete[key] = [pid for pid, _ in doomed]
        for _, obj in doomed:
            if obj is not None:
                with contextlib.suppress(AttributeError):  # a read-only ``changed`` property
                    obj.changed = True
        if flush:
            self.flush()

    def flush(self) -> None:
        """Save the tasks added with ``flush=False``, then write the index changes.

        Records first, index second: an id reaches the index only once its
        record is on disk.  Added ids are appended; removals rewrite the file
        atomically from its current content, so other handles' ids survive.

        A task that cannot be pickled is taken out of the batch (and out of
        the session, if this flush was to add it) and named in the
        :class:`~gc3session.exceptions.SerializationError`; nothing of the
        batch is written, and the next flush writes the rest.

        :raises StoreSwitchedError: if another process moved the session to
            another store (``gsession copy``) since it was opened; nothing
            was written, reopen the session.
        """
        self._check_writable()
        self._save_unsaved()
        self._write_index_changes()
        self._delete_pending()

    def _write_index_changes(self) -> None:
        self._pending.write_index(self.path, self._guard, durable=self.durable)

    def _delete_pending(self) -> None:
        if self._pending.delete:
            with self._guard.writing():
                self.store.remove_many(sorted(self._pending.removed_ids()))
            self._pending.delete.clear()

    def save(self, obj: Any) -> Id:
        """Save ``obj`` to the store (it is not added to the session)."""
        self._check_writable()
        with self._guard.writing():
            return self.store.save(obj)

    def save_many(self, objs: Iterable[Any]) -> list[Id]:
        """Save several objects in one batch (they are not added to the session).

        What the engine uses to persist a pass: one transaction, or one group
        of record files with a single sync.
        """
        self._check_writable()
        with self._guard.writing():
            return self.store.save_many(objs)

    def save_all(self, flush: bool = True) -> None:
        """Save every loaded top-level task whose ``changed`` flag is set, in one batch."""
        self._check_writable()
        self._pending.unsaved.update((k, t) for k, t in self.tasks.items()
                                     if getattr(t, "changed", True))
        self._save_unsaved()
        if flush:
            self.flush()

    def _save_unsaved(self) -> None:
        if not self._pending.unsaved:
            return
        batch = list(self._pending.unsaved.items())
        try:
            with self._guard.writing():
                self.store.save_many([task for _, task in batch])
        except SerializationError as err:
            position = err.context.get("position")
            if isinstance(position, int) and 0 <= position < len(batch):
                self._drop_unsaveable(batch[position][0])
            raise
        self._pending.unsaved.clear()

    def _drop_unsaveable(self, key: str) -> None:
        """Take a task that cannot be pickled out of the pending batch (and out of the
        session if it was pending to join it), so that the rest can be written."""
        self._pending.unsaved.pop(key, None)
        if self._pending.add.pop(key, 0) is None:
            self._ids.pop(key, None)
            self.tasks.pop(key, None)
            self._pending.fresh.discard(key)

    def _check_counter(self) -> None:
        """Before the first fresh id: never hand out an id the index lists.

        The counter lives in the store; a store emptied or restored from an
        older backup while ``session_ids.txt`` kept its ids would otherwise
        hand them out again.  Costs, once per handle, one read of the counter
        and one pass over the listed ids (validated when the index was read, so
        only their numbers are taken: about 20 ms at 100,000 ids).
        """
        if self._counter_checked:
            return
        highest = max(map(seqno_of, self._index_ids), default=None)
        if highest is not None:
            self.store.ensure_counter_past(highest)
        self._counter_checked = True

    def load(self, obj_id: str, add: bool = True, flush: bool = True) -> Any:
        """Load ``obj_id`` from the store; with ``add``, make it part of the session.

        Adding an id that is already in the session writes nothing, so
        loading never shrinks or rewrites the index.

        :raises RecordNotFoundError: if there is no such record, or if this
            handle removed it (even before the removal is flushed).
        """
        key = str(obj_id)
        if key in self.tasks:
            return self.tasks[key]
        if self._destroyed or (self._pending.delete and key in self._pending.removed_ids()):
            raise self._removed_error(key)
        obj = self.store.load(key)
        if key in self._ids:
            self.tasks[key] = obj
        elif add:
            self.add(obj, flush=flush)
        return obj

    def _removed_error(self, key: str) -> RecordNotFoundError:
        when = "was destroyed" if self._destroyed else "removed it (the removal is not flushed yet)"
        return RecordNotFoundError(f"no record {key}: session {self.path} {when}", id=key,
                                   location=self.store.location(key), cause="removed")

    def load_many(self, obj_ids: Iterable[str], add: bool = True, flush: bool = True) -> dict[str, Any]:
        """Load several objects in one batch; failures raise, or go to :attr:`load_errors`."""
        keys = [str(i) for i in obj_ids]
        removed = self._pending.removed_ids() if self._pending.delete else set()
        for key in keys:
            if key in removed and key not in self.tasks:
                if not self._ignore_errors:
                    raise self._removed_error(key)
                self.load_errors[key] = self._removed_error(key)
        missing = [k for k in keys if k not in self.tasks and k not in removed]
        errors: dict[str, LoadError] | None = self.load_errors if self._ignore_errors else None
        fresh = self.store.load_many(missing, errors=errors)
        loaded: dict[str, Any] = {}
        for key in keys:
            if key in self.tasks:
                loaded[key] = self.tasks[key]
            elif key in fresh:
                loaded[key] = obj = fresh[key]
                if key in self._ids:
                    self.tasks[key] = obj
                elif add:
                    self.add(obj, flush=False)
        if add and flush and not self.readonly:
            self.flush()
        return loaded

    def list_ids(self) -> list[str]:
        """Ids of the tasks of this session (of ``task_ids`` if given)."""
        return list(self._ids)

    def list_names(self) -> set[str]:
        """``jobname`` of every task of this session that has one (loads them)."""
        return {t.jobname for t in self if getattr(t, "jobname", None) is not None}

    def states(self) -> dict[str, str | None]:
        """``{id: state}`` of this session's tasks, read from the store without loading them."""
        states = self.store.states(self._ids)
        if len(states) == len(self._ids) and list(states) == list(self._ids):
            return states  # every id, in the session's order: nothing to add or reorder
        return {i: states.get(i) for i in self._ids}

    def summaries(self) -> dict[str, dict[str, Any]]:
        """``{id: summary}`` of this session's tasks, in the session's order, without loading them.

        What ``gsession list`` shows: see :meth:`Store.summaries
        <gc3session.persistence.store.Store.summaries>`.  Ids without a
        readable record are left out.
        """
        found = self.store.summaries(self._ids)
        return {pid: found[pid] for pid in self._ids if pid in found}

    def iter_workflow(self) -> Iterator[Any]:
        """Every task, breadth first: top-level tasks, then their children, and so on."""
        queue = collections.deque(self)
        while queue:
            task = queue.popleft()
            queue.extend(getattr(task, "tasks", None) or ())
            yield task

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[Any]:
        for key in list(self._ids):
            if key in self.tasks:
                yield self.tasks[key]
            elif key not in self.load_errors:
                try:
                    yield self.load(key, add=False)
                except LoadError as err:
                    if not self._ignore_errors:
                        raise
                    self.load_errors[key] = err

    def __contains__(self, task_or_id: Any) -> bool:
        key = getattr(task_or_id, "persistent_id", task_or_id)
        return str(key) in self._ids

    # --- timestamps and lifetime ------------------------------------------------
    def set_start_timestamp(self, time: float | None = None) -> float:
        """Set the start time (mtime of ``created``); return it."""
        self._check_writable()
        self.created = sessiondir.touch_timestamp(self.path, "start", time, durable=self.durable)
        return self.created

    def set_end_timestamp(self, time: float | None = None) -> float:
        """Set the end time (mtime of ``finished``); return it."""
        self._check_writable()
        self.finished = sessiondir.touch_timestamp(self.path, "end", time, durable=self.durable)
        return self.finished

    def clear_end_timestamp(self) -> None:
        """Forget the end time (remove ``finished``): the session has work again."""
        self._check_writable()
        sessiondir.clear_timestamp(self.path, "end", durable=self.durable)
        self.finished = -1.0

    def destroy(self) -> None:
        """Delete every task of the session from the store, then the session directory.

        The handle then holds no task: loading one of its ids raises the
        :class:`~gc3session.exceptions.RecordNotFoundError` any handle would,
        and writing raises :class:`~gc3session.exceptions.SessionNotFoundError`.
        """
        self._check_writable()
        doomed = [pid for i in self._index_or_view() if is_valid_id(i)
                  for pid, _ in task_tree(i, self.tasks, self.store)]
        with self._guard.writing():
            self.store.remove_many(doomed)
        self._pending.clear()
        self.tasks.clear()
        self._ids.clear()
        self.load_errors.clear()
        self._destroyed = True
        self.store.close()
        if os.path.isdir(self.path):
            shutil.rmtree(self.path)

    def close(self) -> None:
        """Release the store's connections and file handles (the session stays usable)."""
        self.store.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _index_or_view(self) -> list[str]:
        """All ids on disk (destroy must not miss tasks a partial view did not load)."""
        on_disk = sessiondir.read_index(self.path) if os.path.isdir(self.path) else []
        return list(dict.fromkeys([*on_disk, *self._ids]))

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlySessionError(f"session {self.path} is open read-only", path=self.path)
        if self._destroyed:
            raise SessionNotFoundError(f"session {self.path} was destroyed", path=self.path)

    def __repr__(self) -> str:
        return f"<Session {self.path} ({len(self)} tasks, store {self.store_url})>"


__all__ = ["Session"]
