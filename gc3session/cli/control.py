"""``gsession abort`` and ``delete``: stop a session's commands, then maybe delete it.

Both take the session's driver lock: while a script drives the session
they refuse, naming the process (exit status 69).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..exceptions import Error
from ..session import Session
from ..sessionlock import driver_lock
from ..task import Application, State, TaskCollection
from .common import AddCommand, Output, existing_session

#: The largest "N tasks could not be aborted" exit status (126 and up mean other things).
MAX_ABORT_STATUS = 125


def cmd_abort(args: argparse.Namespace, out: Output) -> int:
    """``abort``: kill every task that has not ended; exit status = tasks left (<= 125)."""
    with driver_lock(existing_session(args.session)):
        with Session(args.session, create=False, ignore_errors=True,
                     trusted=not args.untrusted) as session:
            return _abort(session, args.executor, out)


def cmd_delete(args: argparse.Namespace, out: Output) -> int:
    """``delete``: abort; if every task ended, delete the records and the directory."""
    with driver_lock(existing_session(args.session)):
        with Session(args.session, create=False, ignore_errors=True,
                     trusted=not args.untrusted) as session:
            rc = _abort(session, args.executor, out)
            if rc:
                out.warn(f"session {session.path} was not deleted")
                return rc
            session.destroy()
            out.print(f"deleted session {session.path}")
            return 0




def _abort(session: Session, executor: str, out: Output) -> int:
    from ..engine import Engine  # here: the read-only commands need no executor machinery

    engine = Engine(session, executor=executor)
    try:
        for task in list(session):
            if task.execution.state == State.TERMINATED:
                continue
            try:
                engine.kill(task)
            except (Error, OSError) as err:
                out.warn(f"cannot kill every command of {task.persistent_id}: {err}")
            _stop_idle(task)  # also keeps the pass below from starting what the kill skipped
        engine.progress()  # settles collections; nothing starts: no command is left NEW
    finally:
        engine.close()
    session.save_all()
    left = [str(t.persistent_id) for t in session if t.execution.state != State.TERMINATED]
    left += list(session.load_errors)
    out.load_errors(session)
    if left:
        out.warn(f"not all tasks of the session have been aborted: {', '.join(left)}")
    return min(len(left), MAX_ABORT_STATUS)


def _stop_idle(task: Any) -> None:
    """Mark killed every node that runs no command the engine knows of.

    The engine kills commands and NEW applications; plain tasks (run by the
    user's own code) and runs lost while no driver watched (UNKNOWN,
    STOPPED) have nothing left to kill, so gc3pie's abort ends them.
    """
    stack = [task]
    while stack:
        node = stack.pop()
        stack.extend(getattr(node, "tasks", None) or ())
        if isinstance(node, TaskCollection) or node.execution.state == State.TERMINATED:
            continue
        if isinstance(node, Application) and node.execution.state in (
                State.SUBMITTED, State.RUNNING, State.TERMINATING):
            continue  # the kill failed: leave it for the report
        node.execution.returncode = (9, 0)
        node.execution.state = State.TERMINATED
        node.execution.info = "aborted by gsession"


def add_commands(add: AddCommand) -> None:
    """Declare ``abort`` and ``delete``."""
    for name, func, text in (("abort", cmd_abort, "kill every task that has not ended"),
                             ("delete", cmd_delete, "abort every task, then delete the session")):
        cmd = add(name, func, text)
        cmd.add_argument("-x", "--executor", default="local",
                         help="the executor that runs the commands (default: local)")


__all__ = ["MAX_ABORT_STATUS", "add_commands", "cmd_abort", "cmd_delete"]
