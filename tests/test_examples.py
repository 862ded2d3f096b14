"""The examples run in one command each, on the default (embedded) store, and say what they found."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

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
