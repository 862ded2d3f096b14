#!/usr/bin/env python3
"""Add N tasks to a session; interrupt it at any time and run it again.

Each task is named ``sample-<i>``. On a re-run, the names already in the
session are skipped, so after any interruption (Ctrl-C, ``kill -9``, a
reboot) the same command completes the session without duplicating or
losing a task. At the end it reports what the session holds.

    python3 examples/batch_add.py --session demo --tasks 1000
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

from gc3session import Session, Task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--session", default="batch-session", help="session directory")
    parser.add_argument("--tasks", type=int, default=1000, help="number of tasks the session should hold")
    parser.add_argument("--store-url", default=None,
                        help="store for a new session (default: <session>/jobs); e.g. sqlite:///batch.db")
    args = parser.parse_args(argv)

    session = Session(args.session, store_or_url=args.store_url)
    present = session.list_names()
    started = time.perf_counter()
    added = 0
    try:
        for i in range(args.tasks):
            name = f"sample-{i}"
            if name in present:
                continue
            session.add(Task(jobname=name, sample=i, parameters={"seed": i, "scale": 0.5}))
            added += 1
    except KeyboardInterrupt:
        print(f"interrupted after adding {added} tasks; run the same command again to continue",
              file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - started
    states = collections.Counter(session.states().values())
    print(f"session {session.path}: {len(session)} tasks"
          f" ({added} added now in {elapsed:.2f}s, {len(present)} were already there)")
    print(f"store: {session.store_url}")
    print("states: " + ", ".join(f"{state}={count}" for state, count in sorted(states.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
