"""The executor interface: how the engine starts, watches and stops commands.

An executor runs :class:`~gc3session.task.Application` commands somewhere
(local processes, a Dask cluster, ...).  The engine prepares each run's
working directory, calls :meth:`Executor.submit`, and keeps what it returns
(a JSON-able *handle*: process id, future key, ...) in the task, so that a
restarted driver can :meth:`Executor.reattach` to runs it did not start.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Any, Iterable

#: Name of the file a run leaves in its working directory with its exit
#: status ("<status>\\n"), so a run that ends while no driver watches it is
#: still accounted for.
EXIT_FILE = ".gc3session-exit"


@dataclass(frozen=True)
class Outcome:
    """How a command ended: ``exitcode`` if it exited, ``signal`` if killed."""

    exitcode: int | None
    signal: int | None = None
    info: str = ""


class Executor(abc.ABC):
    """Runs commands for the engine (subclass and register to add a kind)."""

    #: Registry name, also written in each task's handle.
    name = "abstract"

    @abc.abstractmethod
    def submit(self, task: Any, workdir: str) -> dict[str, Any]:
        """Start ``task.arguments`` in ``workdir``; return its handle."""

    @abc.abstractmethod
    def poll(self, task: Any, handle: dict[str, Any]) -> Outcome | None:
        """Return the outcome if the run ended, else None (never blocks)."""

    @abc.abstractmethod
    def reattach(self, task: Any, handle: dict[str, Any]) -> bool:
        """After a driver restart: True if the run is still going (then poll it)."""

    @abc.abstractmethod
    def kill(self, task: Any, handle: dict[str, Any]) -> None:
        """Stop the run (its outcome is then reported by :meth:`poll`)."""

    def wait(self, handles: Iterable[dict[str, Any]], timeout: float) -> None:
        """Block until one of ``handles`` may have ended, or ``timeout`` seconds."""
        time.sleep(min(timeout, 0.05))

    def close(self) -> None:
        """Release resources (connections); running commands are left alone."""
