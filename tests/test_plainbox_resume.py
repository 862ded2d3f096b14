"""Suspend and resume: the checkpoint format, versions 1 to 11, and every resume error on real bytes."""

from __future__ import annotations

import base64
import gzip
import json
import os
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gc3session import Task
from gc3session.exceptions import InvalidValue
from gc3session.plainbox import (
    CorruptedSessionError,
    DiskJobResult,
    IncompatibleJobError,
    IncompatibleSessionError,
    MalformedSessionError,
    MemoryJobResult,
    SessionManager,
    SessionMetaData,
    SessionPeekHelper,
    SessionResumeError,
    SessionResumeHelper,
    SessionState,
    SessionStorageRepository,
    SessionSuspendHelper,
)
from gc3session.plainbox.errors import BrokenReferenceToExternalFile
from gc3session.plainbox.resume import (
    FLAG_DISCARD_INCOMPATIBLE_JOBS,
    FLAG_FILE_REFERENCE_CHECKS,
    FLAG_IGNORE_JOB_CHECKSUMS,
)

SMART = dict(jobname="disk-smart", command="smartctl -a /dev/sda", plugin="shell")
ECHO = dict(jobname="echo", command="echo hello", plugin="shell")


def _jobs() -> list[Task]:
    return [Task(**SMART), Task(**ECHO), Task(jobname="idle", command="true")]


def _blob(document: Any) -> bytes:
    return gzip.compress(json.dumps(document).encode("utf-8"))


def _result(outcome: str | None = "pass", **extra: Any) -> dict[str, Any]:
    return {"outcome": outcome, "return_code": 0, "execution_duration": 1.25, "comments": None,
            "io_log": [[0.0, "stdout", base64.b64encode(b"hello\n").decode()]], **extra}


def _document(version: int) -> dict[str, Any]:
    """A checkpoint of ``version`` with exactly the keys that version has (plainbox-notes 2.2)."""
    smart, echo = Task(**SMART).checksum, Task(**ECHO).checksum
    metadata: dict[str, Any] = {"title": f"v{version}", "flags": ["incomplete"],
                                "running_job_name": "echo"}
    if version >= 2:
        metadata["app_blob"] = base64.b64encode(b'{"testplan_id": "tp"}').decode()
    if version >= 3:
        metadata["app_id"] = "com.example:app"
    if version >= 6:
        metadata.update(custom_joblist=True, rejected_jobs=["idle"])
    if version >= 7:
        metadata["last_job_start_time"] = 1700000000.5
    if version >= 11:
        metadata["remaining_todo_jobs"] = True
    disk = {"outcome": "fail", "return_code": 1, "execution_duration": 0.5, "comments": "bad disk",
            "io_log_filename": "io-logs/disk-smart.record.gz" if version >= 5 else "/abs/smart.record.gz"}
    results: dict[str, Any] = {"disk-smart": [disk], "echo": [_result()]}
    if version >= 4:  # the whole history
        results["echo"] = [_result("fail"), _result("pass")]
    else:  # versions 1-3 save every job, hollow ones as all-null
        results["idle"] = [{"outcome": None, "return_code": None, "execution_duration": None,
                            "comments": None, "io_log": []}]
    session: dict[str, Any] = {
        "jobs": {"disk-smart": smart, "echo": echo, **({"idle": Task(jobname="idle", command="true").checksum}
                                                       if version < 4 or version >= 6 else {})},
        "results": results, "desired_job_list": ["echo", "disk-smart", "echo"], "metadata": metadata}
    if version >= 6:
        session["mandatory_job_list"] = ["disk-smart"]
    if version >= 8:
        session["system_information"] = {"lspci": {"tool_version": "1", "success": True,
                                                    "outputs": {"payload": "x", "stderr": ""}}}
    return {"session": session, "version": version}


def _resume(data: bytes, location: Any, **kwargs: Any) -> SessionState:
    return SessionResumeHelper(_jobs(), location=str(location), **kwargs).resume(data)


