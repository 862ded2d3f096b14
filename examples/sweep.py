#!/usr/bin/env python3
"""Sweep the growth rate of the logistic map: simulate, then analyse, for each rate.

Each rate is a SequentialTaskCollection of two commands (both in
``examples/logistic_model.py``): ``simulate`` iterates x -> r x (1 - x) and
writes ``trajectory.csv``; ``analyse`` gets that file staged in and writes
``summary.json`` (Lyapunov exponent, period, mean).  The sequence stops
after the simulation if it failed (the ``next()`` hook).  Both files of a
rate end up in ``SESSION/output/rate-<r>/`` (the session directory is
``./sweep`` unless ``-s`` says otherwise; ``-o DIR/NAME`` puts them in
``DIR/rate-<r>/`` instead); the script prints a table of the results at the
end of each run.

    python3 examples/sweep.py -C 1                       # 12 rates from 2.8 to 3.9
    python3 examples/sweep.py -C 1 --rates 3.2,3.5,3.83  # your own rates

Interrupt it at any time (Ctrl-C, ``kill -9``) and run the same command
again: finished steps are kept, running ones are followed, lost ones are
redone.  ``--delay 2`` makes every step last two seconds longer, and
``--audit FILE`` appends a line to FILE whenever a step starts and finishes,
which shows that each step ran exactly once.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from gc3session import Application, SequentialTaskCollection
from gc3session.cmdline import SessionBasedScript
from gc3session.task import State

MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "logistic_model.py")
#: The ``-o`` default, which stands for ``SESSION/output/NAME`` (the session is known only later).
OUTPUT_IN_SESSION = os.path.join("<session>", "output", "NAME")
DEFAULT_RATES = ",".join(f"{2.8 + 0.1 * i:.1f}" for i in range(12))


class RatePoint(SequentialTaskCollection):
    """Simulate, then analyse, the logistic map at one growth rate."""

    def __init__(self, rate: float, steps: int, output_dir: str, model_options: list[str],
                 **extra: Any) -> None:
        name = f"rate-{rate:.4f}"
        output_dir = output_dir.replace("NAME", name)
        trajectory = os.path.join(output_dir, "trajectory.csv")
        simulate = Application(
            [sys.executable, MODEL, *model_options, "--name", f"{name}-simulate",
             "simulate", str(rate), str(steps), "trajectory.csv"],
            outputs=["trajectory.csv"], output_dir=output_dir, stdout="simulate.log",
            stderr="simulate.log", jobname=f"{name}-simulate", **extra)
        analyse = Application(
            [sys.executable, MODEL, *model_options, "--name", f"{name}-analyse",
             "analyse", str(rate), "trajectory.csv", "summary.json"],
            inputs={trajectory: "trajectory.csv"}, outputs=["summary.json"],
            output_dir=output_dir, stdout="analyse.log", stderr="analyse.log",
            jobname=f"{name}-analyse", **extra)
        super().__init__([simulate, analyse], jobname=name, rate=rate)
        self.output_dir = output_dir
        self.summary: dict[str, Any] | None = None

    def next(self, done: int) -> State:
        """Stop after a failed step; read the summary after the last one."""
        step = self.tasks[done]
        if step.execution.returncode != 0:
            self.execution.returncode = step.execution.returncode
            return State.TERMINATED
        if done == len(self.tasks) - 1:
            with open(os.path.join(self.output_dir, "summary.json")) as stream:
                self.summary = json.load(stream)
            return State.TERMINATED
        return State.RUNNING


class Sweep(SessionBasedScript):
    """Sweep the growth rate of the logistic map (simulate, then analyse, per rate)."""

    def __init__(self) -> None:
        super().__init__(version="1.0")

    def setup_args(self, parser: Any) -> None:
        super().setup_args(parser)
        parser.set_defaults(output=OUTPUT_IN_SESSION)
        parser.add_argument("--rates", default=DEFAULT_RATES,
                            help="comma-separated growth rates (default: %(default)s)")
        parser.add_argument("--steps", type=int, default=20000, help="iterations per simulation")
        parser.add_argument("--delay", type=float, default=0.0,
                            help="seconds each step sleeps first (to watch or interrupt the sweep)")
        parser.add_argument("--audit", default=None,
                            help="file to which each step appends a line when it starts and ends")

    def new_tasks(self, extra: dict[str, Any]) -> list[RatePoint]:
        options = ["--delay", str(self.params.delay)]
        if self.params.audit:
            options += ["--audit", os.path.abspath(self.params.audit)]
        if extra["output_dir"] == OUTPUT_IN_SESSION:  # no -o: under the session directory
            extra = {**extra, "output_dir": os.path.join(os.path.abspath(self.params.session),
                                                         "output", "NAME")}
        rates = [float(r) for r in self.params.rates.split(",") if r.strip()]
        return [RatePoint(r, self.params.steps, model_options=options, **extra) for r in rates]

    def after_main_loop(self) -> None:
        assert self.session is not None
        done = [t for t in self.session if getattr(t, "summary", None)]
        if done:
            print("  rate    period  lyapunov")
            for point in sorted(done, key=lambda t: t.rate):
                summary = point.summary
                period = summary["period"] if summary["period"] is not None else "chaos"
                print(f"  {summary['rate']:.4f}  {period!s:>6}  {summary['lyapunov']:+.4f}")


if __name__ == "__main__":
    # the classes are saved under the module name "sweep" rather than "__main__",
    # so any program with examples/ on its path can load this session
    from sweep import Sweep as SweepScript
    SweepScript().run()
