"""``gsession list``, ``show``, ``log``, ``stats`` and ``report``: read-only looks at a session.

They open the session read-only (``mode="r"``): they never write a byte to
it, nor to its store.  None of them imports a task's class: ``list``,
``stats`` and ``report`` read task summaries (record headers and the
store's indexes), ``show`` and ``log`` also read records unpickled inertly
(:mod:`gc3session.persistence.inert`).  Only ``show --full`` loads the task
itself, and says in one line which class it cannot import.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import fnmatch
import json
import os
import time
from typing import Any, Iterator, cast

from .. import cliformat, fsio
from ..cliplumbing import EXIT_LOAD_ERRORS, UsageError, one_line
from ..exceptions import CorruptRecordError, LoadError
from ..persistence.idfactory import check_id, is_valid_id, seqno_of
from ..persistence.inert import record_attributes
from ..persistence.record import parse_header
from ..persistence.records import read_records
from ..session import Session
from ..sessionlock import lock_owner
from ..summary import OUTCOMES, TaskSummary, outcome
from ..task import State
from .common import AddCommand, Output

#: What ``list --sort`` takes: a summary field, or ``duration`` (ended - started).
SORT_FIELDS = ("id", "jobname", "state", "exitcode", "signal", "attempts", "changed",
               "submitted", "started", "ended", "duration")
#: ``list --state`` takes these besides the task states: TERMINATED with or without success.
_OUTCOME_STATES = ("ok", "failed")


def open_readonly(args: argparse.Namespace) -> Session:
    """The session named on the command line, read-only, loading nothing."""
    return Session(args.session, create=False, load=False, mode="r", ignore_errors=True,
                   trusted=not args.untrusted)


# --- list ----------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace, out: Output) -> int:
    """``list``: a row per top-level task (``-r``: and per child), filtered, sorted, paged."""
    with open_readonly(args) as session:
        summaries = session.summaries()
        missing = [pid for pid in session.list_ids() if pid not in summaries]
        filtered = args.state or args.name is not None or args.since is not None \
            or args.until is not None
        rows = [(pid, summary) for pid, summary in summaries.items()
                if not filtered or _wanted(summary, args)]
        if args.sort:
            rows.sort(key=lambda item: _sort_key(item, args.sort))
        rows = rows[args.offset:][:args.limit] if args.limit is not None else rows[args.offset:]
        listed = list(_with_children(session, rows, args.recursive, missing))
    if args.json or args.jsonl:
        nested = _nest([(depth, cliformat.list_row(pid, summary))
                        for depth, pid, summary in listed])
        if args.jsonl:
            for row in nested:
                out.print(json.dumps(row, sort_keys=True))
        else:
            out.json(nested)
    else:
        out.print(cliformat.list_table(listed))
    for pid in missing:
        out.warn(f"cannot read the record of {pid} (gsession fsck says why)")
    return EXIT_LOAD_ERRORS if missing else 0


def _wanted(summary: dict[str, Any], args: argparse.Namespace) -> bool:
    if args.state:
        state = summary.get("state")
        result = outcome({**_REPORT_DEFAULTS, **summary, "state": state or "NEW"})
        if state not in args.state and not (result in args.state and result in _OUTCOME_STATES):
            return False
    if args.name is not None and not fnmatch.fnmatchcase(summary.get("jobname") or "", args.name):
        return False
    changed = summary.get("changed")
    if args.since is not None and (changed is None or changed < args.since):
        return False
    return args.until is None or (changed is not None and changed <= args.until)


def _sort_key(item: tuple[str, dict[str, Any]], field: str) -> tuple[Any, ...]:
    pid, summary = item
    if field == "id":
        return (seqno_of(pid), pid)
    if field == "duration":
        started, ended = summary.get("started"), summary.get("ended")
        value: Any = ended - started if started is not None and ended is not None else None
    else:
        value = summary.get(field)
    return (value is None, value if value is not None else 0, seqno_of(pid))


def _with_children(session: Session, rows: list[tuple[str, dict[str, Any]]], recursive: bool,
                   missing: list[str]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(depth, id, summary)`` of each row, and with ``recursive`` of its children, depth first."""
    if not recursive:
        yield from ((0, pid, summary) for pid, summary in rows)
        return
    for pid, summary in rows:
        yield 0, pid, summary
        yield from _children(session, summary, 1, missing)


