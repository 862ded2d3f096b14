"""Recovering from what goes wrong in everyday use, with real script and ``gsession`` processes.

* a first start whose store could not be used (a wrong ``-u``) is started
  again on the store given now, and says so;
* a record that cannot be loaded is set aside (quarantined) and the run
  goes on; ``gsession forget`` and ``adopt`` set ids aside and take them
  back;
* ``gsession copy`` into a directory that does not exist fails in one line;
  PostgreSQL errors are one line with the host, the database and a hint.

Stores: filesystem and SQLite in the session directory, and a real
PostgreSQL database (the ``pg_url`` fixture).
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

import pytest
from _everyday import gsession, runs, script
from _pg_cluster import free_port
from _session_objects import snapshot

from gc3session.quarantine import note_path


def _one_line(text: str) -> str:
    assert text.count("\n") == 1 and "Traceback" not in text, text
    return text


def _ids(tmp_path, session: str) -> list[str]:
    done = gsession(tmp_path, "list", "--json", session)
    assert done.returncode == 0, done.stderr
    return [row["id"] for row in json.loads(done.stdout)]


# --- a first start that never got a task --------------------------------------------------
def test_a_failed_first_start_is_started_again_on_the_corrected_store(tmp_path):
    """A wrong -u left an empty session: the same error every time before; -u sqlite now wins."""
    wrong = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nodb"
    first = script(tmp_path, "-s", "s", "-u", wrong, "-C", "1")
    assert first.returncode == 1
    line = _one_line(first.stderr)
    assert "secret" not in line and "host 127.0.0.1" in line and "database nodb" in line
    assert os.path.exists(os.path.join(tmp_path, "s", "store.url"))
    second = script(tmp_path, "-s", "s", "-u", "sqlite", "-C", "1")
    assert second.returncode == 0, second.stderr
    assert "had no task and its store postgresql://nobody@127.0.0.1" in second.stderr
    assert "it now uses the store sqlite:///" in second.stderr
    with open(os.path.join(tmp_path, "s", "store.url")) as stream:
        assert stream.read() == "sqlite:jobs.db"
    assert sorted(runs(os.path.join(tmp_path, "codes"))) == ["t0", "t1", "t2"]


def test_a_failed_first_start_is_started_again_with_new_session_on_the_default_store(tmp_path):
    """-N alone after a wrong -u: the default store inside the session."""
    wrong = f"postgresql://nobody@127.0.0.1:{free_port()}/nodb"
    assert script(tmp_path, "-s", "s", "-u", wrong, "-C", "1").returncode == 1
    again = script(tmp_path, "-s", "s", "-N", "-C", "1")
    assert again.returncode == 0, again.stderr
    assert "it now uses the store file:///" in again.stderr
    with open(os.path.join(tmp_path, "s", "store.url")) as stream:
        assert stream.read() == "file:jobs"


def test_new_session_alone_keeps_a_working_store_and_u_replaces_an_unused_one(tmp_path):
    """An empty session on SQLite: -N alone keeps SQLite (it works); -u file moves it (nothing lost)."""
    assert script(tmp_path, "-s", "s", "-u", "sqlite", "--tasks", "0").returncode == 0
    kept = script(tmp_path, "-s", "s", "-N", "--tasks", "0")
    assert kept.returncode == 0 and "now uses" not in kept.stderr, kept.stderr
    with open(os.path.join(tmp_path, "s", "store.url")) as stream:
        assert stream.read() == "sqlite:jobs.db"
    moved = script(tmp_path, "-s", "s", "-u", "file", "--tasks", "1", "-C", "1")
    assert moved.returncode == 0, moved.stderr
    assert "had no task and its store sqlite:///" in moved.stderr
    with open(os.path.join(tmp_path, "s", "store.url")) as stream:
        assert stream.read() == "file:jobs"


def test_a_missing_postgresql_database_is_one_line_then_the_right_one_is_used(tmp_path, pg_url):
    """A real server, a database that does not exist: one line naming both; the right URL then works."""
    wrong = pg_url.rsplit("/", 1)[0] + "/nosuchdb"
    first = script(tmp_path, "-s", "s", "-u", wrong, "-C", "1")
    assert first.returncode == 1
    line = _one_line(first.stderr)
    assert "database nosuchdb" in line and "~/.pgpass" in line and "PGPASSWORD" in line
    second = script(tmp_path, "-s", "s", "-u", pg_url, "-C", "1")
    assert second.returncode == 0, second.stderr
    with open(os.path.join(tmp_path, "s", "store.url")) as stream:
        assert stream.read() == pg_url
    copy = gsession(tmp_path, "copy", os.path.join(tmp_path, "s"), wrong + "#table=t")
    assert copy.returncode == 1
    assert "host 127.0.0.1" in _one_line(copy.stderr) and "database nosuchdb" in copy.stderr


def test_a_session_with_tasks_keeps_its_store_whatever_u_says(tmp_path):
    """-u only chooses the store of a new session: one that has tasks is never switched."""
    assert script(tmp_path, "-s", "s", "-C", "1").returncode == 0
    before = snapshot(os.path.join(tmp_path, "s", "jobs"))
    again = script(tmp_path, "-s", "s", "-u", "sqlite", "-C", "1")
    assert again.returncode == 0 and "now uses" not in again.stderr
    with open(os.path.join(tmp_path, "s", "store.url")) as stream:
        assert stream.read() == "file:jobs"
    assert not os.path.exists(os.path.join(tmp_path, "s", "jobs.db"))
    assert snapshot(os.path.join(tmp_path, "s", "jobs")) == before


# --- records that cannot be loaded --------------------------------------------------------
class Records:
    """Read and overwrite the bytes of one record, whatever the store."""

    def __init__(self, session: str, kind: str, pg_url: str | None = None) -> None:
        self.session, self.kind, self.pg_url = session, kind, pg_url

    def get(self, pid: str) -> bytes:
        if self.kind == "file":
            with open(os.path.join(self.session, "jobs", "0", pid), "rb") as stream:
                return stream.read()
        with self._connect() as conn:
            row = conn.execute(self._sql("SELECT data FROM store WHERE id = ?"), (pid,)).fetchone()
            return bytes(row[0])

    def put(self, pid: str, data: bytes) -> None:
        if self.kind == "file":
            with open(os.path.join(self.session, "jobs", "0", pid), "wb") as stream:
                stream.write(data)
            return
        with self._connect() as conn:
            conn.execute(self._sql("UPDATE store SET data = ? WHERE id = ?"), (data, pid))

    def _sql(self, text: str) -> str:
        return text if self.kind == "sqlite" else text.replace("?", "%s")

    def _connect(self) -> Any:
        """A connection whose ``with`` block commits (sqlite3 or psycopg)."""
        if self.kind == "sqlite":
            return sqlite3.connect(os.path.join(self.session, "jobs.db"))
        import psycopg
        return psycopg.connect(self.pg_url)


@pytest.fixture(params=["file", "sqlite", "postgresql"])
def store_kind(request):
    """(kind, the -u argument) for each store."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        return request.param, url
    return request.param, request.param


