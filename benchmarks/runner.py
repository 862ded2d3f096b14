"""Runner benchmark: the engine and a whole script run beside a plain process pool, and Dask.

    python3 -m benchmarks.runner [--quick] [--sizes 10000,100000] [--jobs 8] [--no-dask]

For each N (default 10,000 and 100,000) N commands ``true``, at most
``--jobs`` at a time, run three ways in the same run, one after the other:

* the anchor: a ``concurrent.futures`` thread pool of ``--jobs`` workers
  calling ``subprocess.run`` and recording each exit code (what a
  hand-written script does);
* the engine alone: a session of N Applications (added beforehand, not
  timed) driven to the end by :class:`~gc3session.engine.Engine` on the local
  executor with ``max_in_flight=--jobs`` and the group commit of scripts;
* the whole run as users start it: ``python script.py -s DIR -C 1 -J 8``, a
  :class:`~gc3session.cmdline.SessionBasedScript` whose ``new_tasks``
  returns the N Applications, from the start of the process to its exit
  (adding the tasks included).  Its peak resident memory (``wait4``) is the
  driver's.

Every state change is durable in both of ours; afterwards the session is
reopened from disk and every task must be TERMINATED with status 0.  Target:
the whole run within 1.3 times the pool's time.

Dask (unless ``--no-dask``): ``--dask-tasks`` commands ``true`` (10,000; 200
with ``--quick``) on a ``LocalCluster`` of 2 worker processes, through the
engine's Dask executor, beside ``client.map`` of a function running the same
command with ``subprocess``.  Target: within 1.5 times ``client.map``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

from benchmarks import _common
from benchmarks._common import Report

DEFAULT_SIZES = [10_000, 100_000]
QUICK_SIZES = [300]
COMMAND = ["true"]

#: The script of the whole run: N Applications running ``true``.
SCRIPT = textwrap.dedent('''\
    import os
    from gc3session import Application
    from gc3session.cmdline import SessionBasedScript


    class Trues(SessionBasedScript):
        """Run `true` many times."""

        def new_tasks(self, extra):
            count = int(os.environ["BENCH_TASKS"])
            return [Application(["true"], jobname=f"true-{i}", stdout=None, stderr=None, **extra)
                    for i in range(count)]


    if __name__ == "__main__":
        Trues().run()
    ''')


def pool(count: int, jobs: int) -> float:
    """Seconds for a thread pool of ``jobs`` to run ``count`` commands and collect their exit codes."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as workers:
        codes = list(workers.map(lambda _: subprocess.run(COMMAND, check=False).returncode,
                                 range(count)))
    seconds = time.perf_counter() - started
    if codes != [0] * count:
        raise SystemExit("the pool's commands failed")
    return seconds


def engine_alone(count: int, jobs: int, directory: str) -> float:
    """Seconds for the engine to run ``count`` commands of a session filled beforehand."""
    from gc3session import Application, Session
    from gc3session.engine import GROUP_COMMIT_INTERVAL, Engine

    path = os.path.join(directory, "engine-session")
    with Session(path) as session:
        for i in range(count):
            session.add(Application(COMMAND, jobname=f"true-{i}", stdout=None, stderr=None,
                                    output_dir=os.path.join(directory, "out")), flush=False)
        session.flush()
        engine = Engine(session, max_in_flight=jobs, commit_interval=GROUP_COMMIT_INTERVAL)
        started = time.perf_counter()
        counts = engine.run_until_done(poll_interval=1.0)
        seconds = time.perf_counter() - started
        engine.close()
    check_session(path, count)
    if counts["ok"] != count:
        raise SystemExit(f"engine run incomplete: {counts}")
    return seconds


