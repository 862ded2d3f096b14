"""SIGKILL a process replacing one record: the record is always old or new, never torn.

A writer process replaces one record in a loop with large, self-checking
payloads numbered ``base+1``, ``base+2``..., printing ``WROTE n`` after each
replace returned (``_store_child.py replace`` forks one writer per round).
The test kills the writer with SIGKILL at a random moment after its first
write, then loads the record: it must be a whole payload (its bytes match
its number), no older than the last one reported written (a replace that
returned is never lost) and at most the one in flight.  Ten rounds per
store, on the same record.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from typing import Any

import pytest
from _store_child import payload
from _store_objects import Item, start_child, store_url

from gc3session.persistence import make_store


def _tmp_files(store: Any) -> list[str]:
    """The temporary files the store's own check reports (leftovers of killed writers)."""
    return [f.path for f in store.check() if f.kind == "tmp-file"]

ROUNDS = 10
TIMEOUT = 60
ROUND_BASE = 1_000_000  # payload numbers of round r start above r * ROUND_BASE


@pytest.fixture(params=["fs", "sqlite", "pg"])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh store of each kind."""
    pg_url = request.getfixturevalue("pg_url") if request.param == "pg" else None
    return store_url(request.param, str(tmp_path), pg_url)


class _Writer:
    """The child process that forks the writers, with its output read line by line."""

    def __init__(self, url: str, record_id: str) -> None:
        self.process = start_child("replace", url, record_id)
        self._watchdog = threading.Timer(TIMEOUT * ROUNDS, self.process.kill)  # never hang the test
        self._watchdog.start()
        assert self._readline() == ["READY"]

    def _readline(self) -> list[str]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"writer exited: {stderr}")
        return line.split()

    def round(self, base: int, delay: float) -> int:
        """Fork a writer, SIGKILL it ``delay`` s after its first write; return its last WROTE."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"go {base}\n")
        self.process.stdin.flush()
        pid, last = None, None
        while pid is None or last is None:
            words = self._readline()
            if words[0] == "PID":
                pid = int(words[1])
            elif words[0] == "WROTE":
                last = int(words[1])
            elif words[0] == "DEAD":  # it died before anyone killed it: say why, do not wait
                raise AssertionError(f"the writer died before it was killed: {words}")
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        while (words := self._readline())[0] != "DEAD":
            last = int(words[1])
        assert int(words[1]) == pid and os.WIFSIGNALED(int(words[2]))
        assert os.WTERMSIG(int(words[2])) == signal.SIGKILL
        return last

    def close(self) -> None:
        """End the child: communicate() closes its stdin, which ends its loop."""
        self._watchdog.cancel()
        try:
            self.process.communicate(timeout=TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.communicate()


def test_killed_writer_leaves_old_or_new(url: str) -> None:
    """After every SIGKILL the record loads whole: the last write that returned, or the one in flight."""
    rng = random.Random(20240501)
    with make_store(url) as store:
        record_id = store.save(Item(payload(0)))
    writer = _Writer(url, record_id)
    try:
        for n in range(1, ROUNDS + 1):
            last = writer.round(n * ROUND_BASE, rng.uniform(0, 0.2))
            with make_store(url) as store:
                loaded = store.load(record_id).payload
                assert loaded == payload(loaded["n"]), "torn record"
                assert last <= loaded["n"] <= last + 1, (last, loaded["n"])
                assert store.list() == [record_id]
    finally:
        writer.close()
    assert writer.process.returncode == 0
    if not url.startswith(("sqlite", "postgresql")):
        with make_store(url) as store:  # killed writers leave at most temporary files behind
            leftovers = _tmp_files(store)
            assert all(os.path.basename(p).startswith(f".{record_id}.") for p in leftovers)
