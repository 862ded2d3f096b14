"""What the engine costs per task, beside the plainest ways to run the same commands.

    python3 -m benchmarks.engine [--quick] [--tasks N] [--jobs 8] [--stores file,sqlite]

Runs N trivial commands (``true``, default 10,000; 1,000 with ``--quick``)
three ways, in the same process, one after the other:

* a plain loop of ``subprocess.run`` (one at a time);
* a ``concurrent.futures`` thread pool of ``--jobs`` workers calling
  ``subprocess.run`` (what a hand-written script would do);
* gc3session: the commands as Applications of a session, driven by an
  :class:`~gc3session.engine.Engine` with ``max_in_flight=--jobs`` on the
  local executor, once per store of ``--stores`` (``file``: the session's
  default ``jobs/`` directory; ``sqlite``: a database in the session; or
  any store URL).  Every state change is saved (durably: fsync) before the
  pass that made it returns, and each command gets its own working
  directory, run lock and exit-status file.  Afterwards the session is
  reopened from disk and every task must be TERMINATED with status 0.

It prints tasks per second and time per task of each, the engine's extra
time per task over the pool, and the ratio of the engine's total time to
the pool's (the target is at most 1.3).  Adding the tasks to the session is
timed separately (it is not part of running them).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time

from gc3session import Application, Session
from gc3session.engine import Engine

COMMAND = ["true"]


def plain_loop(count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        subprocess.run(COMMAND, check=True)
    return time.perf_counter() - started


def thread_pool(count: int, jobs: int) -> float:
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for result in pool.map(lambda _: subprocess.run(COMMAND, check=True), range(count)):
            assert result.returncode == 0
    return time.perf_counter() - started


def engine_run(count: int, jobs: int, directory: str, store: str) -> tuple[float, float]:
    """Return (seconds to add the tasks, seconds to run them all)."""
    path = os.path.join(directory, "session")
    url = {"file": None, "sqlite": f"sqlite:///{path}.db"}.get(store, store)
    with Session(path, store_or_url=url) as session:
        started = time.perf_counter()
        for i in range(count):
            session.add(Application(COMMAND, jobname=f"true-{i}", stdout=None, stderr=None,
                                    output_dir=os.path.join(directory, "out")), flush=False)
        session.flush()
        added = time.perf_counter() - started
        engine = Engine(session, max_in_flight=jobs)
        started = time.perf_counter()
        counts = engine.run_until_done(poll_interval=1.0)
        ran = time.perf_counter() - started
        engine.close()
    if counts["ok"] != count:
        raise SystemExit(f"engine run incomplete: {counts}")
    with Session(path, mode="r", load=False) as reopened:
        states = reopened.states()
    if set(states.values()) != {"TERMINATED"} or len(states) != count:
        raise SystemExit("the states on disk do not show every task TERMINATED")
    return added, ran


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 tasks instead of 10,000")
    parser.add_argument("--tasks", type=int, default=None, help="number of commands")
    parser.add_argument("--jobs", type=int, default=8,
                        help="commands at once (-J) for the pool and the engine")
    parser.add_argument("--stores", default="file,sqlite",
                        help="comma-separated stores to run the engine on: file, sqlite or URLs"
                             " (default: %(default)s)")
    args = parser.parse_args(argv)
    count = args.tasks or (1000 if args.quick else 10000)

    print(f"{count:,} x {' '.join(COMMAND)!r}, {args.jobs} at a time, {os.cpu_count()} CPUs,"
          f" Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f}")
    loop = plain_loop(count)
    pool = thread_pool(count, args.jobs)
    rows = [("subprocess.run loop", loop), (f"thread pool of {args.jobs}", pool)]
    adds = []
    for store in args.stores.split(","):
        with tempfile.TemporaryDirectory(prefix="gc3session-bench-") as directory:
            added, ran = engine_run(count, args.jobs, directory, store)
        rows.append((f"engine -J {args.jobs}, {store} store", ran))
        adds.append((store, added))
    print(f"  {'':<32} {'total s':>8} {'tasks/s':>9} {'ms/task':>8} {'/pool':>6}")
    for name, seconds in rows:
        print(f"  {name:<32} {seconds:>8.2f} {count / seconds:>9,.0f} {1000 * seconds / count:>8.3f}"
              f" {seconds / pool:>6.2f}")
    for (store, added), (_, ran) in zip(adds, rows[2:]):
        print(f"  {store} store: engine overhead over the pool {1e6 * (ran - pool) / count:,.0f} us/task,"
              f" time ratio {ran / pool:.2f} (target <= 1.3); adding the tasks (one flush) {added:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
