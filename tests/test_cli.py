"""``gsession``: each subcommand's output and exit status, read-only guarantees, fsck, copy.

Commands run in-process through :func:`gc3session.cli.main` with captured
streams (one test runs the installed console script), on real session
directories, SQLite files and a PostgreSQL database.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from _session_objects import PayloadTask, child_env, run_child, snapshot

from gc3session import (
    Application,
    ParallelTaskCollection,
    SequentialTaskCollection,
    Session,
    Task,
    fsck,
    fsio,
)
from gc3session.cli import main
from gc3session.sessionlock import driver_lock


def run(*argv: str) -> tuple[int, str, str]:
    """Run gsession in-process; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def make_session(path: str, url: str | None = None) -> dict[str, str]:
    """A session with plain tasks (one ok, one failed) and nested collections; returns ids by name."""
    with Session(path, store_or_url=url) as session:
        ok = Task(jobname="ok", value=1)
        ok.execution.state = "TERMINATED"
        ok.execution.returncode = 0
        failed = Task(jobname="failed", value=2)
        failed.execution.returncode = 256
        failed.execution.state = "TERMINATED"
        new = Task(jobname="new", value=3)
        inner = SequentialTaskCollection([Task(jobname="leaf-1"), Task(jobname="leaf-2")],
                                         jobname="inner")
        outer = ParallelTaskCollection([inner, Task(jobname="leaf-3")], jobname="outer")
        for task in (ok, failed, new, outer):
            session.add(task)
        named = {t.jobname: str(t.persistent_id) for t in (ok, failed, new, outer, inner)}
        named.update({c.jobname: str(c.persistent_id) for c in [*inner.tasks, outer.tasks[1]]})
        return named


def _read(path: str) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()


def _listed(path: str) -> list[str]:
    with Session(path, mode="r", load=False) as session:
        return session.list_ids()


def tree(session: Session) -> list[Any]:
    """(id, class, jobname, state, children...) of every top-level task, recursively."""
    def node(task: Any) -> Any:
        return (str(task.persistent_id), type(task).__name__, task.jobname,
                str(task.execution.state), [node(c) for c in getattr(task, "tasks", None) or ()])
    return [node(t) for t in session]


@pytest.fixture
def sess(tmp_path: Any) -> tuple[str, dict[str, str]]:
    path = str(tmp_path / "s")
    return path, make_session(path)


# --- list, show, log, stats -----------------------------------------------------------
def test_list_prints_a_table_of_top_level_tasks(sess: Any) -> None:
    """`list` prints JobID | Job name | State | Exit | Changed | Info, one row per top-level
    task, exit 0; the exit code (not the wait status) and the time in local ISO 8601."""
    path, ids = sess
    rc, out, err = run("list", path)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == ["JobID", "Job name", "State", "Exit",
                                                        "Changed", "Info"]
    rows = [[c.strip() for c in line.split("|")] for line in lines[2:]]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (ids["ok"], "ok", "TERMINATED", "0"), (ids["failed"], "failed", "TERMINATED", "1"),
        (ids["new"], "new", "NEW", ""), (ids["outer"], "outer", "NEW", "")]
    assert all(datetime.datetime.fromisoformat(r[4]).tzinfo is not None for r in rows)


def test_list_recursive_indents_children(sess: Any) -> None:
    """`list -r` adds every child under its parent, indented two spaces per level."""
    path, ids = sess
    rc, out, _ = run("list", "-r", path)
    assert rc == 0
    first_cells = [line.split("|")[0].rstrip() for line in out.splitlines()[2:]]
    assert first_cells[3:] == [ids["outer"], "  " + ids["inner"], "    " + ids["leaf-1"],
                               "    " + ids["leaf-2"], "  " + ids["leaf-3"]]


def test_list_json_nests_children(sess: Any) -> None:
    """`list -r --json` gives id, jobname, state, returncode and nested children."""
    path, ids = sess
    rc, out, _ = run("list", "-r", "--json", path)
    data = json.loads(out)
    assert rc == 0 and [r["jobname"] for r in data] == ["ok", "failed", "new", "outer"]
    assert data[1]["returncode"] == 256 and data[0]["returncode"] == 0
    outer = data[3]
    assert [c["id"] for c in outer["children"]] == [ids["inner"], ids["leaf-3"]]
    assert [c["jobname"] for c in outer["children"][0]["children"]] == ["leaf-1", "leaf-2"]


