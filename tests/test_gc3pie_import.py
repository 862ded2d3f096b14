"""``gsession import``: sessions written by the real GC3Pie 2.6.8 become gc3session sessions.

GC3Pie runs as a subprocess of its own virtual environment
(``tests/_gc3pie_peer.py``): it writes each session in the test, and reads it
back with its own store to say what it holds.  The imported session must hold
the same ids, classes, job names, states, return codes, output directories,
children and extra fields, open with :class:`Session`, and run on with
gc3session's engine; the GC3Pie session must be left byte for byte (and
mtime for mtime) as it was.

Where GC3Pie 2.6.8 cannot be installed the tests are skipped with the reason,
unless ``GC3SESSION_REQUIRE_GC3PIE=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import io
import os
import sqlite3
import time
from typing import Any

import _gc3pie_peer as peer
import pytest
import sqlalchemy as sa

from gc3session import Application, ParallelTaskCollection, SequentialTaskCollection, Session, Task
from gc3session.cli import main
from gc3session.engine import Engine
from gc3session.exceptions import InvalidValue
from gc3session.gc3pieimport import (
    GC3PieRecord,
    GC3PieStoreError,
    ImportReport,
    ImportTargetError,
    NotAGC3PieSessionError,
    import_session,
)
from gc3session.url import Url
from gc3session.utils import Struct

REQUIRE_ENV = "GC3SESSION_REQUIRE_GC3PIE"
OURS = {"gc3libs:Task": Task, "gc3libs:Application": Application,
        "gc3libs.workflow:ParallelTaskCollection": ParallelTaskCollection,
        "gc3libs.workflow:SequentialTaskCollection": SequentialTaskCollection}


class PortedApp(Application):
    """The gc3session port of the peer's ``__main__:CustomApp`` (same hook)."""

    def terminated(self) -> None:
        self.execution.returncode = (0, 42)


@pytest.fixture(scope="session")
def gc3pie() -> str:
    """The interpreter of a GC3Pie 2.6.8 environment (built once, then reused)."""
    try:
        return peer.gc3pie_python()
    except peer.PeerUnavailable as err:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but GC3Pie {peer.GC3PIE_VERSION} cannot be installed: {err}")
        pytest.skip(f"GC3Pie {peer.GC3PIE_VERSION} cannot be installed: {err}")


def write(gc3pie: str, tmp_path: Any, command: str = "write", **request: Any) -> str:
    """Have GC3Pie write a session ``tmp_path/gc3pie``; return its path."""
    path = str(tmp_path / "gc3pie")
    peer.call(gc3pie, command, {"home": str(tmp_path / "home"), "path": path,
                                "work": str(tmp_path / "work"), **request})
    return path


def describe(gc3pie: str, tmp_path: Any, path: str) -> dict[str, Any]:
    return peer.call(gc3pie, "describe", {"home": str(tmp_path / "home"), "path": path})  # type: ignore[no-any-return]


def snapshot(*roots: str) -> dict[str, tuple[int, bytes | None]]:
    """Every file and directory under ``roots``: mtime (ns) and bytes."""
    found = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                data = None
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as stream:
                        data = stream.read()
                found[path] = (os.lstat(path).st_mtime_ns, data)
    return found


def check_same(seen: dict[str, Any], report: ImportReport, raw: set[str] = frozenset()) -> Session:
    """What GC3Pie read back is what the new session holds; ``raw``: the GC3Pie ids kept raw.

    A record GC3Pie could not load (``error``) is left to the caller: it is
    raw when its own bytes are broken, mapped when only a child of it is.
    """
    new = lambda key: report.renamed.get(key, key)  # noqa: E731
    session = Session(report.destination, mode="r")
    assert session.list_ids() == [new(key) for key in seen["index"]]
    assert {r.gc3pie_id for r in report.raw} == raw
    for key, record in seen["records"].items():
        obj = session.store.load(new(key))
        assert str(obj.persistent_id) == new(key)
        if key in raw:
            assert isinstance(obj, GC3PieRecord) and obj.gc3pie_id == key
            continue
        if "error" in record:
            continue
        assert type(obj) is OURS[record["class"]], key
        assert (obj.jobname, obj.execution.state, obj.execution.returncode) == \
            (record["jobname"], record["state"], record["returncode"]), key
        assert getattr(obj, "output_dir", None) == record["output_dir"], key
        assert [str(c.persistent_id) for c in getattr(obj, "tasks", [])] == \
            [new(c) for c in record["children"]], key
        if record["current_task"] is not None:
            assert obj._current_task == record["current_task"]
        history = [message for message, _, _ in obj.execution.history]
        note = ["was RUNNING under GC3Pie: gc3session did not start its command and cannot watch it"]
        assert history == record["history"] + (note if record["state"] == "RUNNING"
                                               and record["children"] == [] else []), key
    return session


