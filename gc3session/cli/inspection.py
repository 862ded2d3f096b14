"""``gsession list``, ``show``, ``log`` and ``stats``: read-only looks at a session.

They open the session read-only (``mode="r"``): they never write a byte to
it, nor to its store.
"""

from __future__ import annotations

import argparse
import time

from .. import cliformat
from ..progress import task_table
from ..session import Session
from ..sessionlock import lock_owner
from .common import AddCommand, Output


def open_readonly(args: argparse.Namespace) -> Session:
    """The session named on the command line, read-only, loading nothing yet."""
    return Session(args.session, create=False, load=False, mode="r", ignore_errors=True,
                   trusted=not args.untrusted)


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    """``list [-r]``: gc3pie's table ``JobID | Job name | State | Info``."""
    with open_readonly(args) as session:
        session.load_many(session.list_ids(), add=False)  # batched reads; failures are noted
        tasks = list(session)
        if args.json:
            out.json([cliformat.summary(t, args.recursive) for t in tasks])
        else:
            out.print(task_table(tasks, recursive=args.recursive))
        return out.load_errors(session)


def cmd_show(args: argparse.Namespace, out: Output) -> int:
    """``show SESSION TASKID``: one record (top-level or not), every attribute."""
    with open_readonly(args) as session:
        task = session.store.load(args.task_id)
        data = cliformat.describe(task, listed=args.task_id in session)
        if args.json:
            out.json(data)
        else:
            out.print(cliformat.render_description(data))
        return 0


def cmd_log(args: argparse.Namespace, out: Output) -> int:
    """``log``: ``%b %d %H:%M:%S <id>: <message>`` for every history entry, sorted by time."""
    with open_readonly(args) as session:
        session.load_many(session.list_ids(), add=False)
        entries = []
        seen: set[int] = set()
        for task in session.iter_workflow():
            if id(task) in seen:
                continue
            seen.add(id(task))
            history = getattr(getattr(task, "execution", None), "history", None)
            for message, when, _tags in getattr(history, "_messages", ()):
                entries.append((when, str(task.persistent_id), message))
        entries.sort(key=lambda e: e[0])
        if args.json:
            out.json([{"time": when, "id": pid, "message": message}
                      for when, pid, message in entries])
        else:
            for when, pid, message in entries:
                out.print(f"{time.strftime('%b %d %H:%M:%S', time.localtime(when))} {pid}: {message}")
        return out.load_errors(session)


def cmd_stats(args: argparse.Namespace, out: Output) -> int:
    """``stats``: tasks per state, from the store's state index (nothing is unpickled)."""
    with open_readonly(args) as session:
        states = session.states()
        counts: dict[str, int] = {}
        for state in states.values():
            key = state or "-"
            counts[key] = counts.get(key, 0) + 1
        owner = lock_owner(session.path)
        if args.json:
            out.json({"session": session.path, "store": str(session.store_url),
                      "total": len(states), "states": counts, "driver": owner})
            return 0
        out.print(f"Session '{session.name}' in {session.path}")
        out.print(f"  store: {session.store_url}")
        out.print(f"  driver: {owner or 'none running'}")
        out.print(cliformat.count_table(counts, len(states)))
        return 0


def add_commands(add: AddCommand) -> None:
    """Declare ``list``, ``show``, ``log`` and ``stats``."""
    cmd = add("list", cmd_list, "list the top-level tasks of a session", reader=True)
    cmd.add_argument("-r", "--recursive", action="store_true", help="list children too")
    cmd = add("show", cmd_show, "show every attribute of one task", reader=True)
    cmd.add_argument("task_id", metavar="TASKID", help="a task id, e.g. Task.12")
    add("log", cmd_log, "print the history of every task, oldest first", reader=True)
    add("stats", cmd_stats, "count the tasks in each state", reader=True)

__all__ = ["add_commands", "cmd_list", "cmd_log", "cmd_show", "cmd_stats", "open_readonly"]