def test_list_of_empty_session_prints_header_only(tmp_path: Any) -> None:
    """An empty session lists as a table without rows, exit 0 (gc3pie prints it even empty)."""
    Session(str(tmp_path / "e")).close()
    rc, out, _ = run("list", str(tmp_path / "e"))
    assert rc == 0 and len(out.splitlines()) == 2 and out.startswith("JobID")


def test_show_prints_summary_attributes_history_and_children(sess: Any) -> None:
    """`show` names the class, the state and exit, every attribute, the history and the
    children's ids (from the record, no class imported); --full adds the execution record."""
    path, ids = sess
    rc, out, _ = run("show", path, ids["failed"])
    assert rc == 0
    assert out.splitlines()[0] == f"{ids['failed']} (gc3session.task:Task)"
    assert "  state: TERMINATED" in out and "  exit: exit code 1" in out
    assert "  jobname: failed" in out and "  value: 2" in out
    assert "Transition from state NEW to state TERMINATED" in out
    rc, out, _ = run("show", "--full", path, ids["failed"])
    assert rc == 0 and "    returncode: 256" in out
    rc, out, _ = run("show", path, ids["inner"])
    assert rc == 0 and "not listed in the session" in out.splitlines()[0]
    assert f"  children: {ids['leaf-1']}, {ids['leaf-2']}" in out


def test_show_json(sess: Any) -> None:
    """`show --json` holds id, class, summary, attributes, history and children ids."""
    path, ids = sess
    rc, out, _ = run("show", "--json", path, ids["outer"])
    data = json.loads(out)
    assert rc == 0 and data["id"] == ids["outer"] and data["listed"] is True
    assert data["class"] == "gc3session.task:ParallelTaskCollection"
    assert data["children"] == [ids["inner"], ids["leaf-3"]]
    assert data["attributes"]["jobname"] == "outer" and data["summary"]["state"] == "NEW"
    rc, out, _ = run("show", "--json", "--full", path, ids["outer"])
    assert rc == 0 and json.loads(out)["execution"]["attempt"] == 0


@pytest.mark.parametrize("task_id", ["Task.999", "../etc/passwd"])
def test_show_unknown_or_invalid_id_is_one_line_error(sess: Any, task_id: str) -> None:
    """A missing or malformed id exits 1 with one line on stderr naming it."""
    rc, out, err = run("show", sess[0], task_id)
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and task_id in err and err.startswith("gsession: error: ")


def test_log_prints_history_sorted_by_time(tmp_path: Any) -> None:
    """`log` prints "%b %d %H:%M:%S <id>: <message>" for children too, oldest first."""
    path = str(tmp_path / "s")
    with Session(path) as session:
        child = Task(jobname="child")
        parent = ParallelTaskCollection([child], jobname="parent")
        first = Task(jobname="first")
        session.add(first)
        session.add(parent)
        first.execution.info = "message one"
        child.execution.info = "message two"
        parent.execution.info = "message three"
        session.save(first)
        session.save(parent)
        when = child.execution.history._messages[-1][1]
    rc, out, _ = run("log", path)
    assert rc == 0
    assert [line.split(": ", 1)[1] for line in out.splitlines()] == [
        "message one", "message two", "message three"]
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(when))
    assert f"{stamp} {child.persistent_id}: message two" in out.splitlines()
    rc, out, _ = run("log", "--json", path)
    assert [e["id"] for e in json.loads(out)] == [str(first.persistent_id), str(child.persistent_id),
                                                  str(parent.persistent_id)]


