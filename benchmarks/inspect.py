"""``gsession list``, ``stats`` and ``report`` on large sessions, beside reading the index.

Targets (issue 13): at 100,000 tasks ``list`` within 1 s and ``stats``
within 0.3 s; the report's page weight and the time to render it.  Each
command runs in-process (``gc3session.cli.main``, output to ``/dev/null``),
on a session of the filesystem store and one of SQLite, whose tasks are in
every state; the anchor is reading and splitting ``session_ids.txt``, the
least any command must do.  Medians of ``--repeat`` runs, with min and max.

    python -m benchmarks.inspect [--sizes 1000,100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from typing import Callable

from gc3session import Session, Task
from gc3session.cli import main as gsession

STATES = ("NEW", "SUBMITTED", "RUNNING", "TERMINATED")


def build(path: str, url: str | None, n: int) -> None:
    """A session of ``n`` tasks, a quarter in each of NEW, SUBMITTED, RUNNING, TERMINATED."""
    with Session(path, store_or_url=url, durable=False) as session:
        for i in range(n):
            task = Task(jobname=f"task-{i}", sample=i)
            for state in STATES[1:1 + i % 4]:
                task.execution.state = state
            if i % 4 == 3:
                task.execution.returncode = (i % 3) << 8
            session.add(task, flush=False)
            if i % 5000 == 4999:
                session.flush()
        session.flush()


def timed(action: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """Median, min and max seconds of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), max(times)


def run_command(*argv: str) -> None:
    with open(os.devnull, "w") as sink:
        rc = gsession(list(argv), stdout=sink, stderr=sink)
    if rc != 0:
        raise SystemExit(f"gsession {' '.join(argv)} exited {rc}")


def read_index(path: str) -> None:
    with open(os.path.join(path, "session_ids.txt"), "rb") as stream:
        stream.read().split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="gc3session-bench-inspect.")
    try:
        print(f"{'store':8} {'tasks':>7}  {'command':8} {'median s':>9} {'min':>7} {'max':>7}"
              f"  {'x index read':>12}")
        for n in [int(s) for s in args.sizes.split(",")]:
            for kind in ("file", "sqlite"):
                path = os.path.join(scratch, f"{kind}-{n}")
                build(path, f"sqlite:///{path}.db" if kind == "sqlite" else None, n)
                anchor = timed(lambda p=path: read_index(p), args.repeat)[0]
                page = os.path.join(scratch, "report.html")
                for name, argv in (("list", ["list", path]), ("stats", ["stats", path]),
                                   ("report", ["report", path, "-o", page])):
                    median, low, high = timed(lambda a=argv: run_command(*a), args.repeat)
                    print(f"{kind:8} {n:>7}  {name:8} {median:9.3f} {low:7.3f} {high:7.3f}"
                          f"  {median / anchor:12.0f}")
                print(f"{kind:8} {n:>7}  report page: {os.path.getsize(page):,} bytes")
                shutil.rmtree(path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
