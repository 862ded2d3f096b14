"""Interoperability with the real PlainBox 0.38: each side reads what the other wrote.

PlainBox runs as a subprocess of its own virtual environment
(``tests/_plainbox_peer.py``); the two sides share only directories and
checkpoint files, as two programs on one machine do.  PlainBox 0.38 is the
release with the documented storage API (``SessionStorageRepository``,
``SessionStorage(location)``); it reads and writes checkpoint formats 1 to 6,
so what it must read from us is written in format 6.

Where PlainBox 0.38 cannot be installed the tests are skipped with the
reason, unless ``GC3SESSION_REQUIRE_PLAINBOX=1`` makes that a failure.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import Any

import _plainbox_peer as peer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gc3session import Task
from gc3session.plainbox import (
    BrokenReferenceToExternalFile,
    IncompatibleJobError,
    MemoryJobResult,
    SessionManager,
    SessionPeekHelper,
    SessionStorage,
    SessionStorageRepository,
    SessionSuspendHelper,
    get_resumable_sessions,
)

REQUIRE_ENV = "GC3SESSION_REQUIRE_PLAINBOX"


@pytest.fixture(scope="session")
def pb() -> str:
    """The interpreter of a PlainBox 0.38 environment (built once, then reused)."""
    try:
        return peer.plainbox_python()
    except peer.PeerUnavailable as err:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but PlainBox {peer.PLAINBOX_VERSION} cannot be installed: {err}")
        pytest.skip(f"PlainBox {peer.PLAINBOX_VERSION} cannot be installed: {err}")


def b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode("ascii")


# Job units as PlainBox defines them (field dictionaries) and as our tasks do.
JOBS = [
    {"id": "disk/smart", "plugin": "shell", "command": "smartctl -a /dev/sda",
     "_summary": "SMART status"},
    {"id": "net/ping", "plugin": "shell", "command": "ping -c 1 127.0.0.1", "estimated_duration": "1.0"},
    {"id": "audio/playback", "plugin": "manual", "_description": "Écoutez: ça joue ?"},
    {"id": "cpu/stress", "plugin": "shell", "command": "stress --cpu 2 --timeout 10"},
]
# Results as the peer builds them, oldest first: a history, a failure with
# comments and non-ASCII output, an IO log kept in a file, a job never run.
RESULTS: dict[str, list[dict[str, Any]]] = {
    "disk/smart": [
        {"outcome": "fail", "return_code": 2, "execution_duration": 0.75, "comments": "first try"},
        {"outcome": "pass", "return_code": 0, "execution_duration": 1.5, "comments": None,
         "io_log": [[0.0, "stdout", "SMART overall: PASSED\n"], [0.25, "stderr", "warning: old\n"]]},
    ],
    "net/ping": [
        {"outcome": "fail", "return_code": 1, "execution_duration": 0.125,
         "comments": "réseau coupé", "io_log_file": True,
         "io_log": [[0.0, "stdout", "PING 127.0.0.1\n"], [1.0, "stdout", "1 packets transmitted\n"]]},
    ],
    "audio/playback": [
        {"outcome": "skip", "return_code": None, "execution_duration": None, "comments": "no speaker",
         "io_log": []},
    ],
}
METADATA = {"title": "Nightly certification", "flags": ["incomplete", "submitted"],
            "running_job_name": "cpu/stress", "app_id": "com.example.certify",
            "app_blob": b64(b'{"testplan_id": "com.example::nightly"}')}


def tasks(definitions: list[dict[str, str]] = JOBS) -> list[Task]:
    return [Task(**fields) for fields in definitions]


def write_with_plainbox(pb: str, repo: str) -> dict[str, Any]:
    """A real PlainBox 0.38 session with results, suspended and saved by PlainBox's own classes."""
    answer = peer.call(pb, "write", {"repo": repo, "jobs": JOBS, "results": RESULTS,
                                     "desired": [job["id"] for job in JOBS], "metadata": METADATA})
    assert answer["version"] == 6
    return answer