def test_filesystem_session(gc3pie: str, tmp_path: Any) -> None:
    """Every kind of GC3Pie task in a filesystem store; two kept raw; the source untouched."""
    src = write(gc3pie, tmp_path, store="file")
    seen = describe(gc3pie, tmp_path, src)
    before = snapshot(src, str(tmp_path / "work"))
    report = import_session(src, tmp_path / "new")
    assert snapshot(src, str(tmp_path / "work")) == before
    assert report.renamed == {} and report.tasks == 7 and report.records == 11
    assert report.mapped == {"gc3libs:Application": 6, "gc3libs:Task": 1,
                             "gc3libs.workflow:ParallelTaskCollection": 1,
                             "gc3libs.workflow:SequentialTaskCollection": 1}
    reasons = {r.gc3pie_id: r.reason for r in report.raw}
    assert "__main__:CustomApp" in reasons["CustomApp.10"]
    assert "http://example.org/in.txt is not a local file" in reasons["Application.11"]
    with check_same(seen, report, raw={"CustomApp.10", "Application.11"}) as session:
        fresh = session.load("Application.1")
        work = str(tmp_path / "work")
        assert fresh.arguments == ["/bin/sh", "-c", "cat in.txt > result.txt; echo hello"]
        assert fresh.inputs == {f"{work}/in.txt": "in.txt"}
        assert fresh.outputs == {"result.txt": "result.txt", "out.txt": "out.txt", "err.txt": "err.txt"}
        assert (fresh.stdout, fresh.stderr, fresh.environment) == ("out.txt", "err.txt", {"GREETING": "hi"})
        assert (fresh.requested_cores, fresh.requested_memory, fresh.requested_walltime) == \
            (2, 2 * 10**9, 3600.0)
        assert (fresh.sample, fresh.tags) == ("S1", ["demo"])
        assert fresh.source == Url("http://example.org/data?x=1") and isinstance(fresh.source, Url)
        assert fresh.params == Struct(alpha=1, beta=[1, 2]) and fresh.params.beta == [1, 2]
        custom = session.load("CustomApp.10")
        assert (custom.jobname, custom.execution.state, custom.output_dir) == \
            ("custom", "NEW", f"{work}/out/custom")
        with open(os.path.join(src, "jobs", "CustomApp.10"), "rb") as stream:
            assert custom.gc3pie_data == stream.read()


def test_collections_and_the_engine_goes_on(gc3pie: str, tmp_path: Any) -> None:
    """Children stay children, a sequence keeps its place; gc3session's engine runs what is left."""
    src = write(gc3pie, tmp_path, store="file")
    report = import_session(src, tmp_path / "new", classes={"__main__:CustomApp": PortedApp})
    assert {r.gc3pie_id for r in report.raw} == {"Application.11"}
    work = tmp_path / "work"
    with Session(report.destination) as session:
        seq = session.load("SequentialTaskCollection.7")
        assert [t.jobname for t in seq.tasks] == ["seq0", "seq1"] and seq._current_task == 1
        assert type(session.load("CustomApp.10")) is PortedApp
        counts = Engine(session).run_until_done(poll_interval=0.05)
        states = {t.jobname: (t.execution.state.value, t.execution.returncode)
                  for t in session.iter_workflow()}
    assert states["fresh"] == ("TERMINATED", 0)
    assert (work / "out" / "fresh" / "result.txt").read_text() == "input\n"
    assert (work / "out" / "fresh" / "out.txt").read_text() == "hello\n"
    assert states["failed"] == ("TERMINATED", 3 << 8)  # ended under GC3Pie: not run again
    assert states["par"] == states["par0"] == states["par1"] == ("TERMINATED", 0)
    assert states["seq"] == states["seq1"] == ("TERMINATED", 0)
    assert not (work / "out" / "seq0").exists()  # GC3Pie's finished child was not run again
    assert states["custom"] == ("TERMINATED", 42 << 8)  # the mapped class's own hook ran
    assert states["remote"] == ("NEW", None) and states["plain"] == ("NEW", None)
    assert counts["total"] == 7


