"""The PlainBox 0.38 side of the interoperability tests and of the checkpoint benchmark.

The file has two halves that never mix:

* **Host side** (imported by ``tests/test_plainbox_interop.py`` and
  ``benchmarks/plainbox.py``; standard library only): :func:`plainbox_python`
  builds, or reuses, a virtual environment holding the real ``plainbox==0.38.0``
  from PyPI, and :func:`call` runs one command of this file in that
  environment's interpreter.
* **Peer side** (``python _plainbox_peer.py COMMAND`` inside that environment):
  the command reads one JSON request on stdin, drives the real PlainBox
  classes, and prints one JSON answer on stdout.  Bytes travel as base64,
  checkpoints as files on disk.

PlainBox is driven only through its own public classes (``SessionState``,
``JobDefinition``, ``MemoryJobResult``/``DiskJobResult``, ``SessionManager``,
``SessionStorage``, ``SessionStorageRepository``, ``SessionSuspendHelper``,
``SessionPeekHelper``, ``SessionResumeHelper``), without providers on disk:
a ``JobDefinition`` built from a plain field dictionary is a complete job unit.

The environment lives in ``${XDG_CACHE_HOME:-~/.cache}/gc3session-test/plainbox-0.38``
and is reused while ``import plainbox`` there reports 0.38.0; it is built
under a temporary name and renamed into place, so concurrent test runs never
see a half-installed environment.
"""

from __future__ import annotations

import atexit
import base64
import gzip
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

PLAINBOX_VERSION = "0.38.0"
INSTALL_TIMEOUT = 600
CALL_TIMEOUT = 300


class PeerUnavailable(Exception):
    """PlainBox 0.38 could not be installed or started; the message says why."""


class PeerError(Exception):
    """A peer command failed; the message carries the command and its stderr."""


# --------------------------------------------------------------------- host side

def default_cache_dir() -> str:
    """Where the reusable environment is kept (XDG cache convention)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "gc3session-test", "plainbox-0.38")


def _interpreter(venv: str) -> str:
    return os.path.join(venv, "bin", "python")


def _works(venv: str) -> bool:
    """True if ``venv`` imports the exact PlainBox version the peer is written for."""
    python = _interpreter(venv)
    if not os.path.exists(python):
        return False
    try:
        probe = subprocess.run(
            [python, "-I", "-c", "import plainbox, plainbox.impl.session; print(plainbox.__version__)"],
            capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and probe.stdout.strip() == PLAINBOX_VERSION


def _build(venv: str) -> None:
    """Create ``venv`` and install PlainBox into it; raise PeerUnavailable on any failure."""
    steps = [
        [sys.executable, "-m", "venv", venv],
        [_interpreter(venv), "-m", "pip", "install", "--quiet", f"plainbox=={PLAINBOX_VERSION}"],
    ]
    for argv in steps:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise PeerUnavailable(f"{' '.join(argv)}: {err}") from err
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise PeerUnavailable(f"{' '.join(argv)} exited {done.returncode}: " + " | ".join(tail))
    if not _works(venv):
        raise PeerUnavailable(f"plainbox {PLAINBOX_VERSION} installed in {venv} does not import")


def plainbox_python(cache_dir: str | None = None) -> str:
    """The interpreter of a working PlainBox 0.38 environment, built on first use.

    The environment is built next to its final place and renamed there, so a
    reader sees either nothing or a complete environment; if another process
    wins the rename, its environment is used and ours is discarded.  Where the
    cache directory cannot be written, the environment goes to a temporary
    directory for this process only.

    :raises PeerUnavailable: if the environment cannot be created or PlainBox
        cannot be installed (no network, no ``ensurepip``, ...).
    """
    final = cache_dir or default_cache_dir()
    if _works(final):
        return _interpreter(final)
    try:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".building-", dir=os.path.dirname(final))
    except OSError:
        scratch = tempfile.mkdtemp(prefix="gc3session-plainbox-")
        atexit.register(shutil.rmtree, scratch, True)
        final, staging = os.path.join(scratch, "venv"), os.path.join(scratch, "building")
    venv = os.path.join(staging, "venv")
    try:
        _build(venv)
        if os.path.isdir(final) and not _works(final):
            shutil.rmtree(final, ignore_errors=True)  # a broken earlier build: ours replaces it
        try:
            os.rename(venv, final)
        except OSError:
            if not _works(final):
                raise PeerUnavailable(f"cannot move the environment into {final}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not _works(final):
        raise PeerUnavailable(f"the environment in {final} does not import plainbox {PLAINBOX_VERSION}")
    return _interpreter(final)


def call(python: str, command: str, request: dict[str, Any], timeout: float = CALL_TIMEOUT) -> Any:
    """Run peer ``command`` with ``request`` in PlainBox's interpreter; return its JSON answer.

    :raises PeerError: if the peer exits non-zero or prints no JSON.
    """
    argv = [python, "-I", os.path.abspath(__file__), command]  # -I: no PYTHONPATH, no user site
    done = subprocess.run(argv, input=json.dumps(request), capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise PeerError(f"peer {command} exited {done.returncode}:\n{done.stderr.strip()}")
    try:
        return json.loads(done.stdout)
    except ValueError as err:
        raise PeerError(f"peer {command} printed no JSON: {done.stdout[:500]!r}") from err


# --------------------------------------------------------------------- peer side

def _b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode("ascii")


def _job_list(definitions: list[dict[str, str]]) -> list[Any]:
    from plainbox.impl.unit.job import JobDefinition
    return [JobDefinition(dict(fields)) for fields in definitions]


def _write_record_file(path: str, records: list[list[Any]]) -> None:
    """An IO log file in PlainBox's own format (gzip of one JSON record per line)."""
    from plainbox.impl.result import IOLogRecord, IOLogRecordWriter
    with gzip.open(path, "wb") as raw, io.TextIOWrapper(raw, encoding="UTF-8") as text:
        writer = IOLogRecordWriter(text)
        for delay, stream, data in records:
            writer.write_record(IOLogRecord(delay, stream, data.encode("utf-8")))


