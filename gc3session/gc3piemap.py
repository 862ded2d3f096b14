"""How the objects of a GC3Pie record become gc3session's: tasks, runs and plain values.

:mod:`gc3session.gc3piestore` unpickles a GC3Pie record into
:class:`~gc3session.persistence.inert.Shadow` objects; this module turns them into
gc3session objects, by class path: ``gc3libs.Run`` into
:class:`~gc3session.task.Run`, ``Struct``, ``Url`` and the URL dicts into
:mod:`gc3session.utils` and :mod:`gc3session.url` objects, quantities into
numbers, references into ids.  Anything else raises :class:`Unmappable`,
which keeps the task that holds it raw (:mod:`gc3session.gc3pieimport`).
The task itself is built with its gc3session base class's ``__init__``
(never the subclass's, as unpickling would not call it either).
"""

from __future__ import annotations

import collections
import os
from typing import Any

from .persistence.inert import Shadow, attributes
from .task import (
    HISTORY_LIMIT,
    Application,
    History,
    Run,
    SequentialTaskCollection,
    State,
    Task,
    TaskCollection,
)
from .url import Url, UrlKeyDict, UrlValueDict
from .utils import Struct

#: Attributes of a GC3Pie task that are mapped one by one (or dropped: the
#: controller, the dirty flags), never copied as they are.
_TASK_FIELDS = {"execution", "changed", "_changed", "persistent_id", "_attached", "_controller",
                "jobname", "tasks", "_current_task"}
_APP_FIELDS = {"arguments", "inputs", "outputs", "output_dir", "stdout", "stderr", "environment",
               "requested_cores", "requested_memory", "requested_walltime", "stdin",
               "output_base_url"}
_RUN_FIELDS = {"_state", "_exitcode", "_signal", "history", "timestamp", "state_last_changed"}


class Unmappable(Exception):
    """A value or a task that has no gc3session counterpart (the message says which)."""


def reference_key(pid: Any) -> str | None:
    """The text of a persistent id: ``Prefix.N`` (``Id``) or ``N`` (``IntId``)."""
    if isinstance(pid, Shadow):
        args = pid.slot("args", ())
        if pid.path == "gc3libs.persistence.idfactory:Id" and len(args) == 2:
            return f"{args[0]}.{int(args[1])}"
        if pid.path == "gc3libs.persistence.sql:IntId" and len(args) == 2:
            return str(int(args[1]))
        return None
    return str(pid) if isinstance(pid, (str, int)) and not isinstance(pid, bool) else None


def state_name(text: Any) -> str:
    """``text`` as the name of a :class:`~gc3session.task.State` (GC3Pie's are the same seven)."""
    try:
        return State(str(text)).value
    except ValueError:
        raise Unmappable(f"{text!r:.40} is not a task state") from None


def build_run(state: dict[str, Any], strict: bool = True, memo: dict[int, Any] | None = None) -> Run:
    """gc3session's :class:`Run` from the attributes of a pickled ``gc3libs.Run``.

    With ``strict=False`` (for tasks kept raw) a record whose other
    attributes cannot be mapped still gives its state and return code.
    """
    memo = {} if memo is None else memo
    run = Run()
    run._state = state_name(state.get("_state", State.NEW.value))
    run.exitcode = _int_or_none(state.get("_exitcode"), "execution exit code")
    run.signal = _int_or_none(state.get("_signal"), "execution signal")
    if not strict:
        try:
            return build_run(state, memo=memo)
        except (Unmappable, TypeError, ValueError, IndexError):
            return run
    run.timestamp = {str(k): float(v) for k, v in dict(_value(state.get("timestamp") or {},
                                                               "execution.timestamp", memo)).items()}
    if state.get("state_last_changed") is not None:
        run.state_last_changed = float(state["state_last_changed"])
    history = state.get("history")
    messages = (attributes(history) or {}).get("_messages", []) if isinstance(history, Shadow) else []
    run.history = History(max(HISTORY_LIMIT, len(messages)))
    run.history._messages = [(str(m[0]), float(m[1]), tuple(str(t) for t in m[2]))
                             for m in _value(messages, "execution.history", memo)]
    for name, value in state.items():
        if name not in _RUN_FIELDS and not name.startswith("_"):
            setattr(run, name, _value(value, f"execution.{name}", memo))
    return run


