"""Running what failed again, and what a run says at its end: real script and ``gsession`` processes.

Task *i* of the script (``tests/_everyday.py``) exits with the code in the
file ``codes/t<i>``, and appends its name to ``codes/ran`` each time it
runs: the tests make a task fail, redo it, make it succeed, and count runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from _everyday import child_env, gsession, runs, script, set_code

CODES = "codes"


def _show(tmp_path, session: str, pid: str) -> dict:
    done = gsession(tmp_path, "show", "--json", session, pid)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _read(path: str) -> str:
    with open(path) as stream:
        return stream.read()


def test_redo_failed_runs_only_the_failed_tasks_and_keeps_their_outputs(tmp_path):
    """--redo-failed: t1 runs again (and now succeeds), its first outputs are kept as .~1~."""
    set_code(tmp_path / CODES, 1, 3)
    first = script(tmp_path, "-s", "s", "-C", "1")
    assert first.returncode == 2, first.stderr
    set_code(tmp_path / CODES, 1, 0)
    again = script(tmp_path, "-s", "s", "-C", "1")  # without --redo-failed nothing runs
    assert again.returncode == 2 and runs(tmp_path / CODES).count("t1") == 1
    redo = script(tmp_path, "-s", "s", "-C", "1", "--redo-failed")
    assert redo.returncode == 0, redo.stderr
    assert "running 1 failed task(s) again: Application.2" in redo.stderr
    assert sorted(runs(tmp_path / CODES)) == ["t0", "t1", "t1", "t2"]
    out = os.path.join(tmp_path, "t1")
    assert _read(os.path.join(out, "stdout.txt")) == "out 1 code=0\n"
    assert _read(os.path.join(out, "stdout.txt.~1~")) == "out 1 code=3\n"
    assert _read(os.path.join(out, "stderr.txt.~1~")) == "err 1\n"
    shown = _show(tmp_path, os.path.join(tmp_path, "s"), "Application.2")
    attempts = shown["attempts"]
    assert [(a["attempt"], a["state"], a["exitcode"]) for a in attempts] == [
        (1, "TERMINATED", 3), (2, "TERMINATED", 0)]
    assert all(a["duration"] is not None and 0 <= a["duration"] < 60 for a in attempts)
    assert attempts[0]["kept"] == [os.path.join(out, "stdout.txt.~1~"),
                                   os.path.join(out, "stderr.txt.~1~")]
    assert attempts[0]["workdir"].endswith("/runs/Application.2.1")
    assert attempts[1]["workdir"].endswith("/runs/Application.2.2") and attempts[1]["current"]
    text = gsession(tmp_path, "show", os.path.join(tmp_path, "s"), "Application.2").stdout
    assert re.search(r"#1 TERMINATED, exit code 3, \d+\.\d\d s, started .*stdout\.txt\.~1~", text)
    assert re.search(r"#2 TERMINATED, exit code 0, .*\(current\)", text)


def test_gsession_redo_chooses_by_state_exit_code_and_id(tmp_path):
    """redo with no option takes the failed tasks; --exit-code, --state and ids narrow it."""
    for index, code in ((0, 4), (1, 5), (3, 5)):
        set_code(tmp_path / CODES, index, code)
    assert script(tmp_path, "-s", "s", "-C", "1", "--tasks", "4").returncode == 2
    session = os.path.join(tmp_path, "s")
    done = gsession(tmp_path, "redo", "--exit-code", "5", "--json", session)
    assert done.returncode == 0, done.stderr
    assert [item["id"] for item in json.loads(done.stdout)] == ["Application.2", "Application.4"]
    done = gsession(tmp_path, "redo", "--state", "ok", session, "Application.3", "Application.1")
    assert done.returncode == 0 and "Application.3 (t2): TERMINATED" in done.stdout
    assert "Application.1" not in done.stdout  # it failed: not OK
    done = gsession(tmp_path, "redo", session)  # the failed ones left: Application.1
    assert done.returncode == 0 and done.stdout.startswith("Application.1 (t0): TERMINATED")
    assert "no task matches" in gsession(tmp_path, "redo", session).stdout
    for index in (0, 1, 3):
        set_code(tmp_path / CODES, index, 0)
    final = script(tmp_path, "-s", "s", "-C", "1")
    assert final.returncode == 0, final.stderr
    assert sorted(runs(tmp_path / CODES)) == ["t0", "t0", "t1", "t1", "t2", "t2", "t3", "t3"]


def test_gsession_redo_refuses_what_it_cannot_redo(tmp_path):
    """A bad state is a usage error, an unknown id an error, a running task is refused: no change."""
    session = os.path.join(tmp_path, "s")
    set_code(tmp_path / CODES, 0, 1)
    gate = os.path.join(tmp_path, "gate")
    first = script(tmp_path, "-s", "s", "-C", "1", "--tasks", "1")
    assert first.returncode == 2
    bad = gsession(tmp_path, "redo", "--state", "RUNNING", session)
    assert bad.returncode == 64 and "choose among FAILED, OK, TERMINATED" in bad.stderr
    unknown = gsession(tmp_path, "redo", session, "Application.7")
    assert unknown.returncode == 1 and "Application.7 is not listed" in unknown.stderr
    # a running task: a second session whose command waits for the gate file
    code = ("import sys; from gc3session import Application, Session\n"
            "from gc3session.engine import Engine\n"
            "s = Session(sys.argv[1]); e = Engine(s)\n"
            "e.add(Application(['sh', '-c', f'while [ ! -e {sys.argv[2]} ]; do sleep 0.05; done;"
            " exit 1'], jobname='slow', output_dir=sys.argv[1] + '.out')); e.progress(); e.close()\n")
    subprocess.run([sys.executable, "-c", code, os.path.join(tmp_path, "busy"), gate], env=child_env(),
                   check=True, timeout=60)
    running = gsession(tmp_path, "redo", "--state", "failed", os.path.join(tmp_path, "busy"),
                       "Application.1")
    assert running.returncode == 0 and "no task matches" in running.stdout
    refused = gsession(tmp_path, "redo", os.path.join(tmp_path, "busy"), "Application.1")
    assert refused.returncode == 1 and "is RUNNING: a running task cannot be redone" in refused.stderr
    open(gate, "w").close()


@pytest.mark.parametrize("shape", ["parallel", "sequence"])
def test_redo_in_a_collection_runs_only_the_children_that_failed(tmp_path, shape):
    """The failed child runs again, its siblings that succeeded do not; the collection ends ok."""
    set_code(tmp_path / CODES, 1, 2)
    first = script(tmp_path, "-s", "s", "-C", "1", "--shape", shape)
    assert first.returncode == 2, first.stderr
    assert "Application.3  t1  exit code 2" in first.stdout  # the failed child, not the collection
    set_code(tmp_path / CODES, 1, 0)
    done = gsession(tmp_path, "redo", os.path.join(tmp_path, "s"))
    assert done.returncode == 0 and "(runs again: Application.3)" in done.stdout, done.stdout
    final = script(tmp_path, "-s", "s", "-C", "1")
    assert final.returncode == 0, final.stderr + final.stdout
    assert sorted(runs(tmp_path / CODES)) == ["t0", "t1", "t1", "t2"]


def test_the_end_of_a_run_names_the_failures_and_the_command_that_redoes_them(tmp_path):
    """Counts, elapsed time, the first 20 failures with exit code and stderr, the rest counted,
    and a command that, run as printed, runs them again."""
    for index in range(23):
        set_code(tmp_path / CODES, index, 1 + index % 3)
    done = script(tmp_path, "-s", "s", "-C", "1", "--tasks", "25", "-J", "8")
    assert done.returncode == 2, done.stderr
    out = done.stdout
    assert re.search(r"failed\s+23/25", out) and re.search(r"ok\s+2/25", out)
    assert re.search(r"^Elapsed time: \d+\.\ds$", out, re.M)
    assert "Failed tasks (23):" in out
    rows = re.findall(r"^  (Application\.\d+)\s+(t\d+)\s+(exit code \d)\s+stderr: (\S+)$", out, re.M)
    assert len(rows) == 20
    assert rows[0] == ("Application.1", "t0", "exit code 1", os.path.join(tmp_path, "t0", "stderr.txt"))
    assert rows[4][2] == "exit code 2" and all(os.path.exists(row[3]) for row in rows)
    session = os.path.join(tmp_path, "s")
    assert f"  and 3 more: gsession list --state FAILED {session}" in out
    command = re.search(r"^To run the failed tasks again: (.*)$", out, re.M)[1]
    assert command.endswith(" -s s -C 1 --tasks 25 -J 8 --redo-failed")
    for index in range(23):
        set_code(tmp_path / CODES, index, 0)
    rerun = subprocess.run(command, shell=True, cwd=tmp_path, env=child_env(), capture_output=True,
                           text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "Failed tasks" not in rerun.stdout and "To run the failed" not in rerun.stdout
    assert len(runs(tmp_path / CODES)) == 25 + 23
