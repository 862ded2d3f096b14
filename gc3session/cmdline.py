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
``-u``); take the session's driver lock; if the session has no task and a
store that was never usable, put it on the store ``-u`` (or ``-N``) names
now (:mod:`gc3session.restart`); load the session, taking the tasks whose
records cannot be loaded out of it (:mod:`gc3session.quarantine`; if none
loads, stop with the first error and change nothing); with
``--redo-failed`` put the failed tasks back to NEW (:mod:`gc3session.redo`);
with ``-N`` kill and remove the old tasks; if the session is empty, call
``new_tasks(extra)`` and add all it returns in one batch (a task whose
creator gave it no name is named ``<class name>-N<k>``, *k* being its
position, from 1, in what ``new_tasks`` returned; a name given twice is
kept twice, with a warning); then drive the tasks with an
:class:`~gc3session.engine.Engine`: one pass, or with ``-C SECONDS`` until
all are done, waiting at most SECONDS between passes (less when a command
ends); print the status table, then the elapsed time, the failed tasks, the
tasks taken out of the session and the command that runs the failed ones
again (:mod:`gc3session.runsummary`), then the ``-l`` table; call
:meth:`SessionBasedScript.after_main_loop`; set the ``finished`` time stamp
when every task is done (exit status 0 or 2).

Ctrl-C (SIGINT) never cuts a pass in half: the pass in progress completes
and saves, then the script exits with status 13.  Running commands are left
running (they are in their own process sessions, so the terminal's Ctrl-C
does not reach them either); the next run follows them, or collects their
results if they ended meanwhile.

Exit status
-----------
==========  ===========================================================
0           every task ended and succeeded
bit 2       some tasks failed (or were taken out of the session because
            their records cannot be loaded)
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
import inspect
import logging
import os
import signal
import sys
import time
from typing import Any, Iterable, Iterator

from . import runsummary
from .cliplumbing import (
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_USAGE,
    ArgumentParser,
    UsageError,
    report_error,
    warn,
)
from .engine import GROUP_COMMIT_INTERVAL, Engine
from .exceptions import Error, InvalidValue, LoadError
from .newtasks import build_tasks, task_defaults
from .persistence.url import StoreUrl
from .progress import ProgressReporter, status_table, task_table
from .quarantine import quarantine
from .redo import redo_tasks, select
from .restart import replace_unused_store
from .scriptoptions import add_gc3pie_names, add_standard_options, check_list_states, store_url
from .session import Session
from .sessionlock import driver_lock
from .task import Task

log = logging.getLogger(__name__)