def fill_ours(manager: SessionManager) -> None:
    """Our own session: the same jobs and results as the PlainBox one, added through our API."""
    state = manager.state
    for task in tasks():
        state.add(task)
    for job_id, specs in RESULTS.items():
        for spec in specs:
            state.update_job_result(job_id, MemoryJobResult({
                **{key: spec[key] for key in ("outcome", "return_code", "execution_duration", "comments")},
                "io_log": [(delay, stream, text.encode("utf-8")) for delay, stream, text in spec["io_log"]]
                if "io_log" in spec else []}))
    # Output above the inline limit goes to a file of io-logs/, whatever the writer.
    state.update_job_result("cpu/stress", MemoryJobResult({
        "outcome": "crash", "return_code": -9, "execution_duration": 10.0,
        "io_log": [(0.5 * n, "stdout", b"x" * 1000 + b"\n") for n in range(20)]}))
    state.update_desired_job_list([job["id"] for job in JOBS])
    meta = state.metadata
    meta.title, meta.flags = METADATA["title"], set(METADATA["flags"])
    meta.running_job_name, meta.app_id = METADATA["running_job_name"], METADATA["app_id"]
    meta.app_blob = base64.standard_b64decode(METADATA["app_blob"])


def test_task_checksums_are_plainbox_job_checksums(pb: str) -> None:
    """A task built with a job unit's fields has the checksum PlainBox 0.38 computes for that unit."""
    definitions = [*JOBS,
                   {"id": "used", "plugin": "shell", "command": "echo 'hello world'"},
                   {"id": "quotes", "plugin": "shell", "command": 'printf "%s\\n" \'a\\tb\' | tr -d "\\\\"'},
                   {"id": "unicode/日本", "plugin": "user-interact", "_purpose": "Ünïcødé ✓ \U0001f600"},
                   {"id": "multi", "plugin": "shell", "command": "line one\nline two\n", "user": "root",
                    "requires": "package.name == 'smartmontools'", "flags": "also-after-suspend",
                    "environ": "PATH HOME", "empty": ""}]
    theirs = peer.call(pb, "checksums", {"jobs": definitions})
    ours = [Task(**fields).checksum for fields in definitions]
    assert ours == theirs
    assert len(set(ours)) == len(definitions)


# Field names a Task keeps for itself (or Python does): a unit field of that
# name would not become part of the task's definition.
_TASK_OWN = {"persistent_id", "jobname", "execution", "changed", "definition"}
_field_names = st.text(min_size=1, max_size=12).filter(
    lambda name: name not in _TASK_OWN and not name.startswith("__"))


@settings(max_examples=3, deadline=None)
@given(st.lists(st.dictionaries(_field_names, st.text(max_size=40), min_size=1, max_size=6),
                min_size=1, max_size=40))
def test_any_unit_fields_give_the_plainbox_checksum(pb: str, definitions: list[dict[str, str]]) -> None:
    """For arbitrary field names and values (any Unicode), a task's checksum is PlainBox's."""
    assert [Task(**fields).checksum for fields in definitions] == \
        peer.call(pb, "checksums", {"jobs": definitions})


def test_plainbox_storage_loads_the_bytes_our_storage_saved(pb: str, tmp_path: Any) -> None:
    """PlainBox's SessionStorage.load_checkpoint reads exactly what ours saved, at every save."""
    storage = SessionStorage.create(str(tmp_path), prefix="interop-")
    assert peer.call(pb, "load", {"location": storage.location}) == {"data": ""}  # none yet: b''
    with SessionManager.create(SessionStorageRepository(str(tmp_path / "other"))) as manager:
        manager.add_local_device_context()
        fill_ours(manager)
        first = SessionSuspendHelper().suspend(manager.state, manager.storage.location)
        manager.state.metadata.flags.discard("incomplete")
        second = SessionSuspendHelper().suspend(manager.state, manager.storage.location)
    for data in (first, second, b"\x00\xffnot even gzip"):
        storage.save_checkpoint(data)
        loaded = base64.standard_b64decode(peer.call(pb, "load", {"location": storage.location})["data"])
        assert loaded == data
    assert not os.path.exists(os.path.join(storage.location, "session.next"))


