"""The Dask executor against a real cluster: a scheduler and two workers on loopback.

The cluster is started once for this module as three separate processes
(``python -m distributed.cli.dask_scheduler`` and two
``python -m distributed.cli.dask_worker --nthreads 1``), on 127.0.0.1 with
ports chosen by the system (the scheduler writes its address to a scheduler
file) and no dashboard.  Commands that must stay running while a test looks
at them wait for a "gate" file the test creates, so no test depends on how
fast the machine is.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pytest

from gc3session import Application, Session
from gc3session.engine import Engine
from gc3session.exceptions import InvalidValue
from gc3session.executors import EXIT_FILE, Executor, Outcome, make_executor
from gc3session.executors.dask import DaskExecutor, SchedulerUnavailableError, run_command

START_TIMEOUT = 60.0
RUN_TIMEOUT = 30.0

# A command that waits for the file "go" in its working directory (at most about a
# minute, so that a failed test leaves no command behind), then prints "done".
GATE = "i=0; while [ ! -e go ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done"
GATED = ["sh", "-c", f"echo $$ > pid; {GATE}; echo done"]


@contextlib.contextmanager
def dask_cluster(directory: Path, workers: int = 2,
                 env: dict[str, str] | None = None) -> Iterator[str]:
    """Run a scheduler and ``workers`` one-thread workers as processes; yield the address.

    Every process is stopped on exit (SIGTERM, then SIGKILL after 5 s: a worker
    waits for the commands it runs, which the tests keep short).
    ``env`` is the workers' environment (the commands they run inherit it).
    """
    directory.mkdir(parents=True, exist_ok=True)
    scheduler_file = directory / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(argv: list[str], log: str, environment: dict[str, str] | None = None) -> None:
        with open(directory / log, "wb") as stream:
            procs.append(subprocess.Popen([sys.executable, "-m", *argv], stdin=subprocess.DEVNULL,
                                          stdout=stream, stderr=subprocess.STDOUT,
                                          cwd=directory, env=environment, start_new_session=True))

    try:
        spawn(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
               "--no-dashboard", "--scheduler-file", str(scheduler_file),
               "--idle-timeout", "900"], "scheduler.log")
        address = _wait_for(lambda: _address_in(scheduler_file), START_TIMEOUT,
                            f"the scheduler to write {scheduler_file}", procs, directory)
        for number in range(workers):
            spawn(["distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                   "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard",
                   "--death-timeout", "60", "--local-directory", str(directory / f"w{number}")],
                  f"worker-{number}.log", env)
        executor = DaskExecutor(address, connect_timeout=START_TIMEOUT)
        try:
            executor._client.wait_for_workers(workers, timeout=START_TIMEOUT)
        finally:
            executor.close()
        yield address
    finally:
        for proc in reversed(procs):  # the workers first: they say goodbye to the scheduler
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _address_in(scheduler_file: Path) -> str | None:
    try:
        return str(json.loads(scheduler_file.read_text())["address"])
    except (OSError, ValueError, KeyError):
        return None


def _wait_for(check: Callable[[], Any], timeout: float, what: str,
              procs: Sequence[subprocess.Popen[bytes]] = (), logs: Path | None = None) -> Any:
    """Return ``check()`` once it is true; fail after ``timeout`` seconds or if a process died."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        dead = [p.args for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            text = "".join(f"\n--- {p.name}\n{p.read_text()}" for p in sorted(logs.glob("*.log"))) \
                if logs else ""
            pytest.fail(f"gave up waiting for {what} (dead: {dead}){text}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def dask_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dask_cluster(tmp_path_factory.mktemp("dask-cluster")) as address:
        yield address


@pytest.fixture
def executor(dask_address: str) -> Iterator[DaskExecutor]:
    ex = make_executor(f"dask://{dask_address.split('://', 1)[1]}")
    assert isinstance(ex, DaskExecutor)
    yield ex
    ex.close()


def _workdir(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.mkdir()
    return str(path)


def _outcome(executor: Executor, task: Any, handle: dict[str, Any]) -> Outcome:
    """Poll (waiting in between) until the run ends; fail after RUN_TIMEOUT."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while (outcome := executor.poll(task, handle)) is None:
        assert time.monotonic() < deadline, f"run {handle} did not end"
        executor.wait([handle], 1.0)
    return outcome


def _pid_of(workdir: str) -> int:
    path = Path(workdir, "pid")
    return int(_wait_for(lambda: path.exists() and path.read_text().strip(), RUN_TIMEOUT,
                         f"the command to start in {workdir}"))


@contextlib.contextmanager
def _workers_busy(executor: DaskExecutor, tmp_path: Path) -> Iterator[None]:
    """Keep both worker threads busy with gated commands, so a run submitted inside
    waits on the scheduler; on exit let them end (each must end ok)."""
    blocking = []
    for i in range(2):
        task = Application(GATED, jobname=f"blocker-{i}")
        blocking.append((task, executor.submit(task, _workdir(tmp_path, f"blocker-{i}"))))
    try:
        for _, handle in blocking:
            _pid_of(handle["workdir"])
        yield
    finally:
        for _, handle in blocking:
            Path(handle["workdir"], "go").touch()
    for task, handle in blocking:
        assert _outcome(executor, task, handle) == Outcome(0, None)


# --- running -------------------------------------------------------------------------------
def test_command_runs_on_a_worker_and_leaves_its_exit_status(executor: DaskExecutor,
                                                             tmp_path: Path) -> None:
    """A command runs in its working directory with the task's environment; its exit
    status comes back and is also left in EXIT_FILE, like the local executor's."""
    task = Application(["sh", "-c", "echo $GREETING $GC3SESSION_CORES; echo oops >&2; exit 3"],
                       environment={"GREETING": "hello"}, requested_cores=2, jobname="env")
    workdir = _workdir(tmp_path, "run")
    handle = executor.submit(task, workdir)
    assert json.loads(json.dumps(handle)) == handle
    assert _outcome(executor, task, handle) == Outcome(3, None)
    assert Path(workdir, "stdout.txt").read_text() == "hello 2\n"
    assert Path(workdir, "stderr.txt").read_text() == "oops\n"
    assert Path(workdir, EXIT_FILE).read_text() == "3\n"


@pytest.mark.parametrize("argv, expected", [
    (["gc3session-no-such-program"], Outcome(127, None)),
    (["sh", "-c", "kill -TERM $$"], Outcome(None, signal.SIGTERM)),
])
def test_a_command_that_fails_reports_how(executor: DaskExecutor, tmp_path: Path,
                                          argv: list[str], expected: Outcome) -> None:
    """A program that cannot be found ends 127; a command killed by a signal reports it."""
    task = Application(argv, jobname="failing")
    workdir = _workdir(tmp_path, "run")
    assert _outcome(executor, task, executor.submit(task, workdir)) == expected


def test_a_working_directory_the_worker_cannot_see_fails_the_run(executor: DaskExecutor,
                                                                 tmp_path: Path) -> None:
    """When the worker cannot find the working directory, the run ends with status 127
    (could not be started, so it is not run again in vain) and the reason."""
    task = Application(["true"], jobname="nowhere")
    workdir = _workdir(tmp_path, "not-shared")
    with _workers_busy(executor, tmp_path):
        handle = executor.submit(task, workdir)
        shutil.rmtree(workdir)  # as if on a file system the workers do not mount
    outcome = _outcome(executor, task, handle)
    assert outcome.exitcode == 127 and outcome.signal is None
    assert "WorkdirNotVisibleError" in outcome.info and workdir in outcome.info


def test_kill_stops_the_command_on_its_worker(executor: DaskExecutor, tmp_path: Path) -> None:
    """kill() SIGKILLs the command's process group on the worker that runs it; the run
    reports signal 9 and leaves status 137."""
    task = Application(["sh", "-c", "echo $$ > pid; exec sleep 60"], jobname="sleeper")
    workdir = _workdir(tmp_path, "run")
    handle = executor.submit(task, workdir)
    pid = _pid_of(workdir)
    executor.kill(task, handle)
    assert _outcome(executor, task, handle) == Outcome(None, signal.SIGKILL)
    assert Path(workdir, EXIT_FILE).read_text() == "137\n"
    _wait_for(lambda: not Path(f"/proc/{pid}").exists(), RUN_TIMEOUT, f"process {pid} to go")


def test_kill_before_the_command_starts_means_it_never_starts(executor: DaskExecutor,
                                                              tmp_path: Path) -> None:
    """A run killed while it waits for a worker is reported killed and never starts later."""
    queued = Application(["sh", "-c", "touch ran"], jobname="queued")
    queued_dir = _workdir(tmp_path, "queued")
    with _workers_busy(executor, tmp_path):
        handle = executor.submit(queued, queued_dir)
        executor.kill(queued, handle)
        assert _outcome(executor, queued, handle) == Outcome(None, signal.SIGKILL,
                                                             "killed before its command started")
    after = Application(["true"], jobname="after")  # the workers are free again
    assert _outcome(executor, after, executor.submit(after, _workdir(tmp_path, "after"))) \
        == Outcome(0, None)
    assert not Path(queued_dir, "ran").exists()


# --- outliving the driver ----------------------------------------------------------------------
def test_reattach_after_the_submitting_client_is_closed(dask_address: str, tmp_path: Path) -> None:
    """A run outlives the client that submitted it; another client reattaches to it,
    sees it still running, and gets its outcome when it ends."""
    task = Application(GATED, jobname="gated")
    workdir = _workdir(tmp_path, "run")
    first = DaskExecutor(dask_address)
    handle = json.loads(json.dumps(first.submit(task, workdir)))
    _pid_of(workdir)
    first.close()
    second = DaskExecutor(dask_address)
    try:
        assert second.reattach(task, handle)
        assert second.poll(task, handle) is None
        Path(workdir, "go").touch()
        assert _outcome(second, task, handle) == Outcome(0, None)
        assert Path(workdir, "stdout.txt").read_text() == "done\n"
        assert not second.reattach(task, handle)  # its result was collected: the key is gone
    finally:
        second.close()


def test_a_run_whose_handle_was_never_saved_is_found_from_its_directory(
        dask_address: str, tmp_path: Path) -> None:
    """A driver that died between submitting a run and saving its handle leaves only
    the working directory; a new driver given just that directory finds the run on
    the scheduler (it had not even started) and follows it to its end."""
    task = Application(["sh", "-c", "echo found"], jobname="unsaved")
    workdir = _workdir(tmp_path, "unsaved")
    first = DaskExecutor(dask_address)
    try:
        with _workers_busy(first, tmp_path):
            first.submit(task, workdir)
            second = DaskExecutor(dask_address)
            try:
                adopted = {"executor": "dask", "workdir": workdir}
                assert second.reattach(task, adopted)  # queued: no lock, no status yet
                assert second.poll(task, adopted) is None
            finally:
                second.close()
    finally:
        first.close()
    third = DaskExecutor(dask_address)
    try:
        third.reattach(task, adopted)  # running or ended by now: poll tells either way
        assert _outcome(third, task, adopted) == Outcome(0, None)
        assert Path(workdir, "stdout.txt").read_text() == "found\n"
    finally:
        third.close()


def test_a_run_that_ended_while_no_client_watched_is_picked_up(dask_address: str,
                                                               tmp_path: Path) -> None:
    """A run that ended after its client went away is reported ended by a new client,
    which reads its exit status at once and releases its task on the scheduler."""
    task = Application(["sh", "-c", "exit 4"], jobname="quick")
    workdir = _workdir(tmp_path, "run")
    first = DaskExecutor(dask_address)
    handle = first.submit(task, workdir)
    first.close()
    _wait_for(lambda: Path(workdir, EXIT_FILE).exists(), RUN_TIMEOUT, "the run to end")
    second = DaskExecutor(dask_address)
    try:
        assert not second.reattach(task, handle)  # not running: ended
        assert second.poll(task, handle) == Outcome(4, None)
        assert handle["key"] not in second._client.list_datasets()  # the scheduler let it go
    finally:
        second.close()


def test_a_run_the_scheduler_forgot_is_accounted_for_by_its_files(executor: DaskExecutor,
                                                                  tmp_path: Path) -> None:
    """A run whose key the scheduler does not know (it was restarted) is followed
    through its working directory: running while its lock is held, then its
    recorded exit status; with no trace at all it is reported with a reason."""
    task = Application(GATED, jobname="orphan")
    workdir = _workdir(tmp_path, "orphan")
    handle = {"executor": "dask", "key": "gc3session-unknown-orphan", "workdir": workdir}
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(run_command(
        handle["key"], GATED, workdir, "stdout.txt", None, {}, 1, None)))
    runner.start()
    try:
        _pid_of(workdir)
        assert executor.reattach(task, handle)
        assert executor.poll(task, handle) is None
    finally:
        Path(workdir, "go").touch()
        runner.join(RUN_TIMEOUT)
    assert result == [0]
    assert executor.poll(task, handle) == Outcome(0, None)

    empty = {"executor": "dask", "key": "gc3session-unknown-empty",
             "workdir": _workdir(tmp_path, "empty")}
    assert not executor.reattach(task, empty)
    outcome = executor.poll(task, empty)
    assert outcome is not None and (outcome.exitcode, outcome.signal) == (None, None)
    assert "no exit status" in outcome.info


def test_a_second_attempt_of_a_run_waits_for_the_first_and_does_not_rerun_it(
        tmp_path: Path) -> None:
    """When Dask runs a task again (its first worker died, its command lives on), the
    new attempt waits for the first command and returns its status: the command
    runs once."""
    workdir = _workdir(tmp_path, "run")
    argv = ["sh", "-c", f"echo started >> starts; echo $$ > pid; {GATE}; exit 5"]
    results: list[int] = []

    def attempt() -> None:
        results.append(run_command("gc3session-twice", argv, workdir, None, None, {}, 1, None))

    attempts = [threading.Thread(target=attempt) for _ in range(2)]
    attempts[0].start()
    try:
        _pid_of(workdir)
        attempts[1].start()
    finally:
        Path(workdir, "go").touch()
        for thread in attempts:
            thread.join(RUN_TIMEOUT)
    assert results == [5, 5]
    assert Path(workdir, "starts").read_text() == "started\n"


# --- through the engine, the registry ------------------------------------------------------------
def test_engine_runs_a_session_on_dask(dask_address: str, tmp_path: Path) -> None:
    """The engine drives applications on the cluster: inputs staged, outputs collected."""
    source = tmp_path / "in.txt"
    source.write_text("one two three\n")
    with Session(str(tmp_path / "session")) as session:
        for n in range(3):
            session.add(Application(["sh", "-c", f"wc -w < in.txt > words; echo {n} >> words"],
                                    inputs=[str(source)], outputs=["words"], jobname=f"wc-{n}",
                                    output_dir=str(tmp_path / f"out-{n}")), flush=False)
        engine = Engine(session, executor=f"dask://{dask_address.split('://', 1)[1]}",
                        max_in_flight=2)
        try:
            counts = engine.run_until_done(poll_interval=1.0)
        finally:
            engine.close()
        assert (counts["ok"], counts["total"]) == (3, 3)
        assert all(t.execution.handle["executor"] == "dask" for t in session)
    for n in range(3):
        assert (tmp_path / f"out-{n}" / "words").read_text() == f"3\n{n}\n"


PLUGIN = '''
from gc3session.executors.local import LocalExecutor


class PluginExecutor(LocalExecutor):
    name = "plugin"

    def __init__(self, spec):
        super().__init__()
        self.spec = spec


def make(spec, **kwargs):
    return PluginExecutor(spec, **kwargs)
'''


def test_an_executor_registered_by_entry_point_is_found_and_runs_tasks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution declaring ``plugin = module:factory`` in the
    ``gc3session.executors`` group makes ``plugin://...`` usable; an unknown
    name is refused with the known ones listed."""
    site = tmp_path / "site"
    dist_info = site / "gc3session_plugin_executor-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: gc3session-plugin-executor\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[gc3session.executors]\nplugin = gc3session_plugin_executor:make\n")
    (site / "gc3session_plugin_executor.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "gc3session_plugin_executor", raising=False)

    executor = make_executor("plugin://anywhere")
    assert type(executor).__name__ == "PluginExecutor"
    assert executor.spec == "plugin://anywhere"  # type: ignore[attr-defined]
    with Session(str(tmp_path / "session")) as session:
        session.add(Application(["sh", "-c", "echo hi"], jobname="hi",
                                output_dir=str(tmp_path / "out")))
        engine = Engine(session, executor=executor)
        try:
            assert engine.run_until_done(poll_interval=1.0)["ok"] == 1
        finally:
            engine.close()
    assert (tmp_path / "out" / "stdout.txt").read_text() == "hi\n"
    with pytest.raises(InvalidValue, match="plugin"):
        make_executor("nonesuch://x")


def test_an_unreachable_scheduler_raises_a_typed_error() -> None:
    """A scheduler address nobody listens on fails fast with SchedulerUnavailableError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SchedulerUnavailableError, match=f"127.0.0.1:{port}") as info:
        make_executor(f"dask://127.0.0.1:{port}", connect_timeout=1.0)
    assert isinstance(info.value, ConnectionError)
    assert info.value.address == f"tcp://127.0.0.1:{port}"  # type: ignore[attr-defined]
