"""What the benchmarks share: timing, peak memory, the task object, a PostgreSQL cluster, output.

Every figure a benchmark prints sits beside an *anchor* measured in the same
run on the same disk: the machine is shared and noisy, so absolute numbers
drift from run to run while the ratio to the anchor stays meaningful.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from typing import Any, Callable, Iterator, Sequence

from tests import _pg_cluster

#: The filler that brings a task's record to about 2 KB (shared, so 100,000 tasks fit in memory).
FILLER = "benchmark payload " * 60


def task_fields(i: int) -> dict[str, Any]:
    """The attributes of task ``i``: what a batch script typically keeps (~2 KB pickled).

    The GC3Pie worker builds its tasks from the same function, so both sides
    pickle the same data.
    """
    return {
        "arguments": ["/usr/bin/analyse", f"--sample=S{i}", "--threads=4", f"--out=out/{i}.dat"],
        "environment": {f"VAR_{k}": f"value-{k}-{i}" for k in range(12)},
        "inputs": {f"data/in/{i}/part{k}.csv": f"part{k}.csv" for k in range(6)},
        "requested_memory_mb": 2048 + i % 7,
        "notes": FILLER,
    }


def make_task(i: int) -> Any:
    """A gc3session task with :func:`task_fields` (imported late: the worker venv has no gc3session)."""
    from gc3session import Task

    return Task(jobname=f"task-{i}", **task_fields(i))


def record_size() -> int:
    """Size in bytes of one task record as gc3session writes it."""
    from gc3session.persistence.serialization import encode

    task = make_task(1)
    return len(encode(task, lambda obj: "Task.1")[0].data)


# --- timing ----------------------------------------------------------------------

def time_interleaved(*runs: tuple[Callable[[Any], Any], Sequence[Any]]) -> list[list[float]]:
    """Time several operations in turns: item 0 of each run, then item 1 of each, and so on.

    Taking turns exposes ours and its anchor to the same bursts of load from
    other users of the machine, so their ratio stays meaningful on a noisy disk.
    Returns the per-call seconds of each run.
    """
    clock = time.perf_counter
    durations: list[list[float]] = [[] for _ in runs]
    for i in range(min(len(items) for _, items in runs)):
        for (operation, items), spent in zip(runs, durations):
            start = clock()
            operation(items[i])
            spent.append(clock() - start)
    return durations


def time_once(operation: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``operation()`` once; return (seconds, its result)."""
    start = time.perf_counter()
    result = operation()
    return time.perf_counter() - start, result


def write_back_unsynced() -> None:
    """Flush what earlier steps wrote unsynced (a prefill at ``durable=False``, GC3Pie's side).

    An fsync on ext4 (data=ordered) and a ``syncfs`` also write back other
    files' dirty data; without this, the next timed durable operation would
    pay for writes it did not make.
    """
    os.sync()


def per_op(durations: Sequence[float]) -> float:
    """Mean seconds per operation of a sample (the mean: fsync outliers are part of the cost)."""
    return statistics.fmean(durations)


# --- peak memory -----------------------------------------------------------------

def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


