"""How ``gsession`` shows tasks: list rows, descriptions, counts, JSON-ready values.

Text and ``--json`` output are built from the same dictionaries, so the two
never disagree.  ``list`` rows come from task summaries (read from record
headers: no task class is imported); ``show`` describes a task from its
summary and its record unpickled inertly (:mod:`gc3session.persistence.inert`),
or, with ``--full``, from the object itself.  Times are epoch seconds in JSON
(with an ``_iso`` twin) and local ISO 8601 in text; an exit status is shown
as the exit code, or the name of the signal that killed the command, never
as a raw wait status.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from .persistence.inert import Reference, Shadow, attributes
from .persistence.record import class_path, task_state, task_summary
from .run import SIGNAL_DATA_STAGING, SIGNAL_HOOK_FAILED, signal_name
from .task import State

#: The times of a summary, each shown as epoch seconds and as ``<name>_iso``.
TIMES = ("changed", "submitted", "started", "ended")


def iso(when: float | None) -> str | None:
    """Epoch seconds as local ISO 8601 with the UTC offset (seconds precision), or None.

    >>> iso(None) is None and len(iso(0.0)) == 25
    True
    >>> iso(1e9 + 59.9) == _iso_of(time.localtime(1e9 + 59))
    True

    ``list`` shows one time per task, so the text up to the minute is kept
    per minute: a minute whose first and last second have the same UTC
    offset needs only its seconds filled in (``time.localtime`` and
    ``strftime`` run once per minute instead of once per task).
    """
    if when is None:
        return None
    second = math.floor(when)  # what time.localtime does with a fraction
    minute, into = divmod(second, 60)
    try:
        head, tail = _minutes[minute]
    except KeyError:
        head, tail = _minute_text(minute * 60)
        if len(_minutes) >= 4096:
            _minutes.clear()
        _minutes[minute] = (head, tail)
    if head is None:  # the offset changes within this minute
        return _iso_of(time.localtime(second))
    return f"{head}:{into:02d}{tail}"


_minutes: dict[int, tuple[str | None, str]] = {}


def _minute_text(start: int) -> tuple[str | None, str]:
    """``("YYYY-MM-DDTHH:MM", "+HH:MM")`` of the minute starting at ``start``, or
    ``(None, "")`` if its UTC offset changes within it."""
    first, last = time.localtime(start), time.localtime(start + 59)
    if first.tm_gmtoff != last.tm_gmtoff or first.tm_sec != 0:
        return None, ""
    text = _iso_of(first)
    return text[:16], text[19:]


def _iso_of(local: time.struct_time) -> str:
    offset = abs(local.tm_gmtoff) // 60
    sign = "-" if local.tm_gmtoff < 0 else "+"
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}{sign}{offset // 60:02d}:{offset % 60:02d}"


def exit_cell(exitcode: int | None, signal: int | None) -> str:
    """How a run ended, in a word (a ``list`` cell): the signal's name if one killed it, else
    the exit code."""
    name = signal_name(signal)
    if name is not None:
        return name
    return "" if exitcode is None else str(exitcode)


def exit_text(exitcode: int | None, signum: int | None) -> str:
    """How a command ended, in words: ``exit code 3``, ``killed by signal 9 (SIGKILL)``...

    >>> exit_text(3, 0), exit_text(None, 9), exit_text(0, SIGNAL_DATA_STAGING)
    ('exit code 3', 'killed by signal 9 (SIGKILL)', 'exit code 0, declared outputs missing')
    """
    if signum == SIGNAL_DATA_STAGING:
        return f"exit code {exitcode}, declared outputs missing"
    if signum == SIGNAL_HOOK_FAILED:
        return f"exit code {exitcode}, its terminated() raised"
    if signum:
        name = signal_name(signum)
        return f"killed by signal {signum}" + ("" if name == f"signal {signum}" else f" ({name})")
    return "no exit status" if exitcode is None else f"exit code {exitcode}"


def list_row(pid: str, summary: dict[str, Any]) -> dict[str, Any]:
    """A ``list`` row (JSON-ready) from a task summary."""
    exitcode, signal = summary.get("exitcode"), summary.get("signal")
    row: dict[str, Any] = {
        "id": pid, "jobname": summary.get("jobname"), "class": summary.get("class"),
        "state": summary.get("state"), "exitcode": exitcode, "signal": signal,
        "signal_name": signal_name(signal),
        "returncode": None if exitcode is None and signal is None
        else ((exitcode or 0) << 8) | (signal or 0),
        "attempts": summary.get("attempts") or 0, "info": summary.get("info"),
        "stdout": summary.get("stdout"), "stderr": summary.get("stderr"),
    }
    for key in TIMES:
        row[key] = summary.get(key)
        row[f"{key}_iso"] = iso(summary.get(key))
    return row


def list_table(rows: list[tuple[int, str, dict[str, Any]]]) -> str:
    """``JobID | Job name | State | Exit | Changed | Info`` for ``(depth, id, summary)`` rows.

    Children are indented two spaces per level under their parent.
    """
    cells = [("JobID", "Job name", "State", "Exit", "Changed", "Info")]
    append = cells.append
    for depth, pid, summary in rows:
        get = summary.get
        info = get("info")
        append(("  " * depth + pid if depth else pid, get("jobname") or "", get("state") or "",
                exit_cell(get("exitcode"), get("signal")),
                iso(get("changed")) or "", " ".join(info.split()) if info else ""))
    widths = [max(map(len, column)) for column in zip(*cells)]
    line = " | ".join(f"{{:<{width}}}" for width in widths).format  # one call per row
    lines = [line(*row).rstrip() for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


#: Attributes shown elsewhere in a description (or not at all).
_HIDDEN = {"changed", "_changed", "persistent_id", "execution", "tasks"}


def describe(pid: str, summary: dict[str, Any], attrs: dict[str, Any] | None,
             listed: bool) -> dict[str, Any]:
    """What ``show`` says of a task: its summary, its attributes (``attrs``, the record
    unpickled inertly or the object's), its children and its history."""
    data: dict[str, Any] = {"id": pid, "class": summary.get("class"), "listed": listed,
                            "summary": list_row(pid, summary)}
    attrs = attrs or {}
    data["attributes"] = _plain({k: v for k, v in attrs.items()
                                 if not k.startswith("_") and k not in _HIDDEN})
    if summary.get("children") is not None:
        data["children"] = list(summary["children"])
    data["history"] = [{"time": when, "time_iso": iso(when), "message": message}
                       for message, when in history(attrs.get("execution"))]
    data["attempts"] = attempts(attrs.get("execution"), data["summary"])
    return data


def describe_object(task: Any, listed: bool) -> dict[str, Any]:
    """``show --full``: :func:`describe` from the object itself (its class was imported)."""
    state = task_state(task)
    summary = {"class": class_path(type(task)), "state": state, **task_summary(task, state)}
    data = describe(str(task.persistent_id), summary, dict(vars(task)), listed)
    execution = getattr(task, "execution", None)
    if execution is not None:
        data["execution"] = _plain({
            "state": str(execution.state), "returncode": execution.returncode,
            "exitcode": execution.exitcode, "signal": execution.signal,
            **{k: v for k, v in vars(execution).items()
               if not k.startswith("_") and k not in ("history", "attempts", "handle")}})
    return data


def history(execution: Any) -> list[tuple[str, float]]:
    """``(message, epoch)`` of a task's history, from the object or from inert data."""
    if isinstance(execution, Shadow):
        record = attributes(execution) or {}
        log = record.get("history")
        messages = (attributes(log) or {}).get("_messages", []) if isinstance(log, Shadow) else []
    else:
        messages = getattr(getattr(execution, "history", None), "_messages", None) or []
    return [(str(entry[0]), float(entry[1])) for entry in messages
            if isinstance(entry, tuple) and len(entry) >= 2 and isinstance(entry[1], (int, float))]


def attempts(execution: Any, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Every attempt of a task: those that ended before a redo (``execution.attempts``, from the
    object or from inert data), then the current one (from the ``list`` row) if it ran."""
    record = (attributes(execution) or {}) if isinstance(execution, Shadow) else \
        vars(execution) if execution is not None else {}
    past = [_plain(entry) for entry in record.get("attempts") or () if isinstance(entry, dict)]
    if row["state"] not in (None, State.NEW.value) and row["attempts"]:
        started = row["submitted"] if row["submitted"] is not None else row["started"]
        ended = row["ended"]
        handle = record.get("handle")
        past.append({"attempt": row["attempts"], "state": row["state"],
                     "exitcode": row["exitcode"], "signal": row["signal"], "started": started,
                     "ended": ended, "duration": None if started is None or ended is None
                     else max(0.0, ended - started),
                     "workdir": handle.get("workdir") if isinstance(handle, dict) else None,
                     "current": True})
    return past


def attempt_line(entry: dict[str, Any]) -> str:
    """``#2 TERMINATED, exit code 3, 0.52 s, started 2026-05-01T12:00:00+02:00, in DIR``."""
    parts = [f"#{entry.get('attempt')} {entry.get('state')}"]
    if entry.get("signal") or entry.get("exitcode") is not None:
        parts.append(exit_text(entry.get("exitcode"), entry.get("signal")))
    if isinstance(entry.get("duration"), (int, float)):
        parts.append(f"{entry['duration']:.2f} s")
    if isinstance(entry.get("started"), (int, float)):
        parts.append(f"started {iso(entry['started'])}")
    if entry.get("workdir"):
        parts.append(f"in {entry['workdir']}")
    if entry.get("kept"):
        parts.append(f"outputs kept as {', '.join(map(str, entry['kept']))}")
    return ", ".join(parts) + (" (current)" if entry.get("current") else "")


def render_description(data: dict[str, Any]) -> str:
    """:func:`describe`'s data as indented text, times in local ISO 8601."""
    listed = "" if data["listed"] else ", not listed in the session"
    row = data["summary"]
    lines = [f"{data['id']} ({data['class']}{listed})",
             f"  job name: {row['jobname'] or ''}", f"  state: {row['state']}"]
    if row["exitcode"] is not None or row["signal"]:
        lines.append(f"  exit: {exit_text(row['exitcode'], row['signal'])}")
    lines.append(f"  attempts: {row['attempts']}")
    lines.extend(f"    {attempt_line(entry)}" for entry in data["attempts"])
    for key in TIMES:
        if row[key] is not None:
            lines.append(f"  {key}: {row[f'{key}_iso']}")
    for key in ("stdout", "stderr"):
        if row[key]:
            lines.append(f"  {key}: {row[key]}")
    for key, value in sorted(data["attributes"].items()):
        lines.append(f"  {key}: {_text(value)}")
    if "children" in data:
        lines.append(f"  children: {', '.join(data['children']) or '(none)'}")
    if "execution" in data:
        lines.append("  execution:")
        for key, value in data["execution"].items():
            lines.append(f"    {key}: {_text(value)}")
    lines.append("  history:")
    for entry in data["history"]:
        when = time.strftime("%b %d %H:%M:%S", time.localtime(entry["time"]))
        lines.append(f"    {when} {entry['message']}")
    return "\n".join(lines)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _plain(value: Any) -> Any:
    """JSON-ready data: containers recursed, references as ids, the rest as repr."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_plain(v) for v in items]
    return json_default(value)


def json_default(value: Any) -> Any:
    """``json.dump``'s fallback: a referenced record by its id, anything else by its repr."""
    if isinstance(value, Reference):
        return value.id
    pid = getattr(value, "persistent_id", None)
    return str(pid) if pid is not None else repr(value)


def count_table(counts: dict[str, int], total: int) -> str:
    """gc3libs' layout: ``STATE  n/total  (pct%)``, states in lifecycle order, then total."""
    order = [s.value for s in State]
    keys = sorted(counts, key=lambda k: (order.index(k) if k in order else len(order), k))
    rows = [(k, f"{counts[k]}/{total}", f"({100.0 * counts[k] / total:.1f}%)") for k in keys]
    rows.append(("total", f"{total}/{total}", "(100.0%)" if total else "(0.0%)"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"  {a:>{widths[0]}}  {b:>{widths[1]}}  {c:^{widths[2]}}".rstrip()
                     for a, b, c in rows)


__all__ = ["TIMES", "attempt_line", "attempts", "count_table", "describe", "describe_object",
           "exit_cell", "exit_text", "history", "iso", "json_default", "list_row", "list_table",
           "render_description", "signal_name"]
