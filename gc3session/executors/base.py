"""The executor interface: how the engine starts, watches and stops commands.

An executor runs :class:`~gc3session.task.Application` commands somewhere
(local processes, a Dask cluster, ...).  The engine prepares each run's
working directory, calls :meth:`Executor.submit`, and keeps what it returns
(a JSON-able *handle*: process id, future key, ...) in the task, so that a
restarted driver can :meth:`Executor.reattach` to runs it did not start.

It also holds what the executors share, so that all of them leave the same
traces in a run's working directory: the exit-status file, the shell
scripts that write it (Dask) and apply the memory limit, and the readers of
those traces (the status, and whether a run's ``flock`` is still held by a
process of the run).
"""

from __future__ import annotations

import abc
import os
import signal as signals
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

#: Name of the file a run leaves in its working directory with its exit
#: status ("<status>\\n"), so a run that ends while no driver watches it is
#: still accounted for.
EXIT_FILE = ".gc3session-exit"

#: ``/bin/sh -c`` script: run "$@", record its status, exit with it.
RUN_SCRIPT = f'"$@"; rc=$?; printf "%d\\n" "$rc" > {EXIT_FILE}; exit "$rc"'

#: Same, under an address-space limit of ``$GC3SESSION_MEMORY_KIB``: a limit
#: that cannot be set fails the run (126), it never runs unbounded.
LIMITED_RUN_SCRIPT = (f'ulimit -v "$GC3SESSION_MEMORY_KIB" || {{ printf "126\\n" > {EXIT_FILE};'
                      f' exit 126; }}; {RUN_SCRIPT}')

#: ``/bin/sh -c`` script: the address-space limit of ``$GC3SESSION_MEMORY_KIB``,
#: then ``exec "$@"``; for a parent that records the status itself (the local
#: executor's spawner).  A limit that cannot be set fails the run (126).
LIMIT_EXEC_SCRIPT = 'ulimit -v "$GC3SESSION_MEMORY_KIB" || exit 126; exec "$@"'


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


def command_environment(base: Mapping[str, str], environment: Mapping[str, Any] | None,
                        cores: int, memory: int | None) -> tuple[dict[str, str], str]:
    """The environment and the ``/bin/sh`` script that run a task's command.

    ``base`` is the environment of the process that starts the command (the
    driver, a worker); the task's ``environment`` is added, its ``cores`` are
    published as ``GC3SESSION_CORES`` and a ``memory`` limit (bytes) picks
    :data:`LIMITED_RUN_SCRIPT`.
    """
    env = dict(base)
    env.update({str(k): str(v) for k, v in (environment or {}).items()})
    env["GC3SESSION_CORES"] = str(cores)
    if memory:
        env["GC3SESSION_MEMORY_KIB"] = str(max(1, int(memory) // 1024))
        return env, LIMITED_RUN_SCRIPT
    return env, RUN_SCRIPT


def decode_status(status: int) -> Outcome:
    """A shell status: above 128 means killed by signal ``status - 128``."""
    if status > 128 and status - 128 < signals.NSIG:
        return Outcome(None, status - 128)
    return Outcome(status, None)


def read_exit_status(workdir: str) -> int | None:
    """The status recorded in ``workdir``'s :data:`EXIT_FILE`, or None if absent or torn."""
    try:
        with open(os.path.join(workdir, EXIT_FILE), "rb") as stream:
            text = stream.read()
        if text.endswith(b"\n"):
            return int(text)
    except (OSError, ValueError):
        pass
    return None