def _children(session: Session, summary: dict[str, Any], depth: int,
              missing: list[str]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    ids = [pid for pid in summary.get("children") or () if is_valid_id(pid)]
    found = session.store.summaries(ids) if ids else {}
    for pid in ids:
        if pid not in found:
            missing.append(pid)
            continue
        yield depth, pid, found[pid]
        yield from _children(session, found[pid], depth + 1, missing)


def _nest(listed: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """``(depth, row)`` pairs as rows with ``children`` lists (for JSON)."""
    top: list[dict[str, Any]] = []
    parents: list[dict[str, Any]] = []
    for depth, row in listed:
        row = {**row, "children": []}
        del parents[depth:]
        (parents[-1]["children"] if parents else top).append(row)
        parents.append(row)
    return top


# --- show and log ----------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace, out: Output) -> int:
    """``show SESSION TASKID [--full]``: one task (top-level or not), from its record."""
    check_id(args.task_id)
    with open_readonly(args) as session:
        listed = args.task_id in session
        if args.full:
            data = cliformat.describe_object(session.store.load(args.task_id), listed)
        else:
            summary, attrs = _read_inertly(session, args.task_id)
            data = cliformat.describe(args.task_id, summary, attrs, listed)
    if args.json:
        out.json(data)
    else:
        out.print(cliformat.render_description(data))
    return 0


def cmd_log(args: argparse.Namespace, out: Output) -> int:
    """``log``: ``%b %d %H:%M:%S <id>: <message>`` for every history entry, sorted by time."""
    failed: list[str] = []
    with open_readonly(args) as session:
        entries: list[tuple[float, str, str]] = []
        level, seen = session.list_ids(), set(session.list_ids())
        while level:
            following: list[str] = []
            for pid, data in read_records(session.store, level):
                attrs = None if isinstance(data, LoadError) else _inert(session, pid, data)
                if attrs is None:
                    failed.append(pid)
                    continue
                entries.extend((when, pid, message)
                               for message, when in cliformat.history(attrs.get("execution")))
                children = [getattr(c, "id", None) for c in attrs.get("tasks") or ()]
                following.extend(c for c in children if c and c not in seen)
                seen.update(c for c in children if c)
            level = following
    entries.sort(key=lambda e: e[0])
    if args.json:
        out.json([{"time": when, "time_iso": cliformat.iso(when), "id": pid, "message": message}
                  for when, pid, message in entries])
    else:
        for when, pid, message in entries:
            out.print(f"{time.strftime('%b %d %H:%M:%S', time.localtime(when))} {pid}: {message}")
    for pid in failed:
        out.warn(f"cannot read the record of {pid} (gsession fsck says why)")
    return EXIT_LOAD_ERRORS if failed else 0


def _read_inertly(session: Session, pid: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The summary (from the record's own header, not from an index that may lag behind it)
    and the attributes of record ``pid``, unpickled without importing anything.

    :raises CorruptRecordError: naming the id and the place, if the record is damaged.
    """
    data = session.store.read_record(pid)
    try:
        summary = parse_header(data).summary
        return summary, record_attributes(data, trusted=session.store.trusted)
    except Exception as err:  # whatever damaged bytes make pickle raise
        location = session.store.location(pid)
        raise CorruptRecordError(f"record {pid} ({location}) is damaged: {one_line(str(err))}",
                                 id=pid, location=location, cause=str(err)) from err


def _inert(session: Session, pid: str, data: bytes) -> dict[str, Any] | None:
    """The record's attributes, unpickled without importing anything; None if damaged."""
    try:
        return record_attributes(data, trusted=session.store.trusted)
    except Exception:  # whatever damaged bytes make pickle raise: reported by the caller
        return None


# --- stats and report -----------------------------------------------------------------------
def cmd_stats(args: argparse.Namespace, out: Output) -> int:
    """``stats``: tasks per state, from the store's state index (nothing is unpickled)."""
    with open_readonly(args) as session:
        states = session.states()
        tally = collections.Counter(states.values())  # counted in C
        counts: dict[str, int] = {}
        for state, count in tally.items():  # in the order states first occur, as before
            key = state or "-"
            counts[key] = counts.get(key, 0) + count
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


#: The keys of a report's task summary that a record summary may lack.
_REPORT_DEFAULTS: dict[str, Any] = {"jobname": None, "exitcode": None, "signal": None,
                                    "submitted": None, "started": None, "ended": None,
                                    "attempts": 0, "stdout": None, "stderr": None}


def cmd_report(args: argparse.Namespace, out: Output) -> int:
    """``report SESSION [-o FILE]``: one self-contained HTML page (gc3session.report)."""
    from ..report import render_report  # here: the other commands never need it

    with open_readonly(args) as session:
        tasks = list(_report_tasks(session))
        meta = {"session": session.path, "store": str(session.store_url),
                "created": session.created, "finished": None if session.finished < 0
                else session.finished, "generated": time.time()}
    target = os.path.abspath(args.output or f"{os.path.basename(os.path.abspath(args.session))}"
                             "-report.html")
    if not os.path.isdir(os.path.dirname(target)):
        raise UsageError(f"cannot write {target}: no directory {os.path.dirname(target)}")
    fsio.atomic_write(target, render_report(tasks, meta).encode("utf-8"), mode=0o644)
    counts = {name: sum(1 for t in tasks if outcome(t) == name) for name in OUTCOMES}
    out.print(f"wrote {target}: {len(tasks)} tasks ("
              + ", ".join(f"{counts[name]} {name}" for name in OUTCOMES) + ")")
    return 0


def _report_tasks(session: Session) -> Iterator[TaskSummary]:
    """The report's task summaries: every task that has no children (the workflow's leaves)."""
    level = session.summaries()
    while level:
        children: list[str] = []
        for pid, summary in level.items():
            if summary.get("children"):
                children.extend(c for c in summary["children"] if is_valid_id(c))
                continue
            state = summary.get("state") or "NEW"
            ended = summary.get("ended") if state == "TERMINATED" else None
            started = summary.get("started")
            yield cast(TaskSummary, {
                **{key: summary.get(key, default) for key, default in _REPORT_DEFAULTS.items()},
                "id": pid, "class": summary.get("class") or "?:?", "state": state,
                "started": started, "ended": ended if started is None or ended is None
                or ended >= started else None})
        level = session.store.summaries(children) if children else {}


# --- the command line ------------------------------------------------------------------------
def _states(text: str) -> list[str]:
    """``--state`` words in any case: task states upper-case, outcomes lower-case."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    states = [w.lower() if w.lower() in _OUTCOME_STATES else w.upper() for w in words]
    known = {state.value for state in State} | set(_OUTCOME_STATES)
    unknown = [s for s in states if s not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown state {', '.join(unknown)}; known:"
                                         f" {', '.join(sorted(known))}")
    return states


def _when(text: str) -> float:
    """Epoch seconds, or an ISO 8601 date or time (local unless it says its offset)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (e.g. 2026-12-07,"
                                         " 2026-12-07T14:30, or epoch seconds)") from err
    return moment.timestamp() if moment.tzinfo else moment.astimezone().timestamp()


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}")
    return value


def add_commands(add: AddCommand) -> None:
    """Declare ``list``, ``show``, ``log``, ``stats`` and ``report``."""
    cmd = add("list", cmd_list, "list the tasks of a session (filtered, sorted, paged)",
              reader=True)
    cmd.add_argument("-r", "--recursive", action="store_true", help="list children too")
    cmd.add_argument("--state", type=_states, default=None, metavar="STATE[,STATE]",
                     help="only tasks in these states (also ok, failed)")
    cmd.add_argument("--name", default=None, metavar="GLOB", help="only job names matching GLOB")
    cmd.add_argument("--since", type=_when, default=None, metavar="TIME",
                     help="only tasks whose state changed at or after TIME (ISO 8601 or epoch)")
    cmd.add_argument("--until", type=_when, default=None, metavar="TIME",
                     help="only tasks whose state changed at or before TIME")
    cmd.add_argument("--sort", choices=SORT_FIELDS, default=None,
                     help="order by this field (default: the session's order)")
    cmd.add_argument("--limit", type=_count, default=None, metavar="N", help="at most N rows")
    cmd.add_argument("--offset", type=_count, default=0, metavar="N", help="skip the first N rows")
    cmd.add_argument("--jsonl", action="store_true", help="one JSON object per line")
    cmd = add("show", cmd_show, "show one task: its summary, attributes and history",
              reader=True)
    cmd.add_argument("task_id", metavar="TASKID", help="a task id, e.g. Task.12")
    cmd.add_argument("--full", action="store_true",
                     help="load the task itself (its class must be importable)")
    add("log", cmd_log, "print the history of every task, oldest first", reader=True)
    add("stats", cmd_stats, "count the tasks in each state", reader=True)
    cmd = add("report", cmd_report, "write an HTML report of the session")
    cmd.add_argument("-o", "--output", default=None, metavar="FILE",
                     help="the HTML file to write (default: SESSIONNAME-report.html here)")


__all__ = ["SORT_FIELDS", "add_commands", "cmd_list", "cmd_log", "cmd_report", "cmd_show",
           "cmd_stats", "open_readonly"]
