#!/usr/bin/env python3
"""Estimate pi by Monte Carlo, in chunks that run as separate commands: a GC3Pie script.

It is written as GC3Pie scripts are -- options in ``setup_options()`` with
``add_param()``, checks in ``parse_args()``, ``new_tasks()`` yielding
Applications *without names* (they are named ``Application-N1``,
``Application-N2``, ... in the order they come), results read in
``after_main_loop()`` -- and it was ported by changing its ``gc3libs``
import lines, nothing else.

    python3 examples/gpi.py -C 1                        # 8 chunks of 200000 points
    python3 examples/gpi.py -C 1 --chunks 20 --points 1000000 -J 4

Each chunk writes ``hits points`` to its ``stdout.txt`` under
``<session>/output/Application-N<k>/`` (or under ``-o``).  Interrupt the
script at any time (Ctrl-C, ``kill -9``) and run the same command again: the
chunks that ended are kept, the running ones are followed, none runs twice.
``--delay S`` makes each chunk sleep S seconds first, and ``--audit FILE``
appends ``start <k>`` / ``done <k>`` to FILE, which shows that.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterator

from gc3session import Application, log  # GC3Pie: from gc3libs import Application, log
from gc3session.cmdline import SessionBasedScript  # GC3Pie: from gc3libs.cmdline import ...
from gc3session.exceptions import InvalidUsage  # GC3Pie: from gc3libs.exceptions import ...

# What one chunk runs: count random points of the unit square inside the quarter circle.
CHUNK = """
import random, sys, time
seed, points, delay, audit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
def note(what):
    if audit:
        with open(audit, "a") as stream:
            stream.write("%s %d\\n" % (what, seed))
note("start")
time.sleep(delay)
rng = random.Random(seed)
hits = sum(1 for _ in range(points) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
print(hits, points)
note("done")
"""


class GPi(SessionBasedScript):
    """Estimate pi by Monte Carlo, one command per chunk of random points."""

    def __init__(self) -> None:
        SessionBasedScript.__init__(self, version="1.0")

    def setup_options(self) -> None:
        self.add_param("--chunks", type=int, default=8, help="number of chunks (default: %(default)s)")
        self.add_param("--points", type=int, default=200000,
                       help="random points per chunk (default: %(default)s)")
        self.add_param("--delay", type=float, default=0.0, help="seconds each chunk sleeps first")
        self.add_param("--audit", default="", help="file each chunk appends 'start K' and 'done K' to")
        self.add_param("-o", "--output", default=None, metavar="DIRECTORY",
                       help="where each chunk's files go (default: SESSION/output/NAME,"
                            " SESSION being the session directory)")

    def parse_args(self) -> None:
        if self.params.chunks < 1 or self.params.points < 1:
            raise InvalidUsage("--chunks and --points must be at least 1")
        if self.params.output is None:
            self.params.output = os.path.join(os.path.abspath(self.params.session), "output", "NAME")
        if self.params.audit:
            self.params.audit = os.path.abspath(self.params.audit)

    def new_tasks(self, extra: dict[str, Any]) -> Iterator[Application]:
        for seed in range(1, self.params.chunks + 1):
            arguments = [sys.executable, "-c", CHUNK, str(seed), str(self.params.points),
                         str(self.params.delay), self.params.audit]
            yield Application(arguments, [], [], stdout="stdout.txt", stderr="stderr.txt", **extra)

    def after_main_loop(self) -> None:
        hits = points = chunks = 0
        for task in self.session:
            if task.execution.returncode != 0:
                continue
            with open(os.path.join(task.output_dir, "stdout.txt")) as stream:
                chunk_hits, chunk_points = map(int, stream.read().split())
            hits, points, chunks = hits + chunk_hits, points + chunk_points, chunks + 1
        if points:
            print("pi ~ %.5f from %d points in %d of %d chunks" % (4.0 * hits / points, points, chunks,
                                                                 len(self.session)))
        log.info("%d chunks done", chunks)


if __name__ == "__main__":
    # GC3Pie's "import yourself": the session records name the class gpi.GPi, not __main__.GPi
    from gpi import GPi as Script
    Script().run()
