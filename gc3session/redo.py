"""Running tasks again: ``gsession redo`` and ``--redo-failed``.

:func:`redo_tasks` puts the chosen top-level tasks of a session back to NEW,
so that the next run of the script (or any engine) runs them again.  It
only changes what is saved: nothing runs until a driver does.

What is chosen
--------------
Top-level tasks, by id, by state (:data:`REDO_STATES`: ``FAILED`` is
TERMINATED with a non-zero return code, ``OK`` with zero), by exit code
(the top-level task's own; a collection's is 1 when a child failed), or
any combination of these (all must hold).  With none of them, the failed
tasks.  Tasks that are running (SUBMITTED, RUNNING, TERMINATING) are
refused: abort them first.

What happens to a task
----------------------
An application or plain task goes back to NEW (:meth:`Task.redo
<gc3session.task.Task.redo>`): the attempt that ended is kept in
``execution.attempts`` (state, exit status, start, end, duration, run
directory), and ``execution.attempt`` keeps counting, so the next run gets
the next run directory (``<session>/runs/<id>.<n>``).  In a collection,
the children that did not end well (failed, UNKNOWN, STOPPED) are put back
to NEW, and the collections above them follow; a collection all of whose
children ended well runs again whole.  A sequence resumes at its first
child that runs again.

Earlier outputs are kept
------------------------
Before an application goes back to NEW, each file it produced in its
``output_dir`` (its declared outputs, ``stdout`` and ``stderr``) is renamed
to a numbered backup, ``<name>.~<n>~``, *n* being the attempt that wrote it
(the next free number if that name is taken): the next run writes fresh
files, and nothing is overwritten.  The backups are listed in the attempt
(``execution.attempts[-1]["kept"]``).  Renaming happens before the task is
saved NEW, so a crash in between leaves the task as it was with its
outputs under their backup names, never a task that runs again over them.
Numbered backups were chosen over ``attempt-N/`` directories because they
keep the output directory's layout, which a task's ``terminated()`` and the
user's own scripts read, and because GC3Pie does the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from . import fsio
from .exceptions import InvalidValue, NotListedError, SessionError
from .session import Session
from .task import Application, SequentialTaskCollection, State, Task, TaskCollection

#: The states ``--state`` accepts; FAILED and OK are TERMINATED with a non-zero / zero return code.
REDO_STATES = ("FAILED", "OK", "TERMINATED", "UNKNOWN", "STOPPED")
_ACTIVE = (State.SUBMITTED, State.RUNNING, State.TERMINATING)
_ENDED_BADLY = (State.UNKNOWN, State.STOPPED)


class RunningTaskError(SessionError, RuntimeError):
    """A task chosen for redo is still running (``id``); nothing was changed."""


@dataclass
class Redone:
    """One top-level task put back to NEW: what it was, and what was kept of it."""

    id: str
    jobname: str | None
    state: str
    returncode: int | None
    leaves: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return dict(self.__dict__)


def parse_states(text: str) -> list[str]:
    """``"failed,unknown"`` -> ``["FAILED", "UNKNOWN"]``.

    :raises InvalidValue: naming a state that cannot be redone, and the ones that can.
    """
    states = [s.strip().upper() for s in text.split(",") if s.strip()]
    unknown = [s for s in states if s not in REDO_STATES]
    if unknown or not states:
        raise InvalidValue(f"cannot redo tasks in state {', '.join(unknown) or repr(text)};"
                           f" choose among {', '.join(REDO_STATES)}", states=text)
    return states


def select(session: Session, *, ids: Iterable[str] = (), states: Iterable[str] = (),
           exit_code: int | None = None) -> list[Task]:
    """The top-level tasks to redo (module docstring); all of ``session`` must be loaded.

    :raises NotListedError: for an id that is not a top-level task of the session.
    """
    wanted_ids = list(dict.fromkeys(str(i) for i in ids))
    for pid in wanted_ids:
        if pid not in session:
            raise NotListedError(f"{pid} is not listed in session {session.path} (gsession list"
                                 " shows its tasks); nothing was changed", id=pid, path=session.path)
    wanted_states = list(states) or ([] if wanted_ids or exit_code is not None else ["FAILED"])
    candidates = [session.load(pid, add=False) for pid in wanted_ids] if wanted_ids else list(session)
    return [task for task in candidates
            if (not wanted_states or any(_in_state(task, s) for s in wanted_states))
            and (exit_code is None or task.execution.exitcode == exit_code)]


def redo_tasks(session: Session, tasks: list[Task]) -> list[Redone]:
    """Put ``tasks`` (top-level tasks of ``session``) back to NEW and save them in one batch.

    The session's ``finished`` time stamp is removed if any task was put back.

    :raises RunningTaskError: if one of them (or one of its children) is
        running; nothing was changed then.
    """
    for task in tasks:
        running = next((node for node in _nodes(task) if node.execution.state in _ACTIVE), None)
        if running is not None:
            raise RunningTaskError(
                f"{running.persistent_id} ({running.jobname}) is {running.execution.state}: a"
                f" running task cannot be redone; stop it first (gsession abort {session.path})"
                " or let it end. Nothing was changed.", id=str(running.persistent_id))
    done, changed = [], []
    for task in tasks:
        if task.execution.state == State.NEW:
            continue  # nothing ran: nothing to redo
        item = Redone(str(task.persistent_id), task.jobname, str(task.execution.state),
                      task.execution.returncode)
        _redo_tree(task, item, session.durable)
        done.append(item)
        changed.append(task)
    if changed:
        session.save_many(changed)
        session.clear_end_timestamp()  # the session has work again
    return done


def _redo_tree(task: Task, item: Redone, durable: bool) -> bool:
    """Put ``task`` (and what needs it below) back to NEW; True if anything changed."""
    if not isinstance(task, TaskCollection):
        if task.execution.state == State.NEW:
            return False
        kept = keep_outputs(task, durable) if isinstance(task, Application) else []
        task.redo()
        if kept:
            task.execution.attempts[-1]["kept"] = kept
        item.leaves.append(str(task.persistent_id))
        item.kept.extend(kept)
        return True
    badly = [i for i, child in enumerate(task.tasks) if any(_ended_badly(n) for n in _nodes(child))]
    redone = [i for i in (badly or range(len(task.tasks))) if _redo_tree(task.tasks[i], item, durable)]
    if not redone:
        return False
    if isinstance(task, SequentialTaskCollection):
        task._current_task = min(redone)
    task.redo()
    return True


def keep_outputs(task: Application, durable: bool = True) -> list[str]:
    """Rename the files ``task`` produced in its ``output_dir`` to numbered backups.

    ``<name>.~<n>~`` with *n* the attempt that produced them (the next free
    number if that one is taken); returns the new paths.  Files that are
    not there are skipped.
    """
    directory = getattr(task, "output_dir", None)
    if not directory:
        return []
    # attributes an Application's constructor sets (mypy cannot see them)
    names = [*dict(getattr(task, "outputs", {})).values(), getattr(task, "stdout", None),
             getattr(task, "stderr", None)]
    attempt = max(1, int(getattr(task.execution, "attempt", 0) or 0))
    kept = []
    for name in dict.fromkeys(n for n in names if n):
        path = os.path.join(directory, name)
        if not os.path.lexists(path):
            continue
        number = attempt
        while os.path.lexists(f"{path}.~{number}~"):
            number += 1
        os.rename(path, f"{path}.~{number}~")
        kept.append(f"{path}.~{number}~")
    if kept and durable:
        for parent in dict.fromkeys(os.path.dirname(p) for p in kept):
            fsio.fsync_dir(parent)
    return kept


def _in_state(task: Task, state: str) -> bool:
    if state in ("FAILED", "OK"):
        return task.execution.in_state(state.lower())
    return task.execution.in_state(state)


def _ended_badly(node: Task) -> bool:
    """A leaf that failed or whose run was lost/stopped (collections are judged by their leaves)."""
    if isinstance(node, TaskCollection):
        return False
    return node.execution.in_state("failed") or node.execution.state in _ENDED_BADLY


def _nodes(task: Task) -> Iterator[Task]:
    yield task
    for child in getattr(task, "tasks", None) or ():
        yield from _nodes(child)


__all__ = ["REDO_STATES", "Redone", "RunningTaskError", "keep_outputs", "parse_states",
           "redo_tasks", "select"]