def test_sqlite_session_with_extra_fields(gc3pie: str, tmp_path: Any) -> None:
    """An SQLite store: ids become Class.N, extra-field columns keep GC3Pie's values."""
    src = write(gc3pie, tmp_path, store="sqlite", extra_fields=["jobname", "rc", "cmd"])
    seen = describe(gc3pie, tmp_path, src)
    before = snapshot(src)
    report = import_session(src, tmp_path / "new")
    assert snapshot(src) == before
    first = seen["index"][0]
    assert report.renamed[first] == f"Application.{first}"
    assert report.store.startswith("sqlite://") and report.extra_fields == ["jobname", "rc", "cmd"]
    check_same(seen, report, raw={seen["index"][5], seen["index"][6]}).close()
    engine = sa.create_engine(report.store)
    with engine.connect() as conn:
        rows = {r.id: {"jobname": r.jobname, "rc": r.rc, "cmd": r.cmd}
                for r in conn.execute(sa.text("SELECT id, jobname, rc, cmd FROM store"))}
    engine.dispose()
    assert rows == {report.renamed[key]: values for key, values in seen["extras"].items()}
    assert rows[report.renamed[seen["index"][1]]] == {"jobname": "failed", "rc": 768, "cmd": "/bin/sh"}
    fs_report = import_session(src, tmp_path / "as-files", store_url=str(tmp_path / "as-files" / "jobs"))
    assert not fs_report.extra_fields_kept and fs_report.tasks == 7


def test_postgresql_session(gc3pie: str, tmp_path: Any, pg_url: str) -> None:
    """A GC3Pie table in PostgreSQL: imported into SQLite (default) and into another table there."""
    src = write(gc3pie, tmp_path, url=pg_url, extra_fields=["jobname", "rc"])
    seen = describe(gc3pie, tmp_path, src)
    report = import_session(src, tmp_path / "new")
    assert report.store.startswith("sqlite://") and report.extra_fields == ["jobname", "rc"]
    raw = {seen["index"][5], seen["index"][6]}
    check_same(seen, report, raw=raw).close()
    with pytest.raises(ImportTargetError, match="own store"):
        import_session(src, tmp_path / "same", store_url=pg_url)
    report = import_session(src, tmp_path / "in-pg", store_url=f"{pg_url}#table=imported")
    check_same(seen, report, raw=raw).close()
    assert describe(gc3pie, tmp_path, src) == seen  # GC3Pie's own table is as it was


def test_session_mid_run(gc3pie: str, tmp_path: Any) -> None:
    """GC3Pie's engine stopped mid-run: ended tasks keep their codes, the running one runs again."""
    src = write(gc3pie, tmp_path, command="write-midrun", store="file")
    seen = describe(gc3pie, tmp_path, src)
    assert [r["state"] for r in seen["records"].values()] == ["TERMINATED", "TERMINATED", "RUNNING"]
    time.sleep(2.5)  # GC3Pie's "sleep 2" ends by itself, unwatched
    before = snapshot(src)
    report = import_session(src, tmp_path / "new")
    assert snapshot(src) == before
    slow = seen["index"][2]
    assert report.in_flight == [slow] and report.raw == []
    with check_same(seen, report) as session:
        assert session.load(slow).execution.info.startswith("was RUNNING under GC3Pie")
    out = tmp_path / "work" / "out"
    ok_output = (out / "ok" / "out.txt").stat().st_mtime_ns
    with Session(report.destination) as session:
        Engine(session).run_until_done(poll_interval=0.05)
        final = {t.jobname: (t.execution.state.value, t.execution.returncode) for t in session}
    assert final == {"ok": ("TERMINATED", 0), "bad": ("TERMINATED", 3 << 8),
                     "slow": ("TERMINATED", 0)}
    assert (out / "ok" / "out.txt").stat().st_mtime_ns == ok_output  # not run a second time