def test_an_unloadable_record_is_set_aside_and_the_run_goes_on(tmp_path, store_kind):
    """One damaged record: named with where it stays, the others run, the summary lists it; adopt."""
    kind, url = store_kind
    session = os.path.join(tmp_path, "s")
    first = script(tmp_path, "-s", "s", "-u", url, "-J", "1")  # one pass: t0 starts, t1 and t2 wait
    assert first.returncode == 4 | 8, first.stderr
    records = Records(session, kind, url)
    good = records.get("Application.3")
    records.put("Application.3", b"not a record at all")
    second = script(tmp_path, "-s", "s", "-C", "1")
    assert second.returncode == 2, second.stderr  # the set-aside task counts as a failure
    assert sorted(runs(os.path.join(tmp_path, "codes"))) == ["t0", "t1"]
    where = "jobs/0/Application.3" if kind == "file" else "table store in"
    line = next(line for line in second.stderr.splitlines() if "Application.3" in line)
    assert "Application.3 was taken out of session" in line and where in line, line
    assert f"gsession adopt {session} Application.3" in line
    assert "Taken out of the session (1), records kept:" in second.stdout
    assert records.get("Application.3") == b"not a record at all"  # never moved nor rewritten
    with open(note_path(session, "Application.3")) as stream:
        note = stream.read()
    assert "id: Application.3\n" in note and "cause: cannot be loaded" in note
    assert _ids(tmp_path, session) == ["Application.1", "Application.2"]
    # repaired by hand, adopted back, run to the end
    records.put("Application.3", good)
    adopt = gsession(tmp_path, "adopt", session, "Application.3")
    assert adopt.returncode == 0 and "adopted Application.3" in adopt.stdout
    assert not os.path.exists(note_path(session, "Application.3"))
    third = script(tmp_path, "-s", "s", "-C", "1")
    assert third.returncode == 0, third.stderr
    assert sorted(runs(os.path.join(tmp_path, "codes"))) == ["t0", "t1", "t2"]