def test_stats_counts_states(sess: Any) -> None:
    """`stats` counts top-level tasks per state with percentages and a total; JSON too."""
    path, _ = sess
    rc, out, _ = run("stats", path)
    assert rc == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:]}
    assert rows == {"NEW": ["2/4", "(50.0%)"], "TERMINATED": ["2/4", "(50.0%)"],
                    "total": ["4/4", "(100.0%)"]}
    assert "driver: none running" in out
    rc, out, _ = run("stats", "--json", path)
    data = json.loads(out)
    assert data["states"] == {"NEW": 2, "TERMINATED": 2} and data["total"] == 4
    assert data["driver"] is None


def test_inspecting_needs_no_task_class(tmp_path: Any) -> None:
    """Records whose class is gone: stats, list, show and log work (headers and inert records);
    only show --full needs the class, and says in one line which one it cannot import."""
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "vanishing_mod.py").write_text(
        "from gc3session import Task\nclass Vanishing(Task):\n    pass\n")
    path = str(tmp_path / "s")
    sys.path.insert(0, str(module_dir))
    try:
        import vanishing_mod
        with Session(path) as session:
            session.add(vanishing_mod.Vanishing(jobname="v"))
            session.add(Task(jobname="plain"))
    finally:
        sys.path.remove(str(module_dir))
        del sys.modules["vanishing_mod"]
    from gc3session.persistence import classes
    classes._class_cache.clear()
    rc, out, _ = run("stats", "--json", path)
    assert rc == 0 and json.loads(out)["states"] == {"NEW": 2}
    rc, out, err = run("list", path)
    assert rc == 0 and "plain" in out and "Vanishing.1" in out and err == ""
    assert run("show", path, "Vanishing.1")[0] == 0 and run("log", path)[0] == 0
    rc, out, err = run("show", "--full", path, "Vanishing.1")
    assert rc == 1 and err.count("\n") == 1 and "vanishing_mod" in err and "Vanishing.1" in err


def test_untrusted_refuses_classes_off_the_allow_list(tmp_path: Any) -> None:
    """--untrusted lists and shows every task (nothing is imported), but loading a user class
    (show --full, fsck) is refused instead of importing it."""
    path = str(tmp_path / "s")
    with Session(path) as session:
        session.add(PayloadTask(jobname="user", payload=1))
        session.add(Task(jobname="ours"))
    rc, out, _ = run("list", "--untrusted", path)
    assert rc == 0 and "ours" in out and "user" in out
    assert run("show", "--untrusted", path, "PayloadTask.1")[0] == 0
    rc, out, err = run("show", "--untrusted", "--full", path, "PayloadTask.1")
    assert rc == 1 and "PayloadTask.1" in err and "not allowed" in err
    assert run("fsck", "--untrusted", path)[0] == fsck.PROBLEMS


@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_read_only_commands_change_no_byte_and_no_mtime(tmp_path: Any, store: str) -> None:
    """list/show/log/stats/fsck (text and --json) leave every file and directory as it was."""
    path = str(tmp_path / "s")
    ids = make_session(path, f"sqlite:///{tmp_path}/s.db" if store == "sqlite" else None)
    before = snapshot(str(tmp_path))
    for argv in (["list", path], ["list", "-r", "--json", path], ["show", path, ids["outer"]],
                 ["show", "--json", path, ids["leaf-1"]], ["log", path], ["log", "--json", path],
                 ["stats", path], ["stats", "--json", path], ["fsck", path],
                 ["fsck", "--json", path]):
        rc, _, err = run(*argv)
        assert rc == 0, (argv, err)
    assert snapshot(str(tmp_path)) == before


def test_usage_errors_exit_64(sess: Any) -> None:
    """No command, an unknown one, or a missing argument: exit 64 with a hint on stderr."""
    for argv in ([], ["frobnicate", sess[0]], ["show", sess[0]],
                 ["fsck", "--orphans", "eat", sess[0]]):
        rc, out, err = run(*argv)
        assert rc == 64 and out == "" and "gsession --help" in err, argv