def test_corrupt_records_are_kept_raw(gc3pie: str, tmp_path: Any) -> None:
    """A garbled record is kept raw (named in the report), one with a good .OLD loads as GC3Pie does."""
    src = write(gc3pie, tmp_path, store="file")
    jobs = os.path.join(src, "jobs")
    with open(os.path.join(jobs, "Application.1"), "rb") as stream:
        good = stream.read()
    with open(os.path.join(jobs, "Application.1.OLD"), "wb") as stream:
        stream.write(good)  # GC3Pie's backup of a write in progress
    for name, size in (("Application.1", 100), ("Application.2", 60), ("Application.8", 0)):
        with open(os.path.join(jobs, name), "r+b") as stream:
            stream.truncate(size)
    for victim, impostor in (("Task.3", "Application.9"), ("Application.5", "ParallelTaskCollection.4")):
        with open(os.path.join(jobs, impostor), "rb") as stream:
            data = stream.read()
        with open(os.path.join(jobs, victim), "wb") as stream:
            stream.write(data)  # another task's record (Application.5's refers to itself)
    seen = describe(gc3pie, tmp_path, src)
    assert "error" not in seen["records"]["Application.1"]  # GC3Pie read the backup
    assert "error" in seen["records"]["Application.2"]
    assert "error" in seen["records"]["SequentialTaskCollection.7"]  # GC3Pie loses the whole sequence
    before = snapshot(src)
    report = import_session(src, tmp_path / "new")
    assert snapshot(src) == before
    assert report.from_backup == ["Application.1"]
    reasons = {r.gc3pie_id: r.reason for r in report.raw}
    assert os.path.join(jobs, "Application.2") in reasons["Application.2"]
    assert reasons["Task.3"] == "the record holds the id Application.9, not Task.3"
    assert "Application.5 refers back to itself" in reasons["Application.5"]
    raw = {"CustomApp.10", "Application.11", "Application.2", "Application.8", "Task.3",
           "Application.5"}
    with check_same(seen, report, raw=raw) as session:
        failed = session.load("Application.2")
        assert failed.execution.state == "UNKNOWN" and failed.jobname is None
        assert len(failed.gc3pie_data) == 60
        seq = session.load("SequentialTaskCollection.7")  # kept, with its broken child raw
        assert [type(t) for t in seq.tasks] == [GC3PieRecord, Application]
        assert (seq.jobname, seq._current_task, seq.tasks[1].jobname) == ("seq", 1, "seq1")


def test_corrupt_sqlite_row(gc3pie: str, tmp_path: Any) -> None:
    """A garbled SQL row keeps GC3Pie's state column and extra fields; the rest is imported."""
    src = write(gc3pie, tmp_path, store="sqlite", extra_fields=["jobname", "rc"])
    failed = describe(gc3pie, tmp_path, src)["index"][1]
    with sqlite3.connect(os.path.join(src, "jobs.db")) as conn:
        data = conn.execute("SELECT data FROM store WHERE id = ?", (int(failed),)).fetchone()[0]
        conn.execute("UPDATE store SET data = ? WHERE id = ?", (data[:60], int(failed)))
    conn.close()
    seen = describe(gc3pie, tmp_path, src)
    report = import_session(src, tmp_path / "new")
    new = report.renamed[failed]
    assert new == f"Application.{failed}"  # the class name is read from what is left of the pickle
    with check_same(seen, report, raw={failed, seen["index"][5], seen["index"][6]}) as session:
        kept = session.load(new)
        assert isinstance(kept, GC3PieRecord) and kept.execution.state == "TERMINATED"
        assert kept.gc3pie_data == data[:60] and "does not unpickle" in kept.reason
    engine = sa.create_engine(report.store)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT jobname, rc FROM store WHERE id = :id"), {"id": new}).one()
    engine.dispose()
    assert tuple(row) == ("failed", 768)


def test_a_thousand_tasks(gc3pie: str, tmp_path: Any) -> None:
    """A 1,000-task GC3Pie session imports whole (the time is printed: see the report)."""
    src = write(gc3pie, tmp_path, command="write-many", n=1000)
    seen = describe(gc3pie, tmp_path, src)
    started = time.perf_counter()
    report = import_session(src, tmp_path / "new")
    print(f"import of 1,000 GC3Pie tasks: {time.perf_counter() - started:.2f}s")
    assert report.tasks == report.records == 1000 and report.raw == []
    check_same(seen, report).close()


