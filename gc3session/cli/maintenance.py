"""``gsession fsck``, ``copy`` and ``import``: check a session, move it, bring one from GC3Pie.

``fsck --repair`` and ``copy`` take the session's driver lock: while a
script drives the session they refuse, naming the process (exit status 69).
"""

from __future__ import annotations

import argparse
import os

from .. import fsck
from ..cliplumbing import EXIT_LOAD_ERRORS, UsageError
from ..index import INDEX_FILENAME
from ..sessiondir import not_a_session
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
        if "://" not in args.session and not (os.path.isdir(args.session)
                                               and os.listdir(args.session)):
            raise not_a_session(os.path.abspath(args.session))  # neither a session nor a store
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


def cmd_import(args: argparse.Namespace, out: Output) -> int:
    """``import GC3PIE_SESSION NEW_SESSION``: see :mod:`gc3session.gc3pieimport`."""
    from ..gc3pieimport import import_session  # here: the other commands never need it

    classes = dict(spec.split("=", 1) for spec in args.classes if "=" in spec)
    if len(classes) != len(args.classes):
        raise UsageError("--class takes OLD=NEW, e.g. myscript:MyApp=mymodule:MyApp")
    report = import_session(args.session, args.new_session, args.store, classes=classes)
    for raw in report.raw:
        out.warn(f"kept {raw.id} as a GC3Pie record ({raw.gc3pie_class}): {raw.reason}")
    if not report.extra_fields_kept:
        out.warn(f"GC3Pie's extra fields ({', '.join(report.extra_fields)}) were not kept: the"
                 " new store is not an SQL store")
    if args.json:
        out.json(report.as_dict())
    else:
        out.print(f"imported {report.records} records ({report.tasks} top-level tasks) of GC3Pie"
                  f" session {report.source}\n  into {report.destination} (store {report.store})"
                  f"\n  {len(report.raw)} kept as GC3Pie records, {len(report.in_flight)} were"
                  " running under GC3Pie (a gc3session engine runs them again)"
                  "\nthe GC3Pie session was left as it was")
    return EXIT_LOAD_ERRORS if report.raw else 0


def add_commands(add: AddCommand) -> None:
    """Declare ``fsck``, ``copy`` and ``import``."""
    cmd = add("fsck", cmd_fsck, "check the index against the store; --repair fixes", reader=True)
    cmd.add_argument("--repair", action="store_true",
                     help="repair what can be repaired without losing data")
    cmd.add_argument("--orphans", choices=fsck.ORPHAN_POLICIES, default="keep",
                     help="with --repair: keep (default), adopt (list them) or delete"
                          " unlisted records")
    cmd = add("copy", cmd_copy, "move a session (or a store's records) to another store",
              reader=True)
    cmd.add_argument("dst_url", metavar="DST_URL", help="the new store (e.g. sqlite:///s.db)")
    cmd = add("import", cmd_import, "make a new session from a GC3Pie 2.6.8 session",
              reader=True)
    cmd.add_argument("new_session", metavar="NEW_SESSION", help="the new session directory")
    cmd.add_argument("--store", help="the new session's store URL (default: same kind as GC3Pie's)")
    cmd.add_argument("--class", dest="classes", action="append", default=[], metavar="OLD=NEW",
                     help="map your GC3Pie task class module:Name to a gc3session one (repeatable)")


__all__ = ["add_commands", "cmd_copy", "cmd_fsck", "cmd_import"]