def test_when_no_record_loads_nothing_is_changed(tmp_path):
    """Every record unloadable is rather a wrong environment: exit 1, one line, the session as it was."""
    session = os.path.join(tmp_path, "s")
    assert script(tmp_path, "-s", "s", "-J", "1").returncode == 4 | 8
    records = Records(session, "file")
    for pid in ("Application.1", "Application.2", "Application.3"):
        records.put(pid, b"garbage")
    before = {k: v for k, v in snapshot(session).items() if k != "driver.lock"}
    done = script(tmp_path, "-s", "s", "-C", "1")
    assert done.returncode == 1
    assert "none of the 3 tasks" in _one_line(done.stderr) and "nothing was changed" in done.stderr
    assert {k: v for k, v in snapshot(session).items() if k != "driver.lock"} == before


def test_forget_and_adopt_keep_every_record(tmp_path):
    """forget takes ids out (records untouched), adopt puts them back; both name what is wrong."""
    session = os.path.join(tmp_path, "s")
    assert script(tmp_path, "-s", "s", "-C", "1").returncode == 0
    store_before = snapshot(os.path.join(session, "jobs"))
    done = gsession(tmp_path, "forget", session, "Application.2", "Application.3")
    assert done.returncode == 0, done.stderr
    assert f"forgot Application.2: its record stays in {session}/jobs/0/Application.2" in done.stdout
    assert _ids(tmp_path, session) == ["Application.1"]
    assert snapshot(os.path.join(session, "jobs")) == store_before
    assert os.path.exists(note_path(session, "Application.3"))
    check = gsession(tmp_path, "fsck", "--repair", "--orphans", "delete", "--json", session)
    found = {f["id"]: f for f in json.loads(check.stdout)["findings"] if f.get("id")}
    assert {found[i]["kind"] for i in ("Application.2", "Application.3")} == {"quarantined"}
    assert "gsession adopt" in found["Application.2"]["message"]
    assert snapshot(os.path.join(session, "jobs")) == store_before  # neither deleted nor adopted
    assert _ids(tmp_path, session) == ["Application.1"]
    again = gsession(tmp_path, "forget", session, "Application.2")
    assert again.returncode == 1 and "Application.2 is not listed" in _one_line(again.stderr)
    missing = gsession(tmp_path, "adopt", session, "Application.9")
    assert missing.returncode == 1 and "Application.9 has no record" in _one_line(missing.stderr)
    bad = gsession(tmp_path, "adopt", session, "../../etc")
    assert bad.returncode == 1 and "not a valid task id" in _one_line(bad.stderr)
    back = gsession(tmp_path, "adopt", session, "Application.3", "Application.2", "Application.1")
    assert back.returncode == 0, back.stderr
    assert back.stdout.splitlines() == ["adopted Application.3", "adopted Application.2",
                                        "Application.1 was listed already"]
    assert _ids(tmp_path, session) == ["Application.1", "Application.3", "Application.2"]
    assert os.listdir(os.path.join(session, "quarantine")) == []


# --- copy destinations ---------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["sqlite", "file"])
def test_copy_into_a_directory_that_does_not_exist_fails_in_one_line(tmp_path, scheme):
    """Nothing is created (no directory, no store), and the session keeps its store."""
    session = os.path.join(tmp_path, "s")
    assert script(tmp_path, "-s", "s", "-C", "1").returncode == 0
    target = os.path.join(tmp_path, "no", "such", "dir", "x.db" if scheme == "sqlite" else "jobs")
    url = f"{scheme}://{'/' if scheme == 'sqlite' else ''}{target}"
    before = snapshot(session)
    for source in (session, os.path.join(session, "jobs")):  # a session, or a store
        done = gsession(tmp_path, "copy", source, url)
        assert done.returncode == 1
        assert f"the directory {os.path.dirname(target)} does not exist" in _one_line(done.stderr)
    assert not os.path.exists(os.path.join(tmp_path, "no"))
    assert {k: v for k, v in snapshot(session).items() if k != "driver.lock"} == {
        k: v for k, v in before.items() if k != "driver.lock"}
