"""``gsession redo``, ``forget`` and ``adopt``: run tasks again, set ids aside, take them back.

All three take the session's driver lock: while a script drives the
session they refuse, naming the process (exit status 69).  What ``redo``
does to a task and its earlier outputs is :mod:`gc3session.redo`'s; what
``forget`` and ``adopt`` do to the index, and where records stay, is
:mod:`gc3session.quarantine`'s.
"""

from __future__ import annotations

import argparse

from .. import quarantine
from ..cliplumbing import UsageError
from ..exceptions import InvalidValue
from ..redo import REDO_STATES, parse_states, redo_tasks, select
from ..session import Session
from ..sessionlock import driver_lock
from .common import AddCommand, Output, existing_session


def cmd_redo(args: argparse.Namespace, out: Output) -> int:
    """``redo SESSION [--state S,...] [--exit-code N] [ID...]``: chosen tasks back to NEW."""
    try:
        states = parse_states(args.state) if args.state is not None else []
    except InvalidValue as err:
        raise UsageError(str(err)) from err
    with driver_lock(existing_session(args.session)):
        with Session(args.session, create=False, ignore_errors=True,
                     trusted=not args.untrusted) as session:
            chosen = select(session, ids=args.ids, states=states, exit_code=args.exit_code)
            done = redo_tasks(session, chosen)
            if args.json:
                out.json([item.as_dict() for item in done])
            else:
                for item in done:
                    kept = f"; outputs kept as {', '.join(item.kept)}" if item.kept else ""
                    again = ", ".join(i for i in item.leaves if i != item.id)
                    out.print(f"{item.id} ({item.jobname}): {item.state}, return code"
                              f" {item.returncode} -> NEW{f' (runs again: {again})' if again else ''}"
                              f"{kept}")
                out.print(f"{len(done)} task(s) will run at the next run of the script"
                          if done else "no task matches: nothing was changed")
            return out.load_errors(session)


def cmd_forget(args: argparse.Namespace, out: Output) -> int:
    """``forget SESSION ID...``: take ids out of the index; their records stay."""
    with driver_lock(existing_session(args.session)):
        with Session(args.session, create=False, load=False,
                     trusted=not args.untrusted) as session:
            for item in quarantine.forget(session, args.ids):
                out.print(f"forgot {item.id}: its record stays in {item.location}"
                          f" (undo: gsession adopt {session.path} {item.id})")
    return 0


def cmd_adopt(args: argparse.Namespace, out: Output) -> int:
    """``adopt SESSION ID...``: list ids (records in the session's store) in the session again."""
    with driver_lock(existing_session(args.session)):
        with Session(args.session, create=False, load=False,
                     trusted=not args.untrusted) as session:
            added = quarantine.adopt(session, args.ids)
            for pid in dict.fromkeys(args.ids):
                out.print(f"adopted {pid}" if pid in added else f"{pid} was listed already")
    return 0


def add_commands(add: AddCommand) -> None:
    """Declare ``redo``, ``forget`` and ``adopt``."""
    cmd = add("redo", cmd_redo, "put failed (or chosen) tasks back to NEW to run again",
              reader=True)
    cmd.add_argument("--state", metavar="STATE[,STATE]",
                     help=f"tasks in these states: {', '.join(REDO_STATES)} (default: FAILED)")
    cmd.add_argument("--exit-code", type=int, metavar="N", help="tasks whose exit code is N")
    cmd.add_argument("ids", nargs="*", metavar="ID", help="only these top-level tasks")
    cmd = add("forget", cmd_forget, "take tasks out of the session, keeping their records")
    cmd.add_argument("ids", nargs="+", metavar="ID", help="top-level task ids")
    cmd = add("adopt", cmd_adopt, "take records back into the session (undoes forget)")
    cmd.add_argument("ids", nargs="+", metavar="ID", help="record ids in the session's store")


__all__ = ["add_commands", "cmd_adopt", "cmd_forget", "cmd_redo"]