def test_a_password_typed_on_the_command_line_is_never_echoed(sess: Any) -> None:
    """Usage errors and refusals that quote a URL mask its password."""
    url = "postgresql://me:Sup3rSecret@127.0.0.1:1/db"
    for argv, status, said in ((["list", sess[0], url], 64, "postgresql://me:***@127.0.0.1:1/db"),
                               (["copy", sess[0], url.replace("postgresql", "nosuch")], 1,
                                "no store is registered for URL scheme 'nosuch'")):
        rc, out, err = run(*argv)
        assert rc == status and "Sup3rSecret" not in out + err, (argv, err)
        assert said in err, (argv, err)


def test_unreadable_store_url_is_an_error_naming_the_file(sess: Any) -> None:
    """Without store.url there is nothing to check against: fsck exits 1 and names the file."""
    path, _ = sess
    os.unlink(os.path.join(path, "store.url"))
    for command in ("fsck", "list", "stats"):
        rc, _, err = run(command, path)
        assert rc == 1 and os.path.join(path, "store.url") in err and err.count("\n") == 1


def test_every_subcommand_has_help_and_a_documented_section() -> None:
    """Each subcommand has a help text and is shown in docs/gsession.md; --help exits 0."""
    import argparse

    from gc3session.cli import build_parser

    parser = build_parser()
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "gsession.md")) as stream:
        doc = stream.read()
    assert set(choices.choices) == {"list", "show", "log", "stats", "report", "fsck", "copy",
                                    "import", "redo", "forget", "adopt", "abort", "delete"}
    for name in choices.choices:
        assert choices.choices[name].description, name
        assert f"    gsession {name} " in doc, name
    rc, out, _ = run("fsck", "--help")
    assert rc == 0 and "--repair" in out


def test_missing_session_is_an_error_and_creates_nothing(tmp_path: Any) -> None:
    """Every command on a missing session exits 1 naming it, and creates no directory."""
    missing = str(tmp_path / "nope")
    for argv in (["list", missing], ["stats", missing], ["fsck", missing], ["abort", missing],
                 ["delete", missing], ["copy", missing, f"sqlite:///{tmp_path}/x.db"]):
        rc, _, err = run(*argv)
        assert rc == 1 and missing in err and err.count("\n") == 1, (argv, err)
    assert os.listdir(tmp_path) == []


def test_console_script_runs(sess: Any) -> None:
    """The installed entry point (python -m gc3session.cli) prints the list and exits 0."""
    done = subprocess.run([sys.executable, "-m", "gc3session.cli", "stats", "--json", sess[0]],
                          capture_output=True, text=True, timeout=60, env=child_env())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"] == 4


# --- abort and delete ------------------------------------------------------------------
def _proc_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_abort_kills_running_commands_and_ends_every_task(tmp_path: Any) -> None:
    """abort kills a running command, ends NEW and plain tasks TERMINATED, saves, exits 0."""
    path = str(tmp_path / "s")
    with Session(path) as session:
        session.add(Application(["sleep", "60"], jobname="sleeper", output_dir=str(tmp_path / "o")))
        session.add(ParallelTaskCollection([Task(jobname="plain")], jobname="coll"))
        session.add(Application(["true"], jobname="waiting", output_dir=str(tmp_path / "w")))
    # a driver that starts the sleeper and goes away, leaving the command running
    run_child("import sys\nfrom gc3session import Session\nfrom gc3session.engine import Engine\n"
              "with Session(sys.argv[1]) as s:\n"
              "    e = Engine(s, max_in_flight=1); e.progress(); e.close()\n", path)
    with Session(path, mode="r") as session:
        sleeper = session.load(session.list_ids()[0])
        assert sleeper.execution.state == "RUNNING"
        pid = sleeper.execution.handle["pid"]
    assert not _proc_gone(pid)
    rc, _, err = run("abort", path)
    assert rc == 0, err
    deadline = time.monotonic() + 10
    while not _proc_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _proc_gone(pid)
    with Session(path, mode="r") as session:
        assert [str(t.execution.state) for t in session.iter_workflow()] == ["TERMINATED"] * 4
        assert session.load(str(sleeper.persistent_id)).execution.signal == 9


