"""SessionManager's device contexts, as PlainBox 0.38 has them: none or one, signalled."""

from __future__ import annotations

import os
from typing import Any

import pytest

from gc3session import Task
from gc3session.exceptions import InvalidType, InvalidValue, SerializationError
from gc3session.plainbox import (
    SessionDeviceContext,
    SessionManager,
    SessionState,
    SessionStorageRepository,
)
from gc3session.plainbox.signals import Signal


@pytest.fixture
def repo(tmp_path: Any) -> SessionStorageRepository:
    return SessionStorageRepository(str(tmp_path / "sessions"))


def test_create_has_no_context_until_the_local_one_is_added(repo: SessionStorageRepository) -> None:
    """create(): no context, state None; add_local_device_context(): a state in the storage."""
    manager = SessionManager.create(repo)
    assert manager.device_context_list == [] and manager.default_device_context is None
    assert manager.state is None
    assert "no device context" in repr(manager)
    context = manager.add_local_device_context()
    try:
        assert manager.device_context_list == [context] and manager.default_device_context is context
        assert context.device is None
        assert manager.state is context.state
        assert os.path.commonpath([context.state.path, manager.storage.location]) == manager.storage.location
    finally:
        manager.close()


def test_checkpoint_without_a_context_names_the_storage(repo: SessionStorageRepository) -> None:
    """A checkpoint needs a state: a typed error naming the storage, no file written."""
    manager = SessionManager.create(repo)
    with pytest.raises(InvalidValue, match="add_local_device_context") as caught:
        manager.checkpoint()
    assert manager.storage.location in str(caught.value)
    assert manager.storage.load_checkpoint() == b""


def test_a_second_context_is_refused_and_the_first_kept(repo: SessionStorageRepository) -> None:
    """PlainBox 0.38 holds one context at most: adding, or constructing with, a second is ValueError."""
    with SessionManager.create(repo) as manager:
        first = manager.add_local_device_context()
        other = SessionDeviceContext()
        remote = _RemoteContext(other.state)
        try:
            with pytest.raises(ValueError, match="the device None already has a context"):
                manager.add_device_context(other)
            with pytest.raises(ValueError, match="one device context at most"):
                manager.add_device_context(remote)
            with pytest.raises(ValueError, match="one device context at most"):
                SessionManager([first, remote], manager.storage)
        finally:
            other.state.close()
        assert manager.device_context_list == [first]


class _RemoteContext(SessionDeviceContext):
    """A ported application's context for another device than this machine."""

    @property
    def device(self) -> Any:
        return "remote-1"


def test_the_context_list_is_changed_only_through_the_manager(repo: SessionStorageRepository) -> None:
    """device_context_list is a copy: appending to it adds nothing."""
    with SessionManager.create(repo) as manager:
        context = manager.add_local_device_context()
        manager.device_context_list.append(context)
        assert manager.device_context_list == [context]


def test_adding_and_removing_fire_the_signals_with_the_context(repo: SessionStorageRepository) -> None:
    """on_device_context_added / _removed call their listeners; a removed context's state stays open."""
    manager = SessionManager.create(repo)
    added: list[Any] = []
    removed: list[Any] = []
    manager.on_device_context_added.connect(added.append)
    manager.on_device_context_removed.connect(removed.append)
    context = manager.add_local_device_context()
    manager.remove_device_context(context)
    assert added == [context] and removed == [context]
    assert manager.device_context_list == [] and manager.state is None
    context.state.add(Task(jobname="still-open"))
    assert context.state.list_names() == {"still-open"}
    context.state.close()
    with pytest.raises(ValueError, match="not a device context"):
        manager.remove_device_context(context)


def test_a_listener_that_raises_reaches_the_caller_after_the_change() -> None:
    """A broken listener is not skipped silently; disconnecting a stranger is ValueError."""
    signal = Signal("on_test")
    calls: list[int] = []

    def broken(value: int) -> None:
        raise RuntimeError(f"listener failed on {value}")

    signal.connect(calls.append)
    signal.connect(broken)
    with pytest.raises(RuntimeError, match="listener failed on 7"):
        signal(7)
    assert calls == [7]
    signal.disconnect(broken)
    signal(8)
    assert calls == [7, 8]
    with pytest.raises(ValueError, match="not connected to the signal on_test"):
        signal.disconnect(broken)


def test_the_other_constructors_come_with_the_local_context(repo: SessionStorageRepository) -> None:
    """create_with_unit_list, create_with_state and load_session give a manager with one context."""
    units = [Task(jobname="a", command="true"), Task(jobname="b", command="false")]
    with SessionManager.create_with_unit_list(units, repo) as listed:
        assert len(listed.device_context_list) == 1
        assert listed.state is not None and listed.state.list_names() == {"a", "b"}
        listed.checkpoint()
        storage = listed.storage
    detached = SessionState([Task(jobname="c", command="true")])
    try:
        with SessionManager.create_with_state(detached, repo) as copied:
            assert len(copied.device_context_list) == 1
            assert copied.state is not None and copied.state is not detached
            assert copied.state.list_names() == {"c"}
    finally:
        detached.close()
    with SessionManager.load_session(units, storage) as resumed:
        assert len(resumed.device_context_list) == 1
        assert resumed.state is not None and resumed.state.list_names() == {"a", "b"}


