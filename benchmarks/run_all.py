"""Run every benchmark a number of times and write ``benchmarks/RESULTS.md``.

    python3 -m benchmarks [--quick] [--repeat 3] [--areas runner,stores,sessions,checkpoints]
                          [--output benchmarks/RESULTS.md] [--runner-args "..."] ...

Each area is one benchmark module, run in this process ``--repeat`` times
(default 3; 1 with ``--quick``): ``runner`` (:mod:`benchmarks.runner`),
``stores`` (:mod:`benchmarks.stores`), ``sessions``
(:mod:`benchmarks.sessions`) and ``checkpoints`` (:mod:`benchmarks.plainbox`).
Every module reports its figures as rows of a :class:`benchmarks._common.Report`
(ours, the anchor measured in the same run, the peer: GC3Pie 2.6.8 or
PlainBox 0.38 where the module has one); this layer repeats them and writes
one table per area with the median, minimum and maximum of each figure and
of each ratio, then the targets (met in how many of the repetitions), and
the machine: cores, memory, the disk under the scratch directory, Python,
SQLite and PostgreSQL versions, and the load average before and after.

``--quick`` is the smoke run of CI (well under a minute): tiny sizes, one
repetition, no peers (GC3Pie and PlainBox need virtualenvs of their own),
and it asserts nothing about speed.  ``--AREA-args`` passes more arguments
to one module (e.g. ``--stores-args "--sizes 10000"``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import re
import shlex
import sqlite3
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

from benchmarks import _common, plainbox, runner, sessions, stores
from benchmarks._common import Report, Row

#: area -> (module's measure function, its arguments for a full run, for a quick run, title)
AREAS: dict[str, tuple[Callable[[list[str]], Report], list[str], list[str], str]] = {
    "runner": (runner.measure, [], ["--quick"],
               "Runner: 'true' x N, 8 at a time, anchor a thread pool of 8 (subprocess.run)"),
    "stores": (stores.measure, [], ["--quick", "--sizes", "120", "--no-gc3pie"],
               "Stores: save, load, replace, remove beside raw anchors; GC3Pie 2.6.8 as the peer"),
    "sessions": (sessions.measure, [], ["--quick", "--sizes", "60,240", "--no-gc3pie",
                                        "--bulk-size", "120"],
                 "Sessions: add, reopen, load all, save_all, bulk adds; GC3Pie 2.6.8 as the peer"),
    "checkpoints": (plainbox.measure, [], ["--quick", "--jobs", "200", "--no-plainbox"],
                    "Checkpoints: the PlainBox adapter beside an atomic write; PlainBox 0.38 as the peer"),
}
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def machine() -> list[str]:
    """Lines describing the machine, the disk of the scratch space and the software versions."""
    scratch = os.environ.get("GC3SESSION_BENCH_DIR") or os.environ.get("TMPDIR") or "/tmp"
    lines = [f"- cores: {os.cpu_count()}; memory: {_meminfo()}; {platform.platform()}",
             f"- scratch disk ({scratch}): {_disk(scratch)}",
             (f"- Python {platform.python_version()}; SQLite {sqlite3.sqlite_version};"
              f" PostgreSQL {_postgres_version()}")]
    return lines


def _meminfo() -> str:
    try:
        with open("/proc/meminfo") as stream:
            kib = int(stream.readline().split()[1])
        return f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def _disk(path: str) -> str:
    try:
        device = os.stat(path).st_dev
        with open("/proc/self/mountinfo") as stream:
            for line in stream:
                fields = line.split()
                major, minor = map(int, fields[2].split(":"))
                if os.makedev(major, minor) == device:
                    separator = fields.index("-")
                    kind, source = fields[separator + 1], fields[separator + 2]
                    return f"{source} ({kind}, mounted on {fields[4]}, options {fields[5]})"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def _postgres_version() -> str:
    from tests import _pg_cluster

    bindir = _pg_cluster.find_pg_bin()
    if bindir is None:
        return "not found"
    try:
        out = subprocess.run([os.path.join(bindir, "postgres"), "--version"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "not found"
    found = re.search(r"\d+(\.\d+)+", out)
    return found.group(0) if found else "unknown"


def run_area(name: str, argv: list[str], repeat: int) -> list[Report]:
    """Run one area ``repeat`` times; its own output goes to stderr as it comes."""
    measure = AREAS[name][0]
    reports = []
    for number in range(1, repeat + 1):
        _common.warn(f"== {name}, run {number} of {repeat}: {' '.join(argv)}")
        with contextlib.redirect_stdout(_Tee(sys.stderr)):
            reports.append(measure(argv))
    return reports


class _Tee(io.TextIOBase):
    """The benchmarks print their tables; here they go to stderr (stdout stays for the summary)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def _spread(values: list[float | None], fmt: Callable[[float], str]) -> str:
    """``median (min–max)`` of the values that exist."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    if len(present) == 1:
        return fmt(present[0])
    return f"{fmt(statistics.median(present))} ({fmt(min(present))}–{fmt(max(present))})"


def _value(unit: str) -> Callable[[float], str]:
    if unit == "/s":
        return lambda v: f"{v:,.0f}/s"
    if unit == "ms":
        return lambda v: f"{v * 1e3:,.2f} ms"
    return lambda v: f"{v:,.3f} s"


def _ratio(value: float) -> str:
    return f"{value:.2f}x"


def table(reports: list[Report]) -> list[str]:
    """The markdown table of one area: each row's median (min–max) over the repetitions."""
    grouped: dict[tuple[str, str], list[Row]] = {}
    for report in reports:
        for row in report.rows:
            grouped.setdefault((row.operation, str(row.n)), []).append(row)
    lines = ["| operation | N | ours | anchor | ours/anchor | peer | ours/peer | peak MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (operation, n), rows in grouped.items():
        unit = rows[0].unit
        value = _value(unit)
        lines.append(" | ".join([
            f"| {operation}", n, _spread([r.ours for r in rows], value),
            _spread([r.anchor for r in rows], value),
            _spread([_as_shown(r, r.anchor) for r in rows], _ratio),
            _spread([r.peer for r in rows], value),
            _spread([_as_shown(r, r.peer) for r in rows], _ratio),
            _spread([r.peak_mib for r in rows], lambda v: f"{v:,.0f}")]) + " |")
    return lines


def _as_shown(row: Row, other: float | None) -> float | None:
    """ours/other of the quantity the row shows: a rate ratio (>1 faster) or a time ratio (<1 faster)."""
    better = row.ratio(other)
    if better is None:
        return None
    return better if row.unit == "/s" else 1 / better


def targets(reports: list[Report]) -> list[str]:
    """Each target with its figure in every repetition and how often it was met."""
    grouped: dict[str, list[_common.Target]] = {}
    for report in reports:
        for target in report.targets:
            grouped.setdefault(target.name, []).append(target)
    return [f"- {'met' if all(t.met for t in found) else 'NOT MET'} ({sum(t.met for t in found)}/"
            f"{len(found)}): {name}: {', '.join(t.figure for t in found)}"
            for name, found in grouped.items()]


def write_results(path: str, results: dict[str, list[Report]], quick: bool, started: float,
                  loads: tuple[float, float], argv: list[str]) -> None:
    """Write the markdown file."""
    repeat = max((len(r) for r in results.values()), default=0)
    lines = ["# Benchmark results", "",
             (f"`python -m benchmarks {' '.join(argv)}`,"
              f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},"
              f" {(time.monotonic() - started) / 60:.0f} minutes; load average {loads[0]:.1f} before,"
              f" {loads[1]:.1f} after."), ""]
    if quick:
        lines += [("**Smoke run (`--quick`): tiny sizes, one repetition, no peers. These figures"
                   " say nothing about speed.**"), ""]
    lines += ["## Machine", "", *machine(), "",
              (f"Each figure is the median of {repeat} runs, with (min–max). For a rate (`/s`)"
               " ours/anchor above 1 means ours is faster; for a time (`s`, `ms`) below 1 means"
               " ours is faster. The anchor is the same work done with the raw primitives,"
               " measured in the same run; the peer is GC3Pie 2.6.8 (stores, sessions) or"
               " PlainBox 0.38 (checkpoints). Absolute figures drift with the load of this shared"
               " machine; the ratios are what to compare."), ""]
    for name, reports in results.items():
        lines += [f"## {name}", "", AREAS[name][3], "", *table(reports), "", "Targets:", "",
                  *targets(reports), ""]
    with open(path, "w") as stream:
        stream.write("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, once, no peers")
    parser.add_argument("--repeat", type=int, help="runs of each area (default 3; 1 with --quick)")
    parser.add_argument("--areas", default=",".join(AREAS), help="comma-separated (default: all)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="the markdown file to write")
    for name in AREAS:
        parser.add_argument(f"--{name}-args", default="", help=f"more arguments for the {name} area")
    args = parser.parse_args(argv)
    areas = [a for a in args.areas.split(",") if a]
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        parser.error(f"unknown area {', '.join(unknown)}; known: {', '.join(AREAS)}")
    repeat = args.repeat or (1 if args.quick else 3)
    started, load_before = time.monotonic(), os.getloadavg()[0]
    results = {}
    for name in areas:
        _, full, quick, _ = AREAS[name]
        extra = shlex.split(getattr(args, f"{name}_args"))
        results[name] = run_area(name, (quick if args.quick else full) + extra, repeat)
    write_results(args.output, results, args.quick, started, (load_before, os.getloadavg()[0]),
                  argv if argv is not None else sys.argv[1:])
    print(f"wrote {args.output} ({os.path.getsize(args.output):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