def _int_or_none(value: Any, what: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise Unmappable(f"the {what} {value!r:.40} is not an integer")


def build_task(target: type[Task], state: dict[str, Any]) -> Task:
    """An object of ``target`` (a Task subclass) from a pickled GC3Pie task's attributes."""
    memo: dict[int, Any] = {}  # one per record: what it shares stays shared
    extras = {name: _value(value, name, memo) for name, value in state.items()
              if name not in _TASK_FIELDS and name not in _APP_FIELDS}
    jobname = state.get("jobname")
    obj: Any = target.__new__(target)
    if issubclass(target, Application):
        fields = _application_fields(state, memo)
        Application.__init__(obj, jobname=jobname, **fields, **extras)
        obj.output_dir = fields["output_dir"]  # GC3Pie's, as it was (relative ones stay so)
    elif issubclass(target, TaskCollection):
        children = state.get("tasks")
        if not isinstance(children, list) or not all(isinstance(c, Task) for c in children):
            raise Unmappable("its children are not a list of tasks")
        base = next(c for c in (SequentialTaskCollection, TaskCollection) if issubclass(target, c))
        base.__init__(obj, list(children), jobname=jobname, **extras)
        if isinstance(obj, SequentialTaskCollection):
            obj._current_task = _int_or_none(state.get("_current_task", 0), "sequence position") or 0
    else:
        Task.__init__(obj, jobname=jobname, **extras)
    if not isinstance(jobname, str):
        obj.jobname = None
    execution = state.get("execution")
    if not (isinstance(execution, Shadow) and execution.path == "gc3libs:Run"):
        raise Unmappable("it has no gc3libs.Run execution record")
    run = build_run(attributes(execution) or {}, memo=memo)
    object.__setattr__(run, "_ref", obj)
    obj.execution = run
    return obj  # type: ignore[no-any-return]


def _application_fields(state: dict[str, Any], memo: dict[int, Any]) -> dict[str, Any]:
    """The constructor arguments of an :class:`Application` from GC3Pie's attributes."""
    if state.get("stdin") is not None:
        raise Unmappable("it reads its standard input from a file (stdin), which gc3session's"
                          " engine does not provide")
    if state.get("output_base_url") is not None:
        raise Unmappable("it sends outputs to output_base_url, which gc3session does not do")
    inputs = {}
    for url, name in dict(_value(state.get("inputs") or {}, "inputs", memo)).items():
        if not _is_local(url):
            raise Unmappable(f"its input {url} is not a local file")
        inputs[url.path if isinstance(url, Url) else str(url)] = str(name)
    outputs = {}
    for name, url in dict(_value(state.get("outputs") or {}, "outputs", memo)).items():
        dest = url.path if isinstance(url, Url) and _is_local(url) else None
        if name == "*" or dest is None or os.path.isabs(dest):
            raise Unmappable(f"its output {name!r} goes to {url}, not to a file under output_dir")
        outputs[str(name)] = dest
    arguments = _value(state.get("arguments"), "arguments", memo)
    if not isinstance(arguments, list) or not arguments:
        raise Unmappable("it has no command (arguments)")
    output_dir = state.get("output_dir")
    if not isinstance(output_dir, str):
        raise Unmappable("it has no output_dir")
    memory, walltime = (_value(state.get(n), n, memo) for n in ("requested_memory", "requested_walltime"))
    return {"arguments": [str(a) for a in arguments], "inputs": inputs, "outputs": outputs,
            "output_dir": output_dir, "stdout": state.get("stdout"), "stderr": state.get("stderr"),
            "environment": {str(k): str(v) for k, v in dict(state.get("environment") or {}).items()},
            "requested_cores": int(state.get("requested_cores") or 1),
            "requested_memory": memory, "requested_walltime": walltime}


def _is_local(url: Any) -> bool:
    return isinstance(url, Url) and url.scheme == "file" and url.netloc in ("", "localhost")


#: Base unit of GC3Pie's quantities, in gc3session's units (bytes, seconds).
_QUANTITY_UNITS = {"gc3libs.quantity:Memory": 1, "gc3libs.quantity:Duration": 1e-9}


def _value(value: Any, where: str, memo: dict[int, Any]) -> Any:
    """``value`` from a GC3Pie record with GC3Pie's data classes replaced by gc3session's.

    :raises Unmappable: naming the class and ``where`` for an object of any
        other class.
    """
    if value is None or isinstance(value, (str, bytes, int, float, complex, Task)):
        return value
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, Shadow):
        return _shadow_value(value, where, memo)
    if isinstance(value, list):
        result: Any = memo.setdefault(id(value), [])
        result.extend(_value(v, where, memo) for v in value)
    elif isinstance(value, dict):
        result = memo.setdefault(id(value), value.copy())
        result.clear()
        result.update((_value(k, where, memo), _value(v, where, memo)) for k, v in value.items())
    elif isinstance(value, (tuple, set, frozenset, collections.deque)):
        result = type(value)(_value(v, where, memo) for v in value)
    elif type(value).__module__ in ("datetime", "decimal", "uuid", "pathlib"):
        result = value  # plain data of the standard library (_REAL in gc3piestore)
    else:
        raise Unmappable(f"its {where} holds a {type(value).__name__} object")
    memo[id(value)] = result
    return result


def _shadow_value(shadow: Shadow, where: str, memo: dict[int, Any]) -> Any:
    path = shadow.path
    state = attributes(shadow)
    args = shadow.slot("args", ())
    if path == "gc3libs.url:Url" and len(args) >= 10:
        # GC3Pie pickles (None, False, scheme, netloc, path, hostname, port, query,
        # username, password): its fragment is lost
        scheme, netloc, url_path, hostname, port, query, username, password = args[2:10]
        return Url(scheme=scheme, netloc=netloc, path=url_path, hostname=hostname, port=port,
                   query=query, username=username, password=password)
    if path in ("gc3libs.url:UrlKeyDict", "gc3libs.url:UrlValueDict"):
        cls = UrlKeyDict if path.endswith("KeyDict") else UrlValueDict
        pairs = [(_value(k, where, memo), _value(v, where, memo)) for k, v in shadow.slot("pairs", [])]
        return cls(pairs, force_abs=bool((state or {}).get("_force_abs", False)))
    if path == "gc3libs.utils:Struct" and isinstance(state, dict):
        return Struct({_value(k, where, memo): _value(v, where, memo) for k, v in state.items()})
    if path in _QUANTITY_UNITS and isinstance(state, dict) and isinstance(state.get("_amount"),
                                                                          (int, float)):
        amount = state["_amount"] * _QUANTITY_UNITS[path]
        return int(amount) if path.endswith("Memory") else float(amount)
    key = reference_key(shadow)
    if key is not None:
        return key
    raise Unmappable(f"its {where} holds a {path} object")


__all__ = ["Unmappable", "attributes", "build_run", "build_task", "reference_key", "state_name"]