def test_abort_and_delete_refuse_while_a_driver_holds_the_session(sess: Any) -> None:
    """With the driver lock held, abort/delete/copy/fsck --repair exit 69 naming the owner."""
    path, _ = sess
    with driver_lock(path):
        before = snapshot(path)
        for argv in (["abort", path], ["delete", path], ["fsck", "--repair", path],
                     ["copy", path, f"sqlite:///{path}.db"]):
            rc, _, err = run(*argv)
            assert rc == 69 and f"pid {os.getpid()}" in err, (argv, err)
        rc, out, _ = run("stats", path)
        assert rc == 0 and f"driver: pid {os.getpid()}" in out
        assert snapshot(path) == before and not os.path.exists(f"{path}.db")


def test_delete_removes_the_session_and_its_records(tmp_path: Any) -> None:
    """delete aborts, deletes every record (children too) and the directory, exit 0."""
    path = str(tmp_path / "s")
    make_session(path, f"sqlite:///{tmp_path}/s.db")
    rc, out, _ = run("delete", path)
    assert rc == 0 and "deleted session" in out and not os.path.exists(path)
    from gc3session import make_store
    with make_store(f"sqlite:///{tmp_path}/s.db") as store:
        assert store.list() == []


def test_delete_keeps_a_session_whose_tasks_cannot_all_be_aborted(sess: Any) -> None:
    """A task that cannot be loaded cannot be aborted: delete exits 1 (tasks left), keeps it all."""
    path, ids = sess
    record = _record_path(path, ids["new"])
    with open(record, "wb") as stream:
        stream.write(b"garbage")
    rc, _, err = run("delete", path)
    assert rc == 1 and ids["new"] in err and "not deleted" in err
    assert os.path.exists(record) and _read(record) == b"garbage"
    assert _listed(path) == list(ids.values())[:4]


# --- fsck ------------------------------------------------------------------------------
def _record_path(path: str, pid: str) -> str:
    with Session(path, mode="r", load=False) as session:
        return session.store.location(pid)


def _fsck(*argv: str) -> tuple[int, dict[str, Any]]:
    rc, out, _ = run("fsck", "--json", *argv)
    return rc, json.loads(out)


def _kinds(report: dict[str, Any]) -> list[tuple[str, bool]]:
    return sorted((f["kind"], f["leftover"]) for f in report["findings"])


def test_fsck_clean_session(sess: Any) -> None:
    """A healthy session: no findings, status clean, exit 0; the text says so."""
    rc, report = _fsck(sess[0])
    assert rc == 0 and report["status"] == "clean" and report["findings"] == []
    assert report["listed"] == 4 and report["records"] == 8
    assert run("fsck", sess[0])[1].splitlines()[-1] == "result: clean"


def test_fsck_missing_record_is_dropped_from_the_index_on_repair(sess: Any) -> None:
    """An index id without a record is a problem (exit 4); --repair drops it (exit 2), then clean."""
    path, ids = sess
    os.unlink(_record_path(path, ids["new"]))  # the file vanished: .states still lists it
    rc, report = _fsck(path)
    assert rc == 4 and _kinds(report) == [("missing-record", False), ("stale-states", False)]
    assert report["findings"][0]["id"] == ids["new"]
    rc, report = _fsck("--repair", path)
    assert rc == 2 and all(f["repaired"] for f in report["findings"])
    assert ids["new"] not in _listed(path)
    assert _fsck(path)[0] == 0


def test_fsck_orphans_are_leftovers_kept_adopted_or_deleted(sess: Any) -> None:
    """An unlisted record tree is a leftover (exit 0): kept by default, adopted or deleted."""
    path, _ = sess
    with Session(path) as session:
        orphan = ParallelTaskCollection([Task(jobname="orphan-child")], jobname="orphan")
        session.save(orphan)
        orphan_id, child_id = str(orphan.persistent_id), str(orphan.tasks[0].persistent_id)
    rc, report = _fsck(path)
    assert rc == 0 and _kinds(report) == [("orphan", True)]
    assert report["findings"][0]["id"] == orphan_id and "1 record it refers to" in \
        report["findings"][0]["message"]
    rc, report = _fsck("--repair", path)
    assert rc == 0 and not report["findings"][0]["repaired"] and os.path.exists(
        _record_path(path, orphan_id))
    rc, report = _fsck("--repair", "--orphans", "adopt", path)
    assert rc == 0 and report["findings"][0]["repaired"]
    assert _listed(path)[-1] == orphan_id
    assert _fsck(path) == (0, {**_fsck(path)[1], "findings": []})
    with Session(path) as session:
        session.forget(orphan_id)
    rc, report = _fsck("--repair", "--orphans", "delete", path)
    assert rc == 0 and report["findings"][0]["repaired"]
    assert not os.path.exists(_record_path(path, orphan_id))
    assert not os.path.exists(_record_path(path, child_id))
    assert _fsck(path)[1]["findings"] == []


