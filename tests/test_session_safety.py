"""Sessions never re-create, alias or duplicate what they hold, whatever is done to their files."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from typing import Any

import pytest
from _session_objects import index_lines

from gc3session import Session, Task, fsck, fsio
from gc3session.exceptions import (
    CorruptIndexError,
    CorruptSessionError,
    StoreWriteError,
)
from gc3session.sessionlock import driver_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _listing(path: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


def test_missing_filesystem_store_is_reported_not_recreated(tmp_path: Any) -> None:
    """With jobs/ gone, opening raises and creates nothing: ids would be handed out again."""
    path = str(tmp_path / "s")
    with Session(path) as session:
        session.add(Task(n=1))
    os.rename(os.path.join(path, "jobs"), str(tmp_path / "jobs.away"))
    before = _listing(path)
    with pytest.raises(CorruptSessionError, match="jobs of session .* is missing"):
        Session(path)
    assert _listing(path) == before


def test_missing_sqlite_database_is_reported_not_recreated(tmp_path: Any) -> None:
    """With the database file gone, opening raises and no empty database appears."""
    path, db = str(tmp_path / "s"), str(tmp_path / "my.db")
    with Session(path, store_or_url=f"sqlite:///{db}") as session:
        session.add(Task(n=1))
    os.rename(db, db + ".away")
    with pytest.raises(CorruptSessionError, match="my.db of session .* is missing"):
        Session(path)
    assert not os.path.exists(db)


def test_missing_postgresql_table_is_reported_not_recreated(tmp_path: Any, pg_url: str) -> None:
    """A session whose table was dropped does not get a new, empty one."""
    import sqlalchemy as sa
    path = str(tmp_path / "s")
    with Session(path, store_or_url=pg_url + "#table=lost") as session:
        session.add(Task(n=1))
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE lost")
        with pytest.raises(CorruptSessionError, match="table=lost of session .* is missing"):
            Session(path)
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("lost")
    finally:
        engine.dispose()


def test_planted_driver_lock_symlink_is_not_written_through(tmp_path: Any) -> None:
    """A driver.lock symlink to a file outside the session never gets the owner note."""
    path = str(tmp_path / "s")
    Session(path).close()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious data\n")
    os.symlink(victim, os.path.join(path, "driver.lock"))
    with pytest.raises(StoreWriteError):
        with driver_lock(path):
            pass
    assert victim.read_text() == "precious data\n"


def test_password_on_the_command_line_is_not_kept_in_created(tmp_path: Any) -> None:
    """`created` holds the command line, with any URL password masked."""
    script = ("import sys; from gc3session import Session; Session(sys.argv[1]).close()")
    path = str(tmp_path / "s")
    subprocess.run([sys.executable, "-c", script, path, "-u", "postgresql://bob:S3CRET@db/x"],
                   check=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    with open(os.path.join(path, "created")) as stream:
        created = stream.read()
    assert "S3CRET" not in created and "bob:***@db" in created


def test_processes_creating_one_session_at_once_all_open_it(tmp_path: Any) -> None:
    """Racing creators: one creates the session, the others open it; none fails."""
    path = str(tmp_path / "s")
    script = ("import sys; from gc3session import Session, Task\n"
              "with Session(sys.argv[1]) as s: print(s.add(Task(n=int(sys.argv[2]))))")
    env = dict(os.environ, PYTHONPATH=ROOT)
    children = [subprocess.Popen([sys.executable, "-c", script, path, str(n)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for n in range(4)]
    ids = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        ids.append(out.strip())
    with Session(path, mode="r") as session:
        assert sorted(session.list_ids()) == sorted(ids) and len(set(ids)) == 4


def test_failed_index_append_then_retry_lists_each_id_once(tmp_path: Any) -> None:
    """An append that fails at its fsync is taken back and the add leaves the handle as it
    was; adding the same task again lists it once, under the id it already has."""
    path = str(tmp_path / "s")
    session = Session(path)
    session.add(Task(n=1))
    task = Task(n=2)

    def fail_index_fsync(step: str, target: str) -> None:
        if step == "fsync" and target.endswith("session_ids.txt"):
            raise OSError(errno.EIO, "injected I/O error")

    with fsio.inject_faults(fail_index_fsync), pytest.raises(StoreWriteError):
        session.add(task)
    assert task not in session and len(session) == 1
    session.flush()  # nothing is pending: the failed add was taken back
    assert index_lines(path) == ["Task.1"]
    assert session.add(task) == task.persistent_id
    lines = index_lines(path)
    assert len(lines) == len(set(lines)) == 2 and lines[1] == task.persistent_id
    session.close()
    with Session(path) as again:
        assert again.load(task.persistent_id, add=False).n == 2


def test_non_canonical_ids_in_the_index_are_refused(tmp_path: Any) -> None:
    """`Task.01` would alias `Task.1`: the index parser reports it instead."""
    path = str(tmp_path / "s")
    with Session(path) as session:
        session.add(Task(n=1))
    with open(os.path.join(path, "session_ids.txt"), "a") as stream:
        stream.write("Task.01\n")
    with pytest.raises(CorruptIndexError, match="line 2"):
        Session(path)


def test_rebuilt_counter_does_not_reuse_ids_of_removed_records(tmp_path: Any) -> None:
    """Deleting .next_id (as its error message suggests) never hands out a removed id again."""
    path = str(tmp_path / "s")
    with Session(path) as session:
        ids = [session.add(Task(n=n)) for n in range(5)]
        session.remove(ids[-1])
        session.remove(ids[-2])
    os.unlink(os.path.join(path, "jobs", ".next_id"))
    with Session(path) as session:
        new = session.add(Task(n=9))
    assert new.seqno > max(i.seqno for i in ids)


def test_zeros_after_the_last_line_are_damage_that_only_fsck_repair_cuts(tmp_path: Any) -> None:
    """A tail longer than any id (zeros, as a power cut can leave) is not a torn add.

    The next add refuses to cut it and names the byte offset, leaving the file
    as it is; ``fsck --repair`` keeps a copy of the file and cuts the tail, and
    the add that was refused goes through when it is made again (a failed add
    leaves the handle as it was).
    """
    path = str(tmp_path / "s")
    index_file = os.path.join(path, "session_ids.txt")
    session = Session(path)
    first = session.add(Task(n=1))
    with open(index_file, "ab") as stream:
        stream.write(b"\0" * 10_000)
    with open(index_file, "rb") as stream:
        damaged = stream.read()
    task = Task(n=2)
    with pytest.raises(CorruptIndexError) as info:
        session.add(task)
    assert info.value.offset == len(f"{first}\n") and index_file in str(info.value)
    with open(index_file, "rb") as stream:
        assert stream.read() == damaged
    assert fsck.check(path, repair=True).status == "repaired"
    copies = [n for n in os.listdir(path) if n.startswith("session_ids.txt.damaged-")]
    with open(os.path.join(path, copies[0]), "rb") as stream:
        assert len(copies) == 1 and stream.read() == damaged
    assert task not in session
    session.add(task)
    with open(index_file, "rb") as stream:
        assert stream.read() == f"{first}\n{task.persistent_id}\n".encode()
    session.close()
