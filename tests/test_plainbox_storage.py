"""PlainBox storage: the repository, storage naming, and the checkpoint file protocol."""

from __future__ import annotations

import errno
import os
import re
import shutil
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from gc3session.exceptions import Error, InvalidType, StoreWriteError
from gc3session.plainbox import LockedStorageError, SessionStorage, SessionStorageRepository
from gc3session.plainbox.storage import TIMESTAMP_FORMAT, slugify

NAME = re.compile(r"^(?P<prefix>.*?)(?P<ts>\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\d)(_\((?P<n>\d+)\))?\.session$")


# --- default location ---------------------------------------------------------

def test_default_location_comes_from_the_environment_variable_made_absolute(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """$PLAINBOX_SESSION_REPOSITORY wins and is made absolute; XDG is then ignored."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLAINBOX_SESSION_REPOSITORY", "repo")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert SessionStorageRepository.get_default_location() == str(tmp_path / "repo")
    assert SessionStorageRepository().location == str(tmp_path / "repo")


def test_default_location_uses_xdg_cache_home_then_home(tmp_path: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the variable: $XDG_CACHE_HOME/plainbox/sessions, and ~/.cache when XDG is unset or empty."""
    monkeypatch.delenv("PLAINBOX_SESSION_REPOSITORY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert SessionStorageRepository.get_default_location() == str(tmp_path / "xdg/plainbox/sessions")
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert SessionStorageRepository.get_default_location() == str(tmp_path / "home/.cache/plainbox/sessions")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert SessionStorageRepository.get_default_location() == str(tmp_path / "home/.cache/plainbox/sessions")


def test_default_location_falls_back_to_a_temporary_directory_when_not_a_directory(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A repository path that is a file is not used: a fresh, empty, writable temporary directory is."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("PLAINBOX_SESSION_REPOSITORY", str(blocker))
    location = SessionStorageRepository.get_default_location()
    try:
        assert location != str(blocker)
        assert os.path.isdir(location) and os.listdir(location) == []
        assert os.access(location, os.W_OK)
        assert blocker.read_text() == "not a directory"
    finally:
        shutil.rmtree(location)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only directories")
def test_default_location_falls_back_when_read_only(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only repository is not used."""
    readonly = tmp_path / "ro"
    readonly.mkdir(mode=0o500)
    monkeypatch.setenv("PLAINBOX_SESSION_REPOSITORY", str(readonly))
    location = SessionStorageRepository.get_default_location()
    try:
        assert location != str(readonly) and os.access(location, os.W_OK)
    finally:
        shutil.rmtree(location)


# --- listing ------------------------------------------------------------------

def test_listing_of_a_missing_repository_is_empty(tmp_path: Any) -> None:
    """A repository that does not exist yet lists no storage (and is not created)."""
    repo = SessionStorageRepository(str(tmp_path / "nowhere"))
    assert repo.get_storage_list() == [] and list(repo) == []
    assert not os.path.exists(tmp_path / "nowhere")


def test_listing_keeps_visible_session_directories_youngest_first(tmp_path: Any) -> None:
    """Only non-hidden ``*.session`` directories, never symlinks or files, sorted by mtime descending."""
    repo_dir = tmp_path / "repo"
    for name, age in [("a.session", 30), ("b.session", 10), ("c.session", 20)]:
        (repo_dir / name).mkdir(parents=True)
        os.utime(repo_dir / name, (1_000_000 - age, 1_000_000 - age))
    (repo_dir / ".hidden.session").mkdir()
    (repo_dir / "other").mkdir()
    (repo_dir / "file.session").write_text("")
    os.symlink(repo_dir / "a.session", repo_dir / "link.session")
    repo = SessionStorageRepository(str(repo_dir))
    listed = [os.path.basename(s.location) for s in repo.get_storage_list()]
    assert listed == ["b.session", "c.session", "a.session"]
    assert [s.location for s in repo] == [s.location for s in repo.get_storage_list()]
    assert [s.id for s in repo] == ["b", "c", "a"]


def test_a_checkpoint_makes_a_storage_the_youngest(tmp_path: Any) -> None:
    """The listing order follows the last checkpoint, as in PlainBox (the rename touches the directory)."""
    repo = SessionStorageRepository(str(tmp_path))
    old = SessionStorage.create(repo.location, prefix="old-")
    new = SessionStorage.create(repo.location, prefix="new-")
    os.utime(old.location, (1_000, 1_000))
    os.utime(new.location, (2_000, 2_000))
    assert [s.location for s in repo] == [new.location, old.location]
    old.save_checkpoint(b"data")
    assert [s.location for s in repo] == [old.location, new.location]


# --- creation -----------------------------------------------------------------

def test_create_names_the_storage_with_the_slugified_prefix_and_utc_time(tmp_path: Any) -> None:
    """``<slug(prefix)><UTC %Y-%m-%dT%H.%M.%S>.session``, base directory created, storage empty."""
    before = datetime.now(timezone.utc).replace(microsecond=0)
    storage = SessionStorage.create(str(tmp_path / "deep" / "base"), prefix="My run/1-")
    after = datetime.now(timezone.utc)
    name = os.path.basename(storage.location)
    match = NAME.match(name)
    assert match and match["prefix"] == "My_run_1-" and match["n"] is None, name
    stamp = datetime.strptime(match["ts"], TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
    assert before <= stamp <= after
    assert os.path.dirname(storage.location) == str(tmp_path / "deep" / "base")
    assert os.listdir(storage.location) == []
    assert storage.id == name[: -len(".session")]
    assert storage.session_file == os.path.join(storage.location, "session")
    assert repr(storage) == f"<SessionStorage location:{storage.location!r}>"


def test_slugify_replaces_everything_outside_the_safe_set() -> None:
    """Letters, digits, dot, underscore and dash survive; the rest becomes an underscore."""
    assert slugify("a.B_c-9 d/é") == "a.B_c-9_d__"


def test_create_adds_a_counter_when_the_name_is_taken(tmp_path: Any) -> None:
    """A taken name (a directory or a file) makes create try ``_(1)``, ``_(2)``, ... and never reuse it."""
    now = datetime.now(timezone.utc)
    for seconds in range(4):  # whichever second create runs in, its plain name is taken
        stamp = (now + timedelta(seconds=seconds)).strftime(TIMESTAMP_FORMAT)
        (tmp_path / f"pbox-{stamp}.session").mkdir()
        (tmp_path / f"pbox-{stamp}_(1).session").write_text("a file, not a storage")
    storage = SessionStorage.create(str(tmp_path))
    match = NAME.match(os.path.basename(storage.location))
    assert match and match["n"] == "2", storage.location
    assert os.listdir(storage.location) == []


def test_concurrent_creators_never_share_a_storage(tmp_path: Any) -> None:
    """Four processes creating storages in the same second each get directories of their own."""
    read_end, write_end = os.pipe()
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_end)
                names = [SessionStorage.create(str(tmp_path)).location for _ in range(10)]
                os.write(write_end, ("\n".join(names) + "\n").encode())
            finally:
                os._exit(0)
        children.append(pid)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode()
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    created = output.split()
    assert len(created) == 40 and len(set(created)) == 40
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in created)


# --- checkpoints --------------------------------------------------------------

def test_load_gives_empty_bytes_before_the_first_checkpoint(tmp_path: Any) -> None:
    """A new storage has no checkpoint yet: ``b''``, and nothing is created by reading."""
    storage = SessionStorage.create(str(tmp_path))
    assert storage.load_checkpoint() == b""
    assert os.listdir(storage.location) == []


def test_load_of_a_missing_storage_raises_file_not_found(tmp_path: Any) -> None:
    """A storage directory that is gone is an error (a FileNotFoundError, as in PlainBox), not b''."""
    storage = SessionStorage(str(tmp_path / "gone.session"))
    with pytest.raises(FileNotFoundError) as info:
        storage.load_checkpoint()
    assert isinstance(info.value, Error) and info.value.errno == errno.ENOENT
    assert str(tmp_path / "gone.session") in str(info.value)


def test_save_then_load_round_trips_and_replaces(tmp_path: Any) -> None:
    """Each save replaces the checkpoint completely; big payloads come back byte for byte."""
    storage = SessionStorage.create(str(tmp_path))
    storage.save_checkpoint(b"first, and longer than the second")
    assert storage.load_checkpoint() == b"first, and longer than the second"
    big = os.urandom(3 << 20)
    storage.save_checkpoint(big)
    assert storage.load_checkpoint() == big
    storage.save_checkpoint(b"")
    assert storage.load_checkpoint() == b""
    assert sorted(os.listdir(storage.location)) == ["session"]


@pytest.mark.parametrize("data", ["text", bytearray(b"x"), None, memoryview(b"x")])
def test_save_refuses_anything_but_bytes(tmp_path: Any, data: Any) -> None:
    """Non-bytes data raises TypeError (typed) and writes nothing."""
    storage = SessionStorage.create(str(tmp_path))
    with pytest.raises(TypeError) as info:
        storage.save_checkpoint(data)
    assert isinstance(info.value, InvalidType)
    assert os.listdir(storage.location) == []


def test_a_leftover_next_file_locks_the_storage_until_broken(tmp_path: Any) -> None:
    """``session.next`` from an interrupted save: LockedStorageError, old data intact, break_lock frees it."""
    storage = SessionStorage.create(str(tmp_path))
    storage.save_checkpoint(b"committed")
    with open(os.path.join(storage.location, "session.next"), "wb") as torn:
        torn.write(b"half a checkp")
    assert storage.load_checkpoint() == b"committed"  # the torn file is never read
    with pytest.raises(LockedStorageError) as info:
        storage.save_checkpoint(b"new")
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, Error) and err.errno == errno.EEXIST
    assert "session.next" in str(err) and err.filename.endswith("session.next")
    assert storage.load_checkpoint() == b"committed"
    assert storage.break_lock() is True
    assert storage.break_lock() is False
    storage.save_checkpoint(b"new")
    assert storage.load_checkpoint() == b"new"


def test_save_into_a_missing_storage_raises_a_store_write_error(tmp_path: Any) -> None:
    """Saving where the storage directory is gone names the file and the step; nothing is created."""
    storage = SessionStorage(str(tmp_path / "gone.session"))
    with pytest.raises(StoreWriteError) as info:
        storage.save_checkpoint(b"data")
    assert info.value.errno == errno.ENOENT and info.value.step == "create"
    assert not os.path.exists(tmp_path / "gone.session")


def test_load_refuses_a_symlinked_checkpoint(tmp_path: Any) -> None:
    """A ``session`` symlink planted in a storage is not followed."""
    storage = SessionStorage.create(str(tmp_path / "repo"))
    (tmp_path / "secret").write_bytes(b"not yours")
    os.symlink(tmp_path / "secret", os.path.join(storage.location, "session"))
    with pytest.raises(OSError) as info:
        storage.load_checkpoint()
    assert info.value.errno == errno.ELOOP


def test_remove_deletes_everything_and_never_raises(tmp_path: Any) -> None:
    """remove() deletes the storage and its content; removing it again is fine."""
    storage = SessionStorage.create(str(tmp_path))
    storage.save_checkpoint(b"x")
    os.makedirs(os.path.join(storage.location, "io-logs", "deep"))
    storage.remove()
    assert not os.path.exists(storage.location)
    storage.remove()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("failing", ["write", "rename"])
def test_a_failed_write_or_rename_raises_and_keeps_the_old_checkpoint(tmp_path: Any, failing: str) -> None:
    """PlainBox lost a write error and reported success for a failed rename: here both raise.

    The real errno comes out as a StoreWriteError naming the step; the old
    checkpoint is intact and no ``session.next`` blocks the next save.
    """
    from gc3session import fsio

    storage = SessionStorage.create(str(tmp_path))
    storage.save_checkpoint(b"old")

    def fail(step: str, path: str) -> None:
        if step == failing:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    with fsio.inject_faults(fail):
        with pytest.raises(StoreWriteError) as info:
            storage.save_checkpoint(b"new")
    assert info.value.errno == errno.ENOSPC and info.value.step == failing
    assert storage.load_checkpoint() == b"old"
    assert sorted(os.listdir(storage.location)) == ["session"]
    storage.save_checkpoint(b"new")
    assert storage.load_checkpoint() == b"new"
