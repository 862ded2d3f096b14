"""Starting again after a first start that never got a task: a corrected store URL wins.

A script's first run creates the session directory, with ``store.url``,
before it reaches the store.  If the store cannot be used (a mistyped
``-u postgresql://...``, a server that is down), the directory is left
with an empty index and a store that holds nothing, and every later run
would open that same store again, whatever ``-u`` says now.

:func:`replace_unused_store` puts such a session on the store the user asks
for now.  It changes ``store.url`` only when nothing can be lost: the index
lists no task, and the store it names cannot be reached, does not exist, or
holds no record at all (with ``-N`` and no ``-u``: only when it cannot be
reached, since then no other store was asked for).  A session with tasks, or whose store holds records
(perhaps another session's, in a shared table), keeps its store as before:
``-u`` only chooses the store of a *new* session.
"""

from __future__ import annotations

import os

from . import index, sessiondir
from .exceptions import CorruptSessionError, Error
from .persistence.registry import make_store
from .persistence.url import StoreUrl


def replace_unused_store(path: str, url: "StoreUrl | str | None", *,
                         broken_only: bool = False) -> str | None:
    """Point the session at ``path`` to the store ``url`` if its own was never used.

    The caller holds the session's driver lock; the index is checked and
    ``store.url`` replaced (atomically, without the password) under the
    session directory's exclusive lock, so a handle that adds a task
    meanwhile either lands first (and the store stays) or finds the switch
    (:class:`~gc3session.exceptions.StoreSwitchedError`).

    :param url: the store wanted now; None means the default store
        (``<session>/jobs``).
    :param broken_only: switch only from a store that cannot be used at
        all, not from one that merely does not exist yet or is empty (what
        ``-N`` without ``-u`` asks: start anew, on the store chosen before
        if it works).
    :returns: a sentence saying what was done, or None if nothing was (the
        session has tasks, its store holds records, or it is ``url`` already).
    """
    wanted = StoreUrl.parse(url if url is not None
                            else os.path.join(path, sessiondir.DEFAULT_JOBS_DIR))
    with index.locked_dir(path):
        if sessiondir.read_index(path):
            return None
        recorded: StoreUrl | None = None
        try:
            recorded = sessiondir.read_store_url(path)
        except CorruptSessionError as err:
            why: str | None = f"cannot be read ({err})"
        else:
            if recorded.without_password() == wanted.without_password():
                return None
            why, usable = _unused(recorded)
            if usable and broken_only:
                return None
        if why is None:
            return None
        sessiondir.write_store_url(path, wanted)
    return (f"session {path} had no task and its store {recorded or '(none)'} {why}: it now"
            f" uses the store {wanted.without_password()}")


def _unused(url: StoreUrl) -> tuple[str | None, bool]:
    """Why the store at ``url`` holds nothing to keep (None if it holds records), and
    whether it can be used at all."""
    try:
        with make_store(url, readonly=True) as store:
            if not store.exists():
                return "does not exist", True
            if not store.list():
                return "holds no record", True
    except (Error, OSError) as err:
        return f"cannot be used ({err})", False
    return None, True


__all__ = ["replace_unused_store"]
