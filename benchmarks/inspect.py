"""``gsession list``, ``stats`` and ``report`` on large sessions, beside reading the index.

Targets (issues 13 and 15): at 100,000 tasks ``list`` within 1 s and
``stats`` within 0.3 s, for every store.  Each command runs in-process
(``gc3session.cli.main``, output to ``/dev/null``), on a session of the
filesystem store, one of SQLite and one of PostgreSQL (a throwaway cluster,
skipped where ``initdb`` is missing), whose tasks are in every state; the
anchor is reading and splitting ``session_ids.txt``, the least any command
must do.  Medians of ``--repeat`` runs, with min and max.  The report's page
weight is printed too.

    python -m benchmarks.inspect [--sizes 1000,100000] [--repeat 3] [--stores file,sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Callable

from benchmarks import _common
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


def timed(action: Callable[[], object], repeat: int) -> tuple[float, float, float, float]:
    """Median, min and max seconds of ``repeat`` runs, and the median CPU seconds.

    The CPU time (``time.process_time``) is the command's own work: on a
    shared machine the wall time also counts the waits for a core.
    """
    times, cpu = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        action()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return statistics.median(times), min(times), max(times), statistics.median(cpu)


def run_command(*argv: str) -> None:
    with open(os.devnull, "w") as sink:
        rc = gsession(list(argv), stdout=sink, stderr=sink)
    if rc != 0:
        raise SystemExit(f"gsession {' '.join(argv)} exited {rc}")


def read_index(path: str) -> None:
    with open(os.path.join(path, "session_ids.txt"), "rb") as stream:
        stream.read().split()


#: Targets at the largest size: command -> seconds.
TARGETS = {"list": 1.0, "stats": 0.3}
STORES = ("file", "sqlite", "postgresql")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", default=",".join(STORES),
                        help=f"comma-separated, among {', '.join(STORES)}")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = [k for k in args.stores.split(",") if k]
    scratch = tempfile.mkdtemp(prefix="gc3session-bench-inspect.")
    targets: list[str] = []
    with contextlib.ExitStack() as stack:
        pg = None
        if "postgresql" in kinds:
            try:
                pg = stack.enter_context(_common.PgCluster())
            except (RuntimeError, OSError) as err:
                _common.warn(f"PostgreSQL skipped: {err}")
                kinds.remove("postgresql")
        stack.callback(shutil.rmtree, scratch, True)
        print(f"{'store':10} {'tasks':>7}  {'command':8} {'median s':>9} {'min':>7} {'max':>7}"
              f" {'cpu s':>7}  {'x index read':>12}", flush=True)
        for n in sizes:
            for kind in kinds:
                path = os.path.join(scratch, f"{kind}-{n}")
                url = {"file": None, "sqlite": f"sqlite:///{path}.db",
                       "postgresql": pg.url(pg.new_database()) if pg else None}[kind]
                build(path, url, n)
                anchor = timed(lambda p=path: read_index(p), args.repeat)[0]
                page = os.path.join(scratch, "report.html")
                for name, command in (("list", ["list", path]), ("stats", ["stats", path]),
                                      ("report", ["report", path, "-o", page])):
                    median, low, high, cpu = timed(lambda a=command: run_command(*a), args.repeat)
                    print(f"{kind:10} {n:>7}  {name:8} {median:9.3f} {low:7.3f} {high:7.3f}"
                          f" {cpu:7.3f}  {median / anchor:12.0f}", flush=True)
                    if n == max(sizes) and name in TARGETS:
                        targets.append(f"  {'MET    ' if median <= TARGETS[name] else 'NOT MET'}"
                                       f"  gsession {name} <= {TARGETS[name]:g} s, {kind}, N={n:,}:"
                                       f" {median:.3f} s (min {low:.3f}, max {high:.3f};"
                                       f" CPU {cpu:.3f} s)")
                print(f"{kind:10} {n:>7}  report page: {os.path.getsize(page):,} bytes", flush=True)
                shutil.rmtree(path)
    print("\ntargets")
    print("\n".join(targets))
    print(f"  {sum('NOT MET' not in t for t in targets)}/{len(targets)} met", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
