"""The contract every store keeps, as tests a store joins by providing two fixtures.

A test module for a store defines ``url`` (a fixture giving a URL of a new,
empty store of its kind, for :func:`gc3session.persistence.make_store`) and
subclasses :class:`StoreContract`.  Each test then runs on that store: the
public methods of :class:`gc3session.persistence.store.Store`, the defaults
built on them, and a :class:`gc3session.Session` kept in the store.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from _session_objects import PayloadTask, payloads

from gc3session import ParallelTaskCollection, Session
from gc3session.exceptions import LoadError, ReadOnlyStoreError
from gc3session.persistence import Finding, Store, make_store


class StoreContract:
    """Tests that every store passes (its module provides the ``url`` fixture)."""

    @pytest.fixture
    def store(self, url: str) -> Any:
        store = make_store(url)
        yield store
        store.close()

    def _reopen(self, url: str) -> Store:
        return make_store(url)

    def test_is_a_store(self, store: Store) -> None:
        assert isinstance(store, Store)

    def test_save_gives_an_id_and_load_reads_it_back(self, store: Store, url: str) -> None:
        task = PayloadTask(payload={"n": 1, "text": "é"})
        pid = store.save(task)
        assert task.persistent_id == pid and str(pid).startswith("PayloadTask.")
        with self._reopen(url) as again:
            assert again.load(pid).payload == {"n": 1, "text": "é"}

    def test_ids_are_unique_and_saving_again_keeps_the_id(self, store: Store) -> None:
        tasks = [PayloadTask(payload=n) for n in range(5)]
        ids = [store.save(t) for t in tasks]
        assert len(set(ids)) == 5
        tasks[2].payload = "changed"
        assert store.save(tasks[2]) == ids[2]
        assert store.load(ids[2]).payload == "changed"
        assert sorted(map(str, store.list())) == sorted(map(str, ids))

    def test_replace_and_remove(self, store: Store, url: str) -> None:
        pid = store.save(PayloadTask(payload="old"))
        store.replace(pid, PayloadTask(payload="new"))
        store.remove(pid)
        store.remove(pid)  # removing what is gone is fine
        with self._reopen(url) as again:
            with pytest.raises(LoadError):
                again.load(pid)
            assert pid not in again.list()

    def test_many_at_once(self, store: Store) -> None:
        tasks = [PayloadTask(payload=n) for n in range(4)]
        ids = store.save_many(tasks)
        errors: dict[str, LoadError] = {}
        loaded = store.load_many([*map(str, ids), "PayloadTask.999999"], errors=errors)
        assert [loaded[str(i)].payload for i in ids] == [0, 1, 2, 3]
        assert list(errors) == ["PayloadTask.999999"]
        assert store.states([str(i) for i in ids]) == {str(i): "NEW" for i in ids}
        store.remove_many([str(i) for i in ids[:2]])
        assert sorted(map(str, store.list())) == sorted(map(str, ids[2:]))

    def test_a_read_only_store_writes_nothing(self, store: Store, url: str) -> None:
        pid = store.save(PayloadTask(payload=1))
        with make_store(url, readonly=True) as readonly:
            assert readonly.load(pid).payload == 1
            with pytest.raises(ReadOnlyStoreError):
                readonly.save(PayloadTask(payload=2))
            with pytest.raises(ReadOnlyStoreError):
                readonly.remove(pid)

    def test_unknown_keyword_arguments_are_refused(self, url: str) -> None:
        with pytest.raises(TypeError, match="readonyl"):
            make_store(url, readonyl=True)

    def test_what_tools_ask(self, store: Store) -> None:
        store.save(PayloadTask(payload=1))
        assert store.exists() is True
        assert isinstance(store.describe(), dict) and store.describe()["kind"]
        assert all(isinstance(f, Finding) for f in store.check())

    def test_a_session_kept_in_the_store(self, url: str, tmp_path: Any) -> None:
        path = os.path.join(tmp_path, "session")
        with Session(path, store_or_url=url) as session:
            first = session.add(PayloadTask(payload="first"))
            later = [session.add(PayloadTask(payload=n), flush=False) for n in range(3)]
            session.flush()
            collection = ParallelTaskCollection([PayloadTask(payload="child")], payload="coll")
            session.add(collection)
        with Session(path) as again:
            assert payloads(again) == {first: "first", **{p: n for n, p in enumerate(later)},
                                       collection.persistent_id: "coll"}
            task = again.load(first)
            again.remove(first)
            assert again.add(task) == first  # the same object again: written again
            again.forget(later[0])
        with Session(path) as third:
            assert set(third.list_ids()) == {first, *later[1:], collection.persistent_id}
            assert third.load(collection.persistent_id).tasks[0].payload == "child"
            assert third.states()[first] == "NEW"
