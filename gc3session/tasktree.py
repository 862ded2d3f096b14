"""The shape and progress of a task tree, as the engine walks it.

A top-level task is a tree: collections (parallel, sequential, retryable,
parameter sweeps) whose leaves are :class:`~gc3session.task.Application`
commands.  The engine starts leaves and records how they end; the functions
here say which leaves may start (:func:`ready_leaves`) and what the
collections above them become (:func:`update_collections`), which is where
a sequence asks ``next()`` and a retryable task decides to run again.
Pure functions of the tree: no store, no executor, no clock.
"""

from __future__ import annotations

from typing import Any, Iterator

from .task import Application, SequentialTaskCollection, State, Task, TaskCollection
from .workflow import ChunkedParameterSweep, RetryableTask

#: The states of a run that an executor is responsible for.
ACTIVE = (State.SUBMITTED, State.RUNNING, State.TERMINATING)
#: The states in which nothing more happens to a task without a person.
SETTLED = (State.TERMINATED, State.UNKNOWN, State.STOPPED)


def nodes(task: Task) -> Iterator[Task]:
    yield task
    for child in getattr(task, "tasks", None) or ():
        yield from nodes(child)


def leaves(task: Task) -> Iterator[Any]:
    return (node for node in nodes(task) if isinstance(node, Application))


def is_settled(task: Task) -> bool:
    """Nothing more happens to ``task`` without a person: terminated, unknown or stopped."""
    return task.execution.state in SETTLED


def ready_leaves(task: Task) -> Iterator[Application]:
    """NEW commands that may start now, in order."""
    if is_settled(task):
        return
    if isinstance(task, Application):
        if task.execution.state == State.NEW:
            yield task
    elif isinstance(task, SequentialTaskCollection):
        if task._current_task < len(task.tasks):
            yield from ready_leaves(task.tasks[task._current_task])
    elif isinstance(task, (TaskCollection, RetryableTask)):
        for child in task.tasks:
            yield from ready_leaves(child)


def update_collections(task: Task) -> bool:
    """Recompute the state of the collections under ``task``; True if one changed.

    A sequence moves past a child only once it TERMINATED, asking ``next()``;
    a returncode that ``next()`` sets when it ends the sequence is kept,
    otherwise a finished collection has returncode 0 if every child that ran
    succeeded, else exit status 1.  A collection waiting on an UNKNOWN or
    STOPPED child takes that state.  A parameter sweep first adds its next
    chunk if it is due (:meth:`~gc3session.workflow.ChunkedParameterSweep.grow`);
    a retryable task follows :func:`_update_retryable`.
    """
    if task.execution.state == State.TERMINATED:
        return False
    if isinstance(task, RetryableTask):
        return update_collections(task.task) | _update_retryable(task)
    if not isinstance(task, TaskCollection):
        return False
    changed = isinstance(task, ChunkedParameterSweep) and task.grow()
    for child in task.tasks:
        changed |= update_collections(child)
    execution = task.execution
    before = (execution.state, execution.returncode)
    rc_from_hook = False
    blocked: State | None = None
    if isinstance(task, SequentialTaskCollection):
        while task._current_task < len(task.tasks):
            child = task.tasks[task._current_task]
            if child.execution.state != State.TERMINATED:
                if child.execution.state in SETTLED:
                    blocked = child.execution.state
                break
            rc_before = execution.returncode
            verdict = task.next(task._current_task)
            if verdict == State.TERMINATED:
                rc_from_hook = execution.returncode != rc_before
                task._current_task = len(task.tasks)
                break
            task._current_task += 1
        finished = task._current_task >= len(task.tasks)
    else:
        finished = all(is_settled(child) for child in task.tasks)
        stuck = [c.execution.state for c in task.tasks if c.execution.state in (State.UNKNOWN, State.STOPPED)]
        if finished and stuck:
            finished, blocked = False, stuck[0]
    if finished:
        if not rc_from_hook:
            failed = any(c.execution.returncode != 0 for c in task.tasks
                         if c.execution.state == State.TERMINATED)
            execution.returncode = 1 << 8 if failed else 0
        execution.state = State.TERMINATED
    elif blocked is not None:
        execution.state = blocked
    else:
        execution.state = State.RUNNING if any(c.execution.state != State.NEW for c in task.tasks) \
            else State.NEW
    return changed or (execution.state, execution.returncode) != before


def _update_retryable(task: RetryableTask) -> bool:
    """Follow the wrapped task; when it ended, run it again or end; True if something changed.

    A wrapped task that TERMINATED is put back to NEW if ``retry()`` says so
    (``retried`` grows by one and this task stays RUNNING); otherwise this
    task ends with its ``returncode``.  An UNKNOWN or STOPPED wrapped task
    blocks this one in that state.
    """
    execution, inner = task.execution, task.task.execution
    before = (execution.state, execution.returncode, task.retried)
    if inner.state == State.TERMINATED:
        if task.retry():
            task.retried += 1
            for node in nodes(task.task):  # a wrapped collection runs again as a whole
                node.redo()
                if isinstance(node, SequentialTaskCollection):
                    node._current_task = 0
            inner.info = f"run again after a failure (retry {task.retried} of {task}" \
                         f"{'' if not task.max_retries else f', at most {task.max_retries}'})"
            execution.state = State.RUNNING
        else:
            execution.returncode = inner.returncode
            execution.state = State.TERMINATED
    elif inner.state in (State.UNKNOWN, State.STOPPED):
        execution.state = inner.state
    elif inner.state != State.NEW or execution.state != State.NEW:
        execution.state = State.RUNNING
    return (execution.state, execution.returncode, task.retried) != before


__all__ = ["ACTIVE", "SETTLED", "is_settled", "leaves", "nodes", "ready_leaves", "update_collections"]
