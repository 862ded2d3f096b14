"""What a running script shows: a live progress line, the status and task tables.

On a terminal the live display is a ``tqdm`` progress bar (done out of
total, with running and failed counts and an ETA); otherwise a plain line is
printed at most every :data:`PLAIN_INTERVAL` seconds, which keeps log files
readable.
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterable, TextIO

PLAIN_INTERVAL = 10.0
_STATE_ORDER = ("NEW", "SUBMITTED", "RUNNING", "TERMINATING", "TERMINATED", "STOPPED", "UNKNOWN")


class ProgressReporter:
    """Show how far a run got, on ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._bar: Any = None
        self._last_plain = 0.0
        self._tty = hasattr(stream, "isatty") and stream.isatty()

    def update(self, counts: dict[str, int]) -> None:
        """Show the new counts (cheap to call on every engine pass)."""
        done = counts["TERMINATED"]
        running = counts["RUNNING"] + counts["SUBMITTED"] + counts["TERMINATING"]
        if self._tty:
            if self._bar is None:
                from tqdm import tqdm
                self._bar = tqdm(total=counts["total"], file=self.stream, unit="task",
                                 dynamic_ncols=True)
            self._bar.total = counts["total"]
            self._bar.n = done
            self._bar.set_postfix(running=running, failed=counts["failed"], refresh=False)
            self._bar.refresh()
        elif time.monotonic() - self._last_plain >= PLAIN_INTERVAL:
            self._last_plain = time.monotonic()
            print(f"{time.strftime('%H:%M:%S')} {done}/{counts['total']} done,"
                  f" {running} running, {counts['failed']} failed", file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the live display."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


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