def _result(spec: dict[str, Any], io_log_dir: str, job_id: str, index: int) -> Any:
    """A real PlainBox result from a spec (``io_log`` inline, or ``io_log_file`` on disk)."""
    from plainbox.impl.result import DiskJobResult, IOLogRecord, MemoryJobResult
    from plainbox.impl.runner import slugify
    data = {key: spec[key] for key in ("outcome", "return_code", "execution_duration", "comments")
            if key in spec}
    if spec.get("io_log_file"):
        path = os.path.join(io_log_dir, f"{slugify(job_id)}-{index}.record.gz")  # PlainBox's naming
        _write_record_file(path, spec.get("io_log", []))
        data["io_log_filename"] = path
        return DiskJobResult(data)
    data["io_log"] = [IOLogRecord(delay, stream, text.encode("utf-8"))
                      for delay, stream, text in spec.get("io_log", [])]
    return MemoryJobResult(data)


def _describe_result(result: Any) -> dict[str, Any]:
    records = [[record.delay, record.stream_name, _b64(record.data)] for record in result.get_io_log()]
    described = {"outcome": result.outcome, "return_code": result.return_code,
                 "comments": result.comments, "execution_duration": result.execution_duration,
                 "io_log": records}
    filename = getattr(result, "io_log_filename", None)
    if filename is not None:
        described["io_log_filename"] = filename
    return described


def _describe_metadata(metadata: Any) -> dict[str, Any]:
    blob = metadata.app_blob
    return {"title": metadata.title, "flags": sorted(metadata.flags),
            "running_job_name": metadata.running_job_name, "app_id": metadata.app_id,
            "app_blob": None if blob is None else _b64(blob)}


def _failure(err: BaseException) -> dict[str, Any]:
    return {"error": type(err).__name__, "message": str(err)}


def cmd_checksums(request: dict[str, Any]) -> Any:
    """``{"jobs": [fields...]}`` -> the checksum PlainBox computes for each job unit."""
    return [job.checksum for job in _job_list(request["jobs"])]


