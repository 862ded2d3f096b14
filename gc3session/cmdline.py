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

Lifecycle of one run: parse options; create the session if needed (``-s``,
``-u``); take the session's driver lock, then load the session; with ``-N``
kill and remove the old tasks; if the session is empty, call
``new_tasks(extra)`` and add all it returns in one batch (a task whose
creator gave it no name is named ``<class name>-N<k>``, *k* being its
position, from 1, in what ``new_tasks`` returned; a name given twice is
kept twice, with a warning); then drive the tasks with an
:class:`~gc3session.engine.Engine`: one pass, or with ``-C SECONDS`` until
all are done, waiting at most SECONDS between passes (less when a command
ends); print the status table, call :meth:`SessionBasedScript.after_main_loop`;
set the ``finished`` time stamp when every task is done (exit status 0 or 2).

Ctrl-C (SIGINT) never cuts a pass in half: the pass in progress completes
and saves, then the script exits with status 13.  Running commands are left
running (they are in their own process sessions, so the terminal's Ctrl-C
does not reach them either); the next run follows them, or collects their
results if they ended meanwhile.

Exit status
-----------
==========  ===========================================================
0           every task ended and succeeded
bit 2       some tasks failed
bit 4       some tasks are still running, or UNKNOWN (run again)
bit 8       some tasks have not started yet (run again)
13          interrupted by Ctrl-C (SIGINT): state saved, commands left
            running (the next run follows them)
64          usage error
69          the session is being driven by another process
1           any other error (the message says which)
==========  ===========================================================
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import re
import signal
import sys
import time
from typing import Any, Iterable, Iterator, NoReturn

from .engine import GROUP_COMMIT_INTERVAL, RESUME_POLICIES, Engine
from .exceptions import Error, InvalidValue
from .persistence.url import StoreUrl
from .progress import ProgressReporter, status_table, task_table
from .session import Session
from .sessionlock import SessionBusyError, driver_lock
from .task import State, Task, has_default_jobname

EXIT_INTERRUPTED = 13
EXIT_USAGE = 64
EXIT_LOCKED = 69


log = logging.getLogger(__name__)


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
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{self.name}: %(levelname)s: %(message)s"))
        package = logging.getLogger("gc3session")
        level = package.level
        package.addHandler(handler)
        package.setLevel(max(logging.DEBUG, logging.WARNING - 10 * self.params.verbose))
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
        except KeyboardInterrupt:  # before any task ran (opening the session): nothing to save
            print(f"{self.name}: exiting upon user request (Ctrl+C)", file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            package.removeHandler(handler)
            package.setLevel(level)

    def _main(self) -> int:
        params = self.params
        path = os.path.abspath(params.session)
        url = self._store_url()
        self._check_states()
        # create the session if needed, but load it only under the driver lock:
        # what another driver saved before it let go must be what this one sees
        Session(path, store_or_url=url, load=False).close()
        with driver_lock(path), Session(path, store_or_url=url) as session:
            self.session = session
            try:
                # group commit: the status table and the progress line report only what is on disk
                engine = Engine(session, executor=params.executor, max_in_flight=params.max_running,
                                resume_policy=params.resume_policy,
                                commit_interval=GROUP_COMMIT_INTERVAL)
            except InvalidValue as err:  # an unknown -x executor
                raise UsageError(str(err)) from err
            guard = _InterruptGuard()
            try:
                if params.new_session:
                    with guard.deferred():
                        self._abort_all(engine)
                if len(session) == 0:
                    tasks = self._make_tasks()
                    with guard.deferred():  # all of them or none: a half-added session is never seen
                        for task in tasks:
                            engine.add(task)
                        session.flush()
                else:
                    log.warning("session already exists, some command-line arguments might be ignored")
                rc = self._loop(engine, guard)
                if rc in (0, 2):
                    session.set_end_timestamp()
                return rc
            except KeyboardInterrupt:
                print(f"{self.name}: exiting upon user request (Ctrl+C); running commands go on"
                      " and the next run follows them", file=sys.stderr)
                return EXIT_INTERRUPTED
            finally:
                engine.close()  # saves what is left; running commands go on

    def _loop(self, engine: Engine, guard: "_InterruptGuard") -> int:
        reporter = ProgressReporter(sys.stderr)
        try:
            while True:
                with guard.deferred():
                    engine.progress()
                reporter.update(engine.counts)
                if not self.params.continuous or engine.idle:
                    break
                engine.wait(self.params.continuous)
        finally:
            reporter.close(engine.counts)
        counts = engine.counts()
        self._print_status(counts)
        self.after_main_loop()
        return exit_status(counts)

    def after_main_loop(self) -> None:
        """Called after each run's status table (gc3libs hook); ``self.session`` is open."""

    def _check_states(self) -> None:
        known = {s.value for s in State} | {"ok", "failed"}
        unknown = [s for s in self.params.state.split(",") if s and s not in known]
        if unknown:
            raise UsageError(f"unknown state {', '.join(unknown)} for -l; known: {', '.join(sorted(known))}")

    def _store_url(self) -> StoreUrl | str | None:
        """The ``-u`` store: ``sqlite`` and ``file`` name one inside the session directory.

        Those URLs are built from the path (never by pasting it into a URL
        string, where a ``#`` or ``?`` in a directory name would cut it short).
        """
        url = self.params.store_url
        path = os.path.abspath(self.params.session)
        if url == "sqlite":
            return StoreUrl.for_path("sqlite", os.path.join(path, "jobs.db"))
        if url == "file":
            return StoreUrl.for_path("file", os.path.join(path, "jobs"))
        return url

    def _abort_all(self, engine: Engine) -> None:
        session = engine.session
        for task in list(session):
            engine.kill(task)
        for task_id in session.list_ids():
            session.remove(task_id, flush=False)
        session.flush()
        session.clear_end_timestamp()  # the new tasks have not finished yet
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
        # Called only for an empty session, so no name can clash with an earlier
        # task's: GC3Pie's skipping of names already in the session has nothing to do.
        tasks: list[Task] = []
        seen: set[str] = set()
        for index, item in enumerate(self.new_tasks(dict(self.extra))):
            task = _build_task(item, self.extra)
            if has_default_jobname(task):
                task.jobname = f"{type(task).__name__}-N{index + 1}"
            if task.jobname in seen:
                log.warning("new_tasks() returned more than one task named %r; adding them all",
                            task.jobname)
            seen.add(task.jobname)
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


class _InterruptGuard:
    """Hold Ctrl-C back while the engine changes and saves state.

    Inside :meth:`deferred` a SIGINT only sets a flag; leaving the block
    raises the ``KeyboardInterrupt`` then, once the pass has saved what it
    did.  Outside (while waiting for commands), Ctrl-C interrupts at once.
    """

    def __init__(self) -> None:
        self.pending = False

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        try:
            previous = signal.signal(signal.SIGINT, self._hold)
        except ValueError:  # not the main thread, which alone receives signals
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
        if self.pending:
            raise KeyboardInterrupt

    def _hold(self, signum: int, frame: Any) -> None:
        self.pending = True


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
