"""What a running script shows: a live progress line, the status and task tables.

On a terminal the live display is a ``tqdm`` progress bar (done out of
total, with running and failed counts and an ETA); otherwise a plain line is
printed at most every :data:`PLAIN_INTERVAL` seconds, which keeps log files
readable.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Iterable, TextIO

#: Seconds between two plain progress lines (when the stream is not a terminal).
PLAIN_INTERVAL = 10.0
#: Seconds between two refreshes of the progress bar on a terminal.
TTY_INTERVAL = 0.2
_STATE_ORDER = ("NEW", "SUBMITTED", "RUNNING", "TERMINATING", "TERMINATED", "STOPPED", "UNKNOWN")


class ProgressReporter:
    """Show how far a run got, on ``stream``.

    :meth:`update` takes a function returning the engine's counts and calls
    it only when something is to be shown (every :data:`TTY_INTERVAL`
    seconds on a terminal, every :data:`PLAIN_INTERVAL` seconds otherwise),
    because counting a large session on every pass would cost more than the
    pass.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._bar: Any = None
        self._last = -math.inf
        self._tty = hasattr(stream, "isatty") and stream.isatty()

    def update(self, counts: Callable[[], dict[str, int]], force: bool = False) -> None:
        """Show the current counts if it is time to (always with ``force``)."""
        now = time.monotonic()
        if not force and now - self._last < (TTY_INTERVAL if self._tty else PLAIN_INTERVAL):
            return
        self._last = now
        current = counts()
        done = current["TERMINATED"]
        running = current["RUNNING"] + current["SUBMITTED"] + current["TERMINATING"]
        if self._tty:
            if self._bar is None:
                from tqdm import tqdm
                # a terminal that reports no size (some ptys) would get an empty bar
                sized = _columns(self.stream) > 0
                self._bar = tqdm(total=current["total"], initial=done, file=self.stream, unit="task",
                                 dynamic_ncols=sized, ncols=None if sized else 80,
                                 nrows=None if sized else 24)
            self._bar.total = current["total"]
            self._bar.set_postfix(running=running, failed=current["failed"], refresh=False)
            self._bar.update(done - self._bar.n)
            self._bar.refresh()
        else:
            print(f"{time.strftime('%H:%M:%S')} {done}/{current['total']} done,"
                  f" {running} running, {current['failed']} failed", file=self.stream, flush=True)

    def close(self, counts: Callable[[], dict[str, int]] | None = None) -> None:
        """Finish the live display (showing ``counts`` one last time on a terminal)."""
        if self._bar is not None:
            if counts is not None:
                self.update(counts, force=True)
            self._bar.close()
            self._bar = None


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


def status_table(counts: dict[str, int]) -> str:
    """gc3libs' summary: one line per state, then failed, ok, total, with percentages."""
    total = counts["total"]
    digits = max(1, int(math.log10(total) - 1)) if total else 1
    keys = [k for k in _STATE_ORDER if k in counts] + ["failed", "ok", "total"]
    rows = [(k, f"{counts[k]}/{total}", f"({100.0 * counts[k] / total:.{digits}f}%)") for k in keys]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"  {a:>{widths[0]}}  {b:>{widths[1]}}  {c:^{widths[2]}}".rstrip() for a, b, c in rows)


def task_table(tasks: Iterable[Any], recursive: bool = False) -> str:
    """Columns JobID | Job name | State | Info, one row per task (children indented)."""
    rows = [("JobID", "Job name", "State", "Info")]

    def visit(task: Any, indent: str) -> None:
        info = task.execution.info or ""
        rows.append((indent + str(getattr(task, "persistent_id", "")), task.jobname or "",
                     str(task.execution.state), info))
        if recursive:
            for child in getattr(task, "tasks", None) or ():
                visit(child, " " * len(indent) + "  ")

    for task in tasks:
        visit(task, "")
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
