"""The engine: drive a session's tasks to the end with bounded concurrency.

:meth:`Engine.progress` is one non-blocking pass: it polls running commands,
finishes the ones that ended (outputs collected, ``terminated()`` hook run),
advances task collections, submits NEW tasks up to ``max_in_flight``, and
then persists every task that changed in that pass in *one* store batch (one
transaction, or one group of record files with a single sync).  A driver
killed at any point therefore loses at most the pass it was in, and that
pass is redone from what is on disk.

Resume policy
-------------
When an engine starts on a session that a previous driver left with tasks
SUBMITTED or RUNNING, it asks the executor about each of them:

* still running (same pid and start time, or a live future): it is watched
  again, as if this driver had started it;
* ended while no driver watched, with an exit status recorded in its working
  directory: it is finished normally (outputs collected, hook run);
* gone without a trace: it becomes UNKNOWN with the reason in its history,
  then, with ``resume_policy="rerun"`` (the default), NEW again so that it
  runs once more; with ``"report"`` it stays UNKNOWN for a human to decide.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import shutil
import time
from typing import Any, Callable, Iterator

from . import fsio
from .exceptions import Error, InvalidValue
from .executors import Executor, Outcome, make_executor
from .session import Session
from .task import Application, SequentialTaskCollection, State, Task, TaskCollection

RESUME_POLICIES = ("rerun", "report")
_ACTIVE = (State.SUBMITTED, State.RUNNING, State.TERMINATING)


class Engine:
    """Run the tasks of ``session``.

    :param session: the session whose top-level tasks are driven.
    :param executor: an :class:`Executor`, ``"local"`` or ``"dask://host:port"``.
    :param max_in_flight: at most this many commands run at once.
    :param workdir: base of the per-run working directories
        (default ``<session>/runs``).
    :param resume_policy: ``"rerun"`` or ``"report"`` (module docstring).
    """

    def __init__(self, session: Session, executor: "Executor | str | None" = None,
                 max_in_flight: int = 50, workdir: str | None = None,
                 resume_policy: str = "rerun") -> None:
        if max_in_flight < 1:
            raise InvalidValue(f"max_in_flight must be at least 1, not {max_in_flight}")
        if resume_policy not in RESUME_POLICIES:
            raise InvalidValue(f"resume_policy must be one of {RESUME_POLICIES}, not {resume_policy!r}")
        self.session = session
        self.executor = make_executor(executor)
        self.max_in_flight = max_in_flight
        self.workdir = workdir or os.path.join(session.path, "runs")
        self.resume_policy = resume_policy
        self._running: dict[int, Application] = {}
        self._root_of: dict[int, Task] = {}
        # roots never started, in session order, and roots started but not done:
        # a pass looks at the started ones and takes new ones while there is room,
        # so its cost does not grow with the number of waiting tasks
        self._pending: collections.deque[Task] = collections.deque()
        self._active: list[Task] = []
        self._dirty: dict[int, Task] = {}
        self._resumed = False
        self._starter: concurrent.futures.ThreadPoolExecutor | None = None
        for task in session:
            self._track(task)

    # --- public API ------------------------------------------------------------
    def add(self, task: Task) -> None:
        """Add ``task`` to the session (if needed) and drive it."""
        if task not in self.session:
            self.session.add(task, flush=False)
        self._track(task)

    def progress(self) -> None:
        """One non-blocking pass (module docstring); persists what changed."""
        if not self._resumed:
            self._resume()
        for task in list(self._running.values()):
            outcome = self._poll(task)
            if outcome is not None:
                self._finish(task, outcome)
        starting: list[Application] = []
        for root in list(self._active):
            self._collect(root, starting)
        while self._pending and len(self._running) + len(starting) < self.max_in_flight:
            root = self._pending.popleft()
            self._active.append(root)
            self._collect(root, starting)
        self._start(starting)
        for root in list(self._active):
            if _update_collections(root):
                self._mark(root)
            if _done(root):
                self._active.remove(root)
        self._persist()

    def run_until_done(self, poll_interval: float = 1.0,
                       on_progress: Callable[["Engine"], None] | None = None) -> dict[str, int]:
        """Call :meth:`progress` until no task is waiting or running; return :meth:`counts`."""
        while True:
            self.progress()
            if on_progress is not None:
                on_progress(self)
            if not self._running and not self._pending and not any(
                    self._runnable(r) for r in self._active):
                return self.counts()
            self.executor.wait([t.execution.handle for t in self._running.values()], poll_interval)

    def forget_all(self) -> None:
        """Stop driving every task (after they were killed and removed by the caller)."""
        self._pending.clear()
        self._active.clear()
        self._running.clear()

    def kill(self, task: Task) -> None:
        """Stop ``task`` (and its children); it ends TERMINATED with the signal recorded."""
        for leaf in _leaves(task):
            if leaf.execution.state in _ACTIVE and getattr(leaf.execution, "handle", None):
                self.executor.kill(leaf, leaf.execution.handle)
                outcome = self._poll(leaf, block=True) or Outcome(None, 9, "killed")
                self._finish(leaf, outcome, info="killed on request")
            elif leaf.execution.state == State.NEW:
                leaf.execution.state = State.TERMINATED
                leaf.execution.returncode = (9, 0)
                leaf.execution.info = "killed on request before it started"
                self._mark(leaf)
        self._persist()

    def counts(self) -> dict[str, int]:
        """Top-level tasks by state, plus ``ok``, ``failed`` and ``total``."""
        result = {state.value: 0 for state in State}
        result.update(ok=0, failed=0, total=0)
        for task in self.session:
            state = task.execution.state
            result[state.value] += 1
            result["total"] += 1
            if state == State.TERMINATED:
                result["ok" if task.execution.returncode == 0 else "failed"] += 1
        return result

    def close(self) -> None:
        """Persist and release the executor (running commands go on)."""
        self._persist()
        if self._starter is not None:
            self._starter.shutdown()
            self._starter = None
        self.executor.close()

    # --- tracking ------------------------------------------------------------------
    def _track(self, root: Task) -> None:
        for leaf in _leaves(root):
            self._root_of[id(leaf)] = root
        for node in _nodes(root):
            self._root_of[id(node)] = root
        if _done(root):
            return
        if any(node.execution.state != State.NEW for node in _nodes(root)):
            self._active.append(root)
        else:
            self._pending.append(root)

    def _mark(self, task: Task) -> None:
        root = self._root_of.get(id(task), task)
        self._dirty[id(root)] = root

    def _persist(self) -> None:
        if self._dirty:
            self.session.store.save_many(list(self._dirty.values()))
            self._dirty.clear()
        self.session.flush()

    # --- resume ----------------------------------------------------------------------
    def _resume(self) -> None:
        self._resumed = True
        for root in self._active:
            for leaf in _leaves(root):
                if leaf.execution.state not in _ACTIVE:
                    continue
                handle = getattr(leaf.execution, "handle", None)
                if handle and self.executor.reattach(leaf, handle):
                    self._running[id(leaf)] = leaf
                    continue
                outcome = self.executor.poll(leaf, handle) if handle else None
                if outcome is not None and (outcome.exitcode is not None or outcome.signal is not None):
                    self._finish(leaf, outcome, info="finished while no driver was watching")
                    continue
                leaf.execution.state = State.UNKNOWN
                leaf.execution.info = ("its run was lost while no driver was watching"
                                       f" ({outcome.info if outcome else 'no run handle'})")
                if self.resume_policy == "rerun":
                    leaf.redo()
                    leaf.execution.info = "queued again after a lost run (resume policy: rerun)"
                self._mark(leaf)
            _update_collections(root)

    # --- running ---------------------------------------------------------------------
    def _runnable(self, root: Task) -> bool:
        return any(True for _ in _ready_leaves(root))

    def _collect(self, root: Task, starting: list[Application]) -> None:
        """Add the commands of ``root`` that may start now, while there is room."""
        for leaf in _ready_leaves(root):
            if len(self._running) + len(starting) >= self.max_in_flight:
                return
            starting.append(leaf)

    def _start(self, tasks: list[Application]) -> None:
        """Start ``tasks``, several at once: starting a process mostly waits for exec."""
        if not tasks:
            return
        if len(tasks) == 1:
            results = [self._launch(tasks[0])]
        else:
            if self._starter is None:
                self._starter = concurrent.futures.ThreadPoolExecutor(
                    max_workers=min(8, self.max_in_flight), thread_name_prefix="gc3session-start")
            results = list(self._starter.map(self._launch, tasks))
        for task, (attempt, handle, error) in zip(tasks, results):
            task.execution.attempt = attempt
            if handle is None:
                task.execution.state = State.TERMINATED
                task.execution.returncode = (0, 127)
                task.execution.info = f"could not be started: {error}"
            else:
                task.execution.handle = handle
                task.execution.state = State.SUBMITTED
                task.execution.state = State.RUNNING
                self._running[id(task)] = task
            self._mark(task)

    def _launch(self, task: Application) -> tuple[int, dict[str, Any] | None, Exception | None]:
        attempt = int(getattr(task.execution, "attempt", 0)) + 1
        workdir = os.path.join(self.workdir, f"{task.persistent_id}.{attempt}")
        try:
            _stage_in(task, workdir)
            handle = self.executor.submit(task, workdir)
        except (OSError, Error) as err:
            return attempt, None, err
        handle["submitted"] = time.time()
        return attempt, handle, None

    def _poll(self, task: Application, block: bool = False) -> Outcome | None:
        handle = task.execution.handle
        deadline = time.monotonic() + (5.0 if block else 0.0)
        while True:
            outcome = self.executor.poll(task, handle)
            if outcome is not None or time.monotonic() >= deadline:
                break
            self.executor.wait([handle], 0.05)
        walltime = task.requested_walltime
        if outcome is None and walltime and time.time() - handle["submitted"] > walltime:
            self.executor.kill(task, handle)
            task.execution.info = f"killed after exceeding its wall time of {walltime}s"
        return outcome

    def _finish(self, task: Application, outcome: Outcome, info: str | None = None) -> None:
        self._running.pop(id(task), None)
        task.execution.state = State.TERMINATING
        task.execution.exitcode = outcome.exitcode
        task.execution.signal = outcome.signal
        if outcome.exitcode is None and outcome.signal is None:
            task.execution.returncode = (0, 255)
        missing = _collect_outputs(task, task.execution.handle["workdir"])
        if info or outcome.info:
            task.execution.info = info or outcome.info
        if missing:
            task.execution.info = f"missing outputs: {', '.join(missing)}"
        task.execution.state = State.TERMINATED
        task.terminated()
        self._mark(task)
        root = self._root_of.get(id(task), task)
        if root is not task and _update_collections(root):
            self._mark(root)


# --- the task tree -------------------------------------------------------------------
def _nodes(task: Task) -> Iterator[Task]:
    yield task
    for child in getattr(task, "tasks", None) or ():
        yield from _nodes(child)


def _leaves(task: Task) -> Iterator[Any]:
    return (node for node in _nodes(task) if isinstance(node, Application))


def _done(task: Task) -> bool:
    return task.execution.state in (State.TERMINATED, State.UNKNOWN, State.STOPPED)


def _ready_leaves(task: Task) -> Iterator[Application]:
    """NEW commands that may start now, in order."""
    if _done(task):
        return
    if isinstance(task, Application):
        if task.execution.state == State.NEW:
            yield task
    elif isinstance(task, SequentialTaskCollection):
        if task._current_task < len(task.tasks):
            yield from _ready_leaves(task.tasks[task._current_task])
    elif isinstance(task, TaskCollection):
        for child in task.tasks:
            yield from _ready_leaves(child)


def _update_collections(task: Task) -> bool:
    """Recompute the state of the collections under ``task``; True if one changed."""
    if not isinstance(task, TaskCollection):
        return False
    changed = False
    for child in task.tasks:
        changed |= _update_collections(child)
    before = (task.execution.state, task.execution.returncode)
    if isinstance(task, SequentialTaskCollection):
        while task._current_task < len(task.tasks) and _done(task.tasks[task._current_task]):
            if task.next(task._current_task) == State.TERMINATED:
                task._current_task = len(task.tasks)
                break
            task._current_task += 1
        finished = task._current_task >= len(task.tasks)
    else:
        finished = all(_done(child) for child in task.tasks)
    if finished:
        failed = any(c.execution.returncode != 0 for c in task.tasks if _done(c))
        task.execution.returncode = 1 << 8 if failed else 0
        task.execution.state = State.TERMINATED
    elif any(c.execution.state != State.NEW for c in task.tasks):
        task.execution.state = State.RUNNING
    return changed or (task.execution.state, task.execution.returncode) != before


# --- files ------------------------------------------------------------------------------
def _stage_in(task: Application, workdir: str) -> None:
    if os.path.isdir(workdir):
        shutil.rmtree(workdir)  # a previous attempt of this same number never started
    fsio.make_dirs(workdir, durable=False)
    for source, name in task.inputs.items():
        target = os.path.join(workdir, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


def _collect_outputs(task: Application, workdir: str) -> list[str]:
    """Move declared outputs and the std streams into ``output_dir``; return missing names."""
    missing: list[str] = []
    wanted = dict(task.outputs)
    for stream in {task.stdout, task.stderr} - {None}:
        wanted.setdefault(stream, stream)
    if not wanted:
        return missing
    os.makedirs(task.output_dir, exist_ok=True)
    for name, dest in wanted.items():
        source = os.path.join(workdir, name)
        target = os.path.join(task.output_dir, dest)
        if not os.path.exists(source):
            if os.path.exists(target):
                continue  # collected by an earlier, interrupted finish
            missing.append(name)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.move(source, target)
    return [m for m in missing if m in task.outputs]


__all__ = ["Engine", "RESUME_POLICIES"]
