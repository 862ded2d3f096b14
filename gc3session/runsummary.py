"""What a script says when a run ends: time, failures, set-aside records, what to type next.

:class:`~gc3session.cmdline.SessionBasedScript` prints the state counts
(:func:`gc3session.progress.status_table`), then :func:`render`'s lines::

    Elapsed time: 12.3s
    Failed tasks (2):
      Application.2  wc-b.txt  exit code 1  stderr: /data/wc/out/wc-b.txt/errors.txt
      Application.5  wc-e.txt  killed by signal 9 (SIGKILL)  stderr: ...
    Taken out of the session (1): Application.7 ... (undo: gsession adopt ...)
    To run the failed tasks again: python3 wordcount.py -C 1 --redo-failed

A failed collection is shown by its failed commands (the ones whose stderr
says why); at most :data:`FAILED_SHOWN` are listed, then ``and N more:
gsession list --state FAILED SESSION``.  Each failure costs a ``stat`` or
two (where its stderr is), and only failures are looked at.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from .cliformat import exit_text
from .task import TaskCollection

#: How many failed tasks the summary names before it points to ``gsession list``.
FAILED_SHOWN = 20


@dataclass(frozen=True)
class Failure:
    """A failed command (or a failed task that runs none): id, name, how it ended, its stderr."""

    id: str
    jobname: str
    ended: str
    stderr: str | None


def failures(tasks: Iterable[Any]) -> Iterator[Failure]:
    """The failures among top-level ``tasks``: each failed one, or its failed commands."""
    for task in tasks:
        if not task.execution.in_state("failed"):
            continue
        leaves = [node for node in _nodes(task)
                  if not isinstance(node, TaskCollection) and node.execution.in_state("failed")]
        for node in leaves or [task]:
            yield Failure(str(node.persistent_id), str(node.jobname or ""),
                          exit_text(node.execution.exitcode, node.execution.signal), stderr_path(node))


def stderr_path(task: Any) -> str | None:
    """Where the standard error of ``task``'s last run is: its output directory, else its run
    directory (a run whose outputs were not collected), or None if it was discarded."""
    name = getattr(task, "stderr", None)
    directory = getattr(task, "output_dir", None)
    if not name or not directory:
        return None
    collected = os.path.join(directory, name)
    workdir = (getattr(task.execution, "handle", None) or {}).get("workdir")
    if not os.path.exists(collected) and workdir and os.path.exists(os.path.join(workdir, name)):
        return os.path.join(workdir, name)
    return collected


def command_prefix() -> list[str]:
    """How this program was started, up to its own arguments: ``python3 script.py``.

    ``sys.orig_argv`` has the interpreter and its options as typed; when it
    does not end with this program's arguments (an embedding), ``argv[0]``.
    """
    orig = list(getattr(sys, "orig_argv", None) or [])
    own = sys.argv[1:]
    if len(orig) > len(own) and orig[len(orig) - len(own):] == own:
        return orig[:len(orig) - len(own)]
    return [sys.argv[0]]


def rerun_command(prefix: list[str], args: list[str]) -> str:
    """The command that runs the failed tasks again: the same one, with ``--redo-failed``.

    ``-N`` (start anew) is left out: it would discard every task instead.
    """
    kept = [arg for arg in args if arg not in ("-N", "--new-session", "--redo-failed")]
    return shlex.join([*prefix, *kept, "--redo-failed"])


def render(session: str, elapsed: float, failed: list[Failure], set_aside: list[str],
           command: str) -> str:
    """The lines after the state counts (module docstring)."""
    lines = [f"Elapsed time: {_duration(elapsed)}"]
    if failed:
        lines.append(f"Failed tasks ({len(failed)}):")
        shown = failed[:FAILED_SHOWN]
        rows = [(f.id, f.jobname, f.ended, f"stderr: {f.stderr or '(discarded)'}") for f in shown]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines.extend("  " + "  ".join(cell.ljust(widths[i]) if i < 3 else cell
                                      for i, cell in enumerate(row)) for row in rows)
        if len(failed) > len(shown):
            lines.append(f"  and {len(failed) - len(shown)} more: gsession list --state FAILED"
                         f" {shlex.quote(session)}")
    if set_aside:
        lines.append(f"Taken out of the session ({len(set_aside)}), records kept:")
        lines.extend(f"  {line}" for line in set_aside)
    if failed:
        lines.append(f"To run the failed tasks again: {command}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    """``12.3s``, ``4m 05s``, ``2h 03m 04s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _nodes(task: Any) -> Iterator[Any]:
    yield task
    for child in getattr(task, "tasks", None) or ():
        yield from _nodes(child)


__all__ = ["FAILED_SHOWN", "Failure", "command_prefix", "failures", "render", "rerun_command",
           "stderr_path"]
