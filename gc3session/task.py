"""The task model: :class:`Task`, its :class:`Run` record, and task collections.

These are the objects a session holds.  They follow gc3libs' attribute names
so that ported scripts (and ``extra_fields`` accessors) keep working:
``task.jobname``, ``task.execution.state``, ``task.execution.returncode``,
``task.execution.history``, ``collection.tasks``.

``changed`` is the dirty flag the session uses to save only what changed:
setting any attribute of a task, or of its ``execution`` record, sets it;
a successful save clears it.  Running tasks is the job of the engine; this
module is only the data and its persistence.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import shlex
import time
from typing import Any, Iterable, Iterator, Sequence

from .exceptions import InvalidValue
from .persistence.serialization import Persistable

#: Messages kept in a task's history; older ones are dropped first.
HISTORY_LIMIT = 1000


class State(str, enum.Enum):
    """The states of a task's execution (gc3libs' ``Run.State``)."""

    NEW = "NEW"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"
    STOPPED = "STOPPED"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value


class History:
    """A bounded list of ``(message, epoch, tags)`` tuples (oldest dropped first).

    ``_messages`` is the attribute name gc3libs tools read.
    """

    def __init__(self, limit: int = HISTORY_LIMIT) -> None:
        self.limit = limit
        self._messages: list[tuple[str, float, tuple[str, ...]]] = []

    def append(self, message: str, *tags: str) -> None:
        """Record ``message`` now; drop the oldest beyond the limit."""
        self._messages.append((str(message), time.time(), tags))
        if len(self._messages) > self.limit:
            del self._messages[: len(self._messages) - self.limit]

    def last(self) -> str | None:
        """The newest message, or None."""
        return self._messages[-1][0] if self._messages else None

    def __iter__(self) -> Iterator[tuple[str, float, tuple[str, ...]]]:
        return iter(self._messages)

    def __len__(self) -> int:
        return len(self._messages)


_State = State  # what ``Run.State`` names, for annotations inside :class:`Run`


class Run:
    """The execution record of a task (``task.execution``).

    ``state`` changes are time-stamped in ``timestamp`` (state name -> epoch)
    and logged in ``history``; ``returncode`` is gc3libs' combination
    ``(exitcode << 8) | signal``.  Any change marks the owning task changed.
    """

    State = State

    #: How many times the engine started the task's command (records written
    #: before the attribute existed read 0).
    attempt: int = 0
    #: What the executor needs to find the current run again (its working
    #: directory, the executor's name, a pid or a key), or None before a run.
    handle: "dict[str, Any] | None" = None
    #: The attempts that ended before the task was put back to NEW
    #: (:meth:`Task.redo`), oldest first, each as :meth:`attempt_summary`
    #: gave it then (records written before the attribute existed read none).
    attempts: "Sequence[dict[str, Any]]" = ()

    def __init__(self, attach: "Task | None" = None) -> None:
        self._ref = attach
        self._state = State.NEW.value
        self._exitcode: int | None = None
        self._signal: int | None = None
        self.timestamp: dict[str, float] = {State.NEW.value: time.time()}
        self.state_last_changed = self.timestamp[State.NEW.value]
        self.history = History()
        self.attempt = 0
        self.handle = None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        ref = self.__dict__.get("_ref")
        if ref is not None and name != "_ref":
            ref.changed = True

    def __getstate__(self) -> dict[str, Any]:
        # The owning task is re-attached when it is loaded (Task.__setstate__):
        # leaving the back-reference out keeps records free of self-references.
        state = dict(self.__dict__)
        state.pop("_ref", None)
        return state

    @property
    def state(self) -> _State:
        """The current state, a :class:`Run.State` member (equal to its name)."""
        return State(self._state)

    @state.setter
    def state(self, value: "str | _State") -> None:
        try:
            new = State(str(value))
        except ValueError as err:
            raise InvalidValue(f"unknown task state {value!r}; one of "
                               f"{', '.join(s.value for s in State)}") from err
        if new.value == self._state:
            return
        now = time.time()
        message = f"Transition from state {self._state} to state {new.value}"
        if new is State.TERMINATED and self.returncode is not None:
            message += f" (returncode: {self.returncode})"
        self.timestamp[new.value] = now
        self.state_last_changed = now
        self._state = new.value
        self.history.append(message)

    @property
    def exitcode(self) -> int | None:
        """The exit status of the command (None until it terminated normally)."""
        return self._exitcode

    @exitcode.setter
    def exitcode(self, value: int | None) -> None:
        self._exitcode = None if value is None else int(value)

    @property
    def signal(self) -> int | None:
        """The signal that killed the command, 0 if none (None until known)."""
        return self._signal

    @signal.setter
    def signal(self, value: int | None) -> None:
        self._signal = None if value is None else int(value)

    @property
    def returncode(self) -> int | None:
        """``(exitcode << 8) | signal``, or None when neither is known."""
        if self._exitcode is None and self._signal is None:
            return None
        return ((self._exitcode or 0) << 8) | (self._signal or 0)

    @returncode.setter
    def returncode(self, value: "int | tuple[int, int] | None") -> None:
        if value is None:
            self._exitcode = self._signal = None
        elif isinstance(value, tuple):
            self._signal, self._exitcode = int(value[0]), int(value[1])
        else:
            self._exitcode, self._signal = (int(value) >> 8) & 0xFF, int(value) & 0x7F

    @property
    def info(self) -> str | None:
        """The newest history message; assigning appends a message."""
        return self.history.last()

    @info.setter
    def info(self, message: str) -> None:
        self.history.append(message)

    def attempt_summary(self) -> dict[str, Any]:
        """The current attempt as plain data: number, state, exit status, times, directory.

        ``started`` is when the attempt was submitted, ``ended`` when it
        terminated (None while it has not); only time stamps taken since the
        task last became NEW count, so a redone task shows none of the
        previous attempt's.  ``duration`` is ``ended - started`` in seconds.
        """
        since = self.timestamp.get(State.NEW.value, 0.0)

        def stamp(state: State) -> float | None:
            when = self.timestamp.get(state.value)
            return when if when is not None and when >= since else None

        started = stamp(State.SUBMITTED) or stamp(State.RUNNING)
        ended = stamp(State.TERMINATED) if self._state == State.TERMINATED.value else None
        handle = self.handle or {}
        return {"attempt": self.attempt, "state": self._state, "exitcode": self._exitcode,
                "signal": self._signal, "returncode": self.returncode, "started": started,
                "ended": ended, "duration": None if started is None or ended is None
                else max(0.0, ended - started),
                "info": self.info, "workdir": handle.get("workdir")}

    def in_state(self, *names: str) -> bool:
        """True if in one of ``names``; ``ok``/``failed`` mean TERMINATED with rc 0 / not 0."""
        for name in names:
            if name == "ok" and self._state == State.TERMINATED.value and self.returncode == 0:
                return True
            if name == "failed" and self._state == State.TERMINATED.value and self.returncode != 0:
                return True
            if name == self._state:
                return True
        return False


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


class StagedTaskCollection(SequentialTaskCollection):
    """A sequence whose steps come from methods ``stage0()``, ``stage1()``, ... (GC3Pie's).

    ``stage0()`` is called by the constructor; ``stage<N+1>()`` when step *N*
    has ended, so a stage may look at what the earlier ones produced.  A
    stage returns the :class:`Task` to run next, or ends the sequence by
    returning its exit status: an ``int`` (read as gc3libs' ``returncode``,
    ``(exitcode << 8) | signal``) or a ``(signal, exitcode)`` tuple.  The
    sequence also ends after the last stage defined, with that stage's
    ``returncode``.

    >>> class Two(StagedTaskCollection):
    ...     def stage0(self): return Task(jobname="first")
    ...     def stage1(self): return Task(jobname="second")
    >>> [t.jobname for t in Two().tasks]
    ['first']

    :raises InvalidValue: if the class has no ``stage0`` or a stage returns
        something else (the message names the stage).
    """

    def __init__(self, **kwargs: Any) -> None:
        first = self._run_stage(0)
        super().__init__([first] if isinstance(first, Task) else [], **kwargs)
        if not isinstance(first, Task):
            self.execution.returncode = first
            self.execution.state = State.TERMINATED

    def next(self, done: int) -> State:
        """Add the task of stage ``done + 1``, or end the sequence (class docstring)."""
        if getattr(self, f"stage{done + 1}", None) is None:
            self.execution.returncode = self.tasks[done].execution.returncode
            return State.TERMINATED
        result = self._run_stage(done + 1)
        if isinstance(result, Task):
            self.add(result)
            return State.RUNNING
        self.execution.returncode = result
        return State.TERMINATED

    def _run_stage(self, number: int) -> "Task | int | tuple[int, int]":
        stage = getattr(self, f"stage{number}", None)
        if stage is None:
            raise InvalidValue(f"{type(self).__name__} defines no stage{number}() method:"
                               " a StagedTaskCollection needs at least stage0()")
        result = stage()
        if isinstance(result, Task) or (isinstance(result, int) and not isinstance(result, bool)) \
                or (isinstance(result, tuple) and len(result) == 2):
            return result  # type: ignore[no-any-return]
        raise InvalidValue(f"{type(self).__name__}.stage{number}() returned {result!r}: a stage"
                           " returns a Task, or an exit status (int, or (signal, exitcode))")


class ChunkedParameterSweep(ParallelTaskCollection):
    """Tasks for ``range(min_value, max_value, step)``, created ``chunk_size`` at a time (GC3Pie's).

    Subclasses define :meth:`new_task`.  The first chunk is created by the
    constructor; the engine calls :meth:`grow` in every pass, which adds the
    next chunk once fewer than half a chunk of tasks are waiting or running,
    so a sweep over a million values never holds a million tasks at once.
    ``max_value`` is excluded, as in :func:`range`.

    :raises InvalidValue: if ``step`` or ``chunk_size`` is not positive.
    """

    def __init__(self, min_value: int, max_value: int, step: int, chunk_size: int,
                 **kwargs: Any) -> None:
        if step <= 0 or chunk_size <= 0:
            raise InvalidValue(f"a parameter sweep needs a positive step and chunk size,"
                               f" not step={step!r}, chunk_size={chunk_size!r}")
        self.min_value = min_value
        self.max_value = max_value
        self.step = step
        self.chunk_size = chunk_size
        self._floor = min(min_value + chunk_size * step, max_value)  # first value not created yet
        super().__init__([self.new_task(value) for value in range(min_value, self._floor, step)],
                         **kwargs)

    def new_task(self, param: int, **extra_args: Any) -> Task:
        """The task for parameter value ``param``; subclasses must define it."""
        raise NotImplementedError(f"{type(self).__name__} must define new_task(param)")

    def grow(self) -> bool:
        """Add the next chunk if fewer than half a chunk of tasks wait or run; True if it did."""
        waiting = sum(1 for task in self.tasks
                      if task.execution.state in (State.NEW, State.SUBMITTED, State.RUNNING))
        if 2 * waiting >= self.chunk_size or self._floor >= self.max_value:
            return False
        top = min(self._floor + self.chunk_size * self.step, self.max_value)
        for value in range(self._floor, top, self.step):
            self.add(self.new_task(value))
        self._floor = top
        return True


class RetryableTask(Task):
    """Run ``task`` again each time it fails, at most ``max_retries`` times (GC3Pie's).

    ``max_retries=0`` (GC3Pie's default) means without limit.  The engine
    drives the wrapped task; when it ends with a non-zero ``returncode`` and
    :meth:`retry` says so, ``retried`` grows by one and the task is put back
    to NEW, so it runs again in a new run directory.  Otherwise this task
    ends with the wrapped task's ``returncode``.  Override :meth:`retry` for
    another policy.  A task killed on request is not retried.

    Public attributes this task does not have are read from the wrapped one
    (``retryable.arguments``), as in GC3Pie.  Unlike GC3Pie, :attr:`tasks`
    lists the wrapped task, so whatever walks task trees (the engine,
    ``Session.remove``, ``gsession list -r``) sees it.

    :raises InvalidValue: if ``max_retries`` is negative.
    """

    def __init__(self, task: Task, max_retries: int = 0, **kwargs: Any) -> None:
        if max_retries < 0:
            raise InvalidValue(f"max_retries must be 0 (no limit) or more, not {max_retries!r}")
        self._changed = True
        super().__init__(**kwargs)
        self.task = task
        self.max_retries = max_retries
        self.retried = 0

    @property
    def tasks(self) -> list[Task]:
        """The wrapped task, as the only child."""
        return [self.task]

    @property  # type: ignore[override]
    def changed(self) -> bool:
        """True if this task or the wrapped one has unsaved changes."""
        task = self.__dict__.get("task")
        return self._changed or bool(getattr(task, "changed", False))

    @changed.setter
    def changed(self, value: bool) -> None:
        object.__setattr__(self, "_changed", bool(value))

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name not in ("changed", "_changed"):
            object.__setattr__(self, "_changed", True)

    def __getattr__(self, name: str) -> Any:
        # only for attributes this object lacks; never its id (it has its own, or none yet)
        task = self.__dict__.get("task")
        if name.startswith("_") or name == "persistent_id" or task is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(task, name)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_changed"] = False
        return state

    def retry(self) -> bool:
        """Whether the wrapped task, which just ended, runs again (GC3Pie's policy).

        True when its ``returncode`` is not 0 and retries are left.
        """
        return self.task.execution.returncode != 0 and (
            self.max_retries == 0 or self.retried < self.max_retries)


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


__all__ = ["Application", "ChunkedParameterSweep", "History", "ParallelTaskCollection",
           "RetryableTask", "Run", "SequentialTaskCollection", "StagedTaskCollection", "State", "Task",
           "TaskCollection", "has_default_jobname"]
