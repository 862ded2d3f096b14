"""End to end: examples/wordcount.py with its session in PostgreSQL and its tasks on Dask.

A real scheduler and two one-thread workers run as separate processes on
loopback; the session's store is a fresh PostgreSQL database.  The workers
find a ``wc`` on their PATH that records each start and waits for a gate
file named after its input before running the real ``wc``: the test decides
when each count may finish, so the driver can be killed with SIGKILL while
commands are in flight, with no dependence on timing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from test_dask import RUN_TIMEOUT, _wait_for, dask_cluster

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "wordcount.py"
FILES = 8
DRIVER_TIMEOUT = 60

GATED_WC = """#!/bin/sh
# wc -w NAME: record the start, wait for the gate of NAME (or "all"), then count;
# fail after about a minute without a gate, so a failed test leaves nothing behind.
name="$2"
echo started >> "$GC3TEST_STARTS/$name"
i=0
until [ -e "$GC3TEST_GATES/$name" ] || [ -e "$GC3TEST_GATES/all" ]; do
    i=$((i + 1)); [ $i -lt 3000 ] || exit 99; sleep 0.02
done
exec {wc} "$@"
"""


@pytest.fixture(scope="module")
def gated_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """A cluster whose workers run the gated ``wc``; yields (address, starts, gates)."""
    base = tmp_path_factory.mktemp("gated-cluster")
    shims, starts, gates = base / "bin", base / "starts", base / "gates"
    for directory in (shims, starts, gates):
        directory.mkdir()
    wc = shims / "wc"
    wc.write_text(GATED_WC.format(wc=shutil.which("wc")))
    wc.chmod(0o755)
    env = dict(os.environ, PATH=f"{shims}{os.pathsep}{os.environ['PATH']}",
               GC3TEST_STARTS=str(starts), GC3TEST_GATES=str(gates))
    with dask_cluster(base / "cluster", env=env) as address:
        try:
            yield address, starts, gates
        finally:
            (gates / "all").touch()  # let any command a failed test left waiting end


def _driver(tmp_path: Path, pg_url: str, address: str, *options: str) -> list[str]:
    corpus = tmp_path / "corpus"
    return [sys.executable, str(SCRIPT), "-s", str(tmp_path / "session"), "-u", pg_url,
            "-x", f"dask://{address.split('://', 1)[1]}", *options, str(corpus)]


def _states(pg_url: str) -> dict[str, int]:
    """Tasks by state, as the store's ``state`` column has them."""
    with psycopg.connect(pg_url) as conn:
        try:
            rows = conn.execute("SELECT state, count(*) FROM store GROUP BY state").fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    return {state: count for state, count in rows}


def _exit_files(session: Path) -> int:
    return len(list(session.glob("runs/*/.gc3session-exit")))


def test_wordcount_on_postgresql_and_dask_survives_a_killed_driver(
        gated_cluster: tuple[str, Path, Path], pg_url: str, tmp_path: Path) -> None:
    """The driver is SIGKILLed while its commands run on Dask; those commands go on.
    A new driver picks up the runs that ended meanwhile, reattaches to those still
    running (they stay RUNNING, never queued again) and runs to the end: exit
    status 0, every task TERMINATED and ok, every count right, and every command
    started exactly once."""
    address, starts, gates = gated_cluster
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    names = [f"text-{i}.txt" for i in range(FILES)]
    for i, name in enumerate(names):
        (corpus / name).write_text(" ".join(["word"] * (i + 3)) + "\n")
    session = tmp_path / "session"

    with open(tmp_path / "driver-1.log", "wb") as log:
        first = subprocess.Popen(_driver(tmp_path, pg_url, address, "-C", "1"), cwd=tmp_path,
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: len(list(starts.iterdir())) >= 2, RUN_TIMEOUT,
                  "two counts to start on the workers", [first])
        _wait_for(lambda: _states(pg_url).get("RUNNING") == FILES, RUN_TIMEOUT,
                  "the driver to save every task as RUNNING", [first])
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    assert not (session / "output").exists()  # the killed driver collected nothing

    # the first four counts end while no driver watches; the next two then start and wait
    opened: list[str] = []
    while len(opened) < 4:
        name = _wait_for(lambda: sorted(set(os.listdir(starts)) - set(opened)), RUN_TIMEOUT,
                         "another count to start")[0]
        (gates / name).touch()
        opened.append(name)
    _wait_for(lambda: _exit_files(session) == 4, RUN_TIMEOUT, "four counts to end")

    # a new driver finishes those four in its first pass and follows the four still running
    every_state = "NEW,SUBMITTED,RUNNING,TERMINATING,TERMINATED,STOPPED,UNKNOWN"
    with open(tmp_path / "driver-2.log", "w+") as log:
        second = subprocess.Popen(_driver(tmp_path, pg_url, address, "-C", "1", "-l", every_state),
                                  cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            _wait_for(lambda: _states(pg_url).get("TERMINATED") == 4, RUN_TIMEOUT,
                      "the new driver to finish the four ended runs", [second])
            assert _states(pg_url) == {"TERMINATED": 4, "RUNNING": FILES - 4}  # not queued again
            for name in names:
                (gates / name).touch()
            second.wait(timeout=DRIVER_TIMEOUT)
        finally:
            if second.poll() is None:
                second.kill()
                second.wait(timeout=10)
        log.seek(0)
        output = log.read()
    assert second.returncode == 0, output

    listed = [line for line in output.splitlines() if line.startswith("CountWords.")]
    assert len(listed) == FILES
    assert all(line.split(" | ")[2] == "TERMINATED" for line in listed), listed
    assert re.search(rf"^ +ok +{FILES}/{FILES} ", output, re.M), output
    assert re.search(rf"^ +failed +0/{FILES} ", output, re.M), output
    total = sum(i + 3 for i in range(FILES))
    assert f"words counted so far: {total} in {FILES} files" in output
    assert _states(pg_url) == {"TERMINATED": FILES}
    for i, name in enumerate(names):
        count = session / "output" / f"wc-{name}" / "count.txt"
        assert count.read_text() == f"{i + 3} {name}\n"
        assert (starts / name).read_text() == "started\n", f"{name} ran more than once"
