"""``gsession``: inspect, check, move, abort and delete sessions from the shell.

::

    gsession list [-r] SESSION       the top-level tasks (-r: their children too)
    gsession show SESSION TASKID     every attribute of one task (any record id)
    gsession log SESSION             every task's history, oldest first
    gsession stats SESSION           how many tasks are in each state (nothing unpickled)
    gsession fsck [--repair] SESSION index versus store (see gc3session.fsck)
    gsession copy SESSION DST_URL    move the session into another store (gc3session.storecopy)
    gsession copy SRC_URL DST_URL    copy every record of a store into another one
    gsession abort SESSION           kill every task that has not ended
    gsession delete SESSION          abort, then delete the tasks and the directory

``list``, ``show``, ``log``, ``stats`` and ``fsck`` without ``--repair`` open
the session read-only: they never write a byte to it (nor to its store).
They take ``--json`` for machine-readable output, and every command takes
``--untrusted`` to load records with the allow-list of untrusted loads
instead of importing whatever class a record names.

``abort``, ``delete``, ``copy`` and ``fsck --repair`` take the session's
driver lock: while a script drives the session they refuse, naming the
process (exit status 69).  Store URLs are shown with the password hidden.

Exit status
-----------
==========  ===============================================================
0           success; ``fsck``: no problems (leftovers may be listed)
1           an error (one line on stderr says which file or id, and why)
2           ``fsck --repair``: problems were found and all were repaired
4           ``fsck``: problems were found and (some) remain
13          interrupted by Ctrl-C
64          usage error
65          some tasks could not be loaded (listed on stderr); the others
            were shown
69          a driver holds the session (``abort``, ``delete``, ``copy``,
            ``fsck --repair``)
74          an operating-system error outside gc3session (e.g. permissions)
N           ``abort`` and ``delete``: N tasks (at most 125) could not be
            aborted; ``delete`` then leaves the session on disk (gc3pie's rule)
==========  ===============================================================
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import time
from typing import Any, Callable, NoReturn, TextIO

from . import __version__, cliformat, fsck
from .exceptions import Error, SessionNotFoundError
from .progress import task_table
from .session import Session
from .sessionlock import SessionBusyError, driver_lock, lock_owner
from .storecopy import copy_session, copy_store
from .task import Application, State, TaskCollection

PROG = "gsession"
EXIT_ERROR = 1
EXIT_INTERRUPTED = 13
EXIT_USAGE = 64
EXIT_LOAD_ERRORS = 65
EXIT_LOCKED = 69
EXIT_OSERROR = 74
MAX_ABORT_STATUS = 125


class UsageError(Error, ValueError):
    """The command line is wrong (exit status 64)."""

    exit_status = EXIT_USAGE


#: Exit statuses of errors raised below the command line (the most specific class wins).
_EXIT_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (SessionBusyError, EXIT_LOCKED),
    (Error, EXIT_ERROR),
    (KeyboardInterrupt, EXIT_INTERRUPTED),
    (OSError, EXIT_OSERROR),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _Output:
    """Where a command writes, and the load errors it met on the way."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout = stdout
        self.stderr = stderr

    def print(self, text: str = "") -> None:
        print(text, file=self.stdout)

    def json(self, data: Any) -> None:
        json.dump(data, self.stdout, indent=2, sort_keys=True, default=cliformat.json_default)
        self.stdout.write("\n")

    def warn(self, text: str) -> None:
        """One line on stderr; a password in a URL the user typed is masked."""
        masked = _PASSWORD.sub(r"\1:***@", _one_line(text))
        print(f"{PROG}: {masked}", file=self.stderr)

    def load_errors(self, session: Session) -> int:
        """Report the tasks that failed to load; the exit status that says so."""
        for pid, err in session.load_errors.items():
            self.warn(f"cannot load {pid}: {err}")
        return EXIT_LOAD_ERRORS if session.load_errors else 0


