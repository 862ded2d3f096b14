"""SessionManager: create, record, checkpoint, resume in a new manager, destroy; discovery."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import pytest

from gc3session import Session, Task
from gc3session.exceptions import InvalidType, InvalidValue
from gc3session.plainbox import (
    CorruptedSessionError,
    DiskJobResult,
    IncompatibleJobError,
    MemoryJobResult,
    SessionManager,
    SessionMetaData,
    SessionState,
    SessionStorage,
    SessionStorageRepository,
    WellKnownDirsHelper,
    get_resumable_sessions,
)
from gc3session.plainbox.state import INLINE_IO_LOG_LIMIT


def _units() -> list[Task]:
    return [Task(jobname="disk-smart", command="smartctl -a /dev/sda"),
            Task(jobname="cpu-info", command="cat /proc/cpuinfo"),
            Task(jobname="network", command="ip a")]


@pytest.fixture
def repo(tmp_path: Any) -> SessionStorageRepository:
    return SessionStorageRepository(str(tmp_path / "sessions"))


def test_create_gives_an_empty_state_living_in_a_new_storage(repo: SessionStorageRepository) -> None:
    """After create() and add_local_device_context(): a storage with io-logs/, a state in it, no jobs."""
    with SessionManager.create(repo, prefix="my run-") as manager:
        manager.add_local_device_context()
        state = manager.state
        assert isinstance(state, SessionState) and isinstance(state, Session)
        assert len(state) == 0 and state.list_names() == set() and dict(state.job_state_map) == {}
        assert manager.storage.id.startswith("my_run-")
        assert os.path.isdir(os.path.join(manager.storage.location, "io-logs"))
        assert os.path.commonpath([state.path, manager.storage.location]) == manager.storage.location
        assert manager.storage.load_checkpoint() == b""
        assert [s.location for s in repo] == [manager.storage.location]


def test_create_without_a_repository_uses_the_default_location(tmp_path: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """repo=None means $PLAINBOX_SESSION_REPOSITORY (or the XDG cache)."""
    monkeypatch.setenv("PLAINBOX_SESSION_REPOSITORY", str(tmp_path / "env-repo"))
    with SessionManager.create() as manager:
        manager.add_local_device_context()
        assert os.path.dirname(manager.storage.location) == str(tmp_path / "env-repo")


def test_jobs_results_and_metadata_survive_checkpoint_and_resume(repo: SessionStorageRepository) -> None:
    """The whole user story: add jobs, record results, checkpoint, resume in a new manager."""
    units = _units()
    with SessionManager.create(repo) as manager:
        manager.add_local_device_context()
        state = manager.state
        for job in units[:2]:
            state.add(job)
        state.update_job_result("disk-smart", MemoryJobResult({"outcome": "fail", "return_code": 1}))
        state.update_job_result(units[0], MemoryJobResult(
            {"outcome": "pass", "return_code": 0, "execution_duration": 3.5, "comments": "retried",
             "io_log": [(0.0, "stdout", b"SMART overall-health: PASSED\n")]}))
        state.update_job_result("cpu-info", MemoryJobResult({}))  # hollow: not kept
        meta = state.metadata
        meta.title, meta.app_id, meta.app_blob = "nightly", "com.example:checker", b'{"plan": 1}'
        meta.flags = {SessionMetaData.FLAG_INCOMPLETE}
        meta.running_job_name = "cpu-info"
        state.desired_job_list = ["disk-smart", "cpu-info"]
        manager.checkpoint()
        storage = manager.storage
    fresh = _units()
    with SessionManager.load_session(fresh, storage) as again:
        state = again.state
        assert state.list_names() == {"disk-smart", "cpu-info"}
        assert state.job_state_map["disk-smart"].job is fresh[0]
        history = state.job_state_map["disk-smart"].result_history
        assert [(r.outcome, r.return_code) for r in history] == [("fail", 1), ("pass", 0)]
        assert history[1].execution_duration == 3.5 and history[1].comments == "retried"
        assert history[1].io_log[0].data == b"SMART overall-health: PASSED\n"
        assert state.job_state_map["cpu-info"].result_history == []
        assert state.metadata.title == "nightly" and state.metadata.app_blob == b'{"plan": 1}'
        assert state.metadata.running_job_name == "cpu-info"
        assert state.desired_job_list == ["disk-smart", "cpu-info"]
    with Session(os.path.join(storage.location, "tasks"), mode="r") as plain:
        assert plain.list_names() == {"disk-smart", "cpu-info"}  # the gc3session view agrees


def test_resume_reuses_the_records_of_the_session(repo: SessionStorageRepository) -> None:
    """Resuming many times does not pile up task records: each job keeps its record id."""
    with SessionManager.create(repo) as manager:
        manager.add_local_device_context()
        for job in _units():
            manager.state.add(job)
        ids = {t.jobname: t.persistent_id for t in manager.state}
        manager.checkpoint()
        storage = manager.storage
    for _ in range(3):
        with SessionManager.load_session(_units(), storage) as again:
            assert {t.jobname: t.persistent_id for t in again.state} == ids
            again.checkpoint()
    records = os.listdir(os.path.join(storage.location, "tasks", "jobs", "0"))
    assert len([r for r in records if not r.startswith(".")]) == 3


def test_desired_and_mandatory_ids_are_not_multiplied_by_resume_cycles(
        repo: SessionStorageRepository) -> None:
    """PlainBox added one more copy of each mandatory id per resume; here the lists stay as they were."""
    with SessionManager.create(repo) as manager:
        manager.add_local_device_context()
        for job in _units():
            manager.state.add(job)
        manager.state.mandatory_job_list = ["network"]
        manager.state.desired_job_list = ["disk-smart", "network", "disk-smart"]
        manager.checkpoint()
        storage = manager.storage
    for _ in range(4):
        with SessionManager.load_session(_units(), storage) as again:
            assert again.state.desired_job_list == ["network", "disk-smart"]
            assert again.state.mandatory_job_list == ["network"]
            again.checkpoint()
    document = json.loads(gzip.decompress(storage.load_checkpoint()))
    assert document["session"]["desired_job_list"] == ["network", "disk-smart"]


def test_a_job_changed_since_the_checkpoint_is_refused(repo: SessionStorageRepository) -> None:
    """load_session raises IncompatibleJobError and leaves the storage as it was."""
    with SessionManager.create(repo) as manager:
        manager.add_local_device_context()
        manager.state.add(Task(jobname="disk-smart", command="smartctl -a /dev/sda"))
        manager.checkpoint()
        storage = manager.storage
    before = storage.load_checkpoint()
    with pytest.raises(IncompatibleJobError, match="disk-smart"):
        SessionManager.load_session([Task(jobname="disk-smart", command="smartctl -x /dev/sda")], storage)
    assert storage.load_checkpoint() == before


def test_checkpoint_breaks_a_stale_lock_once(repo: SessionStorageRepository) -> None:
    """A session.next left by a killed checkpoint does not stop the next one."""
    with SessionManager.create(repo) as manager:
        manager.add_local_device_context()
        manager.checkpoint()
        next_file = os.path.join(manager.storage.location, "session.next")
        with open(next_file, "wb") as torn:
            torn.write(b"\x1f\x8b torn")
        manager.state.metadata.title = "after the crash"
        manager.checkpoint()
        assert not os.path.exists(next_file)
        with SessionManager.load_session([], manager.storage) as again:
            assert again.state.metadata.title == "after the crash"


def test_load_of_a_storage_never_checkpointed_is_corrupted(repo: SessionStorageRepository) -> None:
    """An empty checkpoint cannot be resumed (PlainBox's behaviour)."""
    with SessionManager.create(repo) as manager:
        manager.add_local_device_context()
        storage = manager.storage
    with pytest.raises(CorruptedSessionError, match="JSON"):
        SessionManager.load_session(_units(), storage)


def test_load_of_a_vanished_storage_starts_a_fresh_state(tmp_path: Any) -> None:
    """If the storage directory is gone, load_session gives a fresh state with every job (PlainBox)."""
    storage = SessionStorage(str(tmp_path / "gone.session"))
    units = _units()
    with SessionManager.load_session(units, storage) as manager:
        assert manager.state.job_list == units
        assert os.path.isdir(os.path.join(storage.location, "io-logs"))


def test_destroy_removes_the_storage(repo: SessionStorageRepository) -> None:
    """destroy() removes the directory, task records included."""
    manager = SessionManager.create(repo)
    manager.add_local_device_context()
    manager.state.add(_units()[0])
    manager.checkpoint()
    manager.destroy()
    assert not os.path.exists(manager.storage.location)
    assert repo.get_storage_list() == []


def test_large_output_is_kept_out_of_the_checkpoint(repo: SessionStorageRepository) -> None:
    """Output over the inline limit goes to io-logs/<job>.record.gz; the checkpoint names the file."""
    big = os.urandom(INLINE_IO_LOG_LIMIT) + b"tail"
    with SessionManager.create(repo) as manager:
        manager.add_local_device_context()
        job = _units()[0]
        manager.state.add(job)
        kept = manager.state.update_job_result(job, MemoryJobResult(
            {"outcome": "pass", "io_log": [(0.0, "stdout", big), (0.5, "stderr", b"warn")]}))
        assert isinstance(kept, DiskJobResult)
        assert kept.io_log_filename == os.path.join(manager.storage.location, "io-logs",
                                                    "disk-smart.record.gz")
        manager.checkpoint()
        data = manager.storage.load_checkpoint()
        assert len(data) < 1024
        entry = json.loads(gzip.decompress(data))["session"]["results"]["disk-smart"][0]
        assert entry["io_log_filename"] == "io-logs/disk-smart.record.gz" and "io_log" not in entry
        with SessionManager.load_session(_units(), manager.storage) as again:
            records = again.state.job_state_map["disk-smart"].result.io_log
            assert [(r.stream_name, r.data) for r in records] == [("stdout", big), ("stderr", b"warn")]
            again.state.update_job_result("disk-smart", MemoryJobResult(
                {"outcome": "fail", "io_log": [(0.0, "stdout", big)]}))
            second = again.state.job_state_map["disk-smart"].result
            assert second.io_log_filename.endswith("disk-smart_2.record.gz")


def test_the_state_refuses_jobs_it_cannot_name(repo: SessionStorageRepository) -> None:
    """A job needs a unique jobname; results need a job of the session and a JobResult."""
    with SessionManager.create(repo) as manager:
        manager.add_local_device_context()
        state = manager.state
        state.add(Task(jobname="a"))
        with pytest.raises(InvalidValue, match="already has a job 'a'"):
            state.add(Task(jobname="a", other=1))
        with pytest.raises(InvalidValue, match="jobname"):
            state.add(Task(size=1))
        with pytest.raises(InvalidValue, match="'b' is not part"):
            state.update_job_result("b", MemoryJobResult({"outcome": "pass"}))
        with pytest.raises(InvalidType):
            state.update_job_result("a", {"outcome": "pass"})  # type: ignore[arg-type]
        with pytest.raises(InvalidValue, match="outcome"):
            MemoryJobResult({"outcome": "passed"})
        assert state.list_names() == {"a"}


def test_create_with_state_copies_jobs_results_and_logs(repo: SessionStorageRepository) -> None:
    """A state (here a detached one) is copied into a new storage, IO log files included."""
    source = SessionState.detached()
    try:
        job = _units()[0]
        source.add(job)
        source.update_job_result(job, MemoryJobResult(
            {"outcome": "pass", "io_log": [(0.0, "stdout", b"x" * (INLINE_IO_LOG_LIMIT + 1))]}))
        source.metadata.title = "copied"
        with SessionManager.create_with_state(source, repo) as manager:
            assert manager.state is not source and manager.state.metadata.title == "copied"
            copied = manager.state.job_state_map["disk-smart"]
            assert copied.job.checksum == job.checksum and copied.job is not job
            assert copied.result.io_log_filename.startswith(manager.storage.location)
            assert copied.result.io_log[0].data == b"x" * (INLINE_IO_LOG_LIMIT + 1)
            manager.checkpoint()
            with SessionManager.load_session(_units(), manager.storage) as again:
                assert again.state.job_state_map["disk-smart"].result.outcome == "pass"
    finally:
        source.close()


def test_well_known_dirs(tmp_path: Any) -> None:
    """io-logs is the one well-known directory; populate creates it and is idempotent."""
    storage = SessionStorage.create(str(tmp_path))
    helper = WellKnownDirsHelper(storage)
    assert helper.all_directories == [helper.io_log_pathname] == [os.path.join(storage.location, "io-logs")]
    helper.populate()
    helper.populate()
    assert os.listdir(storage.location) == ["io-logs"]


def test_resumable_sessions_are_the_incomplete_ones_of_the_application(
        repo: SessionStorageRepository) -> None:
    """Discovery peeks each checkpoint: same app_id and incomplete; broken or empty ones are skipped."""
    made = {}
    for name, app, flags in [("mine-old", "app", {"incomplete"}), ("mine-done", "app", {"submitted"}),
                             ("other", "other-app", {"incomplete"}), ("mine-new", "app", {"incomplete"})]:
        with SessionManager.create(repo, prefix=name + "-") as manager:
            manager.add_local_device_context()
            manager.state.metadata.app_id, manager.state.metadata.flags = app, flags
            manager.checkpoint()
            made[name] = manager.storage
    os.utime(made["mine-old"].location, (1_000, 1_000))
    SessionManager.create(repo, prefix="never-").close()
    broken = SessionStorage.create(repo.location, prefix="broken-")
    broken.save_checkpoint(b"\x1f\x8b\x08\x00 torn")
    found = get_resumable_sessions("app", repo)
    assert [storage for storage, _ in found] == [made["mine-new"], made["mine-old"]]
    assert all(meta.app_id == "app" and "incomplete" in meta.flags for _, meta in found)
    assert get_resumable_sessions("nobody", repo) == []


def test_results_are_immutable_and_encoded_once(repo: SessionStorageRepository) -> None:
    """A recorded result cannot be altered, so a checkpoint may reuse its encoding from the last one."""
    with SessionManager.create(repo) as manager:
        manager.add_local_device_context()
        job = _units()[0]
        manager.state.add(job)
        kept = manager.state.update_job_result(job, MemoryJobResult({"outcome": "pass"}))
        with pytest.raises(AttributeError, match="immutable"):
            kept.outcome = "fail"  # type: ignore[misc]
        manager.checkpoint()
        manager.checkpoint()
        assert list(kept.encoded) == [manager.storage.location]
        with SessionManager.load_session(_units(), manager.storage) as again:
            assert again.state.job_state_map["disk-smart"].result.outcome == "pass"


def test_a_new_definition_gives_a_new_checksum_in_the_checkpoint(repo: SessionStorageRepository) -> None:
    """Checksums are cached per definition object; a newly assigned definition is in the next checkpoint."""
    with SessionManager.create(repo) as manager:
        manager.add_local_device_context()
        job = _units()[0]
        manager.state.add(job)
        manager.checkpoint()
        first = json.loads(gzip.decompress(manager.storage.load_checkpoint()))["session"]["jobs"]
        assert first == {"disk-smart": job.checksum}
        job.definition = {**job.definition, "command": "smartctl -x /dev/sda"}
        manager.checkpoint()
        second = json.loads(gzip.decompress(manager.storage.load_checkpoint()))["session"]["jobs"]
        assert second == {"disk-smart": job.checksum} and second != first


def test_checkpoints_can_be_written_in_an_older_format(repo: SessionStorageRepository) -> None:
    """suspend_version = 6 makes checkpoint() write what PlainBox 0.38 reads; it still resumes here."""
    with SessionManager.create(repo) as manager:
        manager.add_local_device_context()
        manager.state.add(_units()[0])
        manager.state.metadata.title = "for an old launcher"
        manager.suspend_version = 6
        manager.checkpoint()
        document = json.loads(gzip.decompress(manager.storage.load_checkpoint()))
        assert document["version"] == 6 and "system_information" not in document["session"]
        with SessionManager.load_session(_units(), manager.storage) as again:
            assert again.state.metadata.title == "for an old launcher"


def test_resume_errors_of_the_manager_name_the_checkpoint_file(repo: SessionStorageRepository) -> None:
    """load_session says which session failed; the class and the helper's error (as cause) are kept."""
    storage = SessionStorage.create(repo.location)
    storage.save_checkpoint(b"\x1f\x8b\x08\x00 torn")
    with pytest.raises(CorruptedSessionError) as info:
        SessionManager.load_session(_units(), storage)
    assert storage.session_file in str(info.value) and info.value.session_file == storage.session_file
    assert isinstance(info.value.__cause__, CorruptedSessionError)
    assert os.listdir(storage.location) == ["session"]  # nothing was created for a failed resume


def test_create_with_unit_list_adds_every_job(repo: SessionStorageRepository) -> None:
    """PlainBox's third factory: a new session already holding the given jobs, saved as tasks."""
    units = _units()
    with SessionManager.create_with_unit_list(units, repo) as manager:
        assert manager.state.job_list == units
        with Session(manager.state.path, mode="r") as plain:
            assert plain.list_names() == {"disk-smart", "cpu-info", "network"}
    with SessionManager.create_with_unit_list(repo=repo) as empty:
        assert len(empty.state) == 0