def cmd_write(request: dict[str, Any]) -> Any:
    """Build a real session with results; suspend it with PlainBox's helper, save it with its storage.

    Request: ``repo`` (repository directory), ``jobs`` (field dicts),
    ``results`` (job id -> list of result specs, oldest first), ``desired``
    (ids), ``metadata`` (title, flags, running_job_name, app_id, app_blob as
    base64), optionally ``version``: an older format (1 to 5), written by
    PlainBox's own helper of that version (default: its current one, 6).  Answer:
    the storage's location and id, the checkpoint's format version, and each
    job's checksum.
    """
    from plainbox.impl.session import suspend
    from plainbox.impl.session.manager import SessionManager, WellKnownDirsHelper
    from plainbox.impl.session.state import SessionState
    from plainbox.impl.session.storage import SessionStorageRepository
    jobs = _job_list(request["jobs"])
    by_id = {job.id: job for job in jobs}
    state = SessionState(jobs)
    state.update_desired_job_list([by_id[job_id] for job_id in request.get("desired", [])])
    manager = SessionManager.create_with_state(state, repo=SessionStorageRepository(request["repo"]))
    io_log_dir = WellKnownDirsHelper(manager.storage).io_log_pathname
    for job_id, specs in request.get("results", {}).items():
        for index, spec in enumerate(specs):
            state.update_job_result(by_id[job_id], _result(spec, io_log_dir, job_id, index))
    meta = request.get("metadata", {})
    state.metadata.title = meta.get("title")
    state.metadata.flags = set(meta.get("flags", []))
    state.metadata.running_job_name = meta.get("running_job_name")
    state.metadata.app_id = meta.get("app_id")
    if meta.get("app_blob") is not None:
        state.metadata.app_blob = base64.standard_b64decode(meta["app_blob"])
    version = request.get("version")
    helper = suspend.SessionSuspendHelper() if version is None \
        else getattr(suspend, f"SessionSuspendHelper{int(version)}")()
    manager.storage.save_checkpoint(helper.suspend(state, manager.storage.location))
    saved = json.loads(gzip.decompress(manager.storage.load_checkpoint()))
    return {"location": manager.storage.location, "id": manager.storage.id,
            "version": saved["version"], "checksums": {job.id: job.checksum for job in jobs}}


def cmd_load(request: dict[str, Any]) -> Any:
    """``{"location"}`` -> the bytes PlainBox's storage loads from that session directory."""
    from plainbox.impl.session.storage import SessionStorage
    data = SessionStorage(request["location"]).load_checkpoint()
    return {"data": _b64(data)}


def cmd_save(request: dict[str, Any]) -> Any:
    """``{"location", "data"}`` -> PlainBox's storage saves the bytes, or the error it raises."""
    from plainbox.impl.session.storage import SessionStorage
    try:
        SessionStorage(request["location"]).save_checkpoint(base64.standard_b64decode(request["data"]))
    except OSError as err:
        return _failure(err)
    return {"saved": True}


def cmd_list(request: dict[str, Any]) -> Any:
    """``{"repo"}`` -> PlainBox's repository listing: ``[[id, location], ...]`` youngest first."""
    from plainbox.impl.session.storage import SessionStorageRepository
    return [[storage.id, storage.location]
            for storage in SessionStorageRepository(request["repo"]).get_storage_list()]


def cmd_peek(request: dict[str, Any]) -> Any:
    """``{"location"}`` -> the metadata PlainBox's peek helper reads from the checkpoint."""
    from plainbox.impl.session.resume import SessionPeekHelper, SessionResumeError
    from plainbox.impl.session.storage import SessionStorage
    data = SessionStorage(request["location"]).load_checkpoint()
    try:
        return {"metadata": _describe_metadata(SessionPeekHelper().peek(data))}
    except SessionResumeError as err:
        return _failure(err)


def cmd_resume(request: dict[str, Any]) -> Any:
    """``{"location", "jobs"}`` -> PlainBox's full resume: metadata, desired list, results per job."""
    from plainbox.impl.session.manager import SessionManager
    from plainbox.impl.session.resume import SessionResumeError
    from plainbox.impl.session.storage import SessionStorage
    try:
        manager = SessionManager.load_session(_job_list(request["jobs"]),
                                              SessionStorage(request["location"]))
    except SessionResumeError as err:
        return _failure(err)
    state = manager.state
    return {"metadata": _describe_metadata(state.metadata),
            "desired": [job.id for job in state.desired_job_list],
            "jobs": {job_id: {"result": _describe_result(job_state.result),
                              "history": [_describe_result(r) for r in job_state.result_history]}
                     for job_id, job_state in state.job_state_map.items()}}


