"""Task summaries: what can be said about a task without importing its class.

A *task summary* is a plain dictionary, read from a record's header and the
session's state index, never by unpickling the task.  The HTML report
(:mod:`gc3session.report`) is made from summaries.  Each has exactly these
keys (:func:`validate_summary` checks them):

``id`` (str)
    The task id, e.g. ``"Task.42"``; unique among the summaries of a session.
``jobname`` (str or None)
    The job name, as the user gave it (user data: shown as text, never as markup).
``class`` (str)
    The task's class as ``"module:qualname"``.
``state`` (str)
    A :class:`~gc3session.task.State` value (``"NEW"``, ``"TERMINATED"``...).
``exitcode``, ``signal`` (int or None)
    The exit status (0 to 255), and the number of the signal that killed the
    command (1 to 127; 0 or None when none did).
``submitted``, ``started``, ``ended`` (float or None)
    Epoch seconds, of the latest attempt; ``ended`` is not before ``started``.
``attempts`` (int)
    How many times the task was run (0 for a task never run).
``stdout``, ``stderr`` (str or None)
    Paths of the output files, as recorded.

A summary's *outcome* (:func:`outcome`) is ``ok`` (TERMINATED, exit code 0,
no signal), ``failed`` (TERMINATED otherwise, including with no exit status
at all, as ``Run.in_state("failed")`` has it), ``running`` (SUBMITTED,
RUNNING or TERMINATING) or ``other`` (NEW, STOPPED, UNKNOWN).

>>> s = {"id": "Task.1", "jobname": "align", "class": "__main__:Align", "state": "TERMINATED",
...      "exitcode": 0, "signal": 9, "submitted": 10.0, "started": 11.0, "ended": 15.5,
...      "attempts": 1, "stdout": "out/1/stdout", "stderr": "out/1/stderr"}
>>> validate_summary(s); outcome(s)
'failed'
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Mapping
from typing import Any, TypedDict

from .exceptions import InvalidType, InvalidValue
from .task import State

__all__ = ["OUTCOMES", "TaskSummary", "is_epoch", "outcome", "validate_summary"]

TaskSummary = TypedDict("TaskSummary", {
    "id": str, "jobname": str | None, "class": str, "state": str,
    "exitcode": int | None, "signal": int | None,
    "submitted": float | None, "started": float | None, "ended": float | None,
    "attempts": int, "stdout": str | None, "stderr": str | None,
})

#: The outcomes, in the order the report shows them.
OUTCOMES = ("ok", "failed", "running", "other")

_TERMINATED = State.TERMINATED.value
_RUNNING = frozenset({State.SUBMITTED.value, State.RUNNING.value, State.TERMINATING.value})
_STATES = [s.value for s in State]
_CLASS_PATH = re.compile(r"[^\s:]+:[^\s:]+")
_TIMES = ("submitted", "started", "ended")
_INTS = ("exitcode", "signal", "attempts")
_KEY_ORDER = tuple(TaskSummary.__annotations__)
_KEYS = frozenset(_KEY_ORDER)
_NONE = type(None)
_EXACT_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "jobname": (str, _NONE), "class": (str,), "state": (str,),
    "exitcode": (int, _NONE), "signal": (int, _NONE), "submitted": (float, int, _NONE),
    "started": (float, int, _NONE), "ended": (float, int, _NONE), "attempts": (int,),
    "stdout": (str, _NONE), "stderr": (str, _NONE)}
#: Every valid combination of the exact types of a summary's values, in key order (864 of them).
_VALID_TYPES = frozenset(itertools.product(*(_EXACT_TYPES[key] for key in _KEY_ORDER)))


def is_epoch(value: Any) -> bool:
    """Is ``value`` usable as epoch seconds: a finite int or float (not a bool)?"""
    return (isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool))) \
        and math.isfinite(value)


def validate_summary(summary: Any) -> None:
    """Check that ``summary`` is a task summary as the module docstring defines it.

    A summary whose values all have exactly the builtin types of the schema
    costs one lookup of their types in a set of the valid combinations, plus
    the range checks (a few microseconds); the thorough checks key by key run
    only when that lookup misses, to name what is wrong or to accept
    subclasses (a ``numpy.float64`` time, for example).

    :raises InvalidType: it is not a dict, or a value has the wrong type.
    :raises InvalidValue: a key is missing or unknown, or a value is out of
        range (the message and the ``id`` attribute name the task).
    """
    if (type(summary) is not dict or summary.keys() != _KEYS
            or tuple(map(type, map(summary.__getitem__, _KEY_ORDER))) not in _VALID_TYPES):
        _check_types(summary)
    task_id = summary["id"]
    if not task_id:
        raise InvalidValue(f"task summary without a valid id: {task_id!r}", id=task_id)
    if summary["state"] not in _STATES:
        raise InvalidValue(f"task summary {task_id}: unknown state {summary['state']!r};"
                           f" one of {', '.join(_STATES)}", id=task_id)
    if not _is_class_path(summary["class"]):
        raise InvalidValue(f"task summary {task_id}: class must be 'module:qualname',"
                           f" not {summary['class']!r}", id=task_id)
    for key in _TIMES:
        value = summary[key]
        if value is not None and not math.isfinite(value):
            raise InvalidType(f"task summary {task_id}: {key} must be epoch seconds (a finite"
                              f" number) or None, not {value!r}", id=task_id)
    exitcode, signal, attempts = summary["exitcode"], summary["signal"], summary["attempts"]
    if exitcode is not None and not 0 <= exitcode <= 255:
        raise InvalidValue(f"task summary {task_id}: exit code {exitcode} is not in 0..255",
                           id=task_id)
    if signal is not None and not 0 <= signal <= 127:
        raise InvalidValue(f"task summary {task_id}: signal {signal} is not in 0..127", id=task_id)
    if attempts < 0:
        raise InvalidValue(f"task summary {task_id}: negative attempts", id=task_id)
    started, ended = summary["started"], summary["ended"]
    if started is not None and ended is not None and ended < started:
        raise InvalidValue(f"task summary {task_id}: ended ({ended}) before started ({started})",
                           id=task_id)


@functools.lru_cache(maxsize=1024)
def _is_class_path(text: str) -> bool:
    """Is ``text`` a ``module:qualname`` (memoized: a session has few classes)."""
    return _CLASS_PATH.fullmatch(text) is not None


def _check_types(summary: Any) -> None:
    """The thorough part of :func:`validate_summary`: the keys, and the type of each value."""
    if not isinstance(summary, Mapping):
        raise InvalidType(f"a task summary must be a dict, not {type(summary).__name__}")
    task_id = summary.get("id")
    if not isinstance(task_id, str):
        raise InvalidValue(f"task summary without a valid id: {task_id!r}", id=task_id)
    if summary.keys() != _KEYS:
        raise InvalidValue(f"task summary {task_id}: missing keys {sorted(_KEYS - summary.keys())},"
                           f" unknown keys {sorted(summary.keys() - _KEYS)}", id=task_id)
    for key in _KEY_ORDER:
        value, nullable = summary[key], _NONE in _EXACT_TYPES[key]
        if value is None and nullable:
            continue
        if key in _TIMES:
            valid = isinstance(value, (int, float)) and not isinstance(value, bool)
            what = "epoch seconds (a finite number)"
        elif key in _INTS:
            valid, what = isinstance(value, int) and not isinstance(value, bool), "an int"
        else:
            valid, what = isinstance(value, str), "a string"
        if not valid:
            raise InvalidType(f"task summary {task_id}: {key} must be {what}"
                              f"{' or None' if nullable else ''}, not {value!r}", id=task_id)


def outcome(summary: Mapping[str, Any]) -> str:
    """The outcome of a valid summary: ``ok``, ``failed``, ``running`` or ``other``."""
    state = summary["state"]
    if state == _TERMINATED:
        return "ok" if summary["exitcode"] == 0 and not summary["signal"] else "failed"
    return "running" if state in _RUNNING else "other"