def test_fsck_reports_unlisted_records_that_refer_to_each_other(sess: Any) -> None:
    """Unlisted records in a reference cycle (none unreferenced) are still one orphan."""
    path, _ = sess
    first, second = Task(jobname="first"), Task(jobname="second")
    first.partner, second.partner = second, first
    with Session(path) as session:
        session.save(first)
    rc, report = _fsck(path)
    assert rc == 0 and _kinds(report) == [("orphan", True)]
    assert report["findings"][0]["id"] in (str(first.persistent_id), str(second.persistent_id))


def test_fsck_dangling_child_is_reported_and_never_repaired(sess: Any) -> None:
    """A collection whose child record is gone: problem naming both ids, kept by --repair (exit 4)."""
    path, ids = sess
    with Session(path, load=False) as session:
        session.store.remove(ids["leaf-2"])
    rc, report = _fsck(path)
    assert rc == 4 and _kinds(report) == [("dangling-ref", False)]
    finding = report["findings"][0]
    assert finding["id"] == ids["inner"] and ids["leaf-2"] in finding["message"]
    with driver_lock(path):
        pass  # the lock file a repair takes exists from now on
    before = snapshot(path)
    rc, report = _fsck("--repair", path)
    assert rc == 4 and not report["findings"][0]["repaired"]
    after = snapshot(path)
    assert {k: v for k, v in after.items() if k != "driver.lock"} == \
        {k: v for k, v in before.items() if k != "driver.lock"}


@pytest.mark.parametrize("damage", [b"garbage",
                                    b"GC3S 1 pickle4 gc3session.task:Task NEW\n\x80\x04trunc"])
def test_fsck_corrupt_record_names_id_and_cause_and_is_kept(sess: Any, damage: bytes) -> None:
    """An undecodable record: a problem naming id, file and cause; --repair keeps its bytes."""
    path, ids = sess
    record = _record_path(path, ids["ok"])
    with open(record, "wb") as stream:
        stream.write(damage)
    rc, report = _fsck(path)
    unloadable = [f for f in report["findings"] if f["kind"] == "unloadable"]
    assert rc == 4 and len(unloadable) == 1
    assert unloadable[0]["id"] == ids["ok"] and unloadable[0]["path"] == record
    assert unloadable[0]["cause"]
    rc, report = _fsck("--repair", path)
    assert rc == 4 and _read(record) == damage
    text = run("fsck", path)[1]
    assert f"problem: {ids['ok']} cannot be loaded" in text and "result: 1 problem(s) found" in text


def test_fsck_tmp_leftover_of_a_dead_writer_is_removed_on_repair(sess: Any) -> None:
    """A temporary file of a killed writer is a leftover (exit 0); --repair removes it."""
    path, ids = sess
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=30)
    shard = os.path.dirname(_record_path(path, ids["ok"]))
    tmp = os.path.join(shard, f".{ids['ok']}.{dead.pid}.0123abcd{fsio.TMP_SUFFIX}")
    live = os.path.join(path, f".session_ids.txt.{os.getpid()}.0123abcd{fsio.TMP_SUFFIX}")
    for name in (tmp, live):
        with open(name, "wb") as stream:
            stream.write(b"partial")
    rc, report = _fsck(path)
    assert rc == 0 and _kinds(report) == [("tmp-file", True), ("tmp-file", True)]
    rc, report = _fsck("--repair", path)
    assert rc == 0 and not os.path.exists(tmp)
    assert os.path.exists(live)  # its writer (this process) is alive
    assert [f["action"] for f in report["findings"]] == ["kept: its writer is still running",
                                                          "removed"]


