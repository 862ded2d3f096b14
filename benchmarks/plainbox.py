"""The checkpoint benchmark of the PlainBox adapter, against the disk and against PlainBox 0.38.

    python3 -m benchmarks.plainbox [--quick] [--jobs 10000] [--repeat 5] [--plainbox-jobs 2000]
                                   [--no-plainbox]

A session of ``--jobs`` jobs, each with one result (one in a hundred with a
256 KiB output, the rest with one short line), is checkpointed ``--repeat``
times and resumed.  Printed, each the median of the repeats:

* the checkpoint size and time (``SessionManager.checkpoint``: suspend +
  ``save_checkpoint``, after one more job result, as a run checkpoints after
  each job), with its two parts;
* an atomic write of the same number of bytes measured in the same run
  (temporary file, write, fsync, rename, directory fsync).  The target is
  ``checkpoint <= 1.2 x (atomic write + serialization)``, the serialization
  being the adapter's suspend timed alone: a checkpoint costs one
  serialization and one atomic write, nothing more;
* the same ratio against the bare encoding of the same content (JSON + gzip
  at the adapter's level, no state to walk), the lower bound of any writer of
  this format;
* that no large output is inlined in the checkpoint (it must be in ``io-logs/``);
* the resume time (``SessionManager.load_session`` with the application's tasks);
* PlainBox 0.38's ``SessionStorage.save_checkpoint`` of the very same bytes, and
  PlainBox's own suspend / save / resume of ``--plainbox-jobs`` jobs (fewer:
  its resume re-checks every job after each result, quadratic in the number
  of jobs), with ours at that size.

PlainBox runs in its own virtual environment (built on first use, see
``tests/_plainbox_peer.py``); ``--no-plainbox`` leaves it out.  Exit status 1
if the target is missed, a large output was inlined, or a resumed result differs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

from benchmarks._common import Report
from gc3session import Task
from gc3session.plainbox import (
    MemoryJobResult,
    SessionManager,
    SessionStorage,
    SessionStorageRepository,
    SessionSuspendHelper,
    envelope,
)
from gc3session.plainbox.state import INLINE_IO_LOG_LIMIT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import _plainbox_peer as peer  # noqa: E402  (the PlainBox side lives with the interop tests)

#: Every LARGE_EVERY-th job has an output of LARGE_OUTPUT bytes.
LARGE_EVERY = 100
LARGE_OUTPUT = 256 * 1024
TARGET = 1.2


def definition(n: int) -> dict[str, str]:
    """The fields of job ``n`` (a PlainBox job unit and our task alike)."""
    return {"id": f"job-{n:06d}", "plugin": "shell", "command": f"run-step {n}"}


def result_of(n: int, large: bool = True) -> MemoryJobResult:
    """The result of job ``n``: a pass or a failure, one line of output or (``large``) a large one."""
    output = (b"y" * 1023 + b"\n") * (LARGE_OUTPUT // 1024) if large and n % LARGE_EVERY == 0 \
        else f"output of step {n}\n".encode()
    return MemoryJobResult({"outcome": "fail" if n % 7 == 0 else "pass", "return_code": int(n % 7 == 0),
                            "execution_duration": 0.5 + n / 1000, "comments": f"step {n}",
                            "io_log": [(0.0, "stdout", output)]})


def median_times(funcs: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """The median wall time of each of ``funcs``, over ``repeat`` rounds that call each once.

    Interleaving the measures gives each the same share of a noisy machine's
    good and bad moments, so their ratios are fair.
    """
    seconds: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(repeat):
        for name, func in funcs.items():
            started = time.perf_counter()
            func()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def atomic_write(directory: str, data: bytes) -> None:
    """The floor of a durable replace: tmp (O_EXCL), write, fsync, rename, directory fsync."""
    tmp, final = os.path.join(directory, "anchor.tmp"), os.path.join(directory, "anchor")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, final)
    dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def serialize(content: dict[str, Any]) -> bytes:
    """The checkpoint encoding of ``content`` done directly: the lower bound of any writer."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=envelope.COMPRESS_LEVEL)


def build(repo: str, jobs: int, large: bool) -> SessionManager:
    """A session of ``jobs`` jobs with their results (not measured)."""
    manager = SessionManager.create(SessionStorageRepository(repo), prefix="bench-")
    manager.add_local_device_context()
    state = manager.state
    for n in range(jobs):
        state.add(Task(**definition(n)), flush=False)
    state.flush()
    for n in range(jobs):
        state.update_job_result(definition(n)["id"], result_of(n, large))
    state.update_desired_job_list([definition(n)["id"] for n in range(jobs)])
    state.metadata.title, state.metadata.flags = "benchmark", {"incomplete"}
    return manager


