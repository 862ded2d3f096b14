"""What a session handle has changed and not written yet.

A :class:`~gc3session.session.Session` batches its writes: ``add(task,
flush=False)``, ``forget`` and ``remove`` only note what is to be done, and
``flush()`` writes it (records first, then the index, then deletions).
:class:`Pending` holds those notes, so that they can be taken back exactly
when a write fails: an add that raises leaves the handle as it was
(:meth:`Pending.snapshot` / :meth:`Pending.restore`), and a task added again
while its removal is pending keeps its records (:meth:`Pending.keep`).
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from typing import Any

from . import index
from .exceptions import LoadError
from .persistence.store import Store
from .sessionstore import StoreGuard


@dataclass
class Pending:
    """The unwritten changes of one handle."""

    #: Ids to append to the index, in order.
    add: dict[str, None] = field(default_factory=dict)
    #: Ids to take out of the index.
    remove: set[str] = field(default_factory=set)
    #: For each removed top-level id, the records (its own and its children's) to delete.
    delete: dict[str, list[str]] = field(default_factory=dict)
    #: Tasks whose records are to be written, by id.
    unsaved: dict[str, Any] = field(default_factory=dict)
    #: Ids this handle allocated that are not in the index yet (so cannot be there twice).
    fresh: set[str] = field(default_factory=set)

    def removed_ids(self) -> set[str]:
        """Every record a pending removal will delete."""
        return {pid for doomed in self.delete.values() for pid in doomed}

    def keep(self, ids: set[str]) -> None:
        """Records ``ids`` belong to a task that joins again: no pending removal deletes them."""
        self.delete = {root: [pid for pid in doomed if pid not in ids]
                       for root, doomed in self.delete.items() if root not in ids}

    def write_index(self, path: str, guard: StoreGuard, *, durable: bool) -> None:
        """Apply the index notes to ``<path>/session_ids.txt``, under the directory's lock.

        Removals rewrite the file atomically from its current content, so
        other handles' ids survive; added ids are appended (ids this handle
        did not allocate only if the file does not list them yet: loaded
        tasks, another handle's adds).
        """
        if not (self.add or self.remove):
            return
        filename = os.path.join(path, index.INDEX_FILENAME)
        with index.locked_dir(path):
            guard.check()
            if self.remove:
                index.rewrite_without(filename, self.remove, durable=durable)
            new = list(self.add)
            if any(key not in self.fresh for key in new):
                on_disk = set(index.read(filename))
                new = [key for key in new if key not in on_disk]
            index.append(filename, new, durable=durable)
        self.add.clear()
        self.remove.clear()
        self.fresh.clear()

    def snapshot(self, key: str, listed: dict[str, None], tasks: dict[str, Any]) -> dict[str, Any]:
        """What the handle (``listed`` ids, loaded ``tasks``, these notes) knows about ``key``."""
        return {"listed": key in listed, "task": tasks.get(key),
                "add": key in self.add, "unsaved": self.unsaved.get(key),
                "fresh": key in self.fresh, "remove": key in self.remove,
                "delete": dict(self.delete)}

    def restore(self, key: str, before: dict[str, Any], listed: dict[str, None],
                tasks: dict[str, Any]) -> None:
        """Put back what :meth:`snapshot` returned as ``before``."""
        for flag, target in (("listed", listed), ("add", self.add)):
            if not before[flag]:
                target.pop(key, None)
        for name, mapping in (("task", tasks), ("unsaved", self.unsaved)):
            if before[name] is None:
                mapping.pop(key, None)
            else:
                mapping[key] = before[name]
        for flag, members in (("fresh", self.fresh), ("remove", self.remove)):
            if before[flag]:
                members.add(key)
            else:
                members.discard(key)
        self.delete = before["delete"]

    def clear(self) -> None:
        """Forget every note (the session was destroyed)."""
        self.add.clear()
        self.remove.clear()
        self.delete.clear()
        self.unsaved.clear()
        self.fresh.clear()


def task_tree(key: str, loaded: dict[str, Any], store: Store) -> list[tuple[str, Any]]:
    """``key`` and every id below it, with its object (None if it cannot be loaded).

    Objects are taken from ``loaded`` when there, else from ``store``; an
    unloadable record is still part of the tree, but its children cannot be
    known.
    """
    tree: dict[str, Any] = {key: None}
    queue = collections.deque([key])
    while queue:
        current = queue.popleft()
        try:
            obj = loaded[current] if current in loaded else store.load(current)
        except LoadError:
            continue
        tree[current] = obj
        for child in getattr(obj, "tasks", None) or ():
            child_id = getattr(child, "persistent_id", None)
            if child_id is not None and str(child_id) not in tree:
                tree[str(child_id)] = child
                queue.append(str(child_id))
    return list(tree.items())


__all__ = ["Pending", "task_tree"]