def test_refusals_write_nothing(gc3pie: str, tmp_path: Any) -> None:
    """A destination that exists, or inside the GC3Pie session, or its store: typed errors."""
    src = write(gc3pie, tmp_path, store="sqlite")
    before = snapshot(src)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("mine")
    with pytest.raises(ImportTargetError, match="already exists"):
        import_session(src, tmp_path / "taken")
    with pytest.raises(ImportTargetError, match="inside the GC3Pie session"):
        import_session(src, os.path.join(src, "new"))
    with pytest.raises(ImportTargetError, match="inside the GC3Pie session"):
        import_session(src, tmp_path / "n1", store_url=f"sqlite:///{src}/other.db")
    with pytest.raises(InvalidValue, match="not a gc3session task class"):
        import_session(src, tmp_path / "n2", classes={"__main__:CustomApp": "gc3session.url:Url"})
    assert snapshot(src) == before
    assert not (tmp_path / "n1").exists() and not (tmp_path / "n2").exists()
    assert os.listdir(tmp_path / "taken") == ["file"]


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_a_store_outside_the_session_is_never_written(gc3pie: str, tmp_path: Any, kind: str) -> None:
    """GC3Pie's store may live elsewhere (``sqlite:///abs`` is absolute for GC3Pie): never a target."""
    shared = tmp_path / "shared"
    url = str(shared / "jobs") if kind == "file" else f"sqlite://{shared}/jobs.db"  # three slashes
    src = write(gc3pie, tmp_path, url=url)
    before = snapshot(str(shared))
    target = str(shared / "jobs") if kind == "file" else f"sqlite:///{shared}/jobs.db#table=other"
    with pytest.raises(ImportTargetError, match="the GC3Pie session's own store"):
        import_session(src, tmp_path / "new", store_url=target)
    assert snapshot(str(shared)) == before and not (tmp_path / "new").exists()
    report = import_session(src, tmp_path / "new")
    assert report.tasks == 7 and snapshot(str(shared)) == before


def test_cli_import(gc3pie: str, tmp_path: Any) -> None:
    """``gsession import``: a summary, one stderr line per raw task, exit status 65 if any."""
    src = write(gc3pie, tmp_path, store="file")
    out, err = io.StringIO(), io.StringIO()
    rc = main(["import", src, str(tmp_path / "new"), "--class", "__main__:CustomApp="
               "test_gc3pie_import:PortedApp"], stdout=out, stderr=err)
    assert rc == 65
    assert err.getvalue().splitlines() == [
        "gsession: kept Application.11 as a GC3Pie record (gc3libs:Application): its input"
        " http://example.org/in.txt is not a local file"]
    assert "imported 11 records (7 top-level tasks)" in out.getvalue()
    assert main(["list", str(tmp_path / "new")], stdout=io.StringIO()) == 0
    rc = main(["import", src, str(tmp_path / "new")], stdout=out, stderr=err)
    assert rc == 1 and "already exists" in err.getvalue().splitlines()[-1]


def test_not_a_gc3pie_session(tmp_path: Any) -> None:
    """A directory without GC3Pie's files, or whose store is gone: one typed error naming it."""
    with pytest.raises(NotAGC3PieSessionError, match="session_ids.txt"):
        import_session(tmp_path, tmp_path.parent / f"{tmp_path.name}-new")
    (tmp_path / "session_ids.txt").write_text("Application.1\n")
    (tmp_path / "store.url").write_text(f"file://{tmp_path}/jobs")
    with pytest.raises(GC3PieStoreError, match=f"{tmp_path}/jobs does not exist"):
        import_session(tmp_path, tmp_path.parent / f"{tmp_path.name}-new")
    (tmp_path / "store.url").write_text(f"sqlite:///{tmp_path}/jobs.db")
    with pytest.raises(GC3PieStoreError, match="jobs.db does not exist"):
        import_session(tmp_path, tmp_path.parent / f"{tmp_path.name}-new")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "store.url").write_text(f"file://{tmp_path}/jobs")
    (tmp_path / "session_ids.txt").write_text("../../etc/passwd\n")
    with pytest.raises(NotAGC3PieSessionError, match="not an id of its store"):
        import_session(tmp_path, tmp_path.parent / f"{tmp_path.name}-new")
    assert not (tmp_path.parent / f"{tmp_path.name}-new").exists()


def test_an_uninstallable_gc3pie_is_reported(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a package index the peer says why (the fixture turns that into skip or failure)."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(peer.PeerUnavailable, match="gc3pie==2.6.8"):
        peer.gc3pie_python(str(tmp_path / "cache" / "gc3pie"))
