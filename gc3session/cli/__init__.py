"""``gsession``: inspect, check, move, rerun, abort and delete sessions from the shell.

::

    gsession list [-r] SESSION       the top-level tasks (-r: their children too)
    gsession show SESSION TASKID     every attribute of one task (any record id)
    gsession log SESSION             every task's history, oldest first
    gsession stats SESSION           how many tasks are in each state (nothing unpickled)
    gsession fsck [--repair] SESSION index versus store (see gc3session.fsck)
    gsession copy SESSION DST_URL    move the session into another store (gc3session.storecopy)
    gsession copy SRC_URL DST_URL    copy every record of a store into another one
    gsession import GC3PIE_SESSION NEW_SESSION [--store URL] [--class OLD=NEW]
                                     a session written by GC3Pie, as a new session
    gsession redo SESSION [--state S[,S]] [--exit-code N] [ID...]
                                     put failed (or chosen) tasks back to NEW;
                                     earlier outputs become name.~N~ backups
    gsession forget SESSION ID...    take ids out of the session, records kept
    gsession adopt SESSION ID...     take records back into the session
    gsession abort SESSION           kill every task that has not ended
    gsession delete SESSION          abort, then delete the tasks and the directory

``python -m gc3session`` is the same program.  ``list``, ``show``, ``log``,
``stats`` and ``fsck`` without ``--repair`` open the session read-only: they
never write a byte to it (nor to its store).  They take ``--json`` for
machine-readable output, and every command takes ``--untrusted`` to load
records with the allow-list of untrusted loads instead of importing whatever
class a record names.

``abort``, ``delete``, ``copy``, ``redo``, ``forget``, ``adopt`` and
``fsck --repair`` take the session's driver lock: while a script drives the session they refuse, naming the
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
            were shown; ``import``: some tasks were kept as GC3Pie records
69          a driver holds the session (``abort``, ``delete``, ``copy``,
            ``redo``, ``forget``, ``adopt``, ``fsck --repair``)
74          an operating-system error outside gc3session (e.g. permissions)
N           ``abort`` and ``delete``: N tasks (at most 125) could not be
            aborted; ``delete`` then leaves the session on disk (gc3pie's rule)
==========  ===============================================================
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import TextIO

from .. import __version__
from ..cliplumbing import ArgumentParser, UsageError, report_error
from ..exceptions import Error
from ..index import INDEX_FILENAME
from ..sessiondir import STORE_URL_FILENAME
from . import control, inspection, maintenance, recovery
from .common import PROG, Command, Output

#: The modules whose ``add_commands`` declare the subcommands, in ``--help`` order.
_COMMAND_MODULES = (inspection, maintenance, recovery, control)


def build_parser() -> argparse.ArgumentParser:
    """The ``gsession`` argument parser (subcommands)."""
    parser = ArgumentParser(prog=PROG, description="Inspect, check, move, rerun, abort and"
                            " delete sessions (a session is a directory that holds"
                            f" {INDEX_FILENAME} and {STORE_URL_FILENAME}).",
                            epilog="Exit status: see `pydoc gc3session.cli`.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0,
                        help="more messages on stderr (repeat for even more)")
    common.add_argument("--untrusted", action="store_true",
                        help="load only allow-listed classes (records from someone else)")
    reading = ArgumentParser(add_help=False, parents=[common])
    reading.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True

    def add(name: str, func: Command, help_text: str, *,
            reader: bool = False) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text,
                             parents=[reading if reader else common])
        cmd.set_defaults(func=func)
        cmd.add_argument("session", metavar="SESSION", help="the session directory")
        return cmd

    for module in _COMMAND_MODULES:
        module.add_commands(add)
    return parser


def main(argv: list[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run ``gsession`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    out = Output(stdout or sys.stdout, stderr or sys.stderr)
    try:
        if any("\x00" in arg for arg in argv or ()):  # no path or id holds one (and os calls raise)
            raise UsageError("an argument holds a NUL byte")
        with contextlib.redirect_stdout(out.stdout):
            args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version
        return int(done.code or 0)
    except UsageError as err:
        return report_error(PROG, err, out.stderr)
    logging.basicConfig(level=max(logging.DEBUG, logging.WARNING - 10 * args.verbose),
                        format=f"{PROG}: %(levelname)s: %(message)s")
    try:
        return int(args.func(args, out))
    except (Error, KeyboardInterrupt, OSError) as err:
        return report_error(PROG, err, out.stderr)


def console_main() -> None:
    """Entry point of the ``gsession`` console script (the only caller of ``sys.exit``)."""
    sys.exit(main())


__all__ = ["build_parser", "console_main", "main"]
