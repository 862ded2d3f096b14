"""Child process of the crash harness: random adds, saves and removes, forever.

Before each operation it prints ``BEGIN <op> <id> <value>`` and after it
returns ``END``, flushing stdout each time, so the parent knows exactly
which operations had returned when it killed this process, and which one
may have been in flight.
"""

from __future__ import annotations

import random
import sys

from gc3session import Session, Task


def main(path: str, url: str, seed: int) -> None:
    rng = random.Random(seed)
    session = Session(path, store_or_url=url or None)
    tasks = {t.persistent_id: t for t in session}
    session.store.list()  # connect and create the schema before the parent starts its clock
    print("READY", flush=True)
    counter = 0
    while True:
        counter += 1
        op = rng.random()
        if op < 0.5 or len(tasks) < 3:
            task = Task(jobname=f"t{seed}-{counter}", value=counter)
            print(f"BEGIN A - {counter}", flush=True)
            task_id = session.add(task)
            tasks[task_id] = task
            print(f"END A {task_id} {counter}", flush=True)
        elif op < 0.85:
            task_id = rng.choice(sorted(tasks))
            tasks[task_id].value = counter
            print(f"BEGIN S {task_id} {counter}", flush=True)
            session.save(tasks[task_id])
            print(f"END S {task_id} {counter}", flush=True)
        else:
            task_id = rng.choice(sorted(tasks))
            print(f"BEGIN R {task_id} -", flush=True)
            session.remove(task_id)
            del tasks[task_id]
            print(f"END R {task_id} -", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
