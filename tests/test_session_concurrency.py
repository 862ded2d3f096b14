"""Several processes writing to one session directory at the same time.

The workers open the session, wait at a barrier (a file the parent creates
once every worker is ready) so that they really run together, then add
their tasks with ``flush=True``.  Afterwards ``session_ids.txt`` must list
every task exactly once and every task must load with its payload.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from _session_objects import child_env, index_lines

from gc3session import Session

_WORKER = textwrap.dedent("""
    import os, sys, time
    from gc3session import Session
    from _session_objects import PayloadTask

    path, barrier, name, count, forget_every = sys.argv[1:6]
    count, forget_every = int(count), int(forget_every)
    session = Session(path, load=False)
    open(f"{barrier}.{name}", "w").close()  # ready
    while not os.path.exists(barrier):
        time.sleep(0.001)
    kept = []
    for n in range(count):
        tid = session.add(PayloadTask(payload=f"{name}-{n}"))
        if forget_every and n % forget_every == 0:
            session.forget(tid)
        else:
            kept.append(tid)
    print(" ".join(kept))
""")


def _run_together(path: str, tmp_path: "os.PathLike[str]", count: int, workers: int,
                  forget_every: int = 0) -> dict[str, list[str]]:
    """Start ``workers`` processes, release them at once; return ``{name: ids kept}``."""
    barrier = os.path.join(tmp_path, "go")
    names = [f"w{i}" for i in range(workers)]
    procs = {name: subprocess.Popen(
        [sys.executable, "-c", _WORKER, path, barrier, name, str(count), str(forget_every)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
        for name in names}
    try:
        deadline = time.monotonic() + 60
        while not all(os.path.exists(f"{barrier}.{name}") for name in names):
            assert time.monotonic() < deadline, "workers never got ready"
            assert all(p.poll() is None for p in procs.values()), \
                [p.stderr.read() for p in procs.values() if p.poll() is not None and p.stderr]
            time.sleep(0.005)
        open(barrier, "w").close()
        kept = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            kept[name] = out.split()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return kept


def _check(path: str, kept: dict[str, list[str]]) -> None:
    expected = {tid: f"{name}-" for name, ids in kept.items() for tid in ids}
    lines = index_lines(path)
    assert len(lines) == len(set(lines)), "duplicate ids in session_ids.txt"
    assert set(lines) == set(expected)
    session = Session(path)  # every task loads
    try:
        assert set(session.list_ids()) == set(expected)
        for tid, prefix in expected.items():
            assert session.tasks[tid].payload.startswith(prefix)
        for ids in kept.values():  # each worker's tasks are in the order it added them
            assert [i for i in session.list_ids() if i in set(ids)] == ids
    finally:
        session.store.close()


def test_two_processes_add_500_tasks_each(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(tmp_path, "sess")
    Session(path)
    kept = _run_together(path, tmp_path, 500, 2)
    assert sum(len(ids) for ids in kept.values()) == 1000
    _check(path, kept)
    owner = {tid: name for name, ids in kept.items() for tid in ids}
    order = [owner[tid] for tid in index_lines(path)]
    switches = sum(1 for a, b in zip(order, order[1:]) if a != b)
    assert switches > 1, "the two workers did not run at the same time"


def test_two_processes_add_and_forget(tmp_path: "os.PathLike[str]") -> None:
    """Appends racing with atomic rewrites of the index lose nothing."""
    path = os.path.join(tmp_path, "sess")
    Session(path)
    kept = _run_together(path, tmp_path, 300, 2, forget_every=7)
    assert sum(len(ids) for ids in kept.values()) == 2 * (300 - 43)
    _check(path, kept)


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_four_processes_on_sqlite(tmp_path: "os.PathLike[str]", where: str) -> None:
    path = os.path.join(tmp_path, "sess")
    db = os.path.join(path if where == "inside" else os.fspath(tmp_path), "jobs.db")
    Session(path, store_or_url=f"sqlite:///{db}").store.close()
    kept = _run_together(path, tmp_path, 250, 4)
    assert sum(len(ids) for ids in kept.values()) == 1000
    _check(path, kept)


_FIRST_SAVER = textwrap.dedent("""
    import os, sys, time
    from gc3session import Session
    from _session_objects import PayloadTask

    base, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for r in range(rounds):
        go = os.path.join(base, f"go-{r}")
        while not os.path.exists(go):
            time.sleep(0.0005)
        session = Session(os.path.join(base, f"s{r}"), load=False)
        print(session.add(PayloadTask(payload=f"{name}-{r}")), flush=True)
""")


def test_processes_making_the_first_save_of_a_store_at_once(tmp_path: "os.PathLike[str]") -> None:
    """Racing first saves create jobs/ and its shard together: none sees the other's fresh
    directory as "exists and is not a directory" (round after round, several workers)."""
    rounds, workers = 10, 6
    base = os.fspath(tmp_path)
    for r in range(rounds):
        Session(os.path.join(base, f"s{r}"))  # no jobs/ yet: the first add makes it
    procs = [subprocess.Popen([sys.executable, "-c", _FIRST_SAVER, base, f"w{i}", str(rounds)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=child_env()) for i in range(workers)]
    try:
        time.sleep(1.0)  # let the interpreters start and wait at the first barrier
        for r in range(rounds):
            open(os.path.join(base, f"go-{r}"), "w").close()
            time.sleep(0.05)
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    for r in range(rounds):
        lines = index_lines(os.path.join(base, f"s{r}"))
        assert len(lines) == len(set(lines)) == workers


def test_threads_creating_one_store_directory_at_once_all_succeed(
        tmp_path: "os.PathLike[str]") -> None:
    """The check-then-create window of the store directory, made wide by switching threads
    as often as the interpreter allows: every creator succeeds, round after round."""
    from gc3session.stores.filesystem import FilesystemStore

    errors: list[BaseException] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for r in range(300):
            stores = [FilesystemStore(os.path.join(tmp_path, f"s{r}", "jobs")) for _ in range(4)]
            barrier = threading.Barrier(len(stores))

            def create(store: FilesystemStore, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                try:
                    store._ensure_directory()
                except BaseException as err:  # collected: the assertion below names it
                    errors.append(err)

            threads = [threading.Thread(target=create, args=(s,)) for s in stores]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
