"""The engine: drive a session's tasks to the end with bounded concurrency.

:meth:`Engine.progress` is one non-blocking pass: it polls running commands,
finishes the ones that ended (outputs collected, ``terminated()`` hook run),
advances task collections, submits NEW tasks up to ``max_in_flight``, and
persists every task that changed in one store batch (one transaction, or
one group of record files with a single sync).  A driver killed at any
point therefore loses at most the pass it was in.  It never loses track of a
command it started, even one started in the pass it lost: run number *n* of
a task always runs in ``<workdir>/<task id>.<n>``, made before the command
starts, so a task saved NEW whose next run directory exists was started,
and the next driver looks there before it starts it again.

Group commit
------------
With ``commit_interval=SECONDS`` (what :class:`~gc3session.cmdline.SessionBasedScript`
uses: :data:`GROUP_COMMIT_INTERVAL`) a pass keeps the starts and ends of
commands it saw in memory, and one store batch commits every transition
of the last SECONDS (or of :data:`GROUP_COMMIT_MAX` tasks) at once, as a
database journal commits a group of transactions with one flush: one sync
for hundreds of tasks instead of one per pass.  Nothing is reported before
it is on disk: :meth:`Engine.counts` (the status table, the progress line,
``run_until_done``'s result), the "terminated" log lines, :meth:`Engine.kill`
and :meth:`Engine.close` commit first.  What a driver killed inside a
window loses is found again from the run directories, as for a lost pass: a
start not yet saved is a task saved NEW whose next run directory exists; an
end not yet saved is a task saved RUNNING whose run left its exit status.
The changes that the run directories cannot tell are committed before any
command starts: nodes that joined a tree, runs found lost or adopted by the
resume, tasks queued again.

Trees may grow while they run: a sequence's ``next()`` may append children,
and user code may add children to a collection between passes.  A node that
joins a tree gets its id in the pass that sees it and is saved with its
top-level task before any of its commands starts (a pass that would start
one saves once more, before it starts anything), so a resumed driver finds
it, and its run directories, as it finds any other.

Resume policy
-------------
When an engine starts on a session that a previous driver left with tasks
SUBMITTED or RUNNING (or NEW with a run directory, as above), it asks the
executor about each of them:

* still running (the local executor checks the run's lock and, when known,
  the pid and process start time): it is watched again, as if this driver
  had started it;
* ended while no driver watched, with a complete exit status in its working
  directory: it is finished normally (outputs collected, hook run), so it
  has run exactly once;
* gone without a trace (its command was killed with the driver, or never
  started): it becomes UNKNOWN with the reason in its history, then, with
  ``resume_policy="rerun"`` (the default), NEW again so that it runs once
  more; with ``"report"`` it stays UNKNOWN for a person to decide (a
  collection waiting on it is UNKNOWN too, and the script's exit status
  says "run again").  A later engine with the "rerun" policy queues UNKNOWN
  tasks again.

Outcomes the command itself cannot report are recorded as pseudo-signals
(above any real signal number), so they count as failures:
:data:`~gc3session.run.SIGNAL_DATA_STAGING` (the command succeeded but a declared output
is missing) and
:data:`~gc3session.run.SIGNAL_HOOK_FAILED` (the task's ``terminated()`` raised).  A command
that cannot be started ends with exit status 127, like a shell's; but when
the executor itself cannot be reached (a Dask scheduler that is down), the
tasks stay NEW and :meth:`Engine.progress` raises
:class:`~gc3session.exceptions.ExecutorUnavailableError` once the pass
has saved.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import time
from typing import Any, Callable

from .exceptions import Error, ExecutorUnavailableError, InvalidValue
from .executors import Executor, Outcome, make_executor
from .groupcommit import GROUP_COMMIT_INTERVAL, GROUP_COMMIT_MAX, GroupCommit
from .run import SIGNAL_DATA_STAGING, SIGNAL_HOOK_FAILED
from .rundir import collect_outputs, stage_in
from .session import Session
from .task import Application, State, Task
from .tasktree import ACTIVE, is_settled, leaves, nodes, ready_leaves, update_collections
from .workflow import RetryableTask

RESUME_POLICIES = ("rerun", "report")

log = logging.getLogger(__name__)


class Engine:
    """Run the tasks of ``session``.

    :param session: the session whose top-level tasks are driven.
    :param executor: an :class:`Executor`, ``"local"`` or ``"dask://host:port"``.
    :param max_in_flight: at most this many commands run at once.
    :param workdir: base of the per-run working directories
        (default ``<session>/runs``).
    :param resume_policy: ``"rerun"`` or ``"report"`` (module docstring).
    :param commit_interval: 0 (the default) saves the changes of every pass
        before :meth:`progress` returns; a positive number of seconds
        group-commits them (module docstring, "Group commit").
    """

    def __init__(self, session: Session, executor: "Executor | str | None" = None,
                 max_in_flight: int = 50, workdir: str | None = None,
                 resume_policy: str = "rerun", commit_interval: float = 0.0) -> None:
        if max_in_flight < 1:
            raise InvalidValue(f"max_in_flight must be at least 1, not {max_in_flight}")
        if not commit_interval >= 0:
            raise InvalidValue(f"commit_interval must be 0 or more seconds, not {commit_interval!r}")
        if resume_policy not in RESUME_POLICIES:
            raise InvalidValue(f"resume_policy must be one of {RESUME_POLICIES}, not {resume_policy!r}")
        self.session = session
        self.executor = make_executor(executor)
        self.max_in_flight = max_in_flight
        self.workdir = workdir or os.path.join(session.path, "runs")
        self.resume_policy = resume_policy
        self.commit_interval = commit_interval
        self._commits = GroupCommit(session, commit_interval)
        self._running: dict[int, Application] = {}
        self._root_of: dict[int, Task] = {}
        # roots never started, in session order, and roots started but not settled:
        # a pass looks at the started ones and takes new ones while there is room,
        # so its cost does not grow with the number of waiting tasks
        self._pending: collections.deque[Task] = collections.deque()
        self._active: list[Task] = []
        self._resumed = False
        self._starter: concurrent.futures.ThreadPoolExecutor | None = None
        for task in session:
            self._track(task)

    # --- public API ------------------------------------------------------------
    def add(self, task: Task) -> None:
        """Add ``task`` to the session (if needed) and drive it.

        A task new to the session is flushed before any command starts (also
        under a group commit): no command runs for a task the session on
        disk does not list.
        """
        if task not in self.session:
            self.session.add(task, flush=False)
            self._commits.urgent = True
        self._track(task)

    def progress(self) -> None:
        """One non-blocking pass (module docstring); persists what changed."""
        if not self._resumed:
            self._resume()
        for task in list(self._running.values()):
            outcome = self._poll(task)
            if outcome is not None:
                self._settle(task, outcome)
        starting: list[Application] = []
        grown = False
        for root in list(self._active):
            grown |= self._collect(root, starting)
        while self._pending and len(self._running) + len(starting) < self.max_in_flight:
            root = self._pending.popleft()
            self._active.append(root)
            grown |= self._collect(root, starting)
        if grown or (self._commits.urgent and starting):
            # a node that joined a tree is on disk, with its root, before any of its commands
            # starts; so are the resume's findings, before a run number is taken again
            self._commits.commit()
        self._start(starting)
        for root in list(self._active):
            if update_collections(root):
                self._mark(root)
            self._join(root)  # children next() appended just now: saved below, started next pass
            if is_settled(root):
                self._active.remove(root)
        if self._commits.due() or (self._commits.pending and self.idle):
            self._commits.commit()

    @property
    def idle(self) -> bool:
        """True when no command runs and none can start: another pass would change nothing."""
        return not self._running and not self._pending and not any(
            True for root in self._active for _ in ready_leaves(root))

    def wait(self, timeout: float) -> None:
        """Sleep until a command may have ended, a wall time runs out, or ``timeout`` seconds."""
        now = time.time()
        for task in self._running.values():
            if task.requested_walltime:
                deadline = _run_handle(task)["submitted"] + task.requested_walltime
                timeout = min(timeout, max(0.0, deadline - now) + 0.01)
        left = self._commits.seconds_left()
        if left is not None:  # the next pass commits in time
            timeout = min(timeout, left)
        self.executor.wait([_run_handle(t) for t in self._running.values()], timeout)

    def run_until_done(self, poll_interval: float = 1.0,
                       on_progress: Callable[["Engine"], None] | None = None) -> dict[str, int]:
        """Call :meth:`progress` until the engine is :attr:`idle`; return :meth:`counts`.

        Between passes it sleeps at most ``poll_interval`` seconds, and wakes
        up as soon as a command ends.
        """
        while True:
            self.progress()
            if on_progress is not None:
                on_progress(self)
            if self.idle:
                return self.counts()
            self.wait(poll_interval)

    def forget_all(self) -> None:
        """Stop driving every task (after they were killed and removed by the caller)."""
        self._pending.clear()
        self._active.clear()
        self._running.clear()

    def kill(self, task: Task) -> None:
        """Stop ``task`` (and its children); each ends TERMINATED with signal 9 recorded."""
        if not self._resumed:
            self._resume()  # runs a previous driver left are found first, so they are killed too
        # a retryable task killed on request ends, with its wrapped task's status: it
        # ends first, so that the wrapped task ending below is not taken for a failure to retry
        retryable = [node for node in nodes(task)
                     if isinstance(node, RetryableTask) and node.execution.state != State.TERMINATED]
        for node in retryable:
            node.execution.state = State.TERMINATED
        for leaf in leaves(task):
            handle = getattr(leaf.execution, "handle", None)
            if leaf.execution.state in ACTIVE and handle:
                self.executor.kill(leaf, handle)
                outcome = self._poll(leaf, block=True)
                if outcome is None or (outcome.exitcode is None and outcome.signal is None):
                    outcome = Outcome(None, 9)
                self._finish(leaf, outcome, info="killed on request")
            elif leaf.execution.state == State.NEW:
                leaf.execution.returncode = (9, 0)
                leaf.execution.state = State.TERMINATED
                leaf.execution.info = "killed on request before it started"
                self._mark(leaf)
        for node in retryable:
            node.execution.returncode = node.task.execution.returncode
        root = self._root_of.get(id(task), task)
        if update_collections(root):
            self._mark(root)
        self._join(root)
        self._commits.commit()

    def counts(self) -> dict[str, int]:
        """Top-level tasks by state, plus ``ok``, ``failed`` and ``total``.

        Changes kept for a group commit are committed first: what it reports is on disk.
        """
        if self._commits.pending:
            self._commits.commit()
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
        self._commits.commit()
        if self._starter is not None:
            self._starter.shutdown()
            self._starter = None
        self.executor.close()

    # --- tracking ------------------------------------------------------------------
    def _track(self, root: Task) -> None:
        for node in nodes(root):
            self._root_of[id(node)] = root
        if self.resume_policy == "rerun":
            for leaf in leaves(root):
                if leaf.execution.state == State.UNKNOWN:  # reported lost by an earlier driver
                    leaf.redo()
                    leaf.execution.info = "queued again after a lost run (resume policy: rerun)"
                    self._mark(leaf, urgent=True)
            if update_collections(root):
                self._mark(root)
            if not isinstance(root, Application):
                # a tree saved after a step ended but before next() was asked grows
                # now: the new nodes get their ids before anything looks at their runs
                self._join(root)
        if is_settled(root):
            return
        if any(node.execution.state != State.NEW for node in nodes(root)):
            self._active.append(root)
        else:
            self._pending.append(root)

    def _join(self, root: Task) -> bool:
        """Adopt the nodes that joined ``root``'s tree since it was tracked; True if any did.

        A sequence's ``next()`` may append children, and user code may add
        children to a collection between passes.  Each such node gets its
        id now (its run directories are named after it) and is mapped to
        ``root``, which is marked for saving: the record of a node is
        written with its root's before any of its commands starts, so a
        driver killed at any moment never leaves a started command whose
        task the next driver cannot find.  Costs two look-ups per node (a
        plain loop: this runs on every tree in every pass).
        """
        root_of = self._root_of
        joined = False
        stack = [root]
        while stack:
            node = stack.pop()
            children = getattr(node, "tasks", None)
            if children:
                stack.extend(reversed(children))  # ids follow the tree's order
            if getattr(node, "persistent_id", None) is None:
                self.session.assign_id(node)
            elif root_of.get(id(node)) is root:
                continue
            root_of[id(node)] = root
            joined = True
        if joined:
            self._mark(root, urgent=True)
        return joined

    def _mark(self, task: Task, urgent: bool = False) -> None:
        """Keep ``task``'s top-level task for the next commit (``urgent``: before any start)."""
        self._commits.keep(self._root_of.get(id(task), task), urgent)

    # --- resume ----------------------------------------------------------------------
    def _resume(self) -> None:
        self._resumed = True
        for root in list(self._pending):
            if any([self._adopt(leaf) for leaf in leaves(root)]):
                self._pending.remove(root)
                self._active.append(root)
        for root in self._active:
            # the saved leaves only: finishing one may run next(), which appends
            # children that no driver ever saw, let alone started
            for leaf in list(leaves(root)):
                if leaf.execution.state == State.NEW:
                    self._adopt(leaf)
                if leaf.execution.state not in ACTIVE:
                    continue
                handle = getattr(leaf.execution, "handle", None)
                if not handle:
                    self._lost(leaf, "it has no run handle")
                elif handle.get("executor", self.executor.name) != self.executor.name:
                    self._lost(leaf, f"it was started by the {handle['executor']!r} executor")
                elif self.executor.reattach(leaf, handle):
                    self._running[id(leaf)] = leaf
                    log.info("%s: still running, watched again", leaf)
                else:
                    outcome = self.executor.poll(leaf, handle) or Outcome(None, info="no exit status")
                    self._settle(leaf, outcome, info="finished while no driver was watching")
            if update_collections(root):
                self._mark(root)

    def _adopt(self, leaf: Task) -> bool:
        """A NEW task whose next run directory exists was started by a driver that died
        before saving it: make it SUBMITTED there, so that the run is found, not repeated."""
        if not isinstance(leaf, Application) or leaf.execution.state != State.NEW:
            return False
        attempt = int(getattr(leaf.execution, "attempt", 0)) + 1
        workdir = self._run_dir(leaf, attempt)
        try:
            made = os.stat(workdir).st_mtime
        except FileNotFoundError:
            return False
        leaf.execution.attempt = attempt
        leaf.execution.handle = {"executor": self.executor.name, "workdir": workdir, "submitted": made}
        leaf.execution.state = State.SUBMITTED
        leaf.execution.info = "started by a driver that stopped before saving it"
        self._mark(leaf, urgent=True)
        return True

    def _lost(self, leaf: Application, reason: str) -> None:
        """A run nobody can account for: UNKNOWN, then NEW again under the "rerun" policy."""
        self._running.pop(id(leaf), None)
        leaf.execution.state = State.UNKNOWN
        leaf.execution.info = f"its run was lost while no driver was watching: {reason}"
        log.warning("%s: run lost (%s)", leaf, reason)
        if self.resume_policy == "rerun":
            leaf.redo()
            leaf.execution.info = "queued again after a lost run (resume policy: rerun)"
        self._mark(leaf, urgent=True)

    # --- running ---------------------------------------------------------------------
    def _collect(self, root: Task, starting: list[Application]) -> bool:
        """Add the commands of ``root`` that may start now, while there is room.

        Returns True if nodes joined ``root``'s tree since the last pass
        (:meth:`_join`): they must be saved before ``starting`` starts.
        """
        joined = self._join(root)
        for leaf in ready_leaves(root):
            if len(self._running) + len(starting) >= self.max_in_flight:
                break
            starting.append(leaf)
        return joined

    def _start(self, tasks: list[Application]) -> None:
        """Start ``tasks``; each run's working directory is made before its command starts."""
        if not tasks:
            return
        now = time.time()
        for task in tasks:
            attempt = int(getattr(task.execution, "attempt", 0)) + 1
            while os.path.lexists(self._run_dir(task, attempt)):  # a run the resume did not adopt
                attempt += 1
            task.execution.attempt = attempt
            task.execution.handle = {"executor": self.executor.name,
                                     "workdir": self._run_dir(task, attempt), "submitted": now}
        if len(tasks) == 1:
            results = [self._launch(tasks[0])]
        else:
            # starting a process mostly waits for the kernel: start several at once
            if self._starter is None:
                self._starter = concurrent.futures.ThreadPoolExecutor(
                    max_workers=min(8, self.max_in_flight), thread_name_prefix="gc3session-start")
            results = list(self._starter.map(self._launch, tasks))
        unavailable: ExecutorUnavailableError | None = None
        for task, (handle, error) in zip(tasks, results):
            if isinstance(error, ExecutorUnavailableError):
                # not a failure of the task: it stays NEW, and as its run directory
                # exists, the next driver looks there first (_adopt) in case it ran
                unavailable = unavailable or error
                task.execution.attempt -= 1
                task.execution.info = f"not started: {error}"
                self._mark(task)
                continue
            task.execution.state = State.SUBMITTED
            if handle is None:
                task.execution.returncode = (0, 127)
                task.execution.state = State.TERMINATED
                task.execution.info = f"could not be started: {error}"
                log.warning("%s: could not be started: %s", task, error)
                root = self._root_of.get(id(task), task)
                if root is not task and update_collections(root):
                    self._mark(root)
            else:
                task.execution.handle = {**_run_handle(task), **handle}
                task.execution.state = State.RUNNING
                self._running[id(task)] = task
                log.info("%s: started in %s", task, handle["workdir"])
            self._mark(task)
        if unavailable is not None:
            self._commits.commit()
            raise unavailable

    def _run_dir(self, task: Application, attempt: int) -> str:
        """The working directory of run number ``attempt`` of ``task``."""
        return os.path.join(self.workdir, f"{task.persistent_id}.{attempt}")

    def _launch(self, task: Application) -> tuple[dict[str, Any] | None, Exception | None]:
        workdir = _run_handle(task)["workdir"]
        try:
            stage_in(task, workdir)
            return self.executor.submit(task, workdir), None
        except (OSError, Error) as err:
            return None, err

    def _poll(self, task: Application, block: bool = False) -> Outcome | None:
        handle = _run_handle(task)
        deadline = time.monotonic() + (5.0 if block else 0.0)
        while True:
            outcome = self.executor.poll(task, handle)
            if outcome is not None or time.monotonic() >= deadline:
                break
            self.executor.wait([handle], 0.05)
        walltime = task.requested_walltime
        if outcome is None and walltime and time.time() - handle["submitted"] > walltime:
            self.executor.kill(task, handle)
            if "killed" not in handle:
                task.execution.handle = {**handle, "killed": f"killed after exceeding its wall time"
                                                             f" of {walltime:g}s"}
                log.info("%s: %s", task, task.execution.handle["killed"])
        return outcome

    def _settle(self, task: Application, outcome: Outcome, info: str | None = None) -> None:
        """Finish ``task`` if ``outcome`` tells how it ended, else it was lost."""
        if outcome.exitcode is None and outcome.signal is None:
            self._lost(task, outcome.info or "no exit status")
        else:
            self._finish(task, outcome, info)

    def _finish(self, task: Application, outcome: Outcome, info: str | None = None) -> None:
        self._running.pop(id(task), None)
        execution = task.execution
        execution.state = State.TERMINATING
        execution.exitcode = outcome.exitcode
        execution.signal = outcome.signal
        handle = _run_handle(task)
        notes = [note for note in (handle.get("killed"), info, outcome.info) if note]
        try:
            missing = collect_outputs(task, handle["workdir"], self._commits.collected)
        except OSError as err:
            missing = [f"({err})"]
        if missing:
            if execution.returncode == 0:  # a failed command keeps its own exit code
                execution.signal = SIGNAL_DATA_STAGING
            notes.append(f"missing outputs: {', '.join(missing)}")
        execution.state = State.TERMINATED
        for note in notes:
            execution.info = note
        try:
            task.terminated()
        except Exception as err:  # user code: record it on the task, keep driving the others
            log.exception("%s: terminated() failed", task)
            execution.signal = SIGNAL_HOOK_FAILED
            execution.info = f"terminated() failed: {err!r}"
        self._commits.ended.append(task)
        self._mark(task)
        root = self._root_of.get(id(task), task)
        if root is not task and update_collections(root):
            self._mark(root)


def _run_handle(task: Application) -> dict[str, Any]:
    """The handle of a run the engine started or adopted: every such run has one."""
    handle = task.execution.handle
    assert handle is not None, f"{task} has no run handle"
    return handle


__all__ = ["Engine", "GROUP_COMMIT_INTERVAL", "GROUP_COMMIT_MAX", "RESUME_POLICIES",
           "SIGNAL_DATA_STAGING", "SIGNAL_HOOK_FAILED"]