def build_parser() -> argparse.ArgumentParser:
    """The ``gsession`` argument parser (subcommands)."""
    parser = _Parser(prog=PROG, description="Inspect, check, move, abort and delete sessions.",
                     epilog="Exit status: see `pydoc gc3session.cli`.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0,
                        help="more messages on stderr (repeat for even more)")
    common.add_argument("--untrusted", action="store_true",
                        help="load only allow-listed classes (records from someone else)")
    reader = _Parser(add_help=False, parents=[common])
    reader.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, func: Callable[..., int], help_text: str,
                parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text, parents=parents)
        cmd.set_defaults(func=func)
        cmd.add_argument("session", metavar="SESSION", help="the session directory")
        return cmd

    cmd = command("list", cmd_list, "list the top-level tasks of a session", [reader])
    cmd.add_argument("-r", "--recursive", action="store_true", help="list children too")
    cmd = command("show", cmd_show, "show every attribute of one task", [reader])
    cmd.add_argument("task_id", metavar="TASKID", help="a task id, e.g. Task.12")
    command("log", cmd_log, "print the history of every task, oldest first", [reader])
    command("stats", cmd_stats, "count the tasks in each state", [reader])
    cmd = command("fsck", cmd_fsck, "check the index against the store; --repair fixes",
                  [reader])
    cmd.add_argument("--repair", action="store_true",
                     help="repair what can be repaired without losing data")
    cmd.add_argument("--orphans", choices=fsck.ORPHAN_POLICIES, default="keep",
                     help="with --repair: keep (default), adopt (list them) or delete"
                          " unlisted records")
    cmd = command("copy", cmd_copy, "copy a session's tasks into another store and use it"
                  " (or, given a store URL, every record of that store)", [reader])
    cmd.add_argument("dst_url", metavar="DST_URL", help="the new store (e.g. sqlite:///s.db)")
    for name, func, text in (("abort", cmd_abort, "kill every task that has not ended"),
                             ("delete", cmd_delete, "abort every task, then delete the session")):
        cmd = command(name, func, text, [common])
        cmd.add_argument("-x", "--executor", default="local",
                         help="the executor that runs the commands (default: local)")
    return parser


