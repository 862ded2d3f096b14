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

import atexit
import collections
import contextlib
import os
import shutil
import tempfile
from typing import Any, Iterable, Iterator

from . import index, sessiondir
from .exceptions import (
    CorruptSessionError,
    InvalidArgument,
    InvalidValue,
    LoadError,
    ReadOnlySessionError,
    RecordNotFoundError,
    SerializationError,
    SessionNotFoundError,
    StoreSwitchedError,
)
from .persistence.idfactory import Id, is_valid_id
from .persistence.registry import make_store
from .persistence.store import Store
from .persistence.url import StoreUrl


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
        self.created = -1.0
        self.finished = -1.0
        self._ids: dict[str, None] = {}
        self._pending_add: dict[str, None] = {}
        self._unsaved: dict[str, Any] = {}
        self._fresh: set[str] = set()  # ids allocated here and not yet in the index
        self._pending_delete: dict[str, list[str]] = {}  # removed id -> its records to delete
        self._pending_remove: set[str] = set()
        self._counter_checked = False
        self._destroyed = False
        self._ignore_errors = ignore_errors
        wanted = None if task_ids is None else [str(i) for i in task_ids]
        store_kwargs.setdefault("durable", durable)
        store_kwargs.setdefault("trusted", trusted)
        if self.readonly:
            store_kwargs["readonly"] = True
        metadata = any(os.path.lexists(os.path.join(self.path, name))
                       for name in (self.INDEX_FILENAME, self.STORE_URL_FILENAME))
        if metadata or (create and not self.readonly and _is_nonempty_dir(self.path)):
            self._open(store_or_url, store_kwargs)  # damage is reported, never created over
        elif self.readonly or not create:
            raise sessiondir.not_a_session(self.path)
        else:
            if wanted:
                raise InvalidArgument("creating a new session with task_ids makes no sense",
                                      path=self.path)
            try:
                self._create(store_or_url, store_kwargs)
            except CorruptSessionError:
                if not os.path.exists(os.path.join(self.path, self.INDEX_FILENAME)):
                    raise
                # another process created the same session a moment ago: use it
                self.store.close()
                self._open(store_or_url, store_kwargs)
        self.store.owner = self.path
        self._ids = dict.fromkeys(wanted if wanted is not None else self._index_ids)
        if load:
            self.load_many(list(self._ids), add=False)

    # --- opening and creating -------------------------------------------------
    def _create(self, store_or_url: "Store | str | StoreUrl | None", store_kwargs: dict[str, Any]) -> None:
        if isinstance(store_or_url, Store):
            self.store = store_or_url
        else:
            url = store_or_url if store_or_url is not None else os.path.join(self.path, self.DEFAULT_JOBS_DIR)
            self.store = make_store(url, **store_kwargs)
        if self.store.url is None:
            raise InvalidArgument(f"{self.store!r} has no URL: a session names its store by URL"
                                  f" in {self.STORE_URL_FILENAME}, so that it can be opened again",
                                  path=self.path)
        self.store_url = self.store.url
        if self._own_directory:
            sessiondir.check_store_place(self.path, self.store_url)
        sessiondir.create(self.path, self.store_url, durable=self.durable)
        self._store_stamp = sessiondir.store_url_stamp(self.path)
        self.created = sessiondir.read_timestamp(self.path, "start")
        self._index_ids: list[str] = []

    def _open(self, store_or_url: "Store | str | StoreUrl | None", store_kwargs: dict[str, Any]) -> None:
        self._store_stamp = sessiondir.store_url_stamp(self.path)
        self.store_url = sessiondir.read_store_url(self.path)
        self._index_ids = sessiondir.read_index(self.path)
        if isinstance(store_or_url, Store):
            self.store = store_or_url
        else:
            url = self.store_url
            if store_or_url is not None:
                given = StoreUrl.parse(store_or_url)
                if given.without_password() == url.without_password() and given.password:
                    url = given
            jobs = os.path.join(self.path, self.DEFAULT_JOBS_DIR)
            if url.base_scheme == "file" and url.path == jobs and os.path.islink(jobs):
                raise CorruptSessionError(
                    f"{jobs} is a symlink; refusing to use a store planted outside the session"
                    " (replace the link by the directory it points to if that is intended)",
                    path=jobs)
            self.store = make_store(url, **store_kwargs)
        if self._index_ids and not self.store.exists():
            # The store holds this session's tasks: if it is gone, say so instead
            # of starting an empty one whose counter would hand out the same ids.
            self.store.close()
            raise CorruptSessionError(
                f"the store {self.store_url} of session {self.path} is missing although"
                f" {self.INDEX_FILENAME} lists {len(self._index_ids)} tasks; restore it"
                " (nothing was changed)", path=self.path, url=str(self.store_url))
        self.created = sessiondir.read_timestamp(self.path, "start")
        self.finished = sessiondir.read_timestamp(self.path, "end")

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
        before = self._handle_state(pid)
        needs_save = pid is None or getattr(task, "changed", True)
        if pid is None:
            pid = self.assign_id(task)
            needs_save = self.store.idfactory is not None  # else assign_id saved it
            self._fresh.add(str(pid))
        key = str(pid)
        if self._pending_delete:
            self._keep_records_of(key)
        if needs_save:
            self._unsaved[key] = task
        self.tasks[key] = task
        self._ids[key] = None
        self._pending_remove.discard(key)
        self._pending_add[key] = None
        if flush:
            try:
                self._save_unsaved()
                self._write_index_changes()
            except BaseException:
                self._restore_handle_state(key, before)
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
        with self._writing():
            return self.store.save(obj)

    def _handle_state(self, pid: Any) -> dict[str, Any]:
        """What this handle knows about ``pid``, so that a failed add can put it back."""
        key = str(pid)
        return {"listed": key in self._ids, "task": self.tasks.get(key),
                "pending_add": key in self._pending_add, "unsaved": self._unsaved.get(key),
                "fresh": key in self._fresh, "pending_remove": key in self._pending_remove,
                "pending_delete": dict(self._pending_delete)}

    def _restore_handle_state(self, key: str, before: dict[str, Any]) -> None:
        for flag, target in (("listed", self._ids), ("pending_add", self._pending_add)):
            if not before[flag]:
                target.pop(key, None)
        for name, target in (("task", self.tasks), ("unsaved", self._unsaved)):
            if before[name] is None:
                target.pop(key, None)
            else:
                target[key] = before[name]
        for flag, members in (("fresh", self._fresh), ("pending_remove", self._pending_remove)):
            if before[flag]:
                members.add(key)
            else:
                members.discard(key)
        self._pending_delete = before["pending_delete"]

    def forget(self, task_id: str, flush: bool = True) -> None:
        """Drop ``task_id`` from the session, keeping its record in the store."""
        self._check_writable()
        key = str(task_id)
        self._ids.pop(key, None)
        self.tasks.pop(key, None)
        self._unsaved.pop(key, None)
        if self._pending_add.pop(key, 0) is None and key in self._fresh:
            self._fresh.discard(key)  # never reached the index: nothing to take back
        else:
            self._pending_remove.add(key)  # the file may list it (another handle's add, too)
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
        doomed = self._with_children(key)
        self.forget(key, flush=False)
        self._pending_delete[key] = [pid for pid, _ in doomed]
        for _, obj in doomed:
            if obj is not None:
                with contextlib.suppress(AttributeError):  # a read-only ``changed`` property
                    obj.changed = True
        if flush:
            self.flush()

    def _with_children(self, key: str) -> list[tuple[str, Any]]:
        """``key`` and every id below it, with its object (None if it cannot be loaded)."""
        doomed: dict[str, Any] = {key: None}
        queue = collections.deque([key])
        while queue:
            current = queue.popleft()
            try:
                obj = self.tasks[current] if current in self.tasks else self.store.load(current)
            except LoadError:
                continue  # an unloadable record is still removed; its children cannot be known
            doomed[current] = obj
            for child in getattr(obj, "tasks", None) or ():
                child_id = getattr(child, "persistent_id", None)
                if child_id is not None and str(child_id) not in doomed:
                    doomed[str(child_id)] = child
                    queue.append(str(child_id))
        return list(doomed.items())

    def _keep_records_of(self, key: str) -> None:
        """A task joins again while removals are pending: its records must stay."""
        keep = {pid for pid, _ in self._with_children(key)}
        self._pending_delete = {root: [pid for pid in doomed if pid not in keep]
                                for root, doomed in self._pending_delete.items() if root not in keep}

    def _removed_ids(self) -> set[str]:
        return {pid for doomed in self._pending_delete.values() for pid in doomed}

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
        if not (self._pending_add or self._pending_remove):
            return
        filename = os.path.join(self.path, self.INDEX_FILENAME)
        with index.locked_dir(self.path):
            self._check_store_unchanged()
            if self._pending_remove:
                index.rewrite_without(filename, self._pending_remove, durable=self.durable)
            new = list(self._pending_add)
            if any(key not in self._fresh for key in new):
                # ids this handle did not allocate may be listed already
                # (loaded tasks, another handle's adds): append only the others
                on_disk = set(index.read(filename))
                new = [key for key in new if key not in on_disk]
            index.append(filename, new, durable=self.durable)
        self._pending_add.clear()
        self._pending_remove.clear()
        self._fresh.clear()

    def _delete_pending(self) -> None:
        if self._pending_delete:
            with self._writing():
                self.store.remove_many(sorted(self._removed_ids()))
            self._pending_delete.clear()

    def save(self, obj: Any) -> Id:
        """Save ``obj`` to the store (it is not added to the session)."""
        self._check_writable()
        with self._writing():
            return self.store.save(obj)

    def save_many(self, objs: Iterable[Any]) -> list[Id]:
        """Save several objects in one batch (they are not added to the session).

        What the engine uses to persist a pass: one transaction, or one group
        of record files with a single sync.
        """
        self._check_writable()
        with self._writing():
            return self.store.save_many(objs)

    def save_all(self, flush: bool = True) -> None:
        """Save every loaded top-level task whose ``changed`` flag is set, in one batch."""
        self._check_writable()
        self._unsaved.update((k, t) for k, t in self.tasks.items() if getattr(t, "changed", True))
        self._save_unsaved()
        if flush:
            self.flush()

    def _save_unsaved(self) -> None:
        if not self._unsaved:
            return
        batch = list(self._unsaved.items())
        try:
            with self._writing():
                self.store.save_many([task for _, task in batch])
        except SerializationError as err:
            position = err.context.get("position")
            if isinstance(position, int) and 0 <= position < len(batch):
                self._drop_unsaveable(batch[position][0])
            raise
        self._unsaved.clear()

    def _drop_unsaveable(self, key: str) -> None:
        """Take a task that cannot be pickled out of the pending batch (and out of the
        session if it was pending to join it), so that the rest can be written."""
        self._unsaved.pop(key, None)
        if self._pending_add.pop(key, 0) is None:
            self._ids.pop(key, None)
            self.tasks.pop(key, None)
            self._fresh.discard(key)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the session directory's lock shared while records are written.

        ``gsession copy`` takes it exclusively to switch the session to
        another store, so a write either lands before the copy's last check
        (which then sees it) or after the switch (which this handle notices
        and refuses): never in the old store unseen.
        """
        with index.locked_dir(self.path, shared=True):
            self._check_store_unchanged()
            yield

    def _check_store_unchanged(self) -> None:
        """Raise :class:`StoreSwitchedError` if ``store.url`` now names another store."""
        stamp = sessiondir.store_url_stamp(self.path)
        if stamp == self._store_stamp:
            return
        try:
            now = sessiondir.read_store_url(self.path)
        except CorruptSessionError as err:
            raise StoreSwitchedError(
                f"{self.path}/{self.STORE_URL_FILENAME} changed since session {self.path} was"
                f" opened and cannot be read now ({err}); nothing was written",
                path=self.path) from err
        if now.without_password() != self.store_url.without_password():
            raise StoreSwitchedError(
                f"session {self.path} was moved to the store {now} by another process (gsession"
                f" copy) while this handle still wrote to {self.store_url}; nothing was written."
                " Open the session again to go on in its new store.",
                path=self.path, old=str(self.store_url), new=str(now))
        self._store_stamp = stamp

    def _check_counter(self) -> None:
        """Before the first fresh id: never hand out an id the index lists.

        The counter lives in the store; a store emptied or restored from an
        older backup while ``session_ids.txt`` kept its ids would otherwise
        hand them out again.  Costs one read of the counter per handle.
        """
        if self._counter_checked:
            return
        listed = [Id.parse(i).seqno for i in self._index_ids]
        if listed:
            self.store.ensure_counter_past(max(listed))
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
        if self._destroyed or (self._pending_delete and key in self._removed_ids()):
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
        removed = self._removed_ids() if self._pending_delete else set()
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
                  for pid, _ in self._with_children(i)]
        with self._writing():
            self.store.remove_many(doomed)
        self._pending_add.clear()
        self._pending_remove.clear()
        self._pending_delete.clear()
        self._unsaved.clear()
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


class TemporarySession(Session):
    """A session in a fresh temporary directory, over an existing store.

    Its tasks are ``task_ids``, or every record of the store.  With
    ``delete=True`` the directory (never the store) is removed at exit.
    """

    _own_directory = False

    def __init__(self, store_or_url: "Store | str | StoreUrl", task_ids: Iterable[str] | None = None,
                 delete: bool = True, **kwargs: Any) -> None:
        path = tempfile.mkdtemp(prefix="gc3session.TemporarySession.", suffix=".d")
        if delete:
            atexit.register(shutil.rmtree, path, True)
        kwargs.setdefault("load", True)
        load = kwargs.pop("load")
        super().__init__(path, create=True, store_or_url=store_or_url, load=False, **kwargs)
        ids = [str(i) for i in (task_ids if task_ids is not None else self.store.list())]
        self._ids = dict.fromkeys(ids)
        self._pending_add = dict.fromkeys(ids)
        self.flush()
        if load:
            self.load_many(ids, add=False)
        self.name = str(self.store.url)


def _is_nonempty_dir(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(True for _ in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False


__all__ = ["Session", "TemporarySession"]
