"""GC3Pie's surface that ported code relies on, each behaviour set up for real.

Ids and equality run on stores on disk (SQLite files, PostgreSQL through
``pg_url``) written by separate processes; the workflow classes run shell
commands through the engine; the SessionBasedScript options and the Dask
scheduler that goes away run as script processes; worker resources are
reserved on a ``distributed.LocalCluster``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from _session_objects import child_env

import gc3session
from gc3session import (
    Application,
    ChunkedParameterSweep,
    Persistable,
    RetryableTask,
    Session,
    StagedTaskCollection,
    Struct,
    Task,
)
from gc3session.engine import Engine
from gc3session.exceptions import InvalidValue
from gc3session.persistence import IdFactory, make_store
from gc3session.persistence.accessors import GET
from gc3session.persistence.serialization import DEFAULT_PROTOCOL
from gc3session.stores.filesystem import FilesystemStore
from gc3session.stores.sql import SqlStore
from gc3session.task import State

RUN_TIMEOUT = 60.0


class Item(Persistable):
    """A plain persistable object."""


def drive(session: Session, **kwargs: Any) -> dict[str, int]:
    """Run the session's tasks to the end with the local executor."""
    engine = Engine(session, **kwargs)
    try:
        return engine.run_until_done(poll_interval=0.05)
    finally:
        engine.close()


def shell(script: str, name: str, out: Path, **kwargs: Any) -> Application:
    return Application(["sh", "-c", script], jobname=name, output_dir=str(out / name), **kwargs)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# --- IdFactory --------------------------------------------------------------------------------
