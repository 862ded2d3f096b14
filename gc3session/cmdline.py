"""``SessionBasedScript``: command-line programs that run a session to the end.

A gc3libs script ports by changing its imports::

    from gc3session.cmdline import SessionBasedScript
    from gc3session import Application

    class Squares(SessionBasedScript):
        '''Compute squares.'''
        def __init__(self):
            super().__init__(version="1.0")
        def new_tasks(self, extra):
            return [Application(["expr", str(n), "*", str(n)], jobname=f"sq-{n}", **extra)
                    for n in range(10)]

    if __name__ == "__main__":
        Squares().run()

Lifecycle of one run: parse options; create or open the session (``-s``);
take the session's driver lock; with ``-N`` kill and remove the old tasks;
if the session is empty, call ``new_tasks(extra)`` and add what it returns
(names already in the session are skipped); then drive the tasks with an
:class:`~gc3session.engine.Engine`: one pass, or with ``-C SECONDS`` until
all are done; print the status table; set the ``finished`` time stamp when
every task is done (exit status 0 or 2).

Exit status
-----------
==========  ===========================================================
0           every task ended and succeeded
bit 2       some tasks failed
bit 4       some tasks are still running (run again to follow them)
bit 8       some tasks have not started yet (run again)
13          interrupted by Ctrl-C: state saved, commands left running
            (the next run follows them)
64          usage error
69          the session is being driven by another process
1           any other error (the message says which)
==========  ===========================================================
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import re
import sys
import time
from typing import Any, Iterable, NoReturn

from .engine import RESUME_POLICIES, Engine
from .exceptions import Error, InvalidValue
from .progress import ProgressReporter, status_table, task_table
from .session import Session
from .sessionlock import SessionBusyError, driver_lock
from .task import State, Task

EXIT_INTERRUPTED = 13
EXIT_USAGE = 64
EXIT_LOCKED = 69


class UsageError(Error, ValueError):
    """A command-line option is missing or wrong (exit status 64)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class SessionBasedScript:
    """Base class of scripts that create a session's tasks and run them.

    :param version: the script's version (``--version``).
    :param description: overrides the class docstring as ``--help`` text.
    :param default_session: the ``-s`` default (``./<script name>``).

    Subclasses override :meth:`new_tasks`, and may add options in
    :meth:`setup_args` (call ``super()``) and look at ``self.params``.
    """

    def __init__(self, version: str = "unknown", description: str | None = None,
                 default_session: str | None = None, **kwargs: Any) -> None:
        self.version = version
        self.name = os.path.splitext(os.path.basename(sys.argv[0] or "script"))[0] or "script"
        self.description = description or (type(self).__doc__ or "").strip()
        self.default_session = default_session or os.path.join(os.getcwd(), self.name)
        self.params: argparse.Namespace = argparse.Namespace()
        self.extra: dict[str, Any] = {}
        self.session: Session | None = None
        self.parser = _Parser(prog=self.name, description=self.description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        self.setup_args(self.parser)

    # --- extension points -------------------------------------------------------
    def setup_args(self, parser: argparse.ArgumentParser) -> None:
        """Declare the options (gc3libs' names); subclasses add theirs after ``super()``."""
        parser.add_argument("--version", action="version", version=f"%(prog)s {self.version}")
        parser.add_argument("-v", "--verbose", action="count", default=0,
                            help="more messages (repeat for even more)")
        parser.add_argument("-s", "--session", default=self.default_session,
                            help="session directory (default: %(default)s)")
        parser.add_argument("-u", "--store-url", default=None,
                            help="store for a new session: a URL, or 'sqlite' / 'file' for one"
                                 " inside the session directory")
        parser.add_argument("-N", "--new-session", action="store_true",
                            help="kill and remove the session's tasks, then start anew")
        parser.add_argument("-C", "--continuous", "--watch", type=_positive_int, default=0,
                            metavar="SECONDS", help="keep running until every task is done,"
                            " checking at least every SECONDS (default: one pass)")
        parser.add_argument("-J", "--max-running", type=_positive_int, default=50, metavar="NUM",
                            help="run at most NUM commands at once (default: %(default)s)")
        parser.add_argument("-o", "--output", default=os.path.join(os.getcwd(), "NAME"),
                            metavar="DIR", help="output directory of each task; NAME, SESSION,"
                            " DATE and TIME are replaced (default: %(default)s)")
        parser.add_argument("-l", "--state", nargs="?", const=",".join(s.value for s in State),
                            default="", metavar="STATES", help="after the summary, list the"
                            " tasks in these states (comma-separated; also 'ok', 'failed')")
        parser.add_argument("-c", "--cpu-cores", type=_positive_int, default=1, metavar="NUM",
                            help="cores each task requests (default: %(default)s)")
        parser.add_argument("-m", "--memory-per-core", type=parse_memory, default=None,
                            metavar="MEM", help="memory per core, e.g. 2GB (enforced as an"
                            " address-space limit on the local executor)")
        parser.add_argument("-w", "--wall-clock-time", type=parse_duration, default=None,
                            metavar="DURATION", help="wall time limit per task, e.g. '8 hours'")
        parser.add_argument("-x", "--executor", default="local",
                            help="'local' (default) or dask://HOST:PORT")
        parser.add_argument("--resume-policy", choices=RESUME_POLICIES, default="rerun",
                            help="what to do with tasks whose run was lost while no driver"
                                 " watched (default: %(default)s)")

    def new_tasks(self, extra: dict[str, Any]) -> Iterable[Any]:
        """Return the tasks of a new session; ``extra`` holds the per-task defaults."""
        return []

    # --- running ------------------------------------------------------------------
    def run(self) -> None:
        """Run the script and exit with its status (what gc3libs scripts call last)."""
        sys.exit(self.main())

    def main(self, argv: list[str] | None = None) -> int:
        """Run the script with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
        try:
            self.params = self.parser.parse_args(argv)
        except UsageError as err:
            print(f"{self.name}: {err}\nType '{self.name} --help' for usage.", file=sys.stderr)
            return EXIT_USAGE
        logging.basicConfig(level=max(logging.DEBUG, logging.WARNING - 10 * self.params.verbose),
                            format=f"{self.name}: %(levelname)s: %(message)s")
        try:
            return self._main()
        except SessionBusyError as err:
            print(f"{self.name}: {err}", file=sys.stderr)
            return EXIT_LOCKED
        except UsageError as err:
            print(f"{self.name}: {err}\nType '{self.name} --help' for usage.", file=sys.stderr)
            return EXIT_USAGE
        except Error as err:
            print(f"{self.name}: error: {err}", file=sys.stderr)
            return 1

    def _main(self) -> int:
        params = self.params
        self.session = session = Session(params.session, store_or_url=self._store_url())
        with driver_lock(session.path):
            engine = Engine(session, executor=params.executor, max_in_flight=params.max_running,
                            resume_policy=params.resume_policy)
            try:
                if params.new_session:
                    self._abort_all(engine)
                if len(session) == 0:
                    for task in self._make_tasks():
                        engine.add(task)
                    session.flush()
                else:
                    logging.warning("session already exists, some command-line arguments"
                                    " might be ignored")
                rc = self._loop(engine)
            except KeyboardInterrupt:
                engine.close()
                print(f"{self.name}: exiting upon user request (Ctrl+C); running commands go on"
                      " and the next run follows them", file=sys.stderr)
                return EXIT_INTERRUPTED
            if rc in (0, 2):
                session.set_end_timestamp()
            engine.close()
            return rc

    def _loop(self, engine: Engine) -> int:
        reporter = ProgressReporter(sys.stderr)
        try:
            if self.params.continuous:
                engine.run_until_done(poll_interval=self.params.continuous,
                                      on_progress=lambda e: reporter.update(e.counts()))
            else:
                engine.progress()
        finally:
            reporter.close()
        counts = engine.counts()
        self._print_status(counts)
        return exit_status(counts)

    def _store_url(self) -> str | None:
        url = self.params.store_url
        path = os.path.abspath(self.params.session)
        if url == "sqlite":
            return f"sqlite:///{path}/jobs.db"
        if url == "file":
            return f"file://{path}/jobs"
        return url

    def _abort_all(self, engine: Engine) -> None:
        session = engine.session
        for task in list(session):
            engine.kill(task)
        for task_id in session.list_ids():
            session.remove(task_id, flush=False)
        session.flush()
        engine.forget_all()

    def _make_tasks(self) -> list[Task]:
        params = self.params
        output = params.output
        if "NAME" not in output and "ITER" not in output:
            output = os.path.join(output, "NAME")
        now = datetime.datetime.now()
        output = (output.replace("SESSION", params.session + ".out")
                  .replace("DATE", now.strftime("%Y-%m-%d")).replace("TIME", now.strftime("%H:%M")))
        self.extra = {
            "requested_cores": params.cpu_cores,
            "requested_memory": params.memory_per_core * params.cpu_cores
            if params.memory_per_core else None,
            "requested_walltime": params.wall_clock_time,
            "output_dir": output,
        }
        existing = self.session.list_names() if self.session is not None else set()
        tasks: list[Task] = []
        for index, item in enumerate(self.new_tasks(dict(self.extra))):
            task = _build_task(item, self.extra)
            if getattr(task, "jobname", None) is None:
                task.jobname = f"{type(task).__name__}-N{index + 1}"
            if task.jobname in existing:
                continue
            existing.add(task.jobname)
            _expand_output_dir(task, output)
            tasks.append(task)
        return tasks

    def _print_status(self, counts: dict[str, int]) -> None:
        assert self.session is not None
        now = time.strftime("%X, %x")
        print(f"Status of jobs in the '{self.session.name}' session: (at {now})")
        if counts["total"] == 0:
            print(f"  There are no tasks in session '{self.session.name}'.")
            return
        print(status_table(counts))
        if self.params.state:
            wanted = set(self.params.state.split(","))
            rows = [t for t in self.session if any(t.execution.in_state(s) for s in wanted)]
            if rows:
                print(task_table(rows))


def exit_status(counts: dict[str, int]) -> int:
    """gc3libs' bit field: 2 = some failed, 4 = some running, 8 = some not started."""
    rc = 0
    if counts.get("failed", 0):
        rc |= 2
    if counts.get("RUNNING", 0) or counts.get("SUBMITTED", 0) or counts.get("TERMINATING", 0) \
            or counts.get("UNKNOWN", 0) or counts.get("STOPPED", 0):
        rc |= 4
    if counts.get("NEW", 0):
        rc |= 8
    return rc


def _build_task(item: Any, extra: dict[str, Any]) -> Task:
    if isinstance(item, Task):
        return item
    if isinstance(item, tuple) and len(item) == 4:  # gc3libs' deprecated (jobname, cls, args, kwargs)
        jobname, cls, args, kwargs = item
        merged = dict(extra)
        merged.update(kwargs)
        merged.setdefault("jobname", jobname)
        return cls(*args, **merged)  # type: ignore[no-any-return]
    raise InvalidValue(f"new_tasks() must return Task objects, not {item!r}")


def _expand_output_dir(task: Task, template: str) -> None:
    """Replace NAME by the job name in ``output_dir``, children included (gc3libs missed them)."""
    current = getattr(task, "output_dir", None)
    if current is not None and task.jobname and "NAME" in current:
        task.output_dir = os.path.abspath(current.replace("NAME", task.jobname))
    for child in getattr(task, "tasks", None) or ():
        _expand_output_dir(child, template)


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_DURATIONS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60,
              "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
              "days": 86400}


def parse_memory(text: str) -> int:
    """``"2GB"`` -> 2000000000 bytes (KB/MB/GB/TB are decimal, KiB/MiB/GiB binary)."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    unit = match and match[2].upper()
    if not match or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a memory size: {text!r} (e.g. 512MB, 2GB, 4GiB)")
    return int(float(match[1]) * _UNITS[unit])


def parse_duration(text: str) -> float:
    """``"8 hours"``, ``"90m"``, ``"3600"`` -> seconds."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    unit = match and (match[2].lower() or "s")
    if not match or unit not in _DURATIONS:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 90 minutes, 8 hours)")
    return float(match[1]) * _DURATIONS[unit]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {text!r}")
    return value


__all__ = ["EXIT_INTERRUPTED", "EXIT_LOCKED", "EXIT_USAGE", "SessionBasedScript", "UsageError",
           "exit_status", "parse_duration", "parse_memory"]
