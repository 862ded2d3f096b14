"""The examples run in one command each, on the default (embedded) store, and say what they found."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(tmp_path, name: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_wordcount_counts_every_sample_file(tmp_path):
    """wordcount.py -C 1: 50 tasks, all ok, the total of the sample corpus, exit status 0;
    everything it wrote is in its session directory."""
    done = run_example(tmp_path, "wordcount.py", "-C", "1", "-J", "4")
    assert done.returncode == 0, done.stderr
    assert re.search(r"ok\s+50/50", done.stdout)
    assert "words counted so far: 12750 in 50 files" in done.stdout  # 10 + 20 + ... + 500
    assert os.listdir(tmp_path) == ["wordcount"]
    session = os.path.join(tmp_path, "wordcount")
    assert len(os.listdir(os.path.join(session, "corpus"))) == 50
    with open(os.path.join(session, "output", "wc-text-004.txt", "count.txt")) as stream:
        assert stream.read().split()[0] == "50"


def test_wordcount_writes_where_the_command_line_says(tmp_path):
    """-s and -o choose the session and the output directories; the working directory gets nothing."""
    work = tmp_path / "work"
    work.mkdir()
    done = run_example(work, "wordcount.py", "-C", "1", "-s", str(tmp_path / "session"),
                       "-o", str(tmp_path / "counts" / "NAME"))
    assert done.returncode == 0, done.stderr
    assert os.listdir(work) == []
    assert sorted(os.listdir(tmp_path)) == ["counts", "session", "work"]
    assert len(os.listdir(tmp_path / "counts")) == 50
    with open(tmp_path / "counts" / "wc-text-000.txt" / "count.txt") as stream:
        assert stream.read().split()[0] == "10"


def test_sweep_runs_a_sequence_per_rate_and_tabulates_the_results(tmp_path):
    """sweep.py -C 1: each rate simulated then analysed; the table shows the known periods."""
    done = run_example(tmp_path, "sweep.py", "-C", "1", "--rates", "2.8,3.2,3.5,3.9", "--steps", "5000")
    assert done.returncode == 0, done.stderr
    assert re.search(r"ok\s+4/4", done.stdout)
    periods = dict(re.findall(r"^  (\d\.\d{4})\s+(\S+)\s+[-+]", done.stdout, re.M))
    assert periods == {"2.8000": "1", "3.2000": "2", "3.5000": "4", "3.9000": "chaos"}
    assert os.listdir(tmp_path) == ["sweep"]
    with open(os.path.join(tmp_path, "sweep", "output", "rate-3.9000", "summary.json")) as stream:
        assert json.load(stream)["lyapunov"] > 0  # chaotic: positive Lyapunov exponent


def test_sweep_stops_a_sequence_whose_simulation_failed(tmp_path):
    """A rate the simulation rejects fails its point (exit status 2) and its analysis never starts."""
    done = run_example(tmp_path, "sweep.py", "-C", "1", "--rates", "3.2", "--steps", "-1", "-l")
    assert done.returncode == 2, done.stderr
    assert re.search(r"failed\s+1/1", done.stdout)
    assert not os.path.exists(os.path.join(tmp_path, "sweep", "output", "rate-3.2000", "analyse.log"))


# --- GC3Pie-style scripts: run to the end, and killed with SIGKILL then run again ------------------
def start_example(tmp_path, name: str, *argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "examples", name), *argv], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def audit_counts(path) -> dict[str, int]:
    """``{"start <step>": n, "done <step>": n}`` from an audit file."""
    counts: dict[str, int] = {}
    if os.path.exists(path):
        with open(path) as stream:
            for line in stream.read().splitlines():
                counts[line] = counts.get(line, 0) + 1
    return counts


def kill_when(proc: subprocess.Popen, audit, condition, timeout: float = 60) -> None:
    """SIGKILL ``proc`` (the driver only: its commands run on) once ``condition(audit counts)``."""
    deadline = time.monotonic() + timeout
    while not condition(audit_counts(audit)):
        assert proc.poll() is None, "the driver ended before it could be killed"
        assert time.monotonic() < deadline, "the run did not get far enough"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_gpi_runs_unnamed_applications_to_the_end(tmp_path):
    """gpi.py (GC3Pie style, unnamed Applications) -C 1: every chunk runs once, each named
    Application-N<k> with its files under the session directory; the estimate is printed."""
    done = run_example(tmp_path, "gpi.py", "-C", "1", "--chunks", "5", "--points", "20000",
                       "--audit", "audit")
    assert done.returncode == 0, done.stderr
    assert re.search(r"pi ~ 3\.1\d+ from 100000 points in 5 of 5 chunks", done.stdout)
    assert sorted(os.listdir(tmp_path / "gpi" / "output")) == [f"Application-N{k}" for k in range(1, 6)]
    assert audit_counts(tmp_path / "audit") == {f"{what} {k}": 1 for what in ("start", "done")
                                               for k in range(1, 6)}
    assert sorted(os.listdir(tmp_path)) == ["audit", "gpi"]  # nothing written beside
    refused = run_example(tmp_path, "gpi.py", "--chunks", "0", "-s", "refused")
    assert refused.returncode == 64 and "--chunks and --points must be at least 1" in refused.stderr


def test_gpi_killed_mid_run_then_run_again_runs_each_chunk_once(tmp_path):
    """kill -9 of the driver while chunks run, then the same command: exit status 0, and
    each chunk started and ended exactly once."""
    argv = ["-C", "1", "-J", "3", "--chunks", "6", "--points", "1000", "--delay", "1",
            "--audit", "audit"]
    kill_when(start_example(tmp_path, "gpi.py", *argv), tmp_path / "audit",
              lambda seen: any(line.startswith("start") for line in seen))
    again = run_example(tmp_path, "gpi.py", *argv)
    assert again.returncode == 0, again.stderr
    assert "from 6000 points in 6 of 6 chunks" in again.stdout
    assert audit_counts(tmp_path / "audit") == {f"{what} {k}": 1 for what in ("start", "done")
                                               for k in range(1, 7)}


ROOTS = {"sqrt2": 2 ** 0.5, "cos": 0.7390851332, "cubic": 2.0945514815}


def bisection_results(stdout: str) -> dict[str, tuple[float, int]]:
    return {name: (float(root), int(steps)) for name, root, steps
            in re.findall(r"^  (\w+)\s+root (\S+) after (\d+) steps$", stdout, re.M)}


def test_bisection_appends_steps_until_each_root_is_found(tmp_path):
    """bisection.py -C 1: next() appends one step per halving; each root is within the
    tolerance, after 1 + 10 steps for a bracket of width 1 and a tolerance of 1e-3."""
    done = run_example(tmp_path, "bisection.py", "-C", "1", "--audit", "audit")
    assert done.returncode == 0, done.stderr
    results = bisection_results(done.stdout)
    assert set(results) == set(ROOTS)
    for name, (root, steps) in results.items():
        assert abs(root - ROOTS[name]) < 1e-3 and steps == 11
    assert sorted(os.listdir(tmp_path / "bisection" / "output")) == sorted(ROOTS)
    counts = audit_counts(tmp_path / "audit")
    assert set(counts.values()) == {1} and len(counts) == 3 * 2 * 11  # start and done of each step


def test_bisection_killed_mid_run_then_run_again_runs_each_step_once(tmp_path):
    """kill -9 of the driver after next() appended steps, then the same command: the roots
    are found, every step (those appended before the kill included) ran exactly once."""
    argv = ["-C", "1", "--functions", "sqrt2,cos", "--tolerance", "0.01", "--delay", "0.3",
            "--audit", "audit"]
    kill_when(start_example(tmp_path, "bisection.py", *argv), tmp_path / "audit",
              lambda seen: sum(line.startswith("done") for line in seen) >= 4)
    again = run_example(tmp_path, "bisection.py", *argv)
    assert again.returncode == 0, again.stderr
    results = bisection_results(again.stdout)
    assert set(results) == {"sqrt2", "cos"}
    assert all(abs(root - ROOTS[name]) < 0.01 and steps == 8 for name, (root, steps) in results.items())
    counts = audit_counts(tmp_path / "audit")
    assert set(counts.values()) == {1} and len(counts) == 2 * 2 * 8  # start and done, 8 steps each