@contextlib.contextmanager
def peak_memory() -> Iterator[dict[str, float]]:
    """Measure the peak memory growth (MiB) of the block into ``result["mib"]``.

    On Linux the resident-set high-water mark is reset (``/proc/self/clear_refs``)
    and read back afterwards, which costs nothing while the block runs; elsewhere
    ``tracemalloc`` measures Python allocations (slower, so timings taken inside
    are then pessimistic).
    """
    result: dict[str, float] = {"mib": float("nan")}
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        before = _rss_kib("VmRSS")
        use_proc = True
    except OSError:
        tracemalloc.start()
        use_proc = False
    try:
        yield result
    finally:
        if use_proc:
            result["mib"] = max(0, _rss_kib("VmHWM") - before) / 1024
        else:
            result["mib"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()


# --- raw file operations (the physical anchors) ------------------------------------

def raw_atomic_write(directory: str, name: str, data: bytes, durable: bool = True) -> None:
    """New or replaced file, atomically: tmp ``O_EXCL``, write, fsync, rename, dir fsync."""
    tmp = os.path.join(directory, f".{name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(directory, name))
    if durable:
        fsync_dir(directory)


def fsync_dir(directory: str) -> None:
    """fsync a directory (makes renames and unlinks in it durable)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_append(path: str, data: bytes, durable: bool = True) -> None:
    """Append ``data`` with one write, then fdatasync."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        if durable:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def raw_read(path: str) -> bytes:
    """Read a whole small file."""
    with open(path, "rb") as stream:
        return stream.read()


# --- scratch space -----------------------------------------------------------------

@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[str]:
    """A temporary directory on the benchmark disk, removed afterwards."""
    base = os.environ.get("GC3SESSION_BENCH_DIR") or None
    path = tempfile.mkdtemp(prefix=f"gc3session-bench-{prefix}-", dir=base)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- a throwaway PostgreSQL cluster -------------------------------------------------

class PgCluster(_pg_cluster.PgCluster):
    """The test suite's throwaway cluster, with fsync *on* (durability is measured).

    Its directory goes under ``$GC3SESSION_BENCH_DIR`` when that is set.
    """

    def __init__(self) -> None:
        super().__init__("bench", {"shared_buffers": "128MB", "max_wal_size": "2GB"},
                         parent=os.environ.get("GC3SESSION_BENCH_DIR") or None)

    def new_database(self, prefix: str = "bench") -> str:
        """Create an empty database; return its name."""
        return super().new_database(prefix)


# --- output --------------------------------------------------------------------------

@dataclasses.dataclass
class Target:
    """One target: what is measured, the figure, the bound, and whether it is met."""

    name: str
    figure: str
    met: bool


@dataclasses.dataclass
class Row:
    """One figure of a report, as :meth:`Report.row` printed it (for ``benchmarks/RESULTS.md``).

    ``unit`` is ``"/s"`` (a rate: higher is better) or ``"s"`` / ``"ms"``
    (a time: lower is better); ``ours``, ``anchor`` and ``peer`` are in
    operations per second or in seconds accordingly.
    """

    operation: str
    n: int | str
    ours: float
    unit: str
    anchor: float | None = None
    peer: float | None = None
    peak_mib: float | None = None

    def ratio(self, other: float | None) -> float | None:
        """How many times better ours is than ``other`` (>1: ours is faster)."""
        if other is None or not self.ours or not other:
            return None
        return self.ours / other if self.unit == "/s" else other / self.ours


class Report:
    """Rows of figures printed as they come, then the list of targets.

    Every row and target is also kept (:attr:`rows`, :attr:`targets`), so
    that ``python -m benchmarks`` can repeat a benchmark and tabulate the
    median, minimum and maximum of each figure.
    """

    HEADER = (f"{'operation':<50} {'N':>7} {'ours':>12} {'anchor':>12} {'ours/anc':>8}"
              f" {'GC3Pie':>12} {'ours/GC3':>8} {'peak MiB':>8}")

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[Row] = []
        self.targets: list[Target] = []
        self.started = time.monotonic()
        print(f"{title}  ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},"
              f" {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})", flush=True)

    def section(self, text: str) -> None:
        """Print a section heading and the column header."""
        print(f"\n{text}\n{self.HEADER}", flush=True)

    def row(self, operation: str, n: int | str, ours: float, unit: str,
            anchor: float | None = None, gc3pie: float | None = None,
            peak_mib: float | None = None) -> None:
        """One figure; ``unit`` is ``"/s"`` (higher is better) or ``"s"`` / ``"ms"`` (lower is better).

        Ratios are always "how many times better ours is": ours/anchor for
        rates, anchor/ours for times (so ``0.70`` means 70 % of the anchor's speed).
        """
        def fmt(value: float | None) -> str:
            if value is None:
                return "-"
            if unit == "/s":
                return f"{value:,.0f}/s"
            if unit == "ms":
                return f"{value * 1e3:,.2f} ms"
            return f"{value:,.3f} s"

        def ratio(other: float | None) -> str:
            if other is None or not ours or not other:
                return "-"
            return f"{(ours / other if unit == '/s' else other / ours):.2f}x"

        self.rows.append(Row(operation, n, ours, unit, anchor, gc3pie, peak_mib))
        mem = "-" if peak_mib is None else f"{peak_mib:,.0f}"
        print(f"{operation:<50} {n!s:>7} {fmt(ours):>12} {fmt(anchor):>12} {ratio(anchor):>8}"
              f" {fmt(gc3pie):>12} {ratio(gc3pie):>8} {mem:>8}", flush=True)

    def note(self, text: str) -> None:
        """A free-text line."""
        print(f"  {text}", flush=True)

    def target(self, name: str, figure: str, met: bool) -> None:
        """Record a target (printed at the end)."""
        self.targets.append(Target(name, figure, met))

    def finish(self) -> int:
        """Print the targets; return 0 (the benchmark ran; unmet targets are figures, not errors)."""
        print(f"\ntargets ({time.monotonic() - self.started:.0f} s in all)")
        for target in self.targets:
            print(f"  {'MET    ' if target.met else 'NOT MET'}  {target.name}: {target.figure}")
        met = sum(t.met for t in self.targets)
        print(f"  {met}/{len(self.targets)} met", flush=True)
        return 0


def parse_args(description: str, default_sizes: list[int], quick_sizes: list[int],
               argv: list[str] | None = None,
               extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """``--quick`` (small sizes and samples), ``--sizes N,N,...``, ``--no-gc3pie``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (< 1 min)")
    parser.add_argument("--sizes", type=lambda s: [int(x.replace("_", "")) for x in s.split(",")],
                        help=f"comma-separated task counts (default {','.join(map(str, default_sizes))})")
    parser.add_argument("--no-gc3pie", action="store_true", help="skip the GC3Pie 2.6.8 side")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = quick_sizes if args.quick else default_sizes
    return args


def warn(text: str) -> None:
    """A message on stderr (not part of the table)."""
    print(text, file=sys.stderr, flush=True)
