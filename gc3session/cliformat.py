"""How ``gsession`` shows tasks: table rows, full descriptions, counts, JSON-ready values.

Text and ``--json`` output are built from the same dictionaries, so the two
never disagree: :func:`describe` gives what ``show`` prints either way.
Values that JSON cannot hold are shown as the id of the record they refer
to (for references) or as their ``repr``.
"""

from __future__ import annotations

import json
import time
from typing import Any

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
                 if not k.startswith("_") and k != "history"}
        data["execution"] = _plain({"state": str(execution.state),
                                    "returncode": execution.returncode,
                                    "exitcode": execution.exitcode, "signal": execution.signal,
                                    **extra})
        data["history"] = [{"time": when, "message": message}
                           for message, when, _tags in execution.history]
    return data


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


__all__ = ["count_table", "describe", "json_default", "render_description", "summary"]
