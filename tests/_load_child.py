"""Child process of the load test: mixed operations on a shared store or session.

Prints one JSON line at the end: the objects it believes exist (id -> value),
how many operations it did, and the slowest single operation in seconds.
"""

from __future__ import annotations

import json
import random
import sys
import time

from gc3session import Session, Task, make_store


def main(mode: str, target: str, url: str, worker: int, operations: int) -> None:
    rng = random.Random(worker)
    if mode == "session":
        session = Session(target, store_or_url=url)
        store = session.store
    else:
        session, store = None, make_store(url)
    mine: dict[str, int] = {}
    objects: dict[str, Task] = {}
    slowest = 0.0
    for n in range(operations):
        started = time.monotonic()
        choice = rng.random()
        if choice < 0.4 or len(mine) < 2:
            task = Task(jobname=f"w{worker}-{n}", value=n)
            task_id = session.add(task) if session is not None else store.save(task)
            mine[task_id], objects[task_id] = n, task
        elif choice < 0.7:
            task_id = rng.choice(sorted(mine))
            objects[task_id].value = n
            store.save(objects[task_id])
            mine[task_id] = n
        elif choice < 0.9:
            task_id = rng.choice(sorted(mine))
            store.invalidate_cache()
            loaded = store.load(task_id)
            if loaded.value != mine[task_id]:
                raise SystemExit(f"lost update on {task_id}: {loaded.value} != {mine[task_id]}")
            objects[task_id] = loaded
        else:
            task_id = rng.choice(sorted(mine))
            if session is not None:
                session.remove(task_id)
            else:
                store.remove(task_id)
            del mine[task_id], objects[task_id]
        slowest = max(slowest, time.monotonic() - started)
    print(json.dumps({"objects": mine, "operations": operations, "slowest": slowest}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