# --- versions 1 to 11 ---------------------------------------------------------

@pytest.mark.parametrize("version", range(1, 12))
def test_every_version_resumes_with_the_fields_it_has(tmp_path: Any, version: int) -> None:
    """A hand-built checkpoint of each version restores its jobs, history, lists and metadata."""
    state = _resume(_blob(_document(version)), tmp_path)
    try:
        jobs = state.job_state_map
        assert set(jobs) >= {"disk-smart", "echo"}
        echo = [(r.outcome, r.return_code, r.execution_duration) for r in jobs["echo"].result_history]
        assert echo == ([("fail", 0, 1.25), ("pass", 0, 1.25)] if version >= 4 else [("pass", 0, 1.25)])
        assert jobs["echo"].result.io_log[0].data == b"hello\n"
        disk = jobs["disk-smart"].result
        assert isinstance(disk, DiskJobResult) and disk.comments == "bad disk"
        expected = (str(tmp_path / "io-logs/disk-smart.record.gz") if version >= 5
                    else "/abs/smart.record.gz")
        assert disk.io_log_filename == expected
        if version < 4:
            assert jobs["idle"].result_history == []  # a hollow result is no history
        meta = state.metadata
        assert (meta.title, meta.flags, meta.running_job_name) == (f"v{version}", {"incomplete"}, "echo")
        assert meta.app_blob == (b'{"testplan_id": "tp"}' if version >= 2 else None)
        assert meta.app_id == ("com.example:app" if version >= 3 else None)
        expected = (True, ["idle"]) if version >= 6 else (False, [])
        assert (meta.custom_joblist, meta.rejected_jobs) == expected
        assert meta.last_job_start_time == (1700000000.5 if version >= 7 else None)
        assert meta.remaining_todo_jobs is (version >= 11)
        mandatory = ["disk-smart"] if version >= 6 else []  # readers 1-5 ignore the list
        assert state.mandatory_job_list == mandatory
        assert state.desired_job_list == (["disk-smart", "echo"] if version >= 6 else ["echo", "disk-smart"])
        assert bool(state.system_information) is (version >= 8)
    finally:
        state.close()


@pytest.mark.parametrize("version, key", [(6, "mandatory_job_list"), (8, "system_information"),
                                          (1, "desired_job_list"), (1, "results"), (1, "jobs"),
                                          (1, "metadata")])
def test_a_key_the_version_requires_is_missing(tmp_path: Any, version: int, key: str) -> None:
    """Dropping a key of the version is a malformed session: corrupted and incompatible at once."""
    document = _document(version)
    del document["session"][key]
    with pytest.raises(MalformedSessionError) as info:
        _resume(_blob(document), tmp_path)
    assert isinstance(info.value, CorruptedSessionError) and isinstance(info.value, IncompatibleSessionError)
    assert repr(key) in str(info.value)
    assert not os.path.exists(tmp_path / "tasks")  # a failed resume creates nothing


@pytest.mark.parametrize("version, key", [(1, "title"), (1, "flags"), (2, "app_blob"), (3, "app_id"),
                                          (7, "last_job_start_time"), (11, "remaining_todo_jobs")])
def test_a_metadata_key_of_the_version_is_required(tmp_path: Any, version: int, key: str) -> None:
    """Each metadata key is required from the version that introduced it on."""
    document = _document(version)
    del document["session"]["metadata"][key]
    with pytest.raises(MalformedSessionError, match=key):
        SessionPeekHelper().peek(_blob(document))
    document["version"] = version - 1
    if version - 1 >= 1:
        assert isinstance(SessionPeekHelper().peek(_blob(document)), SessionMetaData)


