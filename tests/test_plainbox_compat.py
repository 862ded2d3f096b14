"""PlainBox 0.38's API surface of the adapter: signatures, where names live, per-format helpers.

Each test sets the situation up on disk (real repositories, storages,
checkpoint files) and exercises one item of PlainBox's surface that ported
code relies on; ``benchmarks/compat/run_peer_suites.py`` runs PlainBox's own
tests against the same surface.
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import pytest

import gc3session.plainbox as package
from gc3session import Task
from gc3session.exceptions import InvalidType
from gc3session.plainbox import (
    MemoryJobResult,
    SessionManager,
    SessionMetaData,
    SessionState,
    SessionStorage,
    SessionStorageRepository,
    errors,
    resume,
    state,
    suspend,
)
from gc3session.plainbox.storage import LAST_SESSION_SYMLINK


def _jobs() -> list[Task]:
    return [Task(id="disk-smart", plugin="shell", command="smartctl -a /dev/sda"),
            Task(id="echo", plugin="shell", command="echo hello")]


# --- storage and manager signatures --------------------------------------------

def test_storage_create_takes_plainboxs_positional_parameters(tmp_path: Any) -> None:
    """``SessionStorage.create(base_dir, legacy_mode, prefix)``: the prefix is the third parameter."""
    storage = SessionStorage.create(str(tmp_path), False, "nightly run-")
    assert os.path.basename(storage.location).startswith("nightly_run-")
    assert not os.path.lexists(tmp_path / LAST_SESSION_SYMLINK)


def test_storage_create_refuses_a_prefix_in_legacy_modes_place(tmp_path: Any) -> None:
    """A prefix passed second (the adapter's old signature) is a typed error, and nothing is created."""
    with pytest.raises(InvalidType, match="prefix="):
        SessionStorage.create(str(tmp_path), "old-")  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def test_legacy_mode_points_last_session_at_the_newest_storage_and_keeps_the_older(tmp_path: Any) -> None:
    """Each legacy create replaces the link atomically; the storage it left is untouched."""
    repo = SessionStorageRepository(str(tmp_path))
    first = SessionStorage.create(repo.location, legacy_mode=True, prefix="first-")
    first.save_checkpoint(b"first checkpoint")
    assert os.readlink(tmp_path / LAST_SESSION_SYMLINK) == first.location
    second = SessionStorage.create(repo.location, legacy_mode=True, prefix="second-")
    assert os.readlink(tmp_path / LAST_SESSION_SYMLINK) == second.location
    assert repo.get_last_storage() == second
    assert first.load_checkpoint() == b"first checkpoint"  # PlainBox removed it
    assert sorted(s.id for s in repo.get_storage_list()) == sorted([first.id, second.id])
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []  # no temporary link left


def test_get_last_storage_is_none_without_a_link_to_a_directory(tmp_path: Any) -> None:
    """No link, a dangling link, a link to a file, or a plain file of that name: None."""
    repo = SessionStorageRepository(str(tmp_path))
    link = tmp_path / LAST_SESSION_SYMLINK
    assert repo.get_last_storage() is None
    os.symlink("gone.session", link)
    assert repo.get_last_storage() is None
    (tmp_path / "plain").write_bytes(b"x")
    os.replace(tmp_path / "plain", link)
    assert repo.get_last_storage() is None
    os.unlink(link)
    os.mkdir(tmp_path / "s1.session")
    os.symlink("s1.session", link)  # relative: taken relative to the repository
    assert repo.get_last_storage() == SessionStorage(str(tmp_path / "s1.session"))


def test_legacy_mode_never_replaces_a_directory_named_last_session(tmp_path: Any) -> None:
    """A real directory where the link goes is user data: the create fails with a typed error naming it."""
    (tmp_path / LAST_SESSION_SYMLINK).mkdir()
    (tmp_path / LAST_SESSION_SYMLINK / "keep.txt").write_text("mine")
    with pytest.raises(OSError, match=LAST_SESSION_SYMLINK):
        SessionStorage.create(str(tmp_path), legacy_mode=True)
    assert (tmp_path / LAST_SESSION_SYMLINK / "keep.txt").read_text() == "mine"


def test_manager_factories_take_repo_and_legacy_mode(tmp_path: Any) -> None:
    """``create(repo, legacy_mode, prefix)``, ``create_with_unit_list(units, repo, legacy_mode)``,
    ``create_with_state(state, repo, legacy_mode)`` as PlainBox 0.38 spells them."""
    repo = SessionStorageRepository(str(tmp_path / "repo"))
    with SessionManager.create(repo, True, "plain-") as manager:
        manager.add_local_device_context()
        assert repo.get_last_storage() == manager.storage
        assert manager.storage.id.startswith("plain-")
    with SessionManager.create_with_unit_list(_jobs(), repo, True) as manager:
        assert repo.get_last_storage() == manager.storage
        assert sorted(manager.state.job_state_map) == ["disk-smart", "echo"]
    source = SessionState(str(tmp_path / "source"))
    source.add(_jobs()[1])
    with SessionManager.create_with_state(source, repo, True) as manager:
        assert repo.get_last_storage() == manager.storage
        assert list(manager.state.job_state_map) == ["echo"]
    source.close()


# --- metadata and the version 6 checkpoint ---------------------------------------

def test_app_blob_defaults_to_none_and_is_saved_as_null(tmp_path: Any) -> None:
    """``SessionMetaData().app_blob is None`` (PlainBox 0.38), written ``null`` and read back as None."""
    assert SessionMetaData().app_blob is None
    with SessionManager.create(SessionStorageRepository(str(tmp_path))) as manager:
        manager.add_local_device_context()
        manager.checkpoint()
        document = json.loads(gzip.decompress(manager.storage.load_checkpoint()))
        assert document["session"]["metadata"]["app_blob"] is None
        storage = manager.storage
    with SessionManager.load_session([], storage) as again:
        assert again.state.metadata.app_blob is None


def test_an_empty_version_6_checkpoint_is_what_plainbox_writes(tmp_path: Any) -> None:
    """Only the keys PlainBox 0.38 writes, byte for byte inside the gzip."""
    with SessionManager.create(SessionStorageRepository(str(tmp_path))) as manager:
        manager.add_local_device_context()
        manager.suspend_version = 6
        manager.checkpoint()
        text = gzip.decompress(manager.storage.load_checkpoint())
    assert text == (b'{"session":{"desired_job_list":[],"jobs":{},"mandatory_job_list":[],"metadata":'
                    b'{"app_blob":null,"app_id":null,"flags":[],"running_job_name":null,"title":null},'
                    b'"results":{}},"version":6}')


def test_version_6_keeps_rejected_jobs_and_custom_joblist_when_they_are_set(tmp_path: Any) -> None:
    """The two later version 6 keys are written when they hold something, so nothing is lost."""
    with SessionManager.create(SessionStorageRepository(str(tmp_path))) as manager:
        manager.add_local_device_context()
        manager.suspend_version = 6
        manager.state.metadata.rejected_jobs = ["echo"]
        manager.state.metadata.custom_joblist = True
        manager.checkpoint()
        storage = manager.storage
    with SessionManager.load_session([], storage) as again:
        assert again.state.metadata.rejected_jobs == ["echo"]
        assert again.state.metadata.custom_joblist is True


# --- where the names live ---------------------------------------------------------

@pytest.mark.parametrize("name", ["SessionResumeError", "CorruptedSessionError", "IncompatibleSessionError",
                                  "IncompatibleJobError", "BrokenReferenceToExternalFile"])
def test_resume_errors_are_importable_from_resume_and_are_the_same_objects(name: str) -> None:
    """``resume.X`` (where PlainBox defines them) is ``errors.X`` and the package's ``X``."""
    assert getattr(resume, name) is getattr(errors, name) is getattr(package, name)
    assert issubclass(getattr(resume, name), resume.SessionResumeError)


def test_state_module_exports_session_metadata() -> None:
    """``from plainbox.impl.session.state import SessionMetaData`` has its counterpart."""
    assert state.SessionMetaData is SessionMetaData


def test_resume_discard_qualifier_votes_as_plainboxs() -> None:
    """Retained ids get VOTE_IGNORE, every other id (prefixes included) VOTE_INCLUDE:
    designated for removal."""
    qualifier = resume.ResumeDiscardQualifier({"foo", "bar"})
    assert qualifier.get_vote(Task(id="foo")) == qualifier.VOTE_IGNORE == 2
    assert qualifier.get_vote(Task(id="foobar")) == qualifier.VOTE_INCLUDE == 1
    assert not qualifier.designates(Task(jobname="bar")) and qualifier.designates(Task(id="fo"))


# --- per-format helpers ------------------------------------------------------------

def _checkpointed(tmp_path: Any, version: int) -> tuple[str, dict[str, Any]]:
    """A storage checkpointed by ``SessionSuspendHelper<version>``, and its decoded document."""
    storage = SessionStorage.create(str(tmp_path), prefix=f"v{version}-")
    work = SessionState(storage.location)
    jobs = _jobs()
    for job in jobs:
        work.add(job)
    work.update_job_result(jobs[0], MemoryJobResult({"outcome": "pass", "return_code": 0}))
    work.metadata.title, work.metadata.app_id, work.metadata.app_blob = "t", "app", b"blob"
    work.desired_job_list = ["echo", "disk-smart"]
    helper = getattr(suspend, f"SessionSuspendHelper{version}")()
    storage.save_checkpoint(helper.suspend(work, storage.location))
    work.close()
    return storage.location, json.loads(gzip.decompress(SessionStorage(storage.location).load_checkpoint()))


@pytest.mark.parametrize("version", range(1, 12))
def test_per_format_helpers_write_read_and_peek_their_format(tmp_path: Any, version: int) -> None:
    """``SessionSuspendHelperN`` writes format N; ``SessionResumeHelperN.resume_json`` and
    ``SessionPeekHelperN.peek_json`` read it; the facades hand it to the helper of version N."""
    location, document = _checkpointed(tmp_path, version)
    assert document["version"] == version
    assert resume.RESUME_HELPERS[version] is getattr(resume, f"SessionResumeHelper{version}")
    assert resume.PEEK_HELPERS[version] is getattr(resume, f"SessionPeekHelper{version}")
    meta = getattr(resume, f"SessionPeekHelper{version}")().peek_json(document)
    assert meta.title == "t" and meta.app_blob == (b"blob" if version >= 2 else None)
    helper = getattr(resume, f"SessionResumeHelper{version}")(_jobs(), None, location)
    resumed = helper.resume_json(document)
    assert resumed.desired_job_list == ["echo", "disk-smart"]
    assert resumed.job_state_map["disk-smart"].result.outcome == "pass"
    resumed.close()


def test_a_format_helper_refuses_a_document_of_another_format(tmp_path: Any) -> None:
    """Reading a format 11 document with the format 6 helpers is a typed error,
    not a silently smaller session."""
    location, document = _checkpointed(tmp_path, 11)
    with pytest.raises(resume.IncompatibleSessionError, match="SessionResumeHelper6 reads format 6, not 11"):
        resume.SessionResumeHelper6(_jobs(), None, location).resume_json(document)
    with pytest.raises(resume.IncompatibleSessionError, match="format 6, not 11"):
        resume.SessionPeekHelper6().peek_json(document)


def test_resume_json_calls_early_cb_with_the_state_being_resumed(tmp_path: Any) -> None:
    """``resume_json(json_repr, early_cb)``: the callback sees the state before it is filled."""
    location, document = _checkpointed(tmp_path, 6)
    seen: list[tuple[Any, int]] = []
    resumed = resume.SessionResumeHelper(_jobs(), None, location).resume_json(
        document, lambda st: seen.append(
            (st, sum(len(js.result_history) for js in st.job_state_map.values()))))
    assert seen == [(resumed, 0)]  # called once, before any result was restored
    assert len(resumed.job_state_map["disk-smart"].result_history) == 1
    resumed.close()


# --- SessionState(unit_list) --------------------------------------------------------

def test_session_state_accepts_plainboxs_unit_list() -> None:
    """``SessionState(unit_list)``: a detached state holding those jobs, suspended like any state."""
    jobs = _jobs()
    detached = SessionState(jobs)
    assert os.path.isdir(detached.location)
    assert [s.job for s in detached.job_state_map.values()] == jobs
    data = suspend.SessionSuspendHelper6().suspend(SessionState([]))
    assert json.loads(gzip.decompress(data))["session"]["jobs"] == {}
    detached.close()


def test_session_state_refuses_a_bytes_location() -> None:
    """Bytes are neither a path string nor a list of jobs."""
    with pytest.raises(InvalidType, match="not bytes"):
        SessionState(b"/tmp/x")  # type: ignore[arg-type]
