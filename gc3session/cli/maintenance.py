"""``gsession fsck`` and ``copy``: check a session against its store, move it to another store.

``fsck --repair`` and ``copy`` take the session's driver lock: while a
script drives the session they refuse, naming the process (exit status 69).
"""

from __future__ import annotations

import argparse
import os

from .. import fsck
from ..index import INDEX_FILENAME
from ..storecopy import copy_session, copy_store
from .common import AddCommand, Output


def cmd_fsck(args: argparse.Namespace, out: Output) -> int:
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


def cmd_copy(args: argparse.Namespace, out: Output) -> int:
    """``copy SESSION DST_URL``: the session's records into DST_URL, which it then uses.

    ``copy SRC_URL DST_URL`` (SRC_URL is not a session directory) copies every
    record of the store SRC_URL instead; no session is switched.
    """
    if not os.path.exists(os.path.join(args.session, INDEX_FILENAME)):
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


def add_commands(add: AddCommand) -> None:
    """Declare ``fsck`` and ``copy``."""
    cmd = add("fsck", cmd_fsck, "check the index against the store; --repair fixes", reader=True)
    cmd.add_argument("--repair", action="store_true",
                     help="repair what can be repaired without losing data")
    cmd.add_argument("--orphans", choices=fsck.ORPHAN_POLICIES, default="keep",
                     help="with --repair: keep (default), adopt (list them) or delete"
                          " unlisted records")
    cmd = add("copy", cmd_copy, "copy a session's tasks into another store and use it"
              " (or, given a store URL, every record of that store)", reader=True)
    cmd.add_argument("dst_url", metavar="DST_URL", help="the new store (e.g. sqlite:///s.db)")


__all__ = ["add_commands", "cmd_copy", "cmd_fsck"]
