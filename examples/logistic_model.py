#!/usr/bin/env python3
"""A small simulation for examples/sweep.py: the logistic map x -> r x (1 - x).

    logistic_model.py simulate RATE STEPS OUT.csv   iterate from x = 0.5, one value per line
    logistic_model.py analyse IN.csv OUT.json       Lyapunov exponent, period and mean of the tail

``--delay SECONDS`` makes a command last longer (to watch or interrupt a
sweep); ``--audit FILE --name NAME`` appends "NAME start PID" when the
command starts and "NAME done PID" when it has written its output, so the
number of executions of each step can be counted afterwards.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time


def simulate(rate: float, steps: int, path: str) -> None:
    """Write ``steps`` iterates of the map, starting from 0.5."""
    if steps < 1:
        raise SystemExit(f"cannot simulate {steps} steps")
    x = 0.5
    with open(path, "w") as out:
        for _ in range(steps):
            x = rate * x * (1.0 - x)
            out.write(f"{x!r}\n")


def analyse(rate: float, path: str, target: str) -> None:
    """Summarise the second half of a trajectory as JSON."""
    with open(path) as stream:
        xs = [float(line) for line in stream]
    tail = xs[len(xs) // 2:]
    if not tail:
        raise SystemExit(f"{path}: empty trajectory")
    lyapunov = sum(math.log(max(abs(rate * (1.0 - 2.0 * x)), 1e-300)) for x in tail) / len(tail)
    period = next((p for p in range(1, 65)
                   if all(abs(tail[-1 - i] - tail[-1 - i - p]) < 1e-6 for i in range(64))), None)
    summary = {"rate": rate, "lyapunov": lyapunov, "period": period, "mean": sum(tail) / len(tail)}
    with open(target, "w") as out:
        json.dump(summary, out, sort_keys=True)
        out.write("\n")


def audit(path: str | None, name: str, event: str) -> None:
    """Append one line (one small O_APPEND write, so lines never interleave)."""
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{name} {event} {os.getpid()}\n".encode())
        finally:
            os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--audit", default=None)
    parser.add_argument("--name", default="logistic")
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("simulate")
    sim.add_argument("rate", type=float)
    sim.add_argument("steps", type=int)
    sim.add_argument("output")
    ana = commands.add_parser("analyse")
    ana.add_argument("rate", type=float)
    ana.add_argument("input")
    ana.add_argument("output")
    args = parser.parse_args(argv)
    audit(args.audit, args.name, "start")
    time.sleep(args.delay)
    if args.command == "simulate":
        simulate(args.rate, args.steps, args.output)
    else:
        analyse(args.rate, args.input, args.output)
    audit(args.audit, args.name, "done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