def cmd_time_save(request: dict[str, Any]) -> Any:
    """Time PlainBox's ``save_checkpoint`` of the bytes in ``request["data_file"]``.

    The storage is ``location`` if given, else a new one of ``repo`` (its
    location is in the answer, to be passed again).  The bytes are saved
    ``repeat`` times, each save the full next-file/fsync/rename/directory-fsync
    protocol.  Answer: the seconds of each save, the storage location, and the
    size PlainBox's own ``load_checkpoint`` reads back.
    """
    from plainbox.impl.session.storage import SessionStorage
    with open(request["data_file"], "rb") as stream:
        data = stream.read()
    if request.get("location"):
        storage = SessionStorage(request["location"])
    else:
        storage = SessionStorage.create(request["repo"], prefix="bench-")
    seconds = []
    for _ in range(int(request.get("repeat", 1))):
        started = time.perf_counter()
        storage.save_checkpoint(data)
        seconds.append(time.perf_counter() - started)
    return {"seconds": seconds, "location": storage.location, "size": len(storage.load_checkpoint())}


def cmd_time_session(request: dict[str, Any]) -> Any:
    """Time PlainBox's own checkpoint and resume of ``jobs`` jobs with one result each.

    Every job gets a MemoryJobResult with a short inline IO log (the way
    PlainBox inlines logs), or a DiskJobResult when ``disk_logs`` is set.
    Answer: checkpoint bytes, the median seconds of ``repeat`` suspends and
    saves, and the seconds of one resume (the expensive part of PlainBox).
    """
    from plainbox.impl.session.manager import SessionManager, WellKnownDirsHelper
    from plainbox.impl.session.resume import SessionResumeHelper
    from plainbox.impl.session.state import SessionState
    from plainbox.impl.session.storage import SessionStorageRepository
    from plainbox.impl.session.suspend import SessionSuspendHelper
    count = int(request["jobs"])
    jobs = _job_list([{"id": f"job-{n:06d}", "plugin": "shell", "command": f"run-step {n}"}
                      for n in range(count)])
    state = SessionState(jobs)
    manager = SessionManager.create_with_state(state, repo=SessionStorageRepository(request["repo"]))
    io_log_dir = WellKnownDirsHelper(manager.storage).io_log_pathname
    # Results before the desired list: each result re-checks the readiness of
    # the run list, which is still empty then (the build is not measured).
    for n, job in enumerate(jobs):
        spec = {"outcome": "pass" if n % 7 else "fail", "return_code": 0 if n % 7 else 1,
                "execution_duration": 0.5 + n / 1000, "comments": f"step {n}",
                "io_log": [[0.0, "stdout", f"output of step {n}\n"]],
                "io_log_file": bool(request.get("disk_logs"))}
        state.update_job_result(job, _result(spec, io_log_dir, job.id, 0))
    state.update_desired_job_list(jobs)
    state.metadata.title = "benchmark"
    state.metadata.flags = {"incomplete"}
    suspend_s, save_s = [], []
    for _ in range(int(request.get("repeat", 1))):
        started = time.perf_counter()
        data = SessionSuspendHelper().suspend(state, manager.storage.location)
        suspended = time.perf_counter()
        manager.storage.save_checkpoint(data)
        suspend_s.append(suspended - started)
        save_s.append(time.perf_counter() - suspended)
    started = time.perf_counter()
    SessionResumeHelper(jobs, None, manager.storage.location).resume(manager.storage.load_checkpoint())
    resume_s = time.perf_counter() - started
    manager.destroy()
    return {"bytes": len(data), "suspend_s": statistics.median(suspend_s),
            "save_s": statistics.median(save_s), "resume_s": resume_s}


COMMANDS = {name[4:].replace("_", "-"): func for name, func in list(globals().items())
            if name.startswith("cmd_")}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print(f"usage: {argv[0]} {{{','.join(sorted(COMMANDS))}}} < request.json", file=sys.stderr)
        return 2
    answer = COMMANDS[argv[1]](json.load(sys.stdin))
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