def main(argv: list[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run ``gsession`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    out = _Output(stdout or sys.stdout, stderr or sys.stderr)
    try:
        with contextlib.redirect_stdout(out.stdout):
            args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version
        return int(done.code or 0)
    except UsageError as err:
        out.warn(f"{err}")
        print(f"Type '{PROG} --help' for usage.", file=out.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=max(logging.DEBUG, logging.WARNING - 10 * args.verbose),
                        format=f"{PROG}: %(levelname)s: %(message)s")
    try:
        return int(args.func(args, out))
    except (Error, KeyboardInterrupt, OSError) as err:
        status = getattr(err, "exit_status", None) or next(
            code for cls, code in _EXIT_STATUS if isinstance(err, cls))
        if isinstance(err, SessionBusyError):
            out.warn(f"{err}; stop it first (or wait for it to finish)")
        elif isinstance(err, KeyboardInterrupt):
            out.warn("interrupted")
        else:
            out.warn(f"error: {err}")
        return int(status)


def console_main() -> None:
    """Entry point of the ``gsession`` console script."""
    sys.exit(main())


# --- read-only commands ----------------------------------------------------------
def _open_readonly(args: argparse.Namespace) -> Session:
    return Session(args.session, create=False, load=False, mode="r", ignore_errors=True,
                   trusted=not args.untrusted)


def cmd_list(args: argparse.Namespace, out: _Output) -> int:
    """``list [-r]``: gc3pie's table ``JobID | Job name | State | Info``."""
    with _open_readonly(args) as session:
        session.load_many(session.list_ids(), add=False)  # batched reads; failures are noted
        tasks = list(session)
        if args.json:
            out.json([cliformat.summary(t, args.recursive) for t in tasks])
        else:
            out.print(task_table(tasks, recursive=args.recursive))
        return out.load_errors(session)


def cmd_show(args: argparse.Namespace, out: _Output) -> int:
    """``show SESSION TASKID``: one record (top-level or not), every attribute."""
    with _open_readonly(args) as session:
        task = session.store.load(args.task_id)
        data = cliformat.describe(task, listed=args.task_id in session)
        if args.json:
            out.json(data)
        else:
            out.print(cliformat.render_description(data))
        return 0


def cmd_log(args: argparse.Namespace, out: _Output) -> int:
    """``log``: ``%b %d %H:%M:%S <id>: <message>`` for every history entry, sorted by time."""
    with _open_readonly(args) as session:
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


def cmd_stats(args: argparse.Namespace, out: _Output) -> int:
    """``stats``: tasks per state, from the store's state index (nothing is unpickled)."""
    with _open_readonly(args) as session:
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


def cmd_fsck(args: argparse.Namespace, out: _Output) -> int:
    """``fsck [--repair] [--orphans POLICY]``; exit status 0 clean, 2 repaired, 4 problems."""
    report = fsck.check(args.session, repair=args.repair, orphans=args.orphans,
                        trusted=not args.untrusted)
    if args.json:
        out.json(report.as_dict())
        return report.exit_status
    out.print(f"fsck of session {report.session} (store {report.store}):"
              f" {report.listed} listed tasks, {report.records} records")
    for finding in report.findings:
        line = f"{'leftover' if finding.leftover else 'problem'}: {finding.message}"
        if finding.action:
            line += f" -> {finding.action}"
        out.print(line)
    problems = len(report.problems)
    leftovers = len(report.findings) - problems
    summary = {"clean": "clean", "repaired": f"{problems} problem(s) found, all repaired",
               "problems": f"{problems} problem(s) found"}[report.status]
    if leftovers:
        summary += f"; {leftovers} leftover(s) of interrupted writes (not errors)"
    out.print(f"result: {summary}")
    return report.exit_status


# --- commands that write ------------------------------------------------------------
def cmd_copy(args: argparse.Namespace, out: _Output) -> int:
    """``copy SESSION DST_URL``: the session's records into DST_URL, which it then uses.

    ``copy SRC_URL DST_URL`` (SRC_URL is not a session directory) copies every
    record of the store SRC_URL instead; no session is switched.
    """
    if not os.path.exists(os.path.join(args.session, "session_ids.txt")):
        result = copy_store(args.session, args.dst_url)
        if args.json:
            out.json(result.as_dict())
        else:
            out.print(f"copied {result.records} records\n  from {result.source}\n"
                      f"  to   {result.destination}\nthe source store was left as it was")
        return 0
    result = copy_session(args.session, args.dst_url, trusted=not args.untrusted)
    if args.json:
        out.json(result.as_dict())
    else:
        out.print(f"copied {result.records} records ({result.tasks} top-level tasks) of session"
                  f" {result.session}\n  from {result.source}\n  to   {result.destination}\n"
                  "the session now uses the new store; the old one was left as it was")
    return 0


def cmd_abort(args: argparse.Namespace, out: _Output) -> int:
    """``abort``: kill every task that has not ended; exit status = tasks left (<= 125)."""
    with driver_lock(_existing_session(args.session)):
        with Session(args.session, create=False, ignore_errors=True,
                     trusted=not args.untrusted) as session:
            return _abort(session, args.executor, out)


def cmd_delete(args: argparse.Namespace, out: _Output) -> int:
    """``delete``: abort; if every task ended, delete the records and the directory."""
    with driver_lock(_existing_session(args.session)):
        with Session(args.session, create=False, ignore_errors=True,
                     trusted=not args.untrusted) as session:
            rc = _abort(session, args.executor, out)
            if rc:
                out.warn(f"session {session.path} was not deleted")
                return rc
            session.destroy()
            out.print(f"deleted session {session.path}")
            return 0


def _existing_session(path: str) -> str:
    """The absolute path of a session directory, checked before its driver lock is created."""
    path = os.path.abspath(path)
    if not os.path.exists(os.path.join(path, Session.INDEX_FILENAME)):
        raise SessionNotFoundError(f"no session in {path}", path=path)
    return path


def _abort(session: Session, executor: str, out: _Output) -> int:
    from .engine import Engine  # here: the read-only commands need no executor machinery

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


_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@\s]*@")


def _one_line(text: str) -> str:
    return " ".join(text.split())


__all__ = ["EXIT_ERROR", "EXIT_LOAD_ERRORS", "EXIT_LOCKED", "EXIT_USAGE", "build_parser",
           "console_main", "main"]


if __name__ == "__main__":
    console_main()
