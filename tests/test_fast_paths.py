"""The stores' fast paths keep the guarantees of the paths they shortcut.

Each test sets up, for real, the situation a shortcut skips a check for: a
log changed by another writer since this handle's last append, a
PostgreSQL connection the server killed, a select asking for most but not
all rows, a record whose payload names a class that is gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from gc3session.exceptions import ClassNotFoundError, RecordNotFoundError
from gc3session.persistence import make_store
from gc3session.stores.filesystem import FilesystemStore
from gc3session.stores.sql import SqlStore
from gc3session.task import Task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/x.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def opened() -> Iterator[list[Any]]:
    stores: list[Any] = []
    yield stores
    for store in stores:
        store.close()


def _task(i: int, state: str = "NEW") -> Task:
    task = Task(jobname=f"t{i}")
    task.execution.state = state
    return task


def test_a_torn_line_left_after_this_handles_append_is_cut_before_the_next(tmp_path: Any) -> None:
    """The state log's append skips reading its tail only while the log is as this handle
    left it: a line torn by another writer (killed in its append) is cut, never glued to."""
    store = FilesystemStore(str(tmp_path / "jobs"))
    first = store.save(_task(1))
    victim = store.save(_task(2))
    log = tmp_path / "jobs" / ".states"
    script = textwrap.dedent(f"""
        import os, signal
        fd = os.open({str(log)!r}, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"{victim} RUNN")  # the start of a line, then the writer dies
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.run([sys.executable, "-c", script], check=False)
    assert child.returncode == -9 and log.read_bytes().endswith(b" RUNN")
    third = store.save(_task(3, "TERMINATED"))
    text = log.read_bytes().decode("ascii")
    assert "RUNN" not in text and text.endswith(f"{third} TERMINATED\n")
    reader = FilesystemStore(str(tmp_path / "jobs"), readonly=True)
    assert reader.states() == {first: "NEW", victim: "NEW", third: "TERMINATED"}


def test_a_log_compacted_by_another_handle_is_appended_to_as_the_new_file(tmp_path: Any) -> None:
    """Compaction replaces the log by a new file: a handle that appended to the old one
    appends to the new one afterwards, and nothing is lost."""
    directory = str(tmp_path / "jobs")
    mine, other = FilesystemStore(directory), FilesystemStore(directory)
    kept = mine.save(_task(0))
    task = _task(1)
    other.save(task)
    for state in ("SUBMITTED", "RUNNING", "TERMINATED", "NEW") * 800:  # past 64 KiB: compacts
        task.execution.state = state
        other.save(task)
    with open(os.path.join(directory, ".states"), "rb") as log:
        assert log.read(1) == b"#"
    last = mine.save(_task(2, "STOPPED"))
    assert FilesystemStore(directory, readonly=True).states() == {
        kept: "NEW", task.persistent_id: "NEW", last: "STOPPED"}


def test_a_postgresql_connection_killed_by_the_server_is_replaced(pg_url: str,
                                                                  opened: list[Any]) -> None:
    """Loads, saves and removals go on after the server ended the store's connections
    (what a restart does), as the pooled connections did with their pre-ping."""
    store = SqlStore(pg_url)
    opened.append(store)
    ids = [store.save(_task(i)) for i in range(3)]
    store.invalidate_cache()
    assert store.load(ids[0]).jobname == "t0"
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            killed = conn.execute(sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    finally:
        engine.dispose()
    assert killed >= 1
    store.invalidate_cache()
    assert store.load(ids[1]).jobname == "t1"
    new = store.save(_task(9))
    store.remove(ids[2])
    store.invalidate_cache()
    assert store.load(new).jobname == "t9"
    with pytest.raises(RecordNotFoundError):
        store.load(ids[2])


def test_selects_of_most_rows_return_exactly_the_ids_asked_for(db_url: str,
                                                             opened: list[Any]) -> None:
    """Above a few thousand ids a select reads the whole table and filters it: the ids not
    asked for, and the ids without a row, are left out as by the per-chunk queries."""
    store = make_store(db_url, durable=False)
    opened.append(store)
    ids = store.save_many([_task(i, "RUNNING" if i % 2 else "NEW") for i in range(2600)])
    asked = [str(i) for i in ids[100:]] + [f"Task.{10**6 + k}" for k in range(5)]
    states = store.states(asked)
    assert set(states) == {str(i) for i in ids[100:]}
    assert all(states[str(i)] == ("RUNNING" if n % 2 else "NEW")
               for n, i in enumerate(ids) if n >= 100)
    summaries = store.summaries(asked)
    assert set(summaries) == set(states)
    assert summaries[str(ids[101])]["jobname"] == "t101"
    assert len(store.read_records(asked)) == 2500
    few = store.states([str(ids[0]), "Task.999999"])
    assert few == {str(ids[0]): "NEW"}


def test_a_payload_class_that_is_gone_is_named_by_the_load_error(tmp_path: Any) -> None:
    """Loads unpickle with pickle's own class look-up; when it fails, the error still names
    the missing class (ClassNotFoundError), as the look-up of gc3session does."""
    module = tmp_path / "gc3s_payload_mod.py"
    module.write_text("class Extra:\n    def __init__(self, n):\n        self.n = n\n")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from gc3session.persistence import make_store
        from gc3session.task import Task
        import gc3s_payload_mod
        task = Task(jobname="with-extra")
        task.extra = gc3s_payload_mod.Extra(7)
        print(make_store({str(tmp_path / 'jobs')!r}).save(task))
    """)
    saved = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONPATH": ROOT})
    pid = saved.stdout.strip()
    store = FilesystemStore(str(tmp_path / "jobs"))
    with pytest.raises(ClassNotFoundError) as info:
        store.load(pid)
    assert "gc3s_payload_mod" in str(info.value) and pid in str(info.value)
    sys.path.insert(0, str(tmp_path))
    try:
        assert store.load(pid).extra.n == 7  # the class is back: the same record loads
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("gc3s_payload_mod", None)
