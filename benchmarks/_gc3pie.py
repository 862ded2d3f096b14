"""GC3Pie 2.6.8 on the same work, for side-by-side figures.

GC3Pie needs SQLAlchemy 1.4 (gc3session uses 2.x), so it runs in a
virtualenv of its own, created once under ``$GC3SESSION_BENCH_CACHE`` (default
``~/.cache/gc3session-bench``) with ``gc3pie==2.6.8 --no-deps`` and the few
packages its session and persistence layers import.

This file is both sides: :func:`run` (stdlib only) starts the virtualenv's
Python on this same module (``-m benchmarks._gc3pie``: run as a file, its
directory would come first on ``sys.path``, and ``benchmarks/inspect.py``
would shadow the standard ``inspect`` that GC3Pie's imports need), passes
the jobs as JSON on stdin and reads the results as JSON from stdout; run as
the main module, it is the worker that times GC3Pie's operations.  The worker builds its tasks from
:func:`benchmarks._common.task_fields`, the data gc3session's side pickles.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from typing import Any

VERSION = "2.6.8"
REQUIREMENTS = ["SQLAlchemy==1.4.54", "future", "lockfile", "six", "blinker", "psycopg2-binary"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- driver side (gc3session's Python) -------------------------------------------------

def venv_python() -> str:
    """The Python of the GC3Pie virtualenv, created and installed on first use."""
    cache = os.environ.get("GC3SESSION_BENCH_CACHE") or os.path.expanduser("~/.cache/gc3session-bench")
    venv = os.path.join(cache, f"gc3pie-{VERSION}")
    python = os.path.join(venv, "bin", "python")
    check = [python, "-c", "import gc3libs.session, gc3libs.persistence.sql, sqlalchemy;"
             "assert sqlalchemy.__version__.startswith('1.4')"]
    if os.path.exists(python) and subprocess.run(check, capture_output=True, timeout=120).returncode == 0:
        return python
    print(f"creating the GC3Pie {VERSION} virtualenv in {venv} ...", file=sys.stderr, flush=True)
    os.makedirs(cache, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True, timeout=300)
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", f"gc3pie=={VERSION}"], check=True, timeout=900)
    subprocess.run([*pip, *REQUIREMENTS], check=True, timeout=900)
    subprocess.run(check, check=True, timeout=120)
    return python


def run(jobs: list[dict[str, Any]], timeout: float = 1800) -> list[dict[str, Any]]:
    """Run ``jobs`` in the GC3Pie worker; return one result dict per job."""
    python = venv_python()
    with tempfile.TemporaryDirectory(prefix="gc3session-bench-gc3pie-id-") as iddir:
        env = dict(os.environ, GC3PIE_ID_FILE=os.path.join(iddir, "next_id.txt"),
                   PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
        result = subprocess.run([python, "-m", "benchmarks._gc3pie"], input=json.dumps(jobs),
                                capture_output=True, text=True, env=env, timeout=timeout, cwd=iddir)
    if result.returncode != 0:
        raise RuntimeError(f"GC3Pie worker failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout)


# --- worker side (the virtualenv's Python) -------------------------------------------------

def _make_task(i: int) -> Any:
    import gc3libs

    from benchmarks._common import task_fields

    task = gc3libs.Task(jobname=f"task-{i}")
    for key, value in task_fields(i).items():
        setattr(task, key, value)
    return task


def _timed(operation: Any, items: Any) -> float:
    """Mean seconds per call of ``operation(item)``."""
    clock = time.perf_counter
    total = 0.0
    count = 0
    for item in items:
        start = clock()
        operation(item)
        total += clock() - start
        count += 1
    return total / count


def _store_job(job: dict[str, Any]) -> dict[str, Any]:
    """Prefill a store with ``n`` tasks, then time samples of save, load, replace, remove."""
    import io

    import gc3libs.persistence
    from gc3libs.persistence.serialization import make_pickler

    n, sample = job["n"], job["sample"]
    url = job["url"]
    store = gc3libs.persistence.make_store(url)
    tasks = [_make_task(i) for i in range(n)]
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    if job["kind"] == "fs":
        for task in tasks:
            store.save(task)
    else:
        # GC3Pie has no bulk save; the prefill writes its rows in one transaction
        # (same bytes as store.save) so that only the sampled operations are timed.
        store.idfactory.reserve(n)
        for task in tasks:
            task.persistent_id = store.idfactory.new(task)
            buffer = io.BytesIO()
            make_pickler(store, buffer, task).dump(task)
            rows.append({"id": int(task.persistent_id), "data": buffer.getvalue(),
                         "state": task.execution.state})
        with store._engine.begin() as conn:
            conn.execute(store._tables.insert(), rows)
    prefill = time.perf_counter() - started
    ids = [task.persistent_id for task in tasks]
    del tasks, rows
    if hasattr(store, "_real_engine") and store._real_engine is not None:
        store._real_engine.dispose()
    store = gc3libs.persistence.make_store(url)  # empty cache
    rng = random.Random(1)
    picked = rng.sample(ids, 3 * sample)
    new = [_make_task(n + i) for i in range(sample)]
    replacements = [_make_task(i) for i in range(sample)]
    result = {
        "prefill_s": prefill,
        "save_s": _timed(store.save, new),
        "load_s": _timed(store.load, picked[:sample]),
        "replace_s": _timed(lambda pair: store.replace(pair[0], pair[1]),
                            list(zip(picked[sample:2 * sample], replacements))),
        "remove_s": _timed(store.remove, picked[2 * sample:]),
    }
    if getattr(store, "_real_engine", None) is not None:
        store._real_engine.dispose()
    return result


def _session_add_job(job: dict[str, Any]) -> dict[str, Any]:
    """Per-add cost of ``Session.add(flush=True)`` on a session that already holds ``n`` tasks."""
    from gc3libs.session import Session

    session = Session(job["dir"])
    for i in range(job["n"]):
        session.add(_make_task(i), flush=False)
    session.flush()
    tasks = [_make_task(job["n"] + i) for i in range(job["sample"])]
    return {"add_s": _timed(session.add, tasks)}


def _session_bulk_job(job: dict[str, Any]) -> dict[str, Any]:
    """``n`` × ``Session.add(flush=False)`` then one ``flush()``, into a new session."""
    from gc3libs.session import Session

    tasks = [_make_task(i) for i in range(job["n"])]
    session = Session(job["dir"], store_or_url=job.get("url"))
    started = time.perf_counter()
    for task in tasks:
        session.add(task, flush=False)
    session.flush()
    elapsed = time.perf_counter() - started
    engine = getattr(session.store, "_real_engine", None)
    if engine is not None:
        engine.dispose()
    return {"bulk_s": elapsed}


def _worker() -> None:
    import logging

    logging.disable(logging.CRITICAL)  # GC3Pie logs every SQL column at DEBUG
    handlers = {"store": _store_job, "session_add": _session_add_job, "session_bulk": _session_bulk_job}
    jobs = json.load(sys.stdin)
    json.dump([handlers[job["op"]](job) for job in jobs], sys.stdout)


if __name__ == "__main__":
    _worker()