def test_a_bare_idfactory_never_hands_out_one_id_twice_in_a_process() -> None:
    """IdFactory() needs no argument; bare factories share one counter of the process, so
    ids taken at once from two of them by eight threads are all different."""
    factories = [IdFactory(), IdFactory()]
    taken: list[list[str]] = [[] for _ in range(8)]

    def take(n: int) -> None:
        for i in range(2000):
            taken[n].append(factories[(n + i) % 2].new(Item()))

    threads = [threading.Thread(target=take, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(RUN_TIMEOUT)
    ids = [i for part in taken for i in part]
    assert len(ids) == 16000 and len(set(ids)) == 16000
    assert all(i.startswith("Item.") for i in ids)
    assert IdFactory("job").new(Item()).startswith("job.")
    assert IdFactory(prefix="job").numbered_by_process


def test_idfactory_next_id_fn_is_called_as_gc3pie_calls_it() -> None:
    """next_id_fn() gives one number, next_id_fn(n) a list of n for reserve(n); reserved
    numbers come first; id_class builds the ids; factories never share reservations."""
    calls: list[tuple[int, ...]] = []
    counter = iter(range(100, 10**6))

    def next_id_fn(*qty: int) -> Any:
        calls.append(qty)
        return [next(counter) for _ in range(qty[0])] if qty else next(counter)

    factory = IdFactory(next_id_fn=next_id_fn, id_class=lambda prefix, n: f"{prefix}-{n}")
    factory.reserve(3)
    other = IdFactory(next_id_fn=lambda *qty: 7)
    assert other.new(Item()) == "Item.7"  # does not take the numbers reserved by `factory`
    assert [factory.new(Item()) for _ in range(4)] == ["Item-100", "Item-101", "Item-102", "Item-103"]
    assert calls == [(3,), ()]
    with pytest.raises(InvalidValue):
        factory.reserve(0)
    with pytest.raises(InvalidValue):
        IdFactory(next_id_fn=next_id_fn, allocate=lambda n: 1)


SAVE_WITH_BARE_FACTORY = """
import sys
from gc3session.persistence import IdFactory, Persistable, make_store
store = make_store(sys.argv[1], idfactory=IdFactory())
ids = [store.save(Persistable()) for _ in range(3)]
store.idfactory.reserve(5)
ids += [store.save(Persistable()) for _ in range(2)]
print(" ".join(ids))
"""


@pytest.fixture(params=["file", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return str(tmp_path / "jobs")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    return str(request.getfixturevalue("pg_url"))


def test_a_store_given_a_bare_idfactory_numbers_records_from_its_own_counter(
        store_url: str) -> None:
    """Two processes, one after the other, each save objects into one store through a
    store built with IdFactory(): the ids never repeat and every record is there
    (GC3Pie's user-wide counter file is not needed: the store's counter is used)."""
    ids = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", SAVE_WITH_BARE_FACTORY, store_url],
                              env=child_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert done.returncode == 0, done.stderr
        ids += done.stdout.split()
    assert len(ids) == 10 and len(set(ids)) == 10
    with make_store(store_url) as store:
        assert sorted(store.list()) == sorted(ids)
        assert all(isinstance(store.load(i), Persistable) for i in ids)
    with make_store(store_url, idfactory=IdFactory(prefix="job")) as prefixed:
        assert prefixed.save(Item()).startswith("job.")


def test_stores_accept_each_other_s_constructor_arguments(tmp_path: Path) -> None:
    """Both stores take the arguments GC3Pie passes to any store (its own test's set),
    and still refuse a misspelt one."""
    args = {"url": f"sqlite:///{tmp_path}/test.sqlite", "table_name": "store", "create": True,
            "directory": str(tmp_path / "jobs"), "idfactory": IdFactory(),
            "protocol": DEFAULT_PROTOCOL,
            "extra_fields": {sa.Column("extra", sa.TEXT()): lambda obj: "test"}}
    for cls in (SqlStore, FilesystemStore):
        with cls(**args) as store:  # type: ignore[arg-type]
            pid = store.save(Item())
            store.invalidate_cache()
            assert isinstance(store.load(pid), Item)
    with SqlStore(**args) as sql:  # type: ignore[arg-type]
        assert sql.url.path == f"{tmp_path}/test.sqlite"
    assert FilesystemStore(**args).directory == str(tmp_path / "jobs")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        FilesystemStore(str(tmp_path / "jobs"), read_only=True)  # type: ignore[call-arg]


# --- equality -----------------------------------------------------------------------------------
def test_the_same_task_loaded_through_two_handles_is_one_task(tmp_path: Path) -> None:
    """Objects with the same persistent id compare (and hash) equal, as in GC3Pie, though
    they are different objects; objects without an id equal only themselves."""
    path = str(tmp_path / "session")
    with Session(path) as session:
        first, second = Task(jobname="a"), Task(jobname="b")
        session.add(first)
        session.add(second)
    with Session(path, mode="r") as one, Session(path, mode="r") as two:
        a1, b1 = one.load(first.persistent_id, add=False), one.load(second.persistent_id, add=False)
        a2 = two.load(first.persistent_id, add=False)
        assert a1 == a2 and not a1 != a2 and a1 is not a2 and hash(a1) == hash(a2)
        assert a1 != b1 and len({a1, a2, b1}) == 2 and {a1: "x"}[a2] == "x"
        listed = [b1, a1]
        listed.remove(a2)  # GC3Pie's test: removing by equality
        assert listed == [b1] and listed[0] is b1
        assert a1 in one and a2 in one  # the session's own test is by id, as before
        assert a1 != str(a1.persistent_id)  # a task never equals its id's text
    fresh, other = Task(), Task()
    assert fresh == fresh and fresh != other and len({fresh, other}) == 2
    assert fresh != a1 and a1 != fresh


# --- names where GC3Pie has them ----------------------------------------------------------------
def test_gc3pie_names_are_found_where_gc3pie_keeps_them(tmp_path: Path) -> None:
    """DEFAULT_PROTOCOL in serialization, make_store in persistence.store, Struct and log
    in the package, and the workflow classes (gc3libs.workflow is gc3session.task)."""
    from gc3session.persistence import store as store_module
    from gc3session.persistence.registry import make_store as registry_make_store

    assert store_module.make_store is registry_make_store
    assert type(store_module.make_store(str(tmp_path / "jobs"))).__name__ == "FilesystemStore"
    assert DEFAULT_PROTOCOL == 4
    assert GET.x(Struct(x=1)) == 1 and gc3session.Struct is Struct
    assert gc3session.log.name == "gc3session"
    for name in ("ChunkedParameterSweep", "RetryableTask", "StagedTaskCollection"):
        assert getattr(gc3session, name) is getattr(gc3session.workflow, name)  # gc3libs.workflow


def test_an_autocommit_connection_on_the_store_engine_holds_no_lock(tmp_path: Path) -> None:
    """A connection opened on store._engine in AUTOCOMMIT mode (GC3Pie's tests alter the
    table that way) leaves no transaction open: another store writes at once."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    store = make_store(url)
    conn = store._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        conn.execute(sa.text(f"alter table {store.table_name} add column extra varchar(256)"))
        other = SqlStore(url, extra_fields={sa.Column("extra", sa.VARCHAR(128)): GET.foo})
        other.busy_timeout, other.retry_deadline = 0.5, 1.0
        item = Item()
        item.foo = "bar"
        pid = other.save(item)
        row = conn.execute(sa.select(other._tables.c.extra).where(
            other._tables.c.id == str(pid))).all()
        assert row == [("bar",)]
        other.close()
    finally:
        conn.close()
        store.close()


# --- workflow classes ---------------------------------------------------------------------------
def test_retryable_task_runs_a_failed_command_again_up_to_max_retries(tmp_path: Path) -> None:
    """A command failing twice then succeeding runs three times; one that always fails runs
    1 + max_retries times and its wrapper ends with its exit status; both are saved so."""
    audit = tmp_path / "audit"
    flaky = (f'echo flaky >> {audit}; [ "$(grep -c flaky {audit})" -ge 3 ]')
    path = str(tmp_path / "session")
    with Session(path) as session:
        session.add(RetryableTask(shell(flaky, "flaky", tmp_path), max_retries=5))
        session.add(RetryableTask(shell(f"echo bad >> {audit}; exit 4", "bad", tmp_path),
                                  max_retries=2))
        counts = drive(session)
    assert (counts["ok"], counts["failed"]) == (1, 1)
    assert lines(audit).count("flaky") == 3 and lines(audit).count("bad") == 3
    with Session(path, mode="r") as session:
        good, bad = list(session)
        assert (good.retried, good.execution.returncode) == (2, 0)
        assert (bad.retried, bad.execution.state) == (2, State.TERMINATED)
        assert bad.execution.exitcode == 4 == bad.task.execution.exitcode
        assert bad.tasks == [bad.task] and bad.arguments == bad.task.arguments  # read through
        assert sorted(os.listdir(os.path.join(path, "runs"))) == sorted(
            f"{t.task.persistent_id}.{n}" for t in (good, bad) for n in (1, 2, 3))


def test_a_retryable_task_resumed_by_a_new_driver_counts_its_runs_on(tmp_path: Path) -> None:
    """A driver that stops after the first retry leaves the count saved; the next driver
    runs the command only as often as is left."""
    audit = tmp_path / "audit"
    path = str(tmp_path / "session")
    with Session(path) as session:
        session.add(RetryableTask(shell(f"echo run >> {audit}; exit 1", "bad", tmp_path),
                                  max_retries=3))
        engine = Engine(session)
        deadline = time.monotonic() + RUN_TIMEOUT
        while next(iter(session)).retried < 1:
            assert time.monotonic() < deadline
            engine.progress()
            engine.wait(0.05)
        engine.close()
    with Session(path) as session:
        assert next(iter(session)).retried == 1
        drive(session)
        assert next(iter(session)).retried == 3
    assert lines(audit) == ["run"] * 4


def test_killing_a_retryable_task_ends_it_without_a_retry(tmp_path: Path) -> None:
    """kill() of a running retryable task stops its command and ends it: no retry."""
    audit = tmp_path / "audit"
    with Session(str(tmp_path / "session")) as session:
        wrapper = RetryableTask(shell(f"echo run >> {audit}; exec sleep 60", "sleeper", tmp_path))
        session.add(wrapper)
        engine = Engine(session)
        try:
            deadline = time.monotonic() + RUN_TIMEOUT
            while lines(audit) != ["run"]:
                assert time.monotonic() < deadline
                engine.progress()
                engine.wait(0.05)
            engine.kill(wrapper)
            engine.progress()
            assert engine.idle
        finally:
            engine.close()
        assert wrapper.execution.state == State.TERMINATED and wrapper.retried == 0
        assert wrapper.execution.signal == signal.SIGKILL
    assert lines(audit) == ["run"]


class Pipeline(StagedTaskCollection):
    """stage0 writes a number, stage1 doubles it from stage0's output, stage2 ends with it."""

    def __init__(self, out: str, **kwargs: Any) -> None:
        self.out = out
        super().__init__(**kwargs)

    def stage0(self) -> Task:
        return Application(["sh", "-c", "echo 21 > n"], outputs=["n"], jobname="make",
                           output_dir=os.path.join(self.out, "make"))

    def stage1(self) -> Task:
        made = os.path.join(self.out, "make", "n")
        return Application(["sh", "-c", "echo $(( $(cat n) * 2 )) > n"], inputs={made: "n"},
                           outputs=["n"], jobname="double", output_dir=os.path.join(self.out, "double"))

    def stage2(self) -> int:
        with open(os.path.join(self.out, "double", "n")) as stream:
            return 0 if stream.read().strip() == "42" else 7 << 8


class Refused(StagedTaskCollection):
    def stage0(self) -> Any:
        return (0, 3)  # (signal, exitcode): the sequence ends before any task


class Bad(StagedTaskCollection):
    def stage0(self) -> Any:
        return "not a task"


def test_staged_task_collection_runs_its_stages_in_order(tmp_path: Path) -> None:
    """Each stage is created when the one before ended (stage1 reads stage0's output); a
    stage returning a number ends the sequence with it; so does stage0 at once."""
    path = str(tmp_path / "session")
    with Session(path) as session:
        session.add(Pipeline(str(tmp_path / "out")))
        assert [t.jobname for t in next(iter(session)).tasks] == ["make"]
        refused = Refused()
        assert refused.execution.state == State.TERMINATED and refused.execution.exitcode == 3
        session.add(refused)
        assert drive(session)["ok"] == 1
    with Session(path, mode="r") as session:
        pipeline, refused = list(session)
        assert [t.jobname for t in pipeline.tasks] == ["make", "double"]
        assert (pipeline.execution.state, pipeline.execution.returncode) == (State.TERMINATED, 0)
        assert refused.execution.exitcode == 3
    assert (tmp_path / "out" / "double" / "n").read_text() == "42\n"
    with pytest.raises(InvalidValue, match="stage0"):
        Bad()
    with pytest.raises(InvalidValue, match="stage0"):
        StagedTaskCollection()


class Squares(ChunkedParameterSweep):
    def __init__(self, audit: Path, out: Path, *args: Any) -> None:
        self.audit, self.out = audit, out
        super().__init__(*args)

    def new_task(self, param: int, **extra_args: Any) -> Task:
        return shell(f"echo {param} >> {self.audit}; echo $(({param} * {param}))", f"sq-{param}",
                     self.out)


def test_chunked_parameter_sweep_creates_its_tasks_a_chunk_at_a_time(tmp_path: Path) -> None:
    """A sweep over range(3, 20, 2) in chunks of 4 creates its 9 tasks 4, 4 and 1 at a time
    (a chunk once fewer than 2 wait or run, so never more than 5 wait); every value runs
    once, and a reloaded sweep knows where it stopped."""
    audit = tmp_path / "audit"
    path = str(tmp_path / "session")
    with Session(path) as session:
        sweep = Squares(audit, tmp_path / "out", 3, 20, 2, 4)
        assert len(sweep.tasks) == 4
        session.add(sweep)
        engine = Engine(session, max_in_flight=10)
        try:
            deadline = time.monotonic() + RUN_TIMEOUT
            while sweep.execution.state != State.TERMINATED:
                assert time.monotonic() < deadline
                engine.progress()
                waiting = sum(1 for t in sweep.tasks if t.execution.state != State.TERMINATED)
                assert len(sweep.tasks) in (4, 8, 9) and waiting <= 4 + 1
                engine.wait(0.05)
        finally:
            engine.close()
    assert sorted(map(int, lines(audit))) == list(range(3, 20, 2))
    with Session(path, mode="r") as session:
        loaded = next(iter(session))
        assert loaded.execution.returncode == 0 and len(loaded.tasks) == 9
        assert not loaded.grow()  # all values created: nothing more to add
        assert (tmp_path / "out" / "sq-19" / "stdout.txt").read_text() == "361\n"
    with pytest.raises(InvalidValue):
        Squares(audit, tmp_path, 0, 10, 0, 4)


def test_the_workflow_classes_save_and_load(tmp_path: Path) -> None:
    """Each class (GC3Pie's test_task_objects_buggy set) round-trips through a SQLite store."""
    sweep = Squares(tmp_path / "audit", tmp_path, 1, 20, 1, 5)
    for task in (Pipeline(str(tmp_path)), sweep, RetryableTask(Task(jobname="inner"), max_retries=2)):
        with make_store(f"sqlite:///{tmp_path}/{type(task).__name__}.db") as store:
            pid = store.save(task)
            store.invalidate_cache()
            loaded = store.load(pid)
        assert type(loaded) is type(task) and loaded == task and loaded is not task
        assert [t.jobname for t in loaded.tasks] == [t.jobname for t in task.tasks]
    assert loaded.max_retries == 2 and loaded.task.jobname == "inner"


# --- SessionBasedScript -------------------------------------------------------------------------
PORTED = '''
import gc3session
from gc3session import Application
from gc3session.cmdline import SessionBasedScript, UsageError


class Ported(SessionBasedScript):
    """Echo WORD --count times (GC3Pie style: setup_options, setup_args, parse_args)."""

    def __init__(self):
        super().__init__(version="1.0", greeting="hello")

    def setup_options(self):
        self.add_param("--count", type=int, default=2, help="how many commands")

    def setup_args(self):
        self.add_param("word", help="what to echo")

    def parse_args(self):
        if self.params.count < 1:
            raise UsageError("--count must be at least 1")
        self.log.warning("%s %s, %d cores on %s", self.greeting, self.params.word,
                         self.params.ncores, self.params.resource_name)
        gc3session.log.info("verbose only")

    def new_tasks(self, extra):
        for i in range(self.params.count):
            yield Application(["sh", "-c", "echo %s %d" % (self.params.word, i)], **extra)


if __name__ == "__main__":
    Ported().run()
'''


def run_script(tmp_path: Path, text: str, *argv: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "ported.py"
    script.write_text(text)
    return subprocess.run([sys.executable, str(script), *argv], cwd=tmp_path, capture_output=True,
                          text=True, env=env or child_env(), timeout=timeout)


def test_a_gc3pie_style_script_declares_options_and_checks_them_in_its_hooks(
        tmp_path: Path) -> None:
    """setup_options/setup_args without arguments, add_param, the parse_args hook before the
    session is made, keyword arguments as attributes, self.log and gc3session.log (-v)."""
    done = run_script(tmp_path, PORTED, "ciao", "--count", "3", "-C", "1")
    assert done.returncode == 0, done.stderr
    assert "ported: WARNING: hello ciao, 1 cores on local" in done.stderr
    assert "verbose only" not in done.stderr
    assert [(tmp_path / f"Application-N{i + 1}" / "stdout.txt").read_text() for i in range(3)] \
        == [f"ciao {i}\n" for i in range(3)]
    verbose = run_script(tmp_path, PORTED, "ciao", "-v", "-s", "other", "-C", "1")
    assert verbose.returncode == 0, verbose.stderr
    assert "ported: INFO: verbose only" in verbose.stderr
    refused = run_script(tmp_path, PORTED, "ciao", "--count", "0", "-s", "refused")
    assert refused.returncode == 64 and "--count must be at least 1" in refused.stderr
    assert not (tmp_path / "refused").exists()


def test_the_options_gc3pie_scripts_pass_every_day_are_accepted(tmp_path: Path) -> None:
    """-r localhost, --config-files (a one-line warning names what is ignored), -c, -m, -w,
    -J, -C and -o with SESSION, DATE and NAME substituted as GC3Pie does."""
    before = datetime.date.today().isoformat()
    done = run_script(tmp_path, PORTED, "hi", "-s", "sess", "-r", "localhost", "--config-files",
                      "/etc/gc3pie.conf,~/.gc3/gc3pie.conf", "-c", "2", "-m", "1GB", "-w",
                      "1 hour", "-J", "1", "-C", "1", "-o", "SESSION/DATE/NAME")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "config" in line]
    assert warnings == ["ported: WARNING: GC3Pie configuration files are not read, ignoring"
                        " --config-files /etc/gc3pie.conf,~/.gc3/gc3pie.conf (tasks run where -r"
                        " says: local, or dask://HOST:PORT)"]
    dates = {before, datetime.date.today().isoformat()}
    found = [d for d in dates if (tmp_path / "sess.out" / d / "Application-N1" / "stdout.txt").exists()]
    assert len(found) == 1
    with Session(str(tmp_path / "sess"), mode="r") as session:
        task = next(iter(session))
        assert (task.requested_cores, task.requested_memory, task.requested_walltime) \
            == (2, 2 * 10**9, 3600.0)
        assert task.output_dir == str(tmp_path / "sess.out" / found[0] / "Application-N1")
    alias = run_script(tmp_path, PORTED, "hi", "-s", "alias", "-x", "local")
    assert alias.returncode in (0, 4, 8, 12), alias.stderr  # one pass: done, running or waiting


def test_an_unknown_resource_is_a_usage_error_listing_the_known_ones(tmp_path: Path) -> None:
    """-r with a name gc3session does not know exits 64 before anything is written."""
    done = run_script(tmp_path, PORTED, "hi", "-r", "cluster.example.org")
    assert done.returncode == 64
    assert done.stderr.splitlines()[0] == (
        "ported: argument -r/--resource/-x/--executor: unknown resource 'cluster.example.org';"
        " known: local (or localhost), dask://HOST:PORT")
    assert not (tmp_path / "ported").exists()


# --- Dask -----------------------------------------------------------------------------------------
KILLS_ITS_SCHEDULER = '''
import os, signal, time
from gc3session import Application
from gc3session.cmdline import SessionBasedScript


class Killer(SessionBasedScript):
    """Its new_tasks() kills the Dask scheduler the script connected to."""

    def new_tasks(self, extra):
        pid = int(os.environ.get("SCHEDULER_PID", "0"))
        if pid:
            os.kill(pid, signal.SIGKILL)
            time.sleep(1)
        audit = os.path.abspath("audit")
        return [Application(["sh", "-c", "echo %d >> %s" % (i, audit)], **extra) for i in range(3)]


if __name__ == "__main__":
    Killer(version="1", name="ported").run()
'''


@contextlib.contextmanager
def scheduler_process(directory: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A Dask scheduler with no worker, as a process; yields it and its address."""
    directory.mkdir(parents=True, exist_ok=True)
    address_file = directory / "scheduler.json"
    with open(directory / "scheduler.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                                 "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                                 str(address_file)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        address = None
        while address is None:
            with contextlib.suppress(OSError, ValueError, KeyError):
                address = json.loads(address_file.read_text())["address"].split("://", 1)[1]
            assert proc.poll() is None and time.monotonic() < deadline, "no scheduler"
            time.sleep(0.05)
        yield proc, address
    finally:
        proc.kill()
        proc.wait(timeout=RUN_TIMEOUT)


def test_a_dask_scheduler_down_at_submit_time_is_one_line_and_status_75(tmp_path: Path) -> None:
    """The scheduler dies after the script connected: the script says so in one line and
    exits 75 (not a task failing with 127); its tasks stay NEW, and the next run, on a
    scheduler that is up, runs each of them once."""
    from test_dask import dask_cluster

    with scheduler_process(tmp_path / "doomed") as (proc, address):
        done = run_script(tmp_path, KILLS_ITS_SCHEDULER, "-s", "sess", "-r", f"dask://{address}",
                          env=dict(child_env(), SCHEDULER_PID=str(proc.pid)))
    assert done.returncode == 75, done.stderr
    said = done.stderr.splitlines()
    assert len(said) == 1 and said[0].startswith(
        f"ported: error: cannot submit Application.1 to the Dask scheduler at tcp://{address}: ")
    with Session(str(tmp_path / "sess"), mode="r") as session:
        assert [t.execution.state for t in session] == [State.NEW] * 3
        assert all(t.execution.returncode is None for t in session)
    assert not (tmp_path / "audit").exists()
    with dask_cluster(tmp_path / "cluster", workers=1) as new_address:
        again = run_script(tmp_path, KILLS_ITS_SCHEDULER, "-s", "sess", "-C", "1", "-r",
                           f"dask://{new_address.split('://', 1)[1]}")
    assert again.returncode == 0, again.stderr
    assert sorted(lines(tmp_path / "audit")) == ["0", "1", "2"]


OVERLAP = ("mkdir ../../running 2>/dev/null || echo overlap >> {audit};"
           " i=0; while [ $i -lt 40 ] && [ ! -e ../../stop ]; do sleep 0.025; i=$((i+1)); done;"
           " rmdir ../../running 2>/dev/null; echo done >> {audit}")


@pytest.fixture(scope="module")
def resource_cluster() -> Iterator[str]:
    """One worker with 4 threads declaring 2 cores and 1 GB of memory, in this process."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=4, processes=False,
                                  protocol="tcp", host="127.0.0.1", dashboard_address=":0",
                                  resources={"cores": 2, "memory": 1e9}) as cluster:
        yield cluster.scheduler_address.split("://", 1)[1]


@pytest.mark.parametrize("request_kwargs", [{"requested_cores": 2},
                                            {"requested_memory": 6 * 10**8}],
                         ids=["cores", "memory"])
def test_requested_cores_and_memory_are_reserved_on_dask_workers(
        resource_cluster: str, tmp_path: Path, request_kwargs: dict[str, int]) -> None:
    """On a worker declaring 2 cores and 1 GB, commands asking 2 cores (or 600 MB) run one
    at a time although the worker has 4 threads; a command asking more than any worker
    declares ends at once with status 127 and the reason, instead of waiting for ever."""
    audit = tmp_path / "audit"
    with Session(str(tmp_path / "session")) as session:
        for i in range(3):
            session.add(shell(OVERLAP.format(audit=audit), f"big-{i}", tmp_path, **request_kwargs),
                        flush=False)
        huge = shell("true", "huge", tmp_path, requested_cores=3, requested_memory=2 * 10**9)
        session.add(huge)
        counts = drive(session, executor=f"dask://{resource_cluster}", max_in_flight=4)
        assert (counts["ok"], counts["failed"]) == (3, 1)
        assert huge.execution.exitcode == 127
        assert "requests 3 cores and the largest Dask worker" in " ".join(
            m for m, _, _ in huge.execution.history)
    assert lines(audit) == ["done"] * 3  # never two at once
