"""``gsession list``, ``show``, ``log``, ``stats`` and ``report`` on sessions whose task classes
cannot be imported, and ``list``'s filters, order, paging and formats.

The sessions are made by real script processes whose task classes live in
their ``__main__`` (as in the README's example), on each store; ``gsession``
runs as a real process too.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import _chromium
import pytest
from _session_objects import child_env

#: A script that defines its task class in __main__ and leaves tasks in every kind of end.
_SCRIPT = textwrap.dedent("""
    import signal, sys, time
    from gc3session import Session, Task

    class Step(Task):
        pass

    path, url = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
    with Session(path, store_or_url=url) as session:
        for n in range(12):
            task = Step(jobname=f"step-{n:02d}", n=n)
            session.add(task)
            if n % 4 == 3:
                continue  # stays NEW
            task.execution.state = "SUBMITTED"
            task.execution.state = "RUNNING"
            time.sleep(0.01 * n)
            if n % 4 == 2:
                task.execution.returncode = (signal.SIGTERM, 0)  # killed by SIGTERM
            else:
                task.execution.returncode = (n % 4) << 8  # a wait status: ok, or exit code 1
            task.execution.state = "TERMINATED"
            session.save(task)
""")


@pytest.fixture(params=["file", "sqlite", "postgresql"])
def main_session(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A session made by a script whose task class is ``__main__:Step``."""
    url = {"file": None, "sqlite": f"sqlite:///{tmp_path}/s.db",
           "postgresql": request.getfixturevalue("pg_url") if request.param == "postgresql"
           else None}[request.param]
    path = str(tmp_path / "s")
    script = tmp_path / "make.py"
    script.write_text(_SCRIPT)
    done = subprocess.run([sys.executable, str(script), path, *([url] if url else [])],
                          env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return path


def gsession(*args: str, cwd: Any = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gc3session", *args], env=child_env(),
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def _rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")] for line in out.splitlines()[2:]]


def test_every_read_command_works_without_the_task_class(main_session: str, tmp_path: Any) -> None:
    for argv in (["list", main_session], ["list", "-r", "--json", main_session],
                 ["stats", main_session], ["log", main_session],
                 ["show", main_session, "Step.1"], ["show", "--json", main_session, "Step.3"],
                 ["report", main_session, "-o", str(tmp_path / "r.html")]):
        done = gsession(*argv)
        assert done.returncode == 0 and done.stderr == "", (argv, done.stderr)
    assert len(_rows(gsession("list", main_session).stdout)) == 12
    show = gsession("show", main_session, "Step.3").stdout
    assert "(__main__:Step)" in show and "  n: 2" in show and "  exit: killed by signal 15 (SIGTERM)" in show
    assert "Transition from state RUNNING to state TERMINATED" in gsession("log", main_session).stdout
    full = gsession("show", "--full", main_session, "Step.1")
    assert full.returncode == 1 and full.stderr.count("\n") == 1
    assert "__main__:Step" in full.stderr and "Step.1" in full.stderr


def test_list_shows_exit_codes_signal_names_and_local_iso_times(main_session: str) -> None:
    rows = {r[1]: r for r in _rows(gsession("list", main_session).stdout)}
    assert rows["step-00"][2:4] == ["TERMINATED", "0"]
    assert rows["step-01"][2:4] == ["TERMINATED", "1"]
    assert rows["step-02"][2:4] == ["TERMINATED", "SIGTERM"]
    assert rows["step-03"][2:4] == ["NEW", ""]
    for row in rows.values():
        changed = datetime.datetime.fromisoformat(row[4])
        assert changed.tzinfo is not None and abs(changed.timestamp() - time.time()) < 600
    data = json.loads(gsession("list", "--json", main_session).stdout)
    step2 = next(r for r in data if r["jobname"] == "step-02")
    assert (step2["exitcode"], step2["signal"], step2["signal_name"]) == (0, 15, "SIGTERM")
    assert step2["returncode"] == 15 and isinstance(step2["changed"], float)
    assert datetime.datetime.fromisoformat(step2["changed_iso"]).timestamp() == \
        pytest.approx(step2["changed"], abs=1)


def test_list_filters_sorts_and_pages(main_session: str) -> None:
    def names(*options: str) -> list[str]:
        done = gsession("list", *options, main_session)
        assert done.returncode == 0, done.stderr
        return [r[1] for r in _rows(done.stdout)]

    assert names("--state", "NEW") == ["step-03", "step-07", "step-11"]
    assert names("--state", "ok") == ["step-00", "step-04", "step-08"]
    assert names("--state", "failed", "--name", "step-0*") == ["step-01", "step-02", "step-05",
                                                                "step-06", "step-09"]
    assert names("--state", "NEW,ok", "--limit", "2", "--offset", "1") == ["step-03", "step-04"]
    assert names("--sort", "duration", "--state", "TERMINATED")[:2] == ["step-00", "step-01"]
    assert names("--sort", "jobname", "--limit", "1") == ["step-00"]
    everything = json.loads(gsession("list", "--json", main_session).stdout)
    middle = sorted(r["changed"] for r in everything)[6]
    since = names("--since", str(middle))
    assert since and all(r["changed"] >= middle for r in everything if r["jobname"] in since)
    until = names("--until", datetime.datetime.fromtimestamp(middle).isoformat())
    assert len(since) + len(until) >= 12 and set(since) | set(until) == {r["jobname"]
                                                                          for r in everything}
    bad = gsession("list", "--state", "DONE", main_session)
    assert bad.returncode == 64 and "unknown state DONE" in bad.stderr


def test_list_streams_one_json_object_per_line(main_session: str) -> None:
    done = gsession("list", "--jsonl", "--state", "NEW", main_session)
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0 and [o["jobname"] for o in objects] == ["step-03", "step-07",
                                                                        "step-11"]


def test_report_of_a_main_session_renders_in_a_browser(main_session: str, tmp_path: Any) -> None:
    binary = _chromium.find()
    if binary is None:
        if os.environ.get("GC3SESSION_REQUIRE_CHROMIUM") == "1":
            pytest.fail("GC3SESSION_REQUIRE_CHROMIUM=1 but chromium is not on PATH")
        pytest.skip("chromium is not on PATH (Debian: apt-get install chromium)")
    done = gsession("report", main_session, cwd=tmp_path)
    page = tmp_path / "s-report.html"
    assert done.returncode == 0 and str(page) in done.stdout
    assert "12 tasks (3 ok, 6 failed, 0 running, 3 other)" in done.stdout
    dom = _chromium.dump_dom(binary, str(page))
    assert "step-01" in dom and "Step.1" in dom and "<svg" in dom
