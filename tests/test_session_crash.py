"""SIGKILL a process that is adding tasks: every add that returned survives.

A child process opens the session and adds tasks in a loop, printing
``<id> <payload>`` (and flushing stdout) only after ``add`` (or, in batch
rounds, ``flush``) returned.  The parent kills it with SIGKILL at a random
moment, reopens the session and checks that the index parses, holds no
duplicate, and that every printed id is there and loads with its payload;
every id in the index must load too (records are written before their id
is appended).  The next round continues in the same session.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from _session_objects import child_env, index_lines

from gc3session import Session, index

ROUNDS = 20

_CHILD = textwrap.dedent("""
    import sys
    from gc3session import Session
    from _session_objects import PayloadTask

    path, url, n, batch = sys.argv[1], sys.argv[2] or None, int(sys.argv[3]), int(sys.argv[4])
    session = Session(path, store_or_url=url, load=False)
    print("READY", flush=True)
    while True:
        if batch:
            added = []
            for _ in range(batch):
                added.append((session.add(PayloadTask(payload=n), flush=False), n))
                n += 1
            session.flush()
            sys.stdout.write("".join(f"{tid} {value}\\n" for tid, value in added))
            sys.stdout.flush()
        else:
            tid = session.add(PayloadTask(payload=n))
            print(tid, n, flush=True)
            n += 1
""")


def _round(path: str, url: str, start: int, batch: int, delay: float) -> list[tuple[str, int]]:
    """Run the child until killed ``delay`` s after its first add returned; return what it printed."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, path, url, str(start), str(batch)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=child_env())
    try:
        assert child.stdout is not None
        ready = child.stdout.readline()
        assert ready == "READY\n", (ready, child.stderr.read() if child.stderr else "")
        first = child.stdout.readline()
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        rest, errors = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, (child.returncode, errors)
    lines = (first + rest).splitlines(keepends=True)
    printed = [line.split() for line in lines if line.endswith("\n")]
    assert printed, f"the child added nothing: {errors}"
    return [(tid, int(value)) for tid, value in printed]


@pytest.mark.parametrize("store", ["filesystem", "sqlite"])
def test_sigkill_while_adding_loses_no_returned_add(tmp_path: "os.PathLike[str]", store: str) -> None:
    path = os.path.join(tmp_path, "sess")
    url = f"sqlite:///{tmp_path}/jobs.db" if store == "sqlite" else ""
    rng = random.Random()
    returned: dict[str, int] = {}
    checked: set[str] = set()
    for round_no in range(ROUNDS):
        delay = rng.uniform(0, 0.08)
        batch = 5 if round_no % 3 == 2 else 0
        printed = _round(path, url, round_no * 1_000_000, batch, delay)
        where = f"round {round_no}, batch={batch}, killed {delay:.3f}s after the first add"
        for tid, value in printed:
            assert tid not in returned, f"{tid} handed out twice ({where})"
            returned[tid] = value

        lines = index_lines(path)  # complete lines only
        assert len(lines) == len(set(lines)), f"duplicate ids in the index ({where})"
        on_disk = index.read(os.path.join(path, "session_ids.txt"))  # parses
        missing = set(returned) - set(on_disk)
        assert not missing, f"adds that returned are lost: {sorted(missing)} ({where})"
        # every id of the index loads: those of this round now, all of them at the end
        session = Session(path, task_ids=[i for i in on_disk if i not in checked])
        try:
            for tid in session.list_ids():
                if tid in returned:
                    assert session.tasks[tid].payload == returned[tid], (tid, where)
        finally:
            session.store.close()
        checked.update(on_disk)
    assert len(returned) >= ROUNDS
    session = Session(path)
    try:
        assert {tid: session.tasks[tid].payload for tid in returned} == returned
    finally:
        session.store.close()