def test_fsck_stale_states_log_is_rebuilt_on_repair(sess: Any) -> None:
    """.states contradicting a listed record is a problem; --repair rebuilds it from headers."""
    path, ids = sess
    states_file = os.path.join(path, "jobs", ".states")
    with open(states_file, "ab") as stream:
        stream.write(f"{ids['new']} TERMINATED\n".encode())
    with Session(path, mode="r", load=False) as session:
        assert session.states()[ids["new"]] == "TERMINATED"  # what a stale log makes stats say
    rc, report = _fsck(path)
    assert rc == 4 and _kinds(report) == [("stale-states", False)]
    rc, report = _fsck("--repair", path)
    assert rc == 2
    with Session(path, mode="r", load=False) as session:
        assert session.states()[ids["new"]] == "NEW"
    assert _fsck(path)[0] == 0


def test_fsck_states_lagging_a_save_killed_in_flight_is_a_leftover(sess: Any) -> None:
    """A save killed between its rename and its .states line: a leftover, rebuilt on repair."""
    path, ids = sess
    states_file = os.path.join(path, "jobs", ".states")
    log_before, stamp = _read(states_file), os.stat(states_file).st_mtime_ns
    with Session(path) as session:
        task = session.load(ids["new"])
        task.execution.state = "RUNNING"
        session.save(task)
    with open(states_file, "wb") as stream:  # the log as the killed writer left it
        stream.write(log_before)
    os.utime(states_file, ns=(stamp, stamp))
    rc, report = _fsck(path)
    assert rc == 0 and _kinds(report) == [("stale-states", True)]
    assert ids["new"] in report["findings"][0]["message"]
    _fsck("--repair", path)
    with Session(path, mode="r", load=False) as session:
        assert session.states()[ids["new"]] == "RUNNING"


def test_fsck_rebuilds_a_corrupt_index_and_keeps_the_damaged_file(sess: Any) -> None:
    """An unreadable index: problem; --repair lists every unreferenced record, keeps the old bytes."""
    path, ids = sess
    index_file = os.path.join(path, "session_ids.txt")
    with open(index_file, "wb") as stream:
        stream.write(b"Task.1\n\xff\xfe not an id\n")
    assert run("list", path)[0] == 1
    rc, report = _fsck(path)
    assert rc == 4 and _kinds(report) == [("corrupt-index", False)]
    rc, report = _fsck("--repair", path)
    assert rc == 2
    kept = [n for n in os.listdir(path) if n.startswith("session_ids.txt.damaged-")]
    assert len(kept) == 1 and _read(os.path.join(path, kept[0])).startswith(b"Task.1\n\xff")
    with Session(path, mode="r") as session:
        assert session.list_ids() == [ids[n] for n in ("ok", "failed", "new", "outer")]


def test_fsck_torn_index_tail_is_a_leftover(sess: Any) -> None:
    """A last index line without newline (a killed append) is a leftover; --repair cuts it."""
    path, _ = sess
    index_file = os.path.join(path, "session_ids.txt")
    with open(index_file, "ab") as stream:
        stream.write(b"Task.4")
    rc, report = _fsck(path)
    assert rc == 0 and _kinds(report) == [("torn-index", True)]
    _fsck("--repair", path)
    assert _read(index_file).endswith(b"\n") and _fsck(path)[1]["findings"] == []


def test_fsck_repair_on_sqlite_store(tmp_path: Any) -> None:
    """fsck checks SQL stores too: a deleted child row is a dangling reference."""
    path = str(tmp_path / "s")
    ids = make_session(path, f"sqlite:///{tmp_path}/s.db")
    with Session(path, load=False) as session:
        session.store.remove(ids["leaf-3"])
    rc, report = _fsck(path)
    assert rc == 4 and _kinds(report) == [("dangling-ref", False)]
    assert report["findings"][0]["id"] == ids["outer"]


