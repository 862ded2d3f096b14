"""Concurrency under load: 8 processes of mixed operations on one store.

Against one SQLite store and one PostgreSQL store, and 8 sessions sharing
one PostgreSQL store: no lost update, no duplicate id, no "database is
locked" reaching the user, and every single operation finishes within the
retry deadline.  ``GC3SESSION_LOAD_OPS`` sets the operations per process
(default 150 here; the reliability report uses 2,000).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from _report import record

from gc3session import Session, make_store
from gc3session.stores.sqlengine import RETRY_DEADLINE

WORKERS = 8
OPERATIONS = int(os.environ.get("GC3SESSION_LOAD_OPS", "150"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(mode: str, targets: list[str], url: str) -> tuple[list[dict[str, Any]], float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    started = time.monotonic()
    children = [subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "_load_child.py"),
                                  mode, targets[w], url, str(w), str(OPERATIONS)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                for w in range(WORKERS)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, f"worker failed:\n{err[-3000:]}"
        assert "locked" not in err
        results.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.monotonic() - started
    rate = WORKERS * OPERATIONS / elapsed
    print(f"{mode} {url.split(':')[0]}: {rate:.0f} operations/s ({WORKERS} processes x {OPERATIONS})")
    record(**{f"load_{mode}_{url.split(':')[0].split('+')[0]}_ops_per_s": round(rate),
              "operations_verified": WORKERS * OPERATIONS})
    return results, elapsed


def _verify(results: list[dict[str, Any]], url: str) -> None:
    ids = [i for r in results for i in r["objects"]]
    assert len(ids) == len(set(ids)), "two workers got the same id"
    store = make_store(url)
    expected = {i: v for r in results for i, v in r["objects"].items()}
    assert set(store.list()) >= set(expected)
    for task_id, value in expected.items():
        assert store.load(task_id).value == value, f"lost update on {task_id}"
    assert max(r["slowest"] for r in results) < RETRY_DEADLINE
    store.close()


def test_eight_processes_on_one_sqlite_store(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    results, _ = _run("store", [""] * WORKERS, url)
    _verify(results, url)


def test_eight_processes_on_one_postgresql_store(pg_url: str) -> None:
    results, _ = _run("store", [""] * WORKERS, pg_url)
    _verify(results, pg_url)


def test_eight_sessions_sharing_one_postgresql_store(tmp_path: Any, pg_url: str) -> None:
    paths = [str(tmp_path / f"session-{w}") for w in range(WORKERS)]
    results, _ = _run("session", paths, pg_url)
    _verify(results, pg_url)
    for path, result in zip(paths, results):
        with Session(path, load=False, store_or_url=pg_url) as session:
            assert set(session.list_ids()) == set(result["objects"])
