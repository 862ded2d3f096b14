"""How ``gsession`` shows tasks: table rows, full descriptions, counts, JSON-ready values.

Text and ``--json`` output are built from the same dictionaries, so the two
never disagree: :func:`describe` gives what ``show`` prints either way.
Values that JSON cannot hold are shown as the id of the record they refer
to (for references) or as their ``repr``.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from .engine import SIGNAL_DATA_STAGING, SIGNAL_HOOK_FAILED
from .persistence.record import class_path
from .task import State


def summary(task: Any, recursive: bool) -> dict[str, Any]:
    """A ``list`` row: id, jobname, state, returncode, info (and children with ``recursive``)."""
    execution = task.execution
    row: dict[str, Any] = {"id": str(task.persistent_id), "jobname": task.jobname,
                           "state": str(execution.state), "returncode": execution.returncode,
                           "info": execution.info}
    if recursive:
        row["children"] = [summary(c, True) for c in getattr(task, "tasks", None) or ()]
    return row


#: Attributes shown elsewhere in a description (or not at all).
_HIDDEN = {"changed", "persistent_id", "execution", "tasks"}


def describe(task: Any, listed: bool) -> dict[str, Any]:
    """Everything ``show`` says about ``task``; ``listed``: is it a top-level task of the session."""
    attributes = {k: v for k, v in vars(task).items() if not k.startswith("_") and k not in _HIDDEN}
    data: dict[str, Any] = {"id": str(task.persistent_id), "class": class_path(type(task)),
                            "listed": listed, "attributes": _plain(attributes)}
    children = getattr(task, "tasks", None)
    if children is not None:
        data["children"] = [str(getattr(c, "persistent_id", c)) for c in children]
    execution = getattr(task, "execution", None)
    if execution is not None:
        extra = {k: v for k, v in vars(execution).items()
                 if not k.startswith("_") and k not in ("history", "attempts")}
        data["execution"] = _plain({"state": str(execution.state),
                                    "returncode": execution.returncode,
                                    "exitcode": execution.exitcode, "signal": execution.signal,
                                    **extra})
        data["history"] = [{"time": when, "message": message}
                           for message, when, _tags in execution.history]
        data["attempts"] = _plain(attempts(execution))
    return data


def attempts(execution: Any) -> list[dict[str, Any]]:
    """Every attempt of a task: those that ended before a redo, then the current one if it ran."""
    past = list(getattr(execution, "attempts", None) or ())
    summary = getattr(execution, "attempt_summary", None)
    if callable(summary) and str(execution.state) != State.NEW.value:
        past.append({**summary(), "current": True})
    return past


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
        try:
            return f"killed by signal {signum} ({signal.Signals(signum).name})"
        except ValueError:
            return f"killed by signal {signum}"
    return "no exit status" if exitcode is None else f"exit code {exitcode}"


def attempt_line(entry: dict[str, Any]) -> str:
    """``#2 TERMINATED, exit code 3, 0.52 s, started May 01 12:00:00, in DIR``."""
    parts = [f"#{entry.get('attempt')} {entry.get('state')}"]
    if entry.get("signal") or entry.get("exitcode") is not None:
        parts.append(exit_text(entry.get("exitcode"), entry.get("signal")))
    if entry.get("duration") is not None:
        parts.append(f"{entry['duration']:.2f} s")
    if entry.get("started") is not None:
        parts.append(f"started {time.strftime('%b %d %H:%M:%S', time.localtime(entry['started']))}")
    if entry.get("workdir"):
        parts.append(f"in {entry['workdir']}")
    if entry.get("kept"):
        parts.append(f"outputs kept as {', '.join(entry['kept'])}")
    return ", ".join(parts) + (" (current)" if entry.get("current") else "")


def render_description(data: dict[str, Any]) -> str:
    """:func:`describe`'s data as indented text, history times in local time."""
    listed = "" if data["listed"] else ", not listed in the session"
    lines = [f"{data['id']} ({data['class']}{listed})"]
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
        if data["attempts"]:
            lines.append("  attempts:")
            lines.extend(f"    {attempt_line(entry)}" for entry in data["attempts"])
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


__all__ = ["attempt_line", "attempts", "count_table", "describe", "exit_text", "json_default",
           "render_description", "summary"]