class SessionBasedScript:
    """Base class of scripts that create a session's tasks and run them.

    :param version: the script's version (``--version``).
    :param description: overrides the class docstring as ``--help`` text.
    :param default_session: the ``-s`` default (``./<script name>``).
    :param name: the script's name (default: the base name of ``sys.argv[0]``).

    Any other keyword argument becomes an attribute of the script, as in
    GC3Pie (``application=...``, ``input_filename_pattern=...``).

    Subclasses override :meth:`new_tasks` and declare their own options in
    either style: GC3Pie's, :meth:`setup_options` and :meth:`setup_args`
    taking no argument and calling :meth:`add_param`; or
    ``setup_args(self, parser)`` calling ``super().setup_args(parser)`` and
    ``parser.add_argument``.  Options declared again replace the standard
    ones (argparse's "resolve" conflict handler, as in GC3Pie).  After
    parsing, :meth:`parse_args` is called, then ``self.params`` holds the
    values; GC3Pie's names for the standard ones are there too
    (``ncores``, ``wait``, ``resource_name``, ``config_files``).  Messages
    go through ``self.log`` (``-v`` shows more), as ``gc3session.log`` does.
    """

    def __init__(self, version: str = "unknown", description: str | None = None,
                 default_session: str | None = None, **kwargs: Any) -> None:
        self.name = str(kwargs.pop("name", None) or _script_name())
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.version = version
        self.description = description or (type(self).__doc__ or "").strip()
        self.default_session = default_session or os.path.join(os.getcwd(), self.name)
        self.params: argparse.Namespace = argparse.Namespace()
        self.extra: dict[str, Any] = {}
        self.session: Session | None = None
        self.log = logging.getLogger("gc3session").getChild(self.name.replace(".", "_"))
        self.parser = ArgumentParser(prog=self.name, description=self.description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     conflict_handler="resolve")
        add_standard_options(self.parser, self.version, self.default_session)
        self.setup_options()
        if type(self).setup_args is SessionBasedScript.setup_args:
            # GC3Pie's default: input paths, replaced by whatever a script declares instead
            self.add_param("args", nargs="*", metavar="INPUT",
                           help="input files or directories (self.params.args)")
        elif _takes_argument(self.setup_args):
            self.setup_args(self.parser)
        else:
            self.setup_args()  # GC3Pie's signature

    # --- extension points -------------------------------------------------------
    def add_param(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """Declare an option or a positional argument (``argparse``'s ``add_argument``; GC3Pie's name)."""
        return self.parser.add_argument(*args, **kwargs)

    def setup_options(self) -> None:
        """Declare more options with :meth:`add_param` (GC3Pie hook; nothing by default)."""

    def setup_args(self, parser: argparse.ArgumentParser | None = None) -> None:
        """Declare positional arguments (and options).

        Not overridden, a script takes any number of input paths
        (``self.params.args``), as GC3Pie's do.  Overrides either take no
        argument and call :meth:`add_param` (GC3Pie's style), or take the
        parser and call ``super().setup_args(parser)`` first; calling this
        one adds nothing.
        """

    def parse_args(self) -> None:
        """Check or complete ``self.params`` after parsing, before the session opens (GC3Pie hook).

        Raise :class:`UsageError` for a wrong command line (exit status 64).
        """

    def new_tasks(self, extra: dict[str, Any]) -> Iterable[Any]:
        """Return the tasks of a new session; ``extra`` holds the per-task defaults."""
        return []

    # --- running ------------------------------------------------------------------
    def run(self) -> None:
        """Run the script and exit with its status (what gc3libs scripts call last)."""
        sys.exit(self.main())

    def main(self, argv: list[str] | None = None) -> int:
        """Run the script with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
        self._started = time.monotonic()
        self._args = list(argv) if argv is not None else sys.argv[1:]
        self._prefix = runsummary.command_prefix() if argv is None else [sys.argv[0]]
        try:
            self.params = self.parser.parse_args(argv)
        except UsageError as err:
            return report_error(self.name, err, sys.stderr)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{self.name}: %(levelname)s: %(message)s"))
        package = logging.getLogger("gc3session")
        level = package.level
        package.addHandler(handler)
        package.setLevel(max(logging.DEBUG, logging.WARNING - 10 * self.params.verbose))
        try:
            add_gc3pie_names(self.params, self.log)
            self.parse_args()
            return self._main()
        except (Error, KeyboardInterrupt) as err:
            # a KeyboardInterrupt here came before any task ran (opening the session)
            return report_error(self.name, err, sys.stderr)
        finally:
            package.removeHandler(handler)
            package.setLevel(level)

    def _main(self) -> int:
        params = self.params
        path = os.path.abspath(params.session)
        url = store_url(params)
        check_list_states(params)
        # create the session if needed, but load it only under the driver lock:
        # what another driver saved before it let go must be what this one sees
        Session(path, store_or_url=url, load=False).close()
        with driver_lock(path):
            if url is not None or params.new_session:
                self._replace_unused_store(path, url, broken_only=url is None)
            with Session(path, store_or_url=url, ignore_errors=True) as session:
                return self._drive(session)

    def _drive(self, session: Session) -> int:
        params = self.params
        self.session = session
        self._set_aside = self._quarantine(session)
        if params.redo_failed:
            redone = redo_tasks(session, select(session, states=["FAILED"]))
            if redone:
                print(f"{self.name}: running {len(redone)} failed task(s) again:"
                      f" {', '.join(item.id for item in redone)}", file=sys.stderr)
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

    def _replace_unused_store(self, path: str, url: "StoreUrl | str | None",
                              broken_only: bool) -> None:
        """A session whose first start never got a task takes the store asked for now (-u, -N)."""
        said = replace_unused_store(path, url, broken_only=broken_only)
        if said:
            warn(self.name, said, sys.stderr)

    def _quarantine(self, session: Session) -> list[str]:
        """Take the tasks that cannot be loaded out of the session; their records stay.

        If not one task loads, the cause is rather the environment (a module
        not on the path) than the records: nothing is changed, and the first
        error is raised.
        """
        errors = session.load_errors
        if not errors:
            return []
        if len(errors) == len(session):
            first, err = next(iter(errors.items()))
            raise LoadError(f"none of the {len(errors)} tasks of session {session.path} can be"
                            f" loaded ({first}: {err}); nothing was changed. Is the module that"
                            " defines the task classes importable from here?",
                            id=first, location=getattr(err, "location", None))
        done = quarantine(session, errors)
        for item in done:
            warn(self.name, item.describe(session.path), sys.stderr)
        return [item.describe(session.path) for item in done]

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
        self._print_summary()
        self._print_tasks()
        self.after_main_loop()
        # a task set aside this run did not end well: bit 2, as a failed one
        return exit_status(counts) | (2 if self._set_aside else 0)

    def _print_summary(self) -> None:
        """Time, failures, tasks set aside, and the command that runs the failed ones again."""
        assert self.session is not None
        print(runsummary.render(
            self.session.path, time.monotonic() - self._started,
            list(runsummary.failures(self.session)), self._set_aside,
            runsummary.rerun_command(self._prefix, self._args)))

    def after_main_loop(self) -> None:
        """Called after each run's status table (gc3libs hook); ``self.session`` is open."""

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
        self.extra = task_defaults(self.params)
        return build_tasks(self.new_tasks(dict(self.extra)), self.extra)

    def _print_status(self, counts: dict[str, int]) -> None:
        assert self.session is not None
        now = time.strftime("%X, %x")
        print(f"Status of jobs in the '{self.session.name}' session: (at {now})")
        if counts["total"] == 0:
            print(f"  There are no tasks in session '{self.session.name}'.")
            return
        print(status_table(counts))

    def _print_tasks(self) -> None:
        """The tasks in the states ``-l`` names, after the summary."""
        assert self.session is not None
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


def _script_name() -> str:
    return os.path.splitext(os.path.basename(sys.argv[0] or "script"))[0] or "script"


def _takes_argument(method: Any) -> bool:
    """True if ``setup_args`` is gc3session's ``(self, parser)``, False for GC3Pie's ``(self)``."""
    return bool(inspect.signature(method).parameters)


__all__ = ["EXIT_INTERRUPTED", "EXIT_LOCKED", "EXIT_USAGE", "SessionBasedScript", "UsageError",
           "exit_status"]
