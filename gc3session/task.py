"""The task model: :class:`Task`, task collections, and :class:`Application`.

These are the objects a session holds.  They follow gc3libs' attribute names
so that ported scripts (and ``extra_fields`` accessors) keep working:
``task.jobname``, ``task.execution.state``, ``task.execution.returncode``,
``task.execution.history``, ``collection.tasks``.  ``task.execution`` is a
:class:`~gc3session.run.Run` (imported here, its public home); GC3Pie's
workflow patterns are in :mod:`gc3session.workflow`.

``changed`` is the dirty flag the session uses to save only what changed:
setting any attribute of a task, or of its ``execution`` record, sets it;
a successful save clears it.  Running tasks is the job of the engine; this
module is only the data and its persistence.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from typing import Any, Iterable

from .exceptions import InvalidValue
from .persistence.serialization import Persistable
from .run import HISTORY_LIMIT, History, Run, State


class Task(Persistable):
    """A unit of work kept in a session.

    Keyword arguments become attributes (as in gc3libs), e.g.
    ``Task(jobname="align-42", sample="S42")``, and are kept together in
    ``definition`` (see :attr:`checksum`).  ``jobname`` defaults to an ``id``
    keyword argument when one is given.

    >>> t = Task(jobname="demo", size=3)
    >>> t.jobname, t.size, t.execution.state
    ('demo', 3, <State.NEW: 'NEW'>)
    >>> t.changed = False; t.size = 4; t.changed
    True
    """

    def __init__(self, **kwargs: Any) -> None:
        persistent_id = kwargs.pop("persistent_id", None)
        super().__init__()
        if persistent_id is not None:
            self.persistent_id = persistent_id
        self.definition: dict[str, Any] = dict(kwargs)
        self.jobname: str | None = kwargs.pop("jobname", kwargs.get("id"))
        self.execution = Run(attach=self)
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.changed = True

    @property
    def checksum(self) -> str:
        """SHA-256 (lowercase hex) of the canonical JSON of the constructor's keyword arguments.

        Equal definitions give equal checksums and any change of a value
        changes it; it is how a resumed session tells whether a job it saved
        is still the job the application defines now.  Canonical JSON means
        sorted keys, ``","``/``":"`` separators and ASCII escapes, which is
        also how PlainBox fingerprints its job units, so a task built with a
        unit's fields (``Task(id=..., plugin=..., command=...)``) has that
        unit's checksum.

        >>> Task(id="used", plugin="shell", command="echo 'hello world'").checksum
        '8c393c19fdfde1b6afc5b79d0a1617ecf7531cd832a16450dc2f3f50d329d373'

        :raises InvalidValue: if a definition value is not JSON-serializable.
        """
        try:
            text = json.dumps(self.definition, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as err:
            raise InvalidValue(f"the definition of task {self} is not JSON-serializable: {err}") from err
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name != "changed":
            object.__setattr__(self, "changed", True)
        if name == "jobname":
            self.__dict__.pop("_default_jobname", None)  # a name given later is a chosen one

    def redo(self) -> None:
        """Put the task back to NEW so that it runs again.

        The attempt that ended is appended to ``execution.attempts`` first
        (:meth:`Run.attempt_summary`), and ``execution.attempt`` is kept, so
        the next run is numbered after it.  A task that is NEW already is
        left as it is.
        """
        execution = self.execution
        if execution.state == State.NEW:
            return
        execution.attempts = [*execution.attempts, execution.attempt_summary()]
        execution.returncode = None
        execution.state = State.NEW

    def __contains__(self, name: str) -> bool:
        return name in self.__dict__

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["changed"] = False
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        execution = state.get("execution")
        if isinstance(execution, Run):
            object.__setattr__(execution, "_ref", self)

    def __repr__(self) -> str:
        pid = getattr(self, "persistent_id", None)
        return f"<{type(self).__name__} {pid or hex(id(self))} {self.jobname or ''}>".replace(" >", ">")


class TaskCollection(Task):
    """A task made of child tasks (``.tasks``); each child is its own record.

    ``changed`` is true if the collection or any child (recursively) changed,
    so saving the collection also saves the changed children.
    """

    def __init__(self, tasks: Iterable[Task] | None = None, **kwargs: Any) -> None:
        self._changed = True
        super().__init__(**kwargs)
        self.tasks: list[Task] = list(tasks or [])

    @property  # type: ignore[override]
    def changed(self) -> bool:
        """True if this collection or one of its children has unsaved changes."""
        return self._changed or any(getattr(child, "changed", False) for child in self.tasks)

    @changed.setter
    def changed(self, value: bool) -> None:
        object.__setattr__(self, "_changed", bool(value))

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name not in ("changed", "_changed"):
            object.__setattr__(self, "_changed", True)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_changed"] = False
        return state

    def add(self, task: Task) -> None:
        """Append a child task."""
        self.tasks.append(task)
        self._changed = True


class ParallelTaskCollection(TaskCollection):
    """Children that may all run at the same time."""


class SequentialTaskCollection(TaskCollection):
    """Children that run one after the other; ``_current_task`` is the index of the running one."""

    def __init__(self, tasks: Iterable[Task] | None = None, **kwargs: Any) -> None:
        super().__init__(tasks, **kwargs)
        self._current_task = 0

    def next(self, done: int) -> State:
        """Decide what follows the child at index ``done`` (gc3libs hook).

        Return ``Run.State.RUNNING`` to go on with the next child, or
        ``Run.State.TERMINATED`` to end the sequence here (the default does
        so after the last child).  Overrides may also append children: the
        engine gives them ids and saves them with the sequence before they
        run, so a driver that resumes the session finds them.
        """
        return State.TERMINATED if done >= len(self.tasks) - 1 else State.RUNNING


class Application(Task):
    """A task that runs one command.

    :param arguments: the command and its arguments (a list, or a string
        split like a shell would).
    :param inputs: files to stage into the run's working directory: a list of
        paths (each keeps its base name) or a mapping ``{path: name}``.
    :param outputs: files to collect from the working directory into
        ``output_dir`` when the command ends: names, or ``{name: dest_name}``.
    :param output_dir: where outputs, ``stdout`` and ``stderr`` end up
        (default: ``./<jobname>``, made absolute now).
    :param stdout: file name (in ``output_dir``) for the standard output;
        None discards it.  Equal to ``stderr`` merges both streams.
    :param stderr: likewise for the standard error.
    :param environment: variables added to the command's environment.
    :param jobname: the task's name; without one it is the command's base
        name, a default that :func:`has_default_jobname` recognises.
    :param requested_walltime: seconds after which the command is killed.
    :param requested_memory: bytes of address space allowed (``RLIMIT_AS``).

    Override :meth:`terminated` to inspect results and set the outcome (for
    example ``self.execution.returncode = 1`` when an output is wrong).
    """

    # set by __init__ through Task's attribute dictionary; declared for type checkers
    arguments: list[str]
    inputs: dict[str, str]
    outputs: dict[str, str]
    output_dir: str
    stdout: str | None
    stderr: str | None
    environment: dict[str, str]
    requested_cores: int
    requested_memory: int | None
    requested_walltime: float | None

    def __init__(self, arguments: "str | Iterable[str]", inputs: "Iterable[str] | dict[str, str]" = (),
                 outputs: "Iterable[str] | dict[str, str]" = (), output_dir: str | None = None,
                 stdout: str | None = "stdout.txt", stderr: str | None = "stderr.txt",
                 environment: dict[str, str] | None = None, jobname: str | None = None,
                 requested_cores: int = 1, requested_memory: int | None = None,
                 requested_walltime: float | None = None, **extra: Any) -> None:
        argv = shlex.split(arguments) if isinstance(arguments, str) else [str(a) for a in arguments]
        if not argv:
            raise InvalidValue("an Application needs a command to run")
        named = bool(jobname)
        jobname = jobname or os.path.basename(argv[0])
        input_map = dict(inputs) if isinstance(inputs, dict) else {p: os.path.basename(p) for p in inputs}
        output_map = dict(outputs) if isinstance(outputs, dict) else {n: n for n in outputs}
        for name in [*input_map.values(), *output_map, *output_map.values(), stdout, stderr]:
            if name is not None and not is_plain_relative(name):
                raise InvalidValue(f"file name {name!r} of task {jobname!r} must be relative"
                                   " and stay inside its directory")
        super().__init__(
            jobname=jobname, arguments=argv,
            inputs={os.path.abspath(k): v for k, v in input_map.items()},
            outputs=output_map,
            output_dir=os.path.abspath(output_dir or jobname),
            stdout=stdout, stderr=stderr, environment=dict(environment or {}),
            requested_cores=int(requested_cores), requested_memory=requested_memory,
            requested_walltime=requested_walltime, **extra)
        if not named:
            # only a marker: SessionBasedScript names unnamed tasks, and assigning
            # ``jobname`` drops it (Task.__setattr__)
            self._default_jobname = True

    def terminated(self) -> None:
        """Called once the command ended and outputs were collected; override to judge results."""


def has_default_jobname(task: Task) -> bool:
    """Tell whether nobody chose ``task``'s name.

    True when ``jobname`` is None, or is the command's base name that an
    :class:`Application` takes when its creator passes no ``jobname`` (and
    nobody assigned one since).  :class:`~gc3session.cmdline.SessionBasedScript`
    gives such tasks unique names.

    >>> has_default_jobname(Application(["sh", "-c", "true"]))
    True
    >>> has_default_jobname(Application(["sh", "-c", "true"], jobname="sh"))
    False
    >>> has_default_jobname(Task()), has_default_jobname(Task(jobname="t"))
    (True, False)
    """
    return getattr(task, "jobname", None) is None or task.__dict__.get("_default_jobname", False)


def is_plain_relative(name: str) -> bool:
    """A file name that stays inside the directory it is joined to."""
    return (isinstance(name, str) and bool(name) and "\x00" not in name
            and not os.path.isabs(name) and ".." not in name.split("/"))


__all__ = ["HISTORY_LIMIT", "Application", "History", "ParallelTaskCollection", "Run",
           "SequentialTaskCollection", "State", "Task", "TaskCollection", "has_default_jobname"]
