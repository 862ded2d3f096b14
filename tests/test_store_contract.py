"""Every store passes the store contract (``tests/store_contract.py``).

The built-in stores (a directory of records, SQLite, PostgreSQL) and the
gc3libs-style example store of ``examples/dbm_store.py``, which implements
only the five public methods, pass the same tests.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterator

import pytest
from store_contract import StoreContract

from gc3session.persistence import register, unregister

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))

import dbm_store  # noqa: E402  (registers the "dbm" scheme when imported...)

unregister("dbm")  # ...which the other tests of this process must not see


class TestFilesystemStore(StoreContract):
    @pytest.fixture
    def url(self, tmp_path: Any) -> str:
        return os.path.join(tmp_path, "jobs")


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def url(self, tmp_path: Any) -> str:
        return f"sqlite:///{tmp_path}/store.db"


class TestPostgresqlStore(StoreContract):
    @pytest.fixture
    def url(self, pg_url: str) -> str:
        return pg_url


class TestExampleDbmStore(StoreContract):
    @pytest.fixture
    def url(self, tmp_path: Any) -> Iterator[str]:
        register("dbm", dbm_store.make_dbm_store)
        yield f"dbm:///{tmp_path}/tasks.dbm"
        unregister("dbm")

    def test_it_overrides_only_the_public_methods(self) -> None:
        from gc3session.persistence import RecordStore
        own = {name for name, value in vars(dbm_store.DbmStore).items()
               if callable(value) and not name.startswith("__")}
        assert own == {"save", "load", "replace", "remove", "list", "_open"}
        assert not issubclass(dbm_store.DbmStore, RecordStore)