def test_each_side_lists_the_storages_of_the_other(pb: str, tmp_path: Any) -> None:
    """A repository shared by PlainBox 0.38 and us lists both sides' storages, with the same ids."""
    repo = str(tmp_path)
    theirs = write_with_plainbox(pb, repo)
    with SessionManager.create(SessionStorageRepository(repo), prefix="ours-") as manager:
        manager.add_local_device_context()
        manager.checkpoint()
        ours = manager.storage
    expected = {(theirs["id"], theirs["location"]), (ours.id, ours.location)}
    assert {tuple(entry) for entry in peer.call(pb, "list", {"repo": repo})} == expected
    assert {(s.id, s.location) for s in SessionStorageRepository(repo).get_storage_list()} == expected


def test_an_interrupted_checkpoint_is_handled_by_the_other_side(pb: str, tmp_path: Any) -> None:
    """A ``session.next`` left by a crash is the same crash marker for PlainBox 0.38 and for us.

    Both loads return the last complete checkpoint; PlainBox's save refuses
    with LockedStorageError; our manager clears the marker and saves; then
    PlainBox loads our new checkpoint and saves over it again.
    """
    with SessionManager.create(SessionStorageRepository(str(tmp_path))) as manager:
        manager.add_local_device_context()
        fill_ours(manager)
        manager.checkpoint()
        storage = manager.storage
        complete = storage.load_checkpoint()
        with open(os.path.join(storage.location, "session.next"), "wb") as torn:
            torn.write(complete[: len(complete) // 2])  # a save that died half-way
        assert peer.call(pb, "load", {"location": storage.location}) == {"data": b64(complete)}
        assert storage.load_checkpoint() == complete
        refused = peer.call(pb, "save", {"location": storage.location, "data": b64(b"theirs")})
        assert refused["error"] == "LockedStorageError"
        manager.state.metadata.title = "after the crash"
        manager.checkpoint()
        assert not os.path.exists(os.path.join(storage.location, "session.next"))
        ours = storage.load_checkpoint()
        assert SessionPeekHelper().peek(ours).title == "after the crash"
        assert peer.call(pb, "load", {"location": storage.location}) == {"data": b64(ours)}
        saved = peer.call(pb, "save", {"location": storage.location, "data": b64(b"theirs")})
        assert saved == {"saved": True}
        assert storage.load_checkpoint() == b"theirs"


def test_plainbox_peeks_the_metadata_of_our_checkpoint(pb: str, tmp_path: Any) -> None:
    """PlainBox 0.38's SessionPeekHelper reads our title, flags, app_id, app_blob and running job.

    Our default format (11) is newer than what 0.38 knows: it refuses it
    cleanly as an unsupported version, which is why format 6 is written for it.
    """
    with SessionManager.create(SessionStorageRepository(str(tmp_path))) as manager:
        manager.add_local_device_context()
        fill_ours(manager)
        manager.checkpoint()
        refused = peer.call(pb, "peek", {"location": manager.storage.location})
        assert refused == {"error": "IncompatibleSessionError", "message": "Unsupported version 11"}
        manager.suspend_version = 6
        manager.checkpoint()
        peeked = peer.call(pb, "peek", {"location": manager.storage.location})
    assert peeked == {"metadata": {**METADATA, "flags": sorted(METADATA["flags"])}}


def test_plainbox_resumes_our_version_6_checkpoint(pb: str, tmp_path: Any) -> None:
    """PlainBox 0.38 resumes our checkpoint given its own job units: every result and log comes back.

    That includes the large output our state moved to ``io-logs/``: PlainBox
    reads that file through the relative name in the checkpoint.
    """
    with SessionManager.create(SessionStorageRepository(str(tmp_path))) as manager:
        manager.add_local_device_context()
        fill_ours(manager)
        # Format 6, the newest PlainBox 0.38 reads, through the helper rather than the manager.
        manager.storage.save_checkpoint(SessionSuspendHelper(version=6).suspend(manager.state,
                                                                               manager.storage.location))
        location = manager.storage.location
        expected = {name: [{"outcome": r.outcome, "return_code": r.return_code, "comments": r.comments,
                            "execution_duration": r.execution_duration,
                            "io_log": [[rec.delay, rec.stream_name, b64(rec.data)] for rec in r.io_log]}
                           for r in job_state.result_history]
                    for name, job_state in manager.state.job_state_map.items()}
    resumed = peer.call(pb, "resume", {"location": location, "jobs": JOBS})
    assert "error" not in resumed, resumed
    assert resumed["metadata"] == {**METADATA, "flags": sorted(METADATA["flags"])}
    assert resumed["desired"] == [job["id"] for job in JOBS]
    got = {name: [{k: v for k, v in r.items() if k != "io_log_filename"} for r in job["history"]]
           for name, job in resumed["jobs"].items()}
    assert got == expected
    stress = resumed["jobs"]["cpu/stress"]["result"]
    assert stress["io_log_filename"].startswith(os.path.join(location, "io-logs") + os.sep)
    assert len(stress["io_log"]) == 20


def test_we_resume_a_plainbox_checkpoint(pb: str, tmp_path: Any) -> None:
    """Our manager resumes a real PlainBox 0.38 checkpoint given tasks with the same checksums.

    Outcomes, return codes, durations, comments, whole histories, inline and
    on-disk IO logs, the desired list and the metadata all come back.
    """
    written = write_with_plainbox(pb, str(tmp_path))
    jobs = tasks()
    assert {job.jobname: job.checksum for job in jobs} == written["checksums"]
    storage = SessionStorage(written["location"])
    with SessionManager.load_session(jobs, storage) as manager:
        state = manager.state
        for name, specs in RESULTS.items():
            history = state.job_state_map[name].result_history
            assert [(r.outcome, r.return_code, r.execution_duration, r.comments) for r in history] == \
                [(s["outcome"], s["return_code"], s["execution_duration"], s["comments"]) for s in specs]
            for result, spec in zip(history, specs):
                assert [(rec.delay, rec.stream_name, rec.data) for rec in result.io_log] == \
                    [(d, stream, text.encode("utf-8")) for d, stream, text in spec.get("io_log", [])]
        ping = state.job_state_map["net/ping"].result
        assert ping.io_log_filename == os.path.join(written["location"], "io-logs", "net_ping-0.record.gz")
        assert state.job_state_map["cpu/stress"].result_history == []
        assert state.job_state_map["cpu/stress"].job is jobs[3]
        assert state.desired_job_list == [job["id"] for job in JOBS]
        meta = state.metadata
        assert (meta.title, meta.flags, meta.running_job_name, meta.app_id, meta.app_blob) == \
            (METADATA["title"], set(METADATA["flags"]), METADATA["running_job_name"], METADATA["app_id"],
             base64.standard_b64decode(METADATA["app_blob"]))


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_we_resume_older_plainbox_formats(pb: str, tmp_path: Any, version: int) -> None:
    """Checkpoints PlainBox 0.38 writes in formats 1 to 5 resume with what each format holds.

    Formats 1-3 keep only each job's current result, 1 has no app_blob or
    app_id, 2 no app_id; 1-4 name IO log files by absolute path.
    """
    answer = peer.call(pb, "write", {"repo": str(tmp_path), "jobs": JOBS, "results": RESULTS,
                                     "desired": [job["id"] for job in JOBS], "metadata": METADATA,
                                     "version": version})
    assert answer["version"] == version
    with SessionManager.load_session(tasks(), SessionStorage(answer["location"])) as manager:
        state = manager.state
        for name in (job["id"] for job in JOBS):
            specs = RESULTS.get(name, [])
            kept = specs if version >= 4 else specs[-1:]
            assert [(r.outcome, r.return_code, r.execution_duration, r.comments)
                    for r in state.job_state_map[name].result_history] == \
                [(s["outcome"], s["return_code"], s["execution_duration"], s["comments"]) for s in kept]
        ping = state.job_state_map["net/ping"].result
        assert [rec.data for rec in ping.io_log] == [b"PING 127.0.0.1\n", b"1 packets transmitted\n"]
        meta = state.metadata
        assert (meta.title, meta.flags, meta.running_job_name) == \
            (METADATA["title"], set(METADATA["flags"]), METADATA["running_job_name"])
        blob = base64.standard_b64decode(METADATA["app_blob"])
        assert meta.app_blob == (blob if version >= 2 else None)
        assert meta.app_id == (METADATA["app_id"] if version >= 3 else None)


def test_plainbox_io_log_files_pass_the_reference_check(pb: str, tmp_path: Any) -> None:
    """With ``file-reference-checks`` a PlainBox session resumes while its IO log files are there.

    Once one is gone the resume raises BrokenReferenceToExternalFile naming
    it, and the checkpoint is left as it was.
    """
    written = write_with_plainbox(pb, str(tmp_path))
    storage = SessionStorage(written["location"])
    flags = ["file-reference-checks"]
    with SessionManager.load_session(tasks(), storage, flags=flags) as manager:
        log = manager.state.job_state_map["net/ping"].result.io_log_filename
    assert os.path.dirname(log) == os.path.join(written["location"], "io-logs")
    before = storage.load_checkpoint()
    os.unlink(log)
    with pytest.raises(BrokenReferenceToExternalFile, match="net_ping-0.record.gz"):
        SessionManager.load_session(tasks(), storage, flags=flags)
    assert storage.load_checkpoint() == before


def test_we_peek_and_discover_a_plainbox_session(pb: str, tmp_path: Any) -> None:
    """Our metadata-only peek reads a PlainBox checkpoint; discovery offers it to its application."""
    written = write_with_plainbox(pb, str(tmp_path))
    meta = SessionPeekHelper().peek(SessionStorage(written["location"]).load_checkpoint())
    assert (meta.title, meta.flags, meta.app_id) == \
        (METADATA["title"], set(METADATA["flags"]), METADATA["app_id"])
    found = get_resumable_sessions(METADATA["app_id"], SessionStorageRepository(str(tmp_path)))
    assert [storage.location for storage, _ in found] == [written["location"]]
    assert get_resumable_sessions("com.example.other", SessionStorageRepository(str(tmp_path))) == []


def test_a_changed_job_definition_refuses_a_plainbox_checkpoint(pb: str, tmp_path: Any) -> None:
    """A task whose fields differ from PlainBox's unit raises IncompatibleJobError; nothing is changed."""
    written = write_with_plainbox(pb, str(tmp_path))
    storage = SessionStorage(written["location"])
    before = storage.load_checkpoint()
    changed = [dict(job) for job in JOBS]
    changed[0]["command"] = "smartctl -H /dev/sda"
    with pytest.raises(IncompatibleJobError, match="disk/smart"):
        SessionManager.load_session(tasks(changed), storage)
    assert storage.load_checkpoint() == before


def test_a_session_goes_plainbox_ours_plainbox(pb: str, tmp_path: Any) -> None:
    """PlainBox starts a session, we resume it and run one more job, PlainBox resumes the result.

    Its old results and ours, and our change to the metadata, are all in
    what PlainBox 0.38 reads back.
    """
    written = write_with_plainbox(pb, str(tmp_path))
    storage = SessionStorage(written["location"])
    with SessionManager.load_session(tasks(), storage) as manager:
        manager.state.update_job_result("cpu/stress", MemoryJobResult({
            "outcome": "pass", "return_code": 0, "execution_duration": 9.5, "comments": "ran by gc3session",
            "io_log": [(0.0, "stdout", b"stress: info: successful run\n")]}))
        manager.state.metadata.running_job_name = None
        manager.state.metadata.flags.discard("incomplete")
        manager.suspend_version = 6
        manager.checkpoint()
    saved = json.loads(gzip.decompress(storage.load_checkpoint()))
    assert saved["version"] == 6
    resumed = peer.call(pb, "resume", {"location": storage.location, "jobs": JOBS})
    assert "error" not in resumed, resumed
    assert resumed["metadata"]["running_job_name"] is None
    assert resumed["metadata"]["flags"] == ["submitted"]
    stress = resumed["jobs"]["cpu/stress"]["result"]
    assert (stress["outcome"], stress["return_code"], stress["comments"], stress["io_log"]) == \
        ("pass", 0, "ran by gc3session", [[0.0, "stdout", b64(b"stress: info: successful run\n")]])
    assert [r["outcome"] for r in resumed["jobs"]["disk/smart"]["history"]] == ["fail", "pass"]
    ping = resumed["jobs"]["net/ping"]["result"]
    assert (ping["outcome"], ping["comments"]) == ("fail", "réseau coupé")
    assert [base64.standard_b64decode(rec[2]) for rec in ping["io_log"]] == \
        [b"PING 127.0.0.1\n", b"1 packets transmitted\n"]