def test_version_6_without_the_later_metadata_fields_reads(tmp_path: Any) -> None:
    """PlainBox 0.38 wrote version 6 without custom_joblist and rejected_jobs: they default."""
    document = _document(6)
    del document["session"]["metadata"]["custom_joblist"]
    del document["session"]["metadata"]["rejected_jobs"]
    state = _resume(_blob(document), tmp_path)
    try:
        assert (state.metadata.custom_joblist, state.metadata.rejected_jobs) == (False, [])
        assert state.mandatory_job_list == ["disk-smart"]
    finally:
        state.close()


@pytest.mark.parametrize("version", range(1, 12))
def test_every_version_can_be_written_and_read_back(tmp_path: Any, version: int) -> None:
    """SessionSuspendHelper(version) writes the keys of that version only, and they resume."""
    state = SessionState(str(tmp_path))
    jobs = _jobs()
    for job in jobs[:2]:
        state.add(job)
    state.update_job_result(jobs[0], MemoryJobResult({"outcome": "fail", "return_code": 1}))
    state.update_job_result(jobs[0], DiskJobResult(
        {"outcome": "pass", "io_log_filename": str(tmp_path / "io-logs" / "x.record.gz")}))
    state.metadata.app_id, state.metadata.last_job_start_time = "app", 12.5
    state.mandatory_job_list = ["echo"]
    data = SessionSuspendHelper(version).suspend(state, str(tmp_path))
    state.close()
    document = json.loads(gzip.decompress(data))
    assert document["version"] == version
    meta = document["session"]["metadata"]
    assert ("app_blob" in meta, "app_id" in meta, "custom_joblist" in meta) == (
        version >= 2, version >= 3, version >= 7)  # version 6 writes it only when it is set
    assert ("last_job_start_time" in meta, "remaining_todo_jobs" in meta) == (version >= 7, version >= 11)
    assert ("system_information" in document["session"]) is (version >= 8)
    results = document["session"]["results"]
    assert len(results["disk-smart"]) == (1 if version < 4 else 2)
    assert results["disk-smart"][-1]["io_log_filename"] == (
        "io-logs/x.record.gz" if version >= 5 else str(tmp_path / "io-logs" / "x.record.gz"))
    again = _resume(data, tmp_path)
    try:
        history = again.job_state_map["disk-smart"].result_history
        assert [r.outcome for r in history] == (["pass"] if version < 4 else ["fail", "pass"])
        assert history[-1].io_log_filename == str(tmp_path / "io-logs" / "x.record.gz")
        assert again.metadata.app_id == ("app" if version >= 3 else None)
        assert again.metadata.last_job_start_time == (12.5 if version >= 7 else None)
        assert again.mandatory_job_list == (["echo"] if version >= 6 else [])
    finally:
        again.close()


def test_only_versions_1_to_11_can_be_written() -> None:
    """Asking for a format that does not exist is refused before anything is written."""
    for version in (0, 12, True):
        with pytest.raises(InvalidValue):
            SessionSuspendHelper(version)


def test_written_checkpoints_are_version_11_and_resume(tmp_path: Any) -> None:
    """What suspend writes is gzip of compact, sorted UTF-8 JSON of version 11, and resumes to the same."""
    state = SessionState(str(tmp_path))
    jobs = _jobs()
    for job in jobs[:2]:
        state.add(job)
    state.update_job_result(jobs[0], MemoryJobResult({"outcome": "pass", "return_code": 0,
                                                      "execution_duration": 2,
                                                      "io_log": [(0, "stdout", "é".encode())]}))
    state.metadata.title = "Ünïcode title"
    state.metadata.app_blob = b"\x00\xff"
    state.desired_job_list = ["echo"]
    data = SessionSuspendHelper().suspend(state, str(tmp_path))
    state.close()
    text = gzip.decompress(data).decode("utf-8")
    assert '"title":"Ünïcode title"' in text and text.startswith('{"session":{"desired_job_list":["echo"]')
    document = json.loads(text)
    assert document["version"] == 11
    assert json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False) == text
    entry = document["session"]["results"]["disk-smart"][0]
    assert entry["execution_duration"] == 2.0 and isinstance(entry["execution_duration"], float)
    assert document["session"]["metadata"]["app_blob"] == "AP8="
    again = _resume(data, tmp_path)
    try:
        assert again.metadata.title == "Ünïcode title" and again.metadata.app_blob == b"\x00\xff"
        assert again.job_state_map["disk-smart"].result.io_log[0].data == "é".encode()
        assert set(again.job_state_map) == {"disk-smart", "echo"}
    finally:
        again.close()


