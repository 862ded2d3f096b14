"""The changes a driver keeps until it commits them together, as a journal groups transactions.

A pass of the engine changes tasks (a command started, one ended, a
collection moved on) and moves output files.  :class:`GroupCommit` keeps
those changes and commits them in one store batch with one sync: the output
files first, then the top-level tasks, then the session's index, and only
then reports the tasks that ended.  The engine asks :meth:`GroupCommit.due`
after each pass; with an interval of 0 every pass commits, with a positive
interval the changes of that many seconds (or of :data:`GROUP_COMMIT_MAX`
top-level tasks) go together.  A change that the run directories cannot
tell a later driver (a node that joined a tree, a run found lost) is
*urgent*: the engine commits it before any command starts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from . import fsio
from .session import Session

#: The group-commit window of scripts (seconds).
GROUP_COMMIT_INTERVAL = 0.5
#: A group commit happens at the latest when this many top-level tasks changed.
GROUP_COMMIT_MAX = 2000

log = logging.getLogger(__name__)


class GroupCommit:
    """Changes kept for ``session`` until :meth:`commit`; ``interval`` seconds at most."""

    def __init__(self, session: Session, interval: float) -> None:
        self.session = session
        self.interval = interval
        #: output files moved out of run directories, synced before the tasks are saved
        self.collected: list[str] = []
        #: tasks that ended: logged once their state is committed
        self.ended: list[Any] = []
        #: a change the run directories cannot tell: commit before any command starts
        self.urgent = False
        self._tasks: dict[int, Any] = {}  # top-level tasks to save, by identity
        self._since = 0.0  # when the oldest change not yet committed was kept

    def keep(self, root: Any, urgent: bool = False) -> None:
        """Save the top-level task ``root`` at the next commit."""
        if not self._tasks:
            self._since = time.monotonic()
        self._tasks[id(root)] = root
        self.urgent |= urgent

    @property
    def pending(self) -> bool:
        """True when something waits for a commit."""
        return bool(self._tasks or self.collected)

    def due(self) -> bool:
        """Whether the kept changes must be committed now: by urgency, size or age."""
        if not self.pending:
            return False
        return (self.interval <= 0 or self.urgent or len(self._tasks) >= GROUP_COMMIT_MAX
                or time.monotonic() - self._since >= self.interval)

    def seconds_left(self) -> float | None:
        """Seconds until the kept tasks are due by age; None when none is kept or nothing waits."""
        if not self._tasks or self.interval <= 0:
            return None
        return max(0.0, self._since + self.interval - time.monotonic())

    def commit(self) -> None:
        """Commit every kept change, then report the tasks that ended.

        Outputs first, states second: a task saved TERMINATED never lost the
        files it produced (one sync for all of them, not one per file).
        """
        if self.collected:
            if self.session.durable:
                fsio.sync_files(self.collected)
            self.collected.clear()
        if self._tasks:
            self.session.save_many(list(self._tasks.values()))
            self._tasks.clear()
        self.urgent = False
        self.session.flush()
        for task in self.ended:  # reported once on disk
            log.info("%s: terminated with return code %s", task, task.execution.returncode)
        self.ended.clear()


__all__ = ["GROUP_COMMIT_INTERVAL", "GROUP_COMMIT_MAX", "GroupCommit"]
