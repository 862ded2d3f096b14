"""Task summaries: what tools list of a session, read without unpickling (or importing) anything.

Every record's header holds a JSON summary of its task; the filesystem store
also keeps them in ``.summaries`` (next to the state log), SQL stores in a
``summary`` column.  ``Session.summaries()`` and ``Store.summaries()`` read
them on every store, for tasks whose classes cannot be imported too.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from typing import Any, Callable

import pytest

from gc3session import Application, ParallelTaskCollection, Session, Task, fsio
from gc3session.exceptions import ClassNotFoundError

STORES = ["file", "sqlite", "postgresql"]


@pytest.fixture(params=STORES)
def make_url(request: pytest.FixtureRequest, tmp_path: Any) -> Callable[[str], "str | None"]:
    kind = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "postgresql" else None

    def make(name: str) -> str | None:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path}/{name}.db"
        if kind == "postgresql":
            return f"{pg_url}#table={name}"
        return None

    return make


def test_a_summary_says_what_the_task_says(make_url: Callable[[str], "str | None"],
                                          tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    with Session(path, store_or_url=make_url("s")) as session:
        app = Application(["true"], jobname="align 1", output_dir=str(tmp_path / "out"))
        session.add(app)
        app.execution.attempt = 2
        app.execution.state = "SUBMITTED"
        app.execution.state = "RUNNING"
        app.execution.returncode = (9, 0)
        app.execution.state = "TERMINATED"
        child = Task(jobname="child")
        collection = ParallelTaskCollection([child], jobname="coll")
        session.add(collection)
        session.save_all()
    with Session(path, mode="r", load=False) as again:
        summaries = again.summaries()
    assert list(summaries) == [app.persistent_id, collection.persistent_id]
    s = summaries[app.persistent_id]
    stamps = app.execution.timestamp
    assert s == {"class": "gc3session.task:Application", "state": "TERMINATED",
                 "jobname": "align 1", "exitcode": 0, "signal": 9, "attempts": 2,
                 "submitted": stamps["SUBMITTED"], "started": stamps["RUNNING"],
                 "ended": stamps["TERMINATED"], "changed": app.execution.state_last_changed,
                 "stdout": str(tmp_path / "out" / "stdout.txt"),
                 "stderr": str(tmp_path / "out" / "stderr.txt"),
                 "info": app.execution.history.last(), "children": None}
    assert summaries[collection.persistent_id]["children"] == [child.persistent_id]


def test_summaries_need_no_task_class(make_url: Callable[[str], "str | None"],
                                      tmp_path: Any) -> None:
    """A task class that can no longer be imported: loading fails, summaries do not."""
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "vanishing.py").write_text(textwrap.dedent("""
        from gc3session import Task
        class Gone(Task):
            pass
    """))
    sys.path.insert(0, str(module_dir))
    try:
        import vanishing  # type: ignore[import-not-found]
        path = str(tmp_path / "s")
        with Session(path, store_or_url=make_url("s")) as session:
            pid = session.add(vanishing.Gone(jobname="gone"))
    finally:
        sys.path.remove(str(module_dir))
        sys.modules.pop("vanishing", None)
        os.unlink(module_dir / "vanishing.py")
    with Session(path, mode="r", load=False) as again:
        assert again.summaries()[pid]["jobname"] == "gone"
        assert again.summaries()[pid]["class"] == "vanishing:Gone"
        with pytest.raises(ClassNotFoundError):
            again.load(pid)


def test_a_writer_killed_before_its_summary_lines_leaves_no_stale_summary(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    with Session(path) as session:
        pid = session.add(Task(jobname="before"))
    child = os.fork()
    if child == 0:
        try:
            session = Session(path)
            task = session.load(pid)
            task.jobname = "after"
            task.execution.state = "TERMINATED"
            renamed: list[str] = []

            def hook(step: str, target: str) -> None:
                if step == "rename" and target.endswith(pid):
                    renamed.append(target)
                elif renamed and target.endswith(".summaries"):
                    os.kill(os.getpid(), signal.SIGKILL)

            with fsio.inject_faults(hook):
                session.save(task)
        finally:
            os._exit(3)
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status)
    with Session(path, mode="r", load=False) as again:
        summary = again.summaries()[pid]
    assert summary["jobname"] == "after" and summary["state"] == "TERMINATED"


def test_summaries_follow_removals_and_compactions(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    with Session(path, durable=False) as session:
        ids = [session.add(Task(jobname=f"t{n}"), flush=False) for n in range(300)]
        session.flush()
        for round_ in range(12):  # past the first compaction of both logs
            for task in session:
                task.jobname = f"t-{round_}-{task.persistent_id}"
            session.save_all()
        session.remove(ids[0])
    with Session(path, mode="r", load=False) as again:
        summaries = again.store.summaries()
    assert ids[0] not in summaries and len(summaries) == 299
    assert all(s["jobname"] == f"t-11-{pid}" for pid, s in summaries.items())
    with open(os.path.join(path, "jobs", ".summaries"), "rb") as stream:
        assert stream.readline().startswith(b"#")  # it was compacted
