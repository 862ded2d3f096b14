"""GC3Pie's workflow patterns: stages, a sweep made a chunk at a time, retries.

:class:`StagedTaskCollection`, :class:`ChunkedParameterSweep` and
:class:`RetryableTask` keep the names, constructor arguments and rules of
``gc3libs.workflow``; the engine drives them (it asks a sequence for its
next step, a sweep to grow, a retryable task whether to run again).  The
plain collections are found here too, as in ``gc3libs.workflow``, so
``from gc3libs.workflow import ...`` ports as ``from gc3session.workflow
import ...``.
"""

from __future__ import annotations

from typing import Any

from .exceptions import InvalidValue
from .run import State
from .task import ParallelTaskCollection, SequentialTaskCollection, Task, TaskCollection


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


__all__ = ["ChunkedParameterSweep", "ParallelTaskCollection", "RetryableTask",
           "SequentialTaskCollection", "StagedTaskCollection", "TaskCollection"]