def whole_run(count: int, jobs: int, directory: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of ``python script.py -s DIR -C 1 -J jobs`` from start to exit."""
    script = os.path.join(directory, "trues.py")
    with open(script, "w") as stream:
        stream.write(SCRIPT)
    path = os.path.join(directory, "script-session")
    env = dict(os.environ, BENCH_TASKS=str(count))
    argv = [sys.executable, script, "-s", path, "-C", "1", "-J", str(jobs),
            "-o", os.path.join(directory, "script-out")]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=directory, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"the script exited with status {proc.returncode}")
    check_session(path, count)
    return seconds, usage.ru_maxrss / 1024


def check_session(path: str, count: int) -> None:
    """Reopen ``path`` from disk: every one of ``count`` tasks TERMINATED with status 0."""
    from gc3session import Session

    with Session(path, mode="r") as session:
        states = session.states()
        failed = [t for t in session if t.execution.returncode != 0]
    if len(states) != count or set(states.values()) != {"TERMINATED"} or failed:
        raise SystemExit(f"{path}: not every task is TERMINATED with status 0 on disk")


def run_true(_: Any) -> int:
    """The ``client.map`` side of the Dask figure: one command, its exit code."""
    return subprocess.run(COMMAND, check=False).returncode


def dask_figures(count: int, jobs: int, directory: str) -> tuple[float, float]:
    """(seconds of the engine on Dask, seconds of ``client.map``) on a LocalCluster of 2 workers."""
    import distributed

    from gc3session import Application, Session
    from gc3session.engine import GROUP_COMMIT_INTERVAL, Engine

    with distributed.LocalCluster(n_workers=2, threads_per_worker=max(1, jobs // 2),
                                  processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.submit(run_true, -1).result()  # workers warm, like the engine's first pass
        started = time.perf_counter()
        codes = client.gather(client.map(run_true, range(count), pure=False))
        plain = time.perf_counter() - started
        if codes != [0] * count:
            raise SystemExit("client.map's commands failed")
        path = os.path.join(directory, "dask-session")
        with Session(path) as session:
            for i in range(count):
                session.add(Application(COMMAND, jobname=f"true-{i}", stdout=None, stderr=None,
                                        output_dir=os.path.join(directory, "dask-out")), flush=False)
            session.flush()
            engine = Engine(session, executor=f"dask://{cluster.scheduler_address}",
                            max_in_flight=jobs, commit_interval=GROUP_COMMIT_INTERVAL)
            started = time.perf_counter()
            counts = engine.run_until_done(poll_interval=1.0)
            ours = time.perf_counter() - started
            engine.close()
        if counts["ok"] != count:
            raise SystemExit(f"engine run on Dask incomplete: {counts}")
    return ours, plain


def measure(argv: list[str] | None = None) -> Report:
    """Run the benchmark with command-line arguments ``argv``; return its report."""
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--jobs", type=int, default=8, help="commands at once (default 8)")
        parser.add_argument("--dask-tasks", type=int, help="commands on Dask (10,000; 200 quick)")
        parser.add_argument("--no-dask", action="store_true", help="leave Dask out")

    args = _common.parse_args(__doc__.split("\n\n")[0], DEFAULT_SIZES, QUICK_SIZES, argv, extra)
    report = Report("gc3session runner: the engine and a whole script run beside a thread pool")
    report.section(f"{' '.join(COMMAND)!r} x N, {args.jobs} at a time; anchor: a thread pool of"
                   f" {args.jobs} running subprocess.run")
    for n in sorted(args.sizes):
        with _common.scratch(f"runner-{n}") as directory:
            anchor = pool(n, args.jobs)
            alone = engine_alone(n, args.jobs, directory)
            anchor_again = pool(n, args.jobs)  # before and after: the machine's load drifts
            script_s, rss = whole_run(n, args.jobs, directory)
            anchor = min(anchor, anchor_again)
        report.row(f"engine alone (-J {args.jobs}, group commit)", n, alone, "s", anchor)
        report.row(f"whole run: script -C 1 -J {args.jobs}, adding included", n, script_s, "s",
                   anchor, peak_mib=rss)
        report.note(f"N={n:,}: whole run {script_s / anchor:.2f}x the pool, engine alone"
                    f" {alone / anchor:.2f}x; driver peak RSS {rss:,.0f} MiB")
        report.target(f"whole run <= 1.3x the pool, N={n:,}", f"{script_s / anchor:.2f}x",
                      script_s <= 1.3 * anchor)
    if not args.no_dask:
        count = args.dask_tasks or (200 if args.quick else 10_000)
        with _common.scratch("runner-dask") as directory:
            ours, plain = dask_figures(count, args.jobs, directory)
        report.row("Dask: engine on a LocalCluster of 2 workers", count, ours, "s", plain)
        report.target(f"Dask <= 1.5x client.map, N={count:,}", f"{ours / plain:.2f}x",
                      ours <= 1.5 * plain)
    return report


def main(argv: list[str] | None = None) -> int:
    return measure(argv).finish()


if __name__ == "__main__":
    sys.exit(main())
