"""Several processes writing to one store at once lose nothing and share no id.

Four child processes (``_store_child.py write``) open the same store, wait
for a common start signal, then save records one by one and in batches and
save some of them again.  Each prints ``<id> <value>`` after every save
returned.  The parent then checks that no id was handed to two records,
that the store holds exactly the printed ids, and that each loads with the
last value printed for it.
"""

from __future__ import annotations

from typing import Any

import pytest
from _store_objects import start_child, store_url

from gc3session.persistence import make_store

CHILDREN = 4
RECORDS = 8  # saves per child: 4 single ones and 4 batches of 5 -> 24 records each
TIMEOUT = 120


@pytest.fixture(params=["fs", "sqlite", "pg"])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh store of each kind."""
    pg_url = request.getfixturevalue("pg_url") if request.param == "pg" else None
    return store_url(request.param, str(tmp_path), pg_url)


def test_concurrent_writers_lose_nothing(url: str) -> None:
    """Four processes saving at once: every save that returned is there, with its last value."""
    children = [start_child("write", url, str(RECORDS), f"c{n}") for n in range(CHILDREN)]
    outputs = []
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "READY\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            out, err = child.communicate(timeout=TIMEOUT)
            assert child.returncode == 0, err
            outputs.append(out)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    expected: dict[str, str] = {}
    owners: dict[str, int] = {}
    for n, out in enumerate(outputs):
        for line in out.splitlines():
            pid, value = line.split(" ", 1)
            assert owners.setdefault(pid, n) == n, f"{pid} was handed to children {owners[pid]} and {n}"
            assert value.startswith(f"c{n}-")
            expected[pid] = value
    assert len(expected) == CHILDREN * (RECORDS // 2) * 6
    with make_store(url) as store:
        assert sorted(store.list()) == sorted(expected)
        loaded = store.load_many(list(expected))
        assert {pid: obj.payload for pid, obj in loaded.items()} == expected
