"""SIGKILL during checkpoints: the next load always returns one complete checkpoint.

A child process resumes the session (or creates it), then checkpoints
distinct payloads in a loop, printing ``BEGIN n`` before and ``END n`` after
each checkpoint; the parent kills it with SIGKILL at a random moment and
resumes the session in a new manager.  The checkpoint found must decode, be
complete (its payload matches its number) and be the last one that returned
or the one in flight -- never an older one.  The next round's child starts
over the leftovers (a ``session.next`` its first checkpoint clears).
Rounds: ``GC3SESSION_CRASH_ROUNDS`` (default 15).
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

from _report import record

from gc3session import Task
from gc3session.plainbox import SessionManager, SessionStorage, SessionStorageRepository

ROUNDS = int(os.environ.get("GC3SESSION_CRASH_ROUNDS", "15"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STARTUP_TIMEOUT = 60.0

CHILD = textwrap.dedent("""
    import hashlib, sys
    from gc3session import Task
    from gc3session.plainbox import MemoryJobResult, SessionManager, SessionStorage

    def payload(n):
        return hashlib.sha256(str(n).encode()).digest() * (1 + n % 200)

    storage, start = SessionStorage(sys.argv[1]), int(sys.argv[2])
    manager = SessionManager.load_session([Task(jobname="probe", command="true")], storage)
    print("READY", flush=True)
    n = start
    while True:
        n += 1
        state = manager.state
        state.metadata.title = str(n)
        state.metadata.app_blob = payload(n)
        state.update_job_result("probe", MemoryJobResult({"outcome": "pass", "return_code": n % 256}))
        print(f"BEGIN {n}", flush=True)
        manager.checkpoint()
        print(f"END {n}", flush=True)
""")


def _payload(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest() * (1 + n % 200)


def _units() -> list[Task]:
    return [Task(jobname="probe", command="true")]


def test_random_kills_never_lose_or_tear_a_checkpoint(tmp_path: Any) -> None:
    """Every round: kill -9 mid-loop, then the checkpoint loads, complete, and is the newest possible."""
    with SessionManager.create(SessionStorageRepository(str(tmp_path))) as manager:
        manager.add_local_device_context()
        manager.state.add(_units()[0])
        manager.state.metadata.title = "0"
        manager.state.metadata.app_blob = _payload(0)
        manager.checkpoint()
        location = manager.storage.location
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    rng = random.Random(20261201)
    last = 0
    history_length = 0
    for _round in range(ROUNDS):
        start = last + 1_000  # distinct numbers in every round
        child = subprocess.Popen([sys.executable, "-c", CHILD, location, str(start)],
                                 stdout=subprocess.PIPE, text=True, env=env)
        watchdog = threading.Timer(STARTUP_TIMEOUT, child.kill)  # a child stuck before READY
        watchdog.start()
        try:
            assert child.stdout is not None and child.stdout.readline() == "READY\n"
            time.sleep(0.02 + rng.random() * 0.3)
        finally:
            watchdog.cancel()
            child.kill()
            output, _ = child.communicate(timeout=STARTUP_TIMEOUT)
        ended = [int(line.split()[1]) for line in output.splitlines() if line.startswith("END ")]
        begun = [int(line.split()[1]) for line in output.splitlines() if line.startswith("BEGIN ")]
        in_flight = begun[-1] if begun and (not ended or begun[-1] != ended[-1]) else None
        newest_returned = ended[-1] if ended else last
        with SessionManager.load_session(_units(), SessionStorage(location)) as again:
            state = again.state
            found = int(state.metadata.title)
            assert found in {newest_returned, in_flight}, (found, newest_returned, in_flight)
            assert state.metadata.app_blob == _payload(found), "a torn checkpoint was loaded"
            history = state.job_state_map["probe"].result_history
            assert history[-1].return_code == found % 256
            assert len(history) >= history_length + len(ended)  # every returned checkpoint's result is kept
            history_length = len(history)
        last = found
        record(crashes_survived=1, operations_verified=len(ended), operations_lost=0)
    leftovers = set(os.listdir(location)) - {"session", "session.next", "io-logs", "tasks"}
    assert not leftovers, leftovers
