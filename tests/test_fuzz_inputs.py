"""Property-based fuzzing of the parsers not covered in test_hostile.py.

Checkpoint envelopes (the bytes a PlainBox storage holds) and the command
lines of ``gsession`` and of :class:`~gc3session.cmdline.SessionBasedScript`:
whatever the input, only gc3session's typed exceptions (or a documented exit
status) come out, and nothing on disk changes when a read fails.
``GC3SESSION_FUZZ_EXAMPLES`` sets the examples per property (default 200;
the reliability report runs more).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from typing import Any

import pytest
from _report import record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gc3session import Session, Task
from gc3session.cli import main as gsession_main
from gc3session.cmdline import SessionBasedScript, UsageError
from gc3session.plainbox.errors import SessionResumeError
from gc3session.plainbox.resume import SessionPeekHelper, SessionResumeHelper

FUZZ = settings(max_examples=int(os.environ.get("GC3SESSION_FUZZ_EXAMPLES", "200")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _tree_digest(path: str) -> dict[str, tuple[str, float]]:
    """Content hash and mtime of every file under ``path``."""
    digest = {}
    for folder, _, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            with open(full, "rb") as stream:
                digest[full] = (hashlib.sha256(stream.read()).hexdigest(), os.stat(full).st_mtime)
    return digest


# --- checkpoint envelopes ------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)
_session_keys = st.sampled_from(["jobs", "results", "desired_job_list", "mandatory_job_list",
                                 "metadata", "title", "flags", "running_job_name", "app_id",
                                 "app_blob", "io_log", "outcome", "return_code", "comments"])
_session_like = st.dictionaries(_session_keys, _json_values, max_size=8)


def _envelope(version: Any, session: Any) -> bytes:
    return gzip.compress(json.dumps({"version": version, "session": session}).encode())


_checkpoints = st.one_of(
    st.binary(max_size=300),
    st.builds(gzip.compress, st.binary(max_size=300)),
    st.builds(lambda v: gzip.compress(json.dumps(v).encode()), _json_values),
    st.builds(_envelope, st.integers(-2, 14) | st.text(max_size=3), _session_like),
    st.builds(lambda data, cut: data[:cut],
              st.builds(_envelope, st.integers(1, 11), _session_like), st.integers(0, 200)),
)


@FUZZ
@given(data=_checkpoints)
def test_checkpoint_parsers_only_raise_resume_errors(data: bytes) -> None:
    """Any bytes given to resume or peek give a state, or a SessionResumeError subclass."""
    record(fuzz_cases=1)
    job = Task(id="job-a", plugin="shell", command="true")
    try:
        state = SessionResumeHelper([job]).resume(data)
    except SessionResumeError:
        pass
    else:
        state.close()
    try:
        SessionPeekHelper().peek(data)
    except SessionResumeError:
        pass


# --- gsession command lines ------------------------------------------------------------

_READ_COMMANDS = ["list", "show", "log", "stats", "fsck"]
_FLAGS = ["--json", "-r", "--recursive", "--untrusted", "-v", "-vv", "--orphans", "keep", "-x", "--"]


@pytest.fixture(scope="module")
def sample_session(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("fuzz") / "session")
    with Session(path) as session:
        for n in range(3):
            session.add(Task(jobname=f"t{n}", n=n))
    return path


@FUZZ
@given(data=st.data())
def test_gsession_read_commands_never_raise_or_write(sample_session: str, data: st.DataObject) -> None:
    """Random read-only command lines end with a documented status and change no byte."""
    record(fuzz_cases=1)
    tokens = st.one_of(st.sampled_from(_READ_COMMANDS + _FLAGS),
                       st.sampled_from([sample_session, sample_session + "/nope", "Task.1",
                                        "Task.99", "../x", "/etc/passwd", ""]),
                       st.text(max_size=12))
    argv = data.draw(st.lists(tokens, max_size=6))
    argv = [a for a in argv if a not in ("--help", "-h", "--version")]
    before = _tree_digest(sample_session)
    out, err = io.StringIO(), io.StringIO()
    status = gsession_main(argv, stdout=out, stderr=err)
    assert status in (0, 1, 4, 64, 65, 74), (argv, status, err.getvalue())
    assert _tree_digest(sample_session) == before, argv


# --- SessionBasedScript command lines ------------------------------------------------------

class _FuzzScript(SessionBasedScript):
    """A script with no tasks (only its option parser is exercised)."""

    def __init__(self) -> None:
        super().__init__(version="0")


_SCRIPT_OPTIONS = ["-s", "-u", "-N", "-C", "-J", "-o", "-l", "-c", "-m", "-w", "-v", "-x",
                   "--resume-policy", "--session", "--store-url", "--continuous", "--max-running",
                   "--output", "--state", "--cpu-cores", "--memory-per-core", "--wall-clock-time"]
_SCRIPT_VALUES = ["0", "1", "-3", "8", "2GB", "1.5GiB", "lots", "8 hours", "90m", "sqlite", "file",
                  "rerun", "report", "ok,failed", "NEW", "out/NAME-DATE"]


@FUZZ
@given(argv=st.lists(st.sampled_from(_SCRIPT_OPTIONS + _SCRIPT_VALUES) | st.text(max_size=10),
                     max_size=8))
def test_script_option_parser_raises_only_usage_errors(argv: list[str]) -> None:
    """The options parse, or raise UsageError (exit 64); nothing else escapes."""
    record(fuzz_cases=1)
    argv = [a for a in argv if a not in ("--help", "-h", "--version") and not a.startswith("--h")]
    script = _FuzzScript()
    try:
        params = script.parser.parse_args(argv)
    except UsageError:
        return
    assert params.max_running >= 1 and params.cpu_cores >= 1


# --- the fast paths of the index and state-log parsers agree with their models ------------

_ids = st.builds(lambda prefix, n: f"{prefix}.{n}", st.sampled_from(["Task", "App", "_X9"]),
                 st.integers(0, 50))


@FUZZ
@given(ids=st.lists(_ids, max_size=30), torn=st.sampled_from([b"", b"Tas", b"Task.", b"Task.1"]))
def test_index_parse_keeps_the_first_of_each_id(ids: list[str], torn: bytes) -> None:
    """A well-formed index parses to its ids in order, duplicates and a torn tail dropped."""
    from gc3session import index
    record(fuzz_cases=1)
    data = "".join(f"{i}\n" for i in ids).encode() + torn
    assert index.parse(data, "session_ids.txt") == list(dict.fromkeys(ids))


@FUZZ
@given(lines=st.lists(st.tuples(_ids, st.sampled_from(["NEW", "RUNNING", "TERMINATED", "-", "!"])),
                      max_size=40),
       torn=st.sampled_from([b"", b"Task.3 RUN", b"Task"]))
def test_state_log_fold_matches_its_model(tmp_path_factory: pytest.TempPathFactory,
                                          lines: list[tuple[str, str]], torn: bytes) -> None:
    """Folding ``.states`` gives the last state of every id not removed after it."""
    from gc3session.stores.filesystem import FilesystemStore
    from gc3session.stores.statelog import STATES_FILE
    record(fuzz_cases=1)
    directory = tmp_path_factory.mktemp("states")
    (directory / STATES_FILE).write_bytes("".join(f"{i} {s}\n" for i, s in lines).encode() + torn)
    model: dict[str, str | None] = {}
    for pid, state in lines:
        if state == "!":
            model.pop(pid, None)
        else:
            model[pid] = None if state == "-" else state
    assert FilesystemStore(str(directory)).states() == model