# --- corrupted bytes ----------------------------------------------------------

def _good_bytes() -> bytes:
    return _blob(_document(11))


@pytest.mark.parametrize("name, data", [
    ("empty", b""),
    ("truncated gzip", _good_bytes()[: len(_good_bytes()) // 2]),
    ("gzip header only", _good_bytes()[:10]),
    ("random bytes", bytes(range(256)) * 4),
    ("damaged deflate body", _good_bytes()[:12] + bytes(40) + _good_bytes()[52:]),
    ("gzip of invalid JSON", gzip.compress(b'{"session": {"jobs": ')),
    ("gzip of invalid UTF-8", gzip.compress(b'{"version": 11, "session": "\xff\xfe"}')),
    ("gzip of nothing", gzip.compress(b"")),
])
def test_undecodable_bytes_raise_corrupted_session(tmp_path: Any, name: str, data: bytes) -> None:
    """Every undecodable input is a CorruptedSessionError; EOFError/zlib.error only as its cause."""
    with pytest.raises(CorruptedSessionError) as info:
        _resume(data, tmp_path)
    assert not isinstance(info.value, (EOFError, zlib.error))
    assert info.value.__cause__ is not None, name
    with pytest.raises(CorruptedSessionError):
        SessionPeekHelper().peek(data)
    assert not os.path.exists(tmp_path / "tasks")


def test_truncated_gzip_keeps_the_eof_error_as_cause(tmp_path: Any) -> None:
    """The low-level error of a torn write is kept for diagnosis, wrapped."""
    with pytest.raises(CorruptedSessionError, match="decompress") as info:
        _resume(_good_bytes()[:-9], tmp_path)
    assert isinstance(info.value.__cause__, (EOFError, zlib.error, OSError))


@pytest.mark.parametrize("root", [[1, 2], "text", 11, None])
def test_a_root_that_is_not_an_object_is_malformed(tmp_path: Any, root: Any) -> None:
    """Valid JSON that is not an object at the top."""
    with pytest.raises(MalformedSessionError):
        _resume(_blob(root), tmp_path)


@pytest.mark.parametrize("version", [0, 12, 99, -1, "11", 11.0, True, [11]])
def test_unsupported_versions_raise_incompatible_session(tmp_path: Any, version: Any) -> None:
    """A version outside the integers 1..11 is incompatible, never corrupted."""
    document = _document(11)
    document["version"] = version
    with pytest.raises(IncompatibleSessionError, match="Unsupported version") as info:
        _resume(_blob(document), tmp_path)
    assert not isinstance(info.value, CorruptedSessionError)


def test_a_missing_version_is_malformed_and_a_null_one_corrupted(tmp_path: Any) -> None:
    """No version key at all, or a null one."""
    document = _document(11)
    del document["version"]
    with pytest.raises(MalformedSessionError, match="'version'"):
        _resume(_blob(document), tmp_path)
    document["version"] = None
    with pytest.raises(CorruptedSessionError, match="cannot be None"):
        _resume(_blob(document), tmp_path)


def _spoil(path: str, value: Any) -> bytes:
    document = _document(11)
    target = document
    *parents, last = path.split("/")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[last if not isinstance(target, list) else int(last)] = value
    return _blob(document)


@pytest.mark.parametrize("path, value", [
    ("session/jobs", ["disk-smart"]),
    ("session/jobs/echo", 42),
    ("session/results", None),
    ("session/results/echo", None),
    ("session/results/echo/0", "pass"),
    ("session/results/echo/0/outcome", 1),
    ("session/results/echo/0/outcome", "passed-ish"),
    ("session/results/echo/0/return_code", "0"),
    ("session/results/echo/0/return_code", True),
    ("session/results/echo/0/execution_duration", "1s"),
    ("session/results/echo/0/comments", 5),
    ("session/results/echo/0/io_log", "hello"),
    ("session/results/echo/0/io_log", None),
    ("session/results/echo/0/io_log/0", "record"),
    ("session/results/echo/0/io_log/0/0", -1.0),
    ("session/results/echo/0/io_log/0/0", [1]),
    ("session/results/echo/0/io_log/0/1", "stdin"),
    ("session/results/echo/0/io_log/0/2", "not base64!"),
    ("session/results/echo/0/io_log/0/2", "é"),
    ("session/results/disk-smart/0/io_log_filename", None),
    ("session/results/disk-smart/0/io_log_filename", False),
    ("session/desired_job_list", "echo"),
    ("session/desired_job_list/0", 7),
    ("session/mandatory_job_list", {}),
    ("session/system_information", []),
    ("session/metadata", "meta"),
    ("session/metadata/title", 3),
    ("session/metadata/flags", None),
    ("session/metadata/flags/0", 1),
    ("session/metadata/app_blob", "%%%"),
    ("session/metadata/app_blob", "ü"),
    ("session/metadata/app_id", []),
    ("session/metadata/custom_joblist", None),
    ("session/metadata/rejected_jobs", "idle"),
    ("session/metadata/last_job_start_time", "yesterday"),
    ("session/metadata/remaining_todo_jobs", 1),
])
def test_values_of_the_wrong_type_raise_corrupted_session(tmp_path: Any, path: str, value: Any) -> None:
    """Every wrong value is a CorruptedSessionError, never a raw KeyError/TypeError/ValueError."""
    with pytest.raises(CorruptedSessionError):
        _resume(_spoil(path, value), tmp_path)
    assert not os.path.exists(tmp_path / "tasks")


def test_a_short_io_log_record_and_results_without_a_checksum_are_malformed(tmp_path: Any) -> None:
    """Structure problems inside the session object."""
    with pytest.raises(MalformedSessionError):
        _resume(_spoil("session/results/echo/0/io_log/0", [0.0, "stdout"]), tmp_path)
    document = _document(11)
    document["session"]["results"]["ghost"] = [_result()]
    with pytest.raises(MalformedSessionError, match="ghost"):
        _resume(_blob(document), tmp_path)


# --- jobs ---------------------------------------------------------------------

def test_a_changed_job_definition_raises_incompatible_job(tmp_path: Any) -> None:
    """A saved checksum that differs from the job the application defines now; nothing is created."""
    jobs = [Task(jobname="disk-smart", command="smartctl -x /dev/sda", plugin="shell"), Task(**ECHO)]
    with pytest.raises(IncompatibleJobError, match="disk-smart") as info:
        SessionResumeHelper(jobs, location=str(tmp_path)).resume(_good_bytes())
    assert info.value.saved_checksum == Task(**SMART).checksum
    assert info.value.current_checksum == jobs[0].checksum
    assert isinstance(info.value, SessionResumeError)
    assert not os.path.exists(tmp_path / "tasks")


def test_an_unknown_saved_job_raises_incompatible_job(tmp_path: Any) -> None:
    """A saved job the application no longer defines, or a desired id it does not know."""
    with pytest.raises(IncompatibleJobError, match="echo"):
        SessionResumeHelper([Task(**SMART), Task(jobname="idle", command="true")],
                            location=str(tmp_path)).resume(_good_bytes())
    document = _document(11)
    document["session"]["desired_job_list"].append("nobody")
    with pytest.raises(IncompatibleJobError, match="nobody"):
        _resume(_blob(document), tmp_path)


def test_ignore_checksums_keeps_a_changed_job_under_its_new_definition(tmp_path: Any) -> None:
    """With ``ignore-job-checksums`` the results stay and the session now holds the new definition."""
    changed = Task(jobname="disk-smart", command="smartctl -x /dev/sda", plugin="shell")
    jobs = [changed, Task(**ECHO), Task(jobname="idle", command="true")]
    state = SessionResumeHelper(jobs, [FLAG_IGNORE_JOB_CHECKSUMS], str(tmp_path)).resume(_good_bytes())
    try:
        assert state.job_state_map["disk-smart"].job is changed
        assert state.job_state_map["disk-smart"].result.outcome == "fail"
    finally:
        state.close()


def test_discard_flag_drops_unknown_and_changed_jobs_with_their_results(tmp_path: Any) -> None:
    """With ``discard-incompatible-jobs`` saved results that do not match are dropped, the rest resumes.

    A changed job that is still desired stays in the session under its new
    definition, without the results of the old one; unknown ids leave the lists.
    """
    changed = Task(jobname="disk-smart", command="changed")
    jobs = [changed, Task(**ECHO)]
    document = _document(11)
    document["session"]["desired_job_list"].append("nobody")
    state = SessionResumeHelper(jobs, [FLAG_DISCARD_INCOMPATIBLE_JOBS], str(tmp_path)).resume(_blob(document))
    try:
        assert state.list_names() == {"echo", "disk-smart"}
        assert state.job_state_map["disk-smart"].job is changed
        assert state.job_state_map["disk-smart"].result_history == []
        assert state.desired_job_list == ["disk-smart", "echo"]
        assert state.mandatory_job_list == ["disk-smart"]
        assert state.job_state_map["echo"].result.outcome == "pass"
    finally:
        state.close()


def test_file_reference_checks_report_a_missing_io_log(tmp_path: Any) -> None:
    """With ``file-reference-checks`` a result naming a missing log file is refused."""
    with pytest.raises(BrokenReferenceToExternalFile, match="disk-smart.record.gz"):
        _resume(_good_bytes(), tmp_path, flags=[FLAG_FILE_REFERENCE_CHECKS])
    os.makedirs(tmp_path / "io-logs")
    (tmp_path / "io-logs" / "disk-smart.record.gz").write_bytes(gzip.compress(b""))
    _resume(_good_bytes(), tmp_path, flags=[FLAG_FILE_REFERENCE_CHECKS]).close()


def test_relative_log_names_need_a_location() -> None:
    """A version-5+ relative log name cannot be resolved without the storage location."""
    with pytest.raises(InvalidValue, match="relative"):
        SessionResumeHelper(_jobs()).resume(_good_bytes())


def test_resume_without_location_gives_a_detached_state() -> None:
    """location=None restores into a temporary state of its own."""
    document = _document(4)
    state = SessionResumeHelper(_jobs()).resume(_blob(document))
    try:
        assert state.metadata.app_id == "com.example:app" and "disk-smart" in state.list_names()
        assert os.path.isdir(state.location)
    finally:
        state.close()


def test_early_callback_sees_the_state_before_it_is_filled(tmp_path: Any) -> None:
    """early_cb gets the fresh state once, before jobs and metadata are restored."""
    seen: list[tuple[SessionState, str | None, int]] = []

    def early(state: SessionState) -> None:
        seen.append((state, state.metadata.title, len(state.job_state_map)))

    state = SessionResumeHelper(_jobs(), location=str(tmp_path)).resume(_good_bytes(), early_cb=early)
    try:
        assert seen == [(state, None, 0)]
        assert state.metadata.title == "v11"
    finally:
        state.close()


def test_peek_reads_metadata_only(tmp_path: Any) -> None:
    """peek needs no job and creates nothing: even jobs that would not match do not matter."""
    document = _document(11)
    document["session"]["jobs"]["echo"] = "0" * 64
    meta = SessionPeekHelper().peek(_blob(document))
    assert meta.app_id == "com.example:app" and meta.flags == {"incomplete"}
    assert meta.remaining_todo_jobs is True


# --- round trip property --------------------------------------------------------

_text = st.text(max_size=20)
_maybe_text = st.none() | _text
_outcomes = st.sampled_from([None, "pass", "fail", "skip", "crash", "not-supported", "undecided"])
_record = st.tuples(st.floats(0, 1e6, allow_nan=False), st.sampled_from(["stdout", "stderr"]),
                    st.binary(max_size=40))
_result_st = st.builds(lambda o, rc, d, c, log: MemoryJobResult(
    {"outcome": o, "return_code": rc, "execution_duration": d, "comments": c, "io_log": log}),
    _outcomes, st.none() | st.integers(-255, 255), st.none() | st.floats(0, 1e6, allow_nan=False),
    _maybe_text, st.lists(_record, max_size=3))


@settings(max_examples=25, deadline=None)
@given(title=_maybe_text, flags=st.sets(_text, max_size=3), blob=st.none() | st.binary(max_size=30),
       app_id=_maybe_text, histories=st.lists(st.lists(_result_st, max_size=3), min_size=1, max_size=3),
       start=st.none() | st.floats(0, 2e9, allow_nan=False), todo=st.booleans())
def test_suspend_resume_round_trips_everything(tmp_path_factory: Any, title: Any, flags: Any, blob: Any,
                                               app_id: Any, histories: Any, start: Any, todo: bool) -> None:
    """Whatever the metadata and result histories, resume gives back what was suspended."""
    location = str(tmp_path_factory.mktemp("rt"))
    jobs = [Task(jobname=f"job-{n}", n=n) for n in range(len(histories))]
    state = SessionState(location)
    for job, _history in zip(jobs, histories):
        state.add(job, flush=False)
    state.flush()
    for job, history in zip(jobs, histories):
        for result in history:
            state.update_job_result(job, result)
    meta = state.metadata
    meta.title, meta.flags, meta.app_blob, meta.app_id = title, set(flags), blob, app_id
    meta.last_job_start_time, meta.remaining_todo_jobs = start, todo
    data = SessionSuspendHelper().suspend(state, location)
    expected = {name: list(js.result_history) for name, js in state.job_state_map.items()}
    state.close()
    again = SessionResumeHelper(jobs, location=location).resume(data)
    try:
        assert again.metadata == meta
        assert {name: js.result_history for name, js in again.job_state_map.items()} == expected
        assert [js.job for js in again.job_state_map.values()] == jobs
    finally:
        again.close()


def test_repository_default_is_not_touched_by_resume(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resuming into a given location never creates the default repository."""
    monkeypatch.setenv("PLAINBOX_SESSION_REPOSITORY", str(tmp_path / "default"))
    manager = SessionManager.create(SessionStorageRepository(str(tmp_path / "mine")))
    manager.add_local_device_context()
    manager.checkpoint()
    manager.close()
    SessionManager.load_session([], manager.storage).close()
    assert not os.path.exists(tmp_path / "default")


def test_errors_keep_plainbox_names_are_gc3session_errors_and_pickle() -> None:
    """Each resume error is a gc3session Error under PlainBox's name, and survives pickling."""
    import pickle

    from gc3session.exceptions import Error
    from gc3session.plainbox import LockedStorageError

    for cls in (SessionResumeError, CorruptedSessionError, IncompatibleSessionError, IncompatibleJobError,
                MalformedSessionError, BrokenReferenceToExternalFile, LockedStorageError):
        err = cls("message", id="job")
        assert isinstance(err, Error) and type(err).__name__ == cls.__name__
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is cls and str(copy) == "message" and copy.id == "job"
    assert issubclass(LockedStorageError, OSError)
    assert issubclass(IncompatibleJobError, SessionResumeError)