def measure_ours(workdir: str, jobs: int, repeat: int, large: bool = True) -> dict[str, Any]:
    """Checkpoint and resume figures of the adapter for ``jobs`` jobs, with their checks.

    Without ``large`` every output is one short line: the session PlainBox's
    own measure builds (``time-session`` of the peer), job for job.
    """
    repo = os.path.join(workdir, f"ours-{jobs}-{large}")
    started = time.perf_counter()
    manager = build(repo, jobs, large)
    figures: dict[str, Any] = {"build_s": time.perf_counter() - started}
    try:
        storage, state = manager.storage, manager.state
        manager.checkpoint()
        data = storage.load_checkpoint()
        content = json.loads(gzip.decompress(data))
        helper = SessionSuspendHelper()
        anchor_dir = os.path.join(repo, "anchor")
        os.mkdir(anchor_dir)
        figures["bytes"] = len(data)
        rerun = iter(range(jobs))

        def job_done_then_checkpoint() -> None:
            # What a run does after each job: one new result, then a checkpoint.
            n = next(rerun)
            state.update_job_result(definition(n)["id"], result_of(n + 1, large=False))
            manager.checkpoint()
        figures.update(median_times({  # the checkpoint last: what is on disk at the end is the newest state
            "suspend_s": lambda: helper.suspend(manager.state, storage.location),
            "save_s": lambda: storage.save_checkpoint(data),
            "serialize_s": lambda: serialize(content),
            "atomic_write_s": lambda: atomic_write(anchor_dir, data),
            "checkpoint_s": job_done_then_checkpoint,
        }, repeat))
        results = content["session"]["results"]
        big = [results[definition(n)["id"]][0] for n in range(0, jobs, LARGE_EVERY)] if large else []
        figures["large_logs"] = len(big)
        figures["large_inlined"] = sum("io_log" in r or "io_log_filename" not in r for r in big)
        figures["small_inlined"] = sum("io_log" in r[0] for r in results.values())
        figures["data"] = data
        expected = summary(manager)
    finally:
        manager.close()
    tasks = [Task(**definition(n)) for n in range(jobs)]
    resumed_states: list[Any] = []

    def resume() -> None:
        again = SessionManager.load_session(tasks, storage)
        resumed_states.append(summary(again))
        again.close()
    figures["resume_s"] = median_times({"resume": resume}, repeat)["resume"]
    figures["resume_ok"] = all(resumed == expected for resumed in resumed_states)
    return figures


def summary(manager: SessionManager) -> list[tuple[Any, ...]]:
    """Every job of a session, in job order, with the outcomes, return codes and comments of its history."""
    return [(name, [(r.outcome, r.return_code, r.comments) for r in job_state.result_history])
            for name, job_state in manager.state.job_state_map.items()]


def measure_plainbox(python: str, workdir: str, data: bytes, jobs: int, repeat: int) -> dict[str, Any]:
    """PlainBox 0.38's save of ``data`` against ours, and its own checkpoint and resume of ``jobs`` jobs.

    The saves alternate, one of ours then one of PlainBox's, so that both
    see the same moments of the disk.
    """
    data_file = os.path.join(workdir, "checkpoint.bin")
    with open(data_file, "wb") as stream:
        stream.write(data)
    # A first save on each side, so that every measured save replaces a checkpoint.
    ours = SessionStorage.create(os.path.join(workdir, "ours-save"), prefix="bench-")
    ours.save_checkpoint(data)
    theirs = peer.call(python, "time-save", {"repo": os.path.join(workdir, "theirs"), "data_file": data_file})
    our_seconds, their_seconds, sizes_ok = [], [], theirs["size"] == len(data)
    for _ in range(repeat):
        # PlainBox's save comes after a second of imports in a fresh process;
        # ours gets a pause too, instead of starting while the disk still
        # commits what the peer process just wrote.
        time.sleep(0.5)
        started = time.perf_counter()
        ours.save_checkpoint(data)
        our_seconds.append(time.perf_counter() - started)
        saved = peer.call(python, "time-save", {"location": theirs["location"], "data_file": data_file})
        their_seconds.extend(saved["seconds"])
        sizes_ok = sizes_ok and saved["size"] == len(data)
    own = peer.call(python, "time-session", {"repo": os.path.join(workdir, "theirs"), "jobs": jobs,
                                             "repeat": repeat}, timeout=1800)
    return {"save_s": statistics.median(their_seconds), "our_save_s": statistics.median(our_seconds),
            "save_size_ok": sizes_ok, **{f"own_{key}": value for key, value in own.items()}}