# --- copy ------------------------------------------------------------------------------
def test_copy_filesystem_to_sqlite_keeps_ids_and_nesting(tmp_path: Any) -> None:
    """copy writes every reachable record verbatim, switches store.url, leaves the old store."""
    path = str(tmp_path / "s")
    make_session(path)
    with Session(path, mode="r") as session:
        expected = tree(session)
        old_bytes = {str(i): session.store.read_record(i) for i in session.store.list()}
    old_store = snapshot(os.path.join(path, "jobs"))
    rc, out, err = run("copy", path, f"sqlite:///{tmp_path}/new.db")
    assert rc == 0, err
    assert "copied 8 records (4 top-level tasks)" in out
    assert _read(os.path.join(path, "store.url")).decode() == f"sqlite:///{tmp_path}/new.db"
    assert snapshot(os.path.join(path, "jobs")) == old_store
    with Session(path) as session:
        assert session.store.url.base_scheme == "sqlite"
        assert tree(session) == expected
        assert {i: session.store.read_record(i) for i in old_bytes} == old_bytes
        new_id = session.add(Task(jobname="after-copy"))
    assert new_id not in old_bytes  # the counter moved past every copied id
    assert _fsck(path)[1]["findings"] == []


def test_copy_refuses_a_destination_holding_other_records(tmp_path: Any) -> None:
    """If the destination has a different record under a copied id, nothing is switched (exit 1)."""
    path = str(tmp_path / "s")
    make_session(path)
    with Session(str(tmp_path / "other"), store_or_url=f"sqlite:///{tmp_path}/busy.db") as other:
        other.add(Task(jobname="someone else"))
    rc, _, err = run("copy", path, f"sqlite:///{tmp_path}/busy.db")
    assert rc == 1 and "already holds a different Task.1" in err
    assert _read(os.path.join(path, "store.url")) == b"file:jobs"
    assert run("copy", path, os.path.join(path, "jobs"))[0] == 1  # its own store


def test_copy_of_a_whole_store_by_url_keeps_every_record(tmp_path: Any, pg_url: str) -> None:
    """copy SRC_URL DST_URL: every record of the source, byte for byte; the source unchanged."""
    path = str(tmp_path / "s")
    make_session(path, url=f"sqlite:///{tmp_path}/src.db")
    with Session(path, mode="r") as session:
        before = {str(i): session.store.read_record(i) for i in session.store.list()}
    rc, out, err = run("copy", f"sqlite:///{tmp_path}/src.db", pg_url + "#table=copied")
    assert rc == 0, err
    assert f"copied {len(before)} records" in out
    with Session(path, mode="r") as session:  # the session still uses its own store
        assert {str(i): session.store.read_record(i) for i in session.store.list()} == before
    from gc3session import make_store
    with make_store(pg_url + "#table=copied") as copied:
        assert {str(i): copied.read_record(i) for i in copied.list()} == before
    rc, _, err = run("copy", f"sqlite:///{tmp_path}/src.db", f"sqlite:///{tmp_path}/src.db")
    assert rc == 1 and "source store itself" in err


def test_copy_sqlite_to_postgresql_hides_the_password(tmp_path: Any, pg_url: str) -> None:
    """SQLite -> PostgreSQL: same ids and tree; the password appears in no output or file."""
    path = str(tmp_path / "s")
    make_session(path, f"sqlite:///{tmp_path}/s.db")
    with Session(path, mode="r") as session:
        expected = tree(session)
    secret_url = pg_url.replace("gc3test@", "gc3test:Sup3rSecret@") + "#table=moved"
    rc, out, err = run("copy", "--json", path, secret_url)
    assert rc == 0, err
    assert "Sup3rSecret" not in out + err and json.loads(out)["records"] == 8
    stored = _read(os.path.join(path, "store.url")).decode()
    assert "Sup3rSecret" not in stored and stored.endswith("#table=moved")
    with Session(path, mode="r") as session:
        assert session.store.url.base_scheme == "postgresql"
        assert tree(session) == expected
    rc, out, err = run("stats", path)
    assert rc == 0 and "Sup3rSecret" not in out + err
    assert _fsck(path)[0] == 0
