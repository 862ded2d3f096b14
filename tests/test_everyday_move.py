"""Moving and copying session directories: relative store URLs, and the guard against sharing.

A store inside the session directory is named relative to it in
``store.url`` (``file:jobs``, ``sqlite:jobs.db``), so ``cp -a``, ``mv`` and a
``tar`` round trip give a session that works where it lands and writes to
its own store only.  A ``store.url`` naming a store inside another
session's directory is refused.  The sessions are made and driven by a real
script process, and looked at with real ``gsession`` processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from _everyday import child_env, gsession, script
from _session_objects import snapshot

from gc3session import Session, StoreUrl, Task
from gc3session.exceptions import ForeignStoreError, ForeignTaskError
from gc3session.sessiondir import read_store_url

STORES = {"file": ("file", "file:jobs", "jobs"), "sqlite": ("sqlite", "sqlite:jobs.db", "jobs.db")}


def _make(tmp_path, name: str, kind: str, tasks: int = 2) -> str:
    """A session made and run to the end by the script, with the store ``kind`` inside it."""
    done = script(tmp_path, "-s", name, "-u", STORES[kind][0], "-C", "1", "--tasks", str(tasks),
                  "--codes", f"{name}.codes")
    assert done.returncode == 0, done.stderr
    return os.path.join(tmp_path, name)


def _add_tasks(path: str, names: list[str]) -> None:
    """Add commands (``true``, no output files) to the session at ``path`` from another process."""
    code = ("import sys; from gc3session import Application, Session\n"
            "with Session(sys.argv[1]) as s:\n"
            "    for n in sys.argv[2:]:\n"
            "        s.add(Application(['true'], jobname=n, stdout=None, stderr=None))\n")
    subprocess.run([sys.executable, "-c", code, path, *names], env=child_env(), check=True,
                   timeout=60)


def _names(tmp_path, path: str) -> list[str]:
    done = gsession(tmp_path, "list", "--json", path)
    assert done.returncode == 0, done.stderr
    return [row["jobname"] for row in json.loads(done.stdout)]


@pytest.mark.parametrize("kind", sorted(STORES))
def test_a_copy_made_with_cp_a_is_an_independent_session(tmp_path, kind):
    """cp -a: the copy names its own store, takes new tasks, and the original stays byte for byte."""
    original = _make(tmp_path, "orig", kind)
    with open(os.path.join(original, "store.url")) as stream:
        assert stream.read() == STORES[kind][1]
    copy = os.path.join(tmp_path, "copy")
    subprocess.run(["cp", "-a", original, copy], check=True)
    before = snapshot(original)
    _add_tasks(copy, ["added-1", "added-2"])
    assert snapshot(original) == before
    assert _names(tmp_path, copy) == ["t0", "t1", "added-1", "added-2"]
    assert _names(tmp_path, original) == ["t0", "t1"]
    # the copy's store is the one inside it, and a script drives the copy to the end
    assert read_store_url(copy).path == os.path.join(copy, STORES[kind][2])
    done = script(tmp_path, "-s", "copy", "-C", "1", "--codes", "orig.codes")
    assert done.returncode == 0, done.stderr
    assert snapshot(original) == before


@pytest.mark.parametrize("kind", sorted(STORES))
def test_a_moved_session_and_a_tar_copy_keep_working(tmp_path, kind):
    """mv, and a tar round trip (what rsync does: files, not a filesystem image), then rerun."""
    original = _make(tmp_path, "orig", kind)
    moved = os.path.join(tmp_path, "moved")
    os.rename(original, moved)
    assert _names(tmp_path, moved) == ["t0", "t1"]
    _add_tasks(moved, ["after-move"])
    assert _names(tmp_path, moved) == ["t0", "t1", "after-move"]
    os.mkdir(os.path.join(tmp_path, "elsewhere"))
    packed = subprocess.run(["tar", "-C", tmp_path, "-cf", "-", "moved"], check=True,
                            capture_output=True).stdout
    subprocess.run(["tar", "-C", os.path.join(tmp_path, "elsewhere"), "-xf", "-"], input=packed,
                   check=True)
    unpacked = os.path.join(tmp_path, "elsewhere", "moved")
    before = snapshot(moved)
    _add_tasks(unpacked, ["in-the-tar-copy"])
    assert snapshot(moved) == before
    assert _names(tmp_path, unpacked) == ["t0", "t1", "after-move", "in-the-tar-copy"]


def test_a_store_url_into_another_session_is_refused_everywhere(tmp_path):
    """A hand-made store.url naming another session's store: every opener refuses, nothing changes."""
    original = _make(tmp_path, "orig", "file")
    intruder = os.path.join(tmp_path, "intruder")
    os.mkdir(intruder)
    with open(os.path.join(intruder, "session_ids.txt"), "w") as stream:
        stream.write("Application.1\n")
    with open(os.path.join(intruder, "store.url"), "w") as stream:
        stream.write(StoreUrl.for_path("file", os.path.join(original, "jobs")).render())
    before = snapshot(original)
    for argv in (["list", intruder], ["stats", intruder], ["fsck", "--repair", intruder],
                 ["redo", intruder], ["forget", intruder, "Application.1"],
                 ["copy", intruder, f"sqlite:///{tmp_path}/x.db"]):
        done = gsession(tmp_path, *argv)
        assert done.returncode == 1, (argv, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"lies in the directory of another session ({original})" in done.stderr, argv
    done = script(tmp_path, "-s", "intruder", "-C", "1")
    assert done.returncode == 1 and f"another session ({original})" in done.stderr
    with pytest.raises(ForeignStoreError) as info:
        Session(intruder)
    assert info.value.owner == original
    assert snapshot(original) == before
    # a new session is refused such a store as well, before anything is written
    with pytest.raises(ForeignStoreError):
        Session(os.path.join(tmp_path, "new"), store_or_url=os.path.join(original, "jobs"))
    assert not os.path.exists(os.path.join(tmp_path, "new"))


def test_a_copy_of_a_session_with_an_absolute_url_is_refused_and_the_fix_works(tmp_path):
    """A session written before store URLs were relative: its copy is refused, with the line to write."""
    original = _make(tmp_path, "orig", "sqlite")
    absolute = StoreUrl.for_path("sqlite", os.path.join(original, "jobs.db")).render()
    with open(os.path.join(original, "store.url"), "w") as stream:
        stream.write(absolute)  # what gc3session wrote before
    assert _names(tmp_path, original) == ["t0", "t1"]  # still read as it always was
    copy = os.path.join(tmp_path, "copy")
    subprocess.run(["cp", "-a", original, copy], check=True)
    before = snapshot(original)
    done = script(tmp_path, "-s", "copy", "-C", "1")
    assert done.returncode == 1
    assert f"write sqlite:jobs.db into {copy}/store.url" in done.stderr, done.stderr
    with open(os.path.join(copy, "store.url"), "w") as stream:
        stream.write("sqlite:jobs.db")
    _add_tasks(copy, ["fixed"])
    assert _names(tmp_path, copy) == ["t0", "t1", "fixed"]
    assert snapshot(original) == before


def test_tasks_of_a_copy_are_foreign_to_the_original_and_back(tmp_path):
    """The copy's store is another home: a task loaded from one cannot be saved into the other."""
    original = _make(tmp_path, "orig", "file")
    copy = os.path.join(tmp_path, "copy")
    subprocess.run(["cp", "-a", original, copy], check=True)
    with Session(original) as one, Session(copy) as other:
        theirs = other.load(other.list_ids()[0])
        ours = one.load(one.list_ids()[0])
        with pytest.raises(ForeignTaskError):
            one.add(theirs)
        with pytest.raises(ForeignTaskError):
            other.save(ours)
        assert one.store.home != other.store.home


def test_a_store_whose_name_needs_escaping_is_named_relative_and_reads_back(tmp_path):
    """'run #1.db' inside the session: store.url escapes it, and a moved session finds it."""
    path = os.path.join(tmp_path, "s")
    url = StoreUrl.for_path("sqlite", os.path.join(path, "run #1.db"))
    with Session(path, store_or_url=url) as session:
        session.add(Task(jobname="x"))
    with open(os.path.join(path, "store.url")) as stream:
        assert stream.read() == "sqlite:run%20%231.db"
    os.rename(path, os.path.join(tmp_path, "t"))
    with Session(os.path.join(tmp_path, "t")) as session:
        assert session.store.url.path == os.path.join(tmp_path, "t", "run #1.db")
        assert [t.jobname for t in session] == ["x"]