def measure(argv: list[str] | None = None) -> Report:
    """Run the benchmark with command-line arguments ``argv``; return its report (rows, targets)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, 3 repeats, PlainBox's own at 300")
    parser.add_argument("--jobs", type=int, help="jobs in the session (default 10,000)")
    parser.add_argument("--repeat", type=int, help="repeats of each measure (default 5)")
    parser.add_argument("--plainbox-jobs", type=int, help="jobs of PlainBox's own session (default 2,000)")
    parser.add_argument("--no-plainbox", action="store_true", help="leave PlainBox 0.38 out")
    args = parser.parse_args(argv)
    jobs = args.jobs or (1_000 if args.quick else 10_000)
    repeat = args.repeat or (3 if args.quick else 5)
    pb_jobs = args.plainbox_jobs or (300 if args.quick else 2_000)
    report = Report("gc3session checkpoints: the PlainBox adapter beside an atomic write, and PlainBox 0.38")
    workdir = tempfile.mkdtemp(prefix="gc3session-bench-plainbox-", dir=os.environ.get("TMPDIR"))
    try:
        ours = measure_ours(workdir, jobs, repeat)
        report.section(f"PlainBox-compatible checkpoint, {jobs:,} jobs with results (median of {repeat})")
        report.note(f"session built in {ours['build_s']:.1f} s (not measured); checkpoint"
                    f" {ours['bytes']:,} B")
        report.row("checkpoint vs atomic write + suspend", jobs, ours["checkpoint_s"], "ms",
                   ours["atomic_write_s"] + ours["suspend_s"])
        report.row("checkpoint vs atomic write + bare JSON+gzip", jobs, ours["checkpoint_s"], "ms",
                   ours["atomic_write_s"] + ours["serialize_s"])
        report.row("suspend (the serialization) vs bare JSON+gzip", jobs, ours["suspend_s"], "ms",
                   ours["serialize_s"])
        report.row("save_checkpoint vs atomic write, same bytes", jobs, ours["save_s"], "ms",
                   ours["atomic_write_s"])
        report.row("resume (load_session)", jobs, ours["resume_s"], "ms")
        ratio = ours["checkpoint_s"] / (ours["atomic_write_s"] + ours["suspend_s"])
        report.target(f"checkpoint <= {TARGET}x (atomic write + suspend), {jobs:,} jobs",
                      f"{ratio:.2f}x", ratio <= TARGET)
        report.target(f"large outputs (> {INLINE_IO_LOG_LIMIT} B) never inlined",
                      f"{ours['large_inlined']} of {ours['large_logs']} inlined"
                      f" (small ones inlined: {ours['small_inlined']:,})", ours["large_inlined"] == 0)
        report.target("resume gives every result back", "all" if ours["resume_ok"] else "NOT ALL",
                      ours["resume_ok"])
        if not args.no_plainbox:
            try:
                python = peer.plainbox_python()
            except peer.PeerUnavailable as err:
                report.note(f"PlainBox {peer.PLAINBOX_VERSION} left out: {err}")
                return report
            theirs = measure_plainbox(python, workdir, ours["data"], pb_jobs, repeat)
            small = measure_ours(workdir, pb_jobs, repeat, large=False)
            report.section(f"PlainBox {peer.PLAINBOX_VERSION}, same run")
            report.row("save_checkpoint, same bytes (alternating)", jobs, theirs["our_save_s"], "ms",
                       gc3pie=theirs["save_s"])
            report.row("own session: suspend", pb_jobs, small["suspend_s"], "ms",
                       gc3pie=theirs["own_suspend_s"])
            report.row("own session: save_checkpoint", pb_jobs, small["save_s"], "ms",
                       gc3pie=theirs["own_save_s"])
            report.row("own session: resume (PlainBox's: one run)", pb_jobs, small["resume_s"], "ms",
                       gc3pie=theirs["own_resume_s"])
            report.note(f"own sessions' checkpoint sizes: PlainBox {theirs['own_bytes']:,} B,"
                        f" gc3session {small['bytes']:,} B")
            report.target("PlainBox loads the bytes our save wrote", "same size" if theirs["save_size_ok"]
                          else "a different size", theirs["save_size_ok"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    """Exit status 1 if a target is missed (the checkpoint ratio, an inlined output, a resume)."""
    report = measure(argv)
    report.finish()
    return int(not all(target.met for target in report.targets))


if __name__ == "__main__":
    sys.exit(main())
