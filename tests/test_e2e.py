"""End to end: examples/sweep.py killed with SIGKILL mid-run, then run again.

The sweep's steps append "<step> start PID" and "<step> done PID" to an
audit file (``--audit``), so the number of executions of every step can be
counted.  The driver is killed while steps run; its commands live in their
own sessions and go on.  The second run must follow or collect them, so
every step runs to completion exactly once, all outputs are there and the
exit status is 0.  When the running commands are killed together with the
driver, the resume policy decides: "report" leaves them UNKNOWN (exit status
4, listed by ``-l UNKNOWN``), "rerun" runs them again, and only them.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time

from gc3session import fsck

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = os.path.join(ROOT, "examples", "sweep.py")
RATES = ["3.1", "3.3", "3.5", "3.7", "3.9"]
STEPS = [f"rate-{float(r):.4f}-{kind}" for r in RATES for kind in ("simulate", "analyse")]


def sweep(tmp_path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, SWEEP, "-s", "sweep", "-C", "1", "-J", "3", "--rates", ",".join(RATES),
            "--steps", "2000", "--delay", "0.3", "--audit", "audit.log", *extra]
    return subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def audit(tmp_path) -> list[tuple[str, str, int]]:
    try:
        with open(os.path.join(tmp_path, "audit.log")) as stream:
            return [(name, event, int(pid)) for name, event, pid in map(str.split, stream)]
    except FileNotFoundError:
        return []


def kill_mid_run(tmp_path, started: int) -> None:
    """Start the sweep and SIGKILL its driver once ``started`` steps have started."""
    driver = sweep(tmp_path)
    try:
        deadline = time.monotonic() + 60
        while sum(event == "start" for _, event, _ in audit(tmp_path)) < started:
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "the sweep did not start its steps"
            time.sleep(0.02)
    finally:
        driver.kill()
        driver.communicate(timeout=30)
    assert driver.returncode == -signal.SIGKILL


def spawner_of(pid: int) -> int | None:
    """The local executor's spawner that started ``pid`` (its parent), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            parent = int(stream.read().rpartition(b")")[2].split()[1])
        with open(f"/proc/{parent}/cmdline", "rb") as stream:
            return parent if b"gc3session/executors/_spawner.py\0" in stream.read() else None
    except (FileNotFoundError, ProcessLookupError):
        return None


def finish(tmp_path, *extra: str) -> tuple[int, str]:
    driver = sweep(tmp_path, *extra)
    out, err = driver.communicate(timeout=120)
    return driver.returncode, out + err


def check_outputs(tmp_path) -> None:
    for rate in RATES:
        directory = os.path.join(tmp_path, "sweep", "output", f"rate-{float(rate):.4f}")
        with open(os.path.join(directory, "trajectory.csv")) as stream:
            assert len(stream.read().splitlines()) == 2000
        with open(os.path.join(directory, "summary.json")) as stream:
            assert json.load(stream)["rate"] == float(rate)
    assert os.path.exists(os.path.join(tmp_path, "sweep", "finished"))


def test_sigkill_of_the_driver_then_rerun_completes_every_step_exactly_once(tmp_path, monkeypatch):
    """Commands outlive the killed driver; the next run follows or collects them: one run each."""
    kill_mid_run(tmp_path, started=4)
    monkeypatch.syspath_prepend(os.path.dirname(SWEEP))  # fsck imports the sweep's task classes
    report = fsck.check(os.path.join(tmp_path, "sweep"))
    assert report.clean, report.problems  # a killed driver leaves at most leftovers
    status, output = finish(tmp_path)
    assert status == 0, output
    events = collections.Counter((name, event) for name, event, _ in audit(tmp_path))
    assert events == {(step, event): 1 for step in STEPS for event in ("start", "done")}
    check_outputs(tmp_path)
    assert "3.5000       4" in output  # the results table: period 4 at r = 3.5


def test_commands_killed_with_the_driver_are_reported_then_rerun(tmp_path):
    """Steps killed with the driver: "report" lists them UNKNOWN (status 4); "rerun" redoes only them."""
    kill_mid_run(tmp_path, started=3)
    running = {}
    for name, event, pid in audit(tmp_path):
        if event == "start":
            running[name] = pid
        else:
            running.pop(name, None)
    # as a crash of the machine would: the spawner (which would record how the steps ended)
    # first, then each step's process group
    for spawner in {spawner_of(pid) for pid in running.values()} - {None}:
        os.kill(spawner, signal.SIGKILL)
    for pid in running.values():
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass  # it ended meanwhile: the next run collects it instead
    status, output = finish(tmp_path, "--resume-policy", "report", "-l", "UNKNOWN")
    starts = collections.Counter(name for name, event, _ in audit(tmp_path) if event == "start")
    lost = {name for name in running if starts[name] == 1
            and (name, "done") not in {(n, e) for n, e, _ in audit(tmp_path)}}
    assert lost  # the step started last still had its 0.3 s delay ahead when it was killed
    assert status == 4, output
    assert output.count("| UNKNOWN") == len(lost)
    status, output = finish(tmp_path)
    assert status == 0, output
    done = collections.Counter(name for name, event, _ in audit(tmp_path) if event == "done")
    starts = collections.Counter(name for name, event, _ in audit(tmp_path) if event == "start")
    assert done == {step: 1 for step in STEPS}
    assert starts == {step: 2 if step in lost else 1 for step in STEPS}
    check_outputs(tmp_path)
