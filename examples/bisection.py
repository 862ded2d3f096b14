#!/usr/bin/env python3
"""Find roots by bisection, one command per evaluation: a workflow that grows as it runs.

Each function is a :class:`Bisection`, a SequentialTaskCollection whose
``next()`` reads what the step that just ended printed, halves the bracket
and appends the next step, until the bracket is narrower than ``--tolerance``.
How many steps a root takes is known only as it runs.  Written in GC3Pie's
style and ported by changing its ``gc3libs`` import lines.

    python3 examples/bisection.py -C 1                         # sqrt2, cos and cubic
    python3 examples/bisection.py -C 1 --functions cos --tolerance 1e-9

Step ``k`` of function ``f`` leaves its output in ``<session>/output/f/step-k/``
(or under ``-o``).  Interrupt it at any time (Ctrl-C, ``kill -9``) and run the
same command again: no step runs twice, and the steps a ``next()`` appended
before the interruption are found.  ``--delay S`` makes every step sleep S
seconds first; ``--audit FILE`` appends ``start <step>`` / ``done <step>``
lines to FILE.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterator

from gc3session import Application, Run, SequentialTaskCollection  # GC3Pie: from gc3libs import ...
from gc3session.cmdline import SessionBasedScript  # GC3Pie: from gc3libs.cmdline import ...
from gc3session.exceptions import InvalidUsage  # GC3Pie: from gc3libs.exceptions import ...

#: The functions, with a bracket [lo, hi] where each changes sign once.
FUNCTIONS = {"sqrt2": (1.0, 2.0), "cos": (0.0, 1.0), "cubic": (2.0, 3.0)}

# What one step runs: evaluate the function at the points given, one value per line.
EVALUATE = """
import math, sys, time
FUNCTIONS = {"sqrt2": lambda x: x * x - 2, "cos": lambda x: math.cos(x) - x,
             "cubic": lambda x: x ** 3 - 2 * x - 5}
name, step, delay, audit = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
def note(what):
    if audit:
        with open(audit, "a") as stream:
            stream.write("%s %s\\n" % (what, step))
note("start")
time.sleep(delay)
for point in sys.argv[5:]:
    print(repr(FUNCTIONS[name](float(point))))
note("done")
"""


class Bisection(SequentialTaskCollection):
    """Narrow ``[lo, hi]`` around a root of ``function`` until it is narrower than ``tolerance``.

    The first step evaluates both ends; each later one the middle.
    """

    def __init__(self, function: str, tolerance: float, delay: float, audit: str,
                 output_dir: str, **extra: Any) -> None:
        self.function = function
        self.lo, self.hi = FUNCTIONS[function]
        self.tolerance = tolerance
        self.delay = delay
        self.audit = audit
        self.output_dir = output_dir.replace("NAME", function)
        self.extra = extra
        self.sign_lo = 0.0
        self.root: float | None = None
        SequentialTaskCollection.__init__(self, [self._step(0, [self.lo, self.hi])], jobname=function)

    def _step(self, number: int, points: list[float]) -> Application:
        name = "%s-step-%d" % (self.function, number)
        arguments = [sys.executable, "-c", EVALUATE, self.function, name, str(self.delay),
                     self.audit] + [repr(p) for p in points]
        return Application(arguments, [], [], os.path.join(self.output_dir, "step-%d" % number),
                           stdout="stdout.txt", stderr="stderr.txt", jobname=name, **self.extra)

    def next(self, done: int) -> Any:
        step = self.tasks[done]
        if step.execution.returncode != 0:
            self.execution.returncode = step.execution.returncode
            return Run.State.TERMINATED
        with open(os.path.join(step.output_dir, "stdout.txt")) as stream:
            values = [float(line) for line in stream.read().split()]
        if done == 0:
            self.sign_lo = values[0]
            if values[0] * values[1] > 0:
                self.execution.returncode = 1 << 8  # no sign change: no root to bracket
                return Run.State.TERMINATED
        elif values[0] * self.sign_lo > 0:
            self.lo = (self.lo + self.hi) / 2
        else:
            self.hi = (self.lo + self.hi) / 2
        if self.hi - self.lo <= self.tolerance:
            self.root = (self.lo + self.hi) / 2
            self.execution.returncode = 0
            return Run.State.TERMINATED
        self.add(self._step(done + 1, [(self.lo + self.hi) / 2]))
        return Run.State.RUNNING


class BisectionScript(SessionBasedScript):
    """Find roots of a few functions by bisection, one command per evaluation."""

    def __init__(self) -> None:
        SessionBasedScript.__init__(self, version="1.0")

    def setup_options(self) -> None:
        self.add_param("--functions", default=",".join(FUNCTIONS),
                       help="comma-separated, among %s (default: all)" % ", ".join(FUNCTIONS))
        self.add_param("--tolerance", type=float, default=1e-3, help="bracket width to reach")
        self.add_param("--delay", type=float, default=0.0, help="seconds each step sleeps first")
        self.add_param("--audit", default="", help="file each step appends 'start S'/'done S' to")
        self.add_param("-o", "--output", default=None, metavar="DIRECTORY",
                       help="where the steps' files go (default: SESSION/output/NAME)")

    def parse_args(self) -> None:
        self.params.functions = [f for f in self.params.functions.split(",") if f]
        unknown = [f for f in self.params.functions if f not in FUNCTIONS]
        if unknown or not self.params.functions or self.params.tolerance <= 0:
            raise InvalidUsage("functions are among %s, and the tolerance is positive"
                               % ", ".join(FUNCTIONS))
        if self.params.output is None:
            self.params.output = os.path.join(os.path.abspath(self.params.session), "output", "NAME")
        if self.params.audit:
            self.params.audit = os.path.abspath(self.params.audit)

    def new_tasks(self, extra: dict[str, Any]) -> Iterator[Bisection]:
        for function in self.params.functions:
            yield Bisection(function, self.params.tolerance, self.params.delay, self.params.audit,
                            **extra)

    def after_main_loop(self) -> None:
        for task in self.session:
            if task.root is not None:
                print("  %-6s root %.6f after %d steps" % (task.function, task.root, len(task.tasks)))


if __name__ == "__main__":
    # GC3Pie's "import yourself": the records name bisection.Bisection, not __main__.Bisection
    from bisection import BisectionScript as Script
    Script().run()