def test_a_context_made_without_a_state_gets_a_detached_or_a_located_one(tmp_path: Any) -> None:
    """SessionDeviceContext(): a detached state, as PlainBox's; location=: a state living there."""
    bare = SessionDeviceContext()
    placed = SessionDeviceContext(location=str(tmp_path / "storage"))
    try:
        assert bare.state.location != placed.state.location
        assert placed.state.location == str(tmp_path / "storage")
        assert os.path.isdir(os.path.join(str(tmp_path / "storage"), "tasks"))
    finally:
        bare.state.close()
        placed.state.close()


def test_closing_the_manager_closes_the_state_of_its_context(repo: SessionStorageRepository) -> None:
    """close() releases the context's store; the session reopens with its jobs."""
    manager = SessionManager.create(repo)
    context = manager.add_local_device_context()
    context.state.add(Task(jobname="kept"))
    manager.checkpoint()
    manager.close()
    with SessionManager.load_session([Task(jobname="kept")], manager.storage) as again:
        assert again.state is not None and again.state.list_names() == {"kept"}


def test_a_context_whose_state_lives_elsewhere_is_refused(repo: SessionStorageRepository) -> None:
    """PlainBox's add_device_context(SessionDeviceContext()): its detached state would be lost."""
    manager = SessionManager.create(repo)
    detached = SessionDeviceContext()
    try:
        with pytest.raises(InvalidValue, match="add_local_device_context") as caught:
            manager.add_device_context(detached)
        assert detached.state.location in str(caught.value)
        assert manager.storage.location in str(caught.value)
        with pytest.raises(InvalidValue):
            SessionManager([detached], manager.storage)
        assert manager.device_context_list == []
    finally:
        detached.state.close()


def test_a_context_takes_a_state_or_a_location(tmp_path: Any) -> None:
    """Both at once, or something that is not a SessionState, is a typed error."""
    state = SessionState(str(tmp_path / "a"))
    try:
        with pytest.raises(InvalidType, match="not both"):
            SessionDeviceContext(state, location=str(tmp_path / "b"))
        with pytest.raises(InvalidType, match="holds a SessionState"):
            SessionDeviceContext(str(tmp_path / "a"))  # type: ignore[arg-type]
    finally:
        state.close()
    assert not os.path.exists(tmp_path / "b")


def test_a_failed_create_with_unit_list_leaves_no_storage(repo: SessionStorageRepository) -> None:
    """Two jobs with one id: the error reaches the caller and the new storage is gone."""
    twins = [Task(jobname="same", command="true"), Task(jobname="same", command="false")]
    with pytest.raises(InvalidValue, match="same"):
        SessionManager.create_with_unit_list(twins, repo)
    assert repo.get_storage_list() == []


def test_a_failed_create_with_state_leaves_no_storage_and_the_state_intact(
        repo: SessionStorageRepository, tmp_path: Any) -> None:
    """A job that cannot be pickled: nothing left in the repository, the given state unchanged."""
    state = SessionState(str(tmp_path / "mine"), jobs=[Task(jobname="fine", command="true")])
    try:
        state.add(Task(jobname="bad", command="true"))
        state.get_job("bad").hook = lambda: None
        with pytest.raises(SerializationError, match="cannot serialize Task"):
            SessionManager.create_with_state(state, repo)
        assert repo.get_storage_list() == []
        assert state.list_names() == {"fine", "bad"}
    finally:
        state.get_job("bad").hook = None
        state.close()


def test_destroy_and_close_with_no_context_or_twice(repo: SessionStorageRepository) -> None:
    """A manager without a context closes and destroys; close() twice is harmless."""
    empty = SessionManager.create(repo)
    empty.close()
    empty.destroy()
    assert not os.path.exists(empty.storage.location)
    manager = SessionManager.create(repo)
    context = manager.add_local_device_context()
    manager.remove_device_context(context)
    manager.destroy()  # the removed context's state is its owner's to close
    context.state.close()
    again = SessionManager.create_with_unit_list([Task(jobname="x", command="true")], repo)
    again.close()
    again.close()


def test_signals_pass_keywords_and_themselves_when_asked() -> None:
    """morris's calling conventions: fire(args, kwargs), connect(..., pass_signal=True), listeners."""
    signal = Signal("on_event")
    plain: list[Any] = []
    told: list[Any] = []

    def record(*args: Any, **kwargs: Any) -> None:
        plain.append((args, kwargs))

    def record_signal(*args: Any, signal: Signal, **kwargs: Any) -> None:
        told.append((args, kwargs, signal))

    signal.connect(record)
    signal.connect(record_signal, pass_signal=True)
    assert signal.listeners == [record, record_signal]
    signal(1, key="k")
    signal.fire((2,), {})
    assert plain == [((1,), {"key": "k"}), ((2,), {})]
    assert told == [((1,), {"key": "k"}, signal), ((2,), {}, signal)]
    with pytest.raises(ValueError):
        signal.disconnect(record_signal)  # connected with pass_signal=True
    signal.disconnect(record_signal, pass_signal=True)
    assert signal.listeners == [record]
