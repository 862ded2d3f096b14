"""SqlStore seams: extra fields that cannot be computed.

On real SQLite files and a real PostgreSQL server (``pg_url``): an
``extra_fields`` function that raises leaves NULL in its column and the
object saved.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from _store_objects import Node
from stores.sql import SqlStore


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh database: an SQLite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/x.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def opened() -> Iterator[list[SqlStore]]:
    """Stores a test opens, closed at its end."""
    stores: list[SqlStore] = []
    yield stores
    for store in stores:
        store.close()


def _engine(url: str) -> sa.Engine:
    """An engine of the test's own (plain SQLAlchemy, psycopg 3 for PostgreSQL)."""
    url = url.split("#")[0].split("?")[0]
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def _rows(url: str, statement: str) -> list[tuple[Any, ...]]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(statement))]
    finally:
        engine.dispose()


# --- extra fields -------------------------------------------------------------------------------

def _label(node: Node) -> str:
    if node.name == "bad":
        raise RuntimeError("no label for this one")
    return node.name.upper()


def test_extra_field_that_raises_stores_null_and_saves(db_url: str, opened: list[SqlStore],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """The task is saved, its column is NULL, the other columns are set; a warning names column and id."""
    fields = {sa.Column("label", sa.String(20)): _label,
              sa.Column("kids", sa.Integer): lambda node: len(node.children)}
    store = SqlStore(db_url, extra_fields=fields)
    opened.append(store)
    root = Node("root")
    root.children = [Node("good"), Node("bad"), Node("good too")]
    for child in root.children:
        child.parent = root
    with caplog.at_level(logging.WARNING, logger="stores.sql"):
        root_id = store.save(root)
    bad_id = root.children[1].persistent_id
    rows = {row[0]: row[1:] for row in _rows(db_url, "SELECT id, label, kids, cls FROM store")}
    assert rows == {root_id: ("ROOT", 3, "_store_objects:Node"),
                    root.children[0].persistent_id: ("GOOD", 0, "_store_objects:Node"),
                    bad_id: (None, 0, "_store_objects:Node"),
                    root.children[2].persistent_id: ("GOOD TOO", 0, "_store_objects:Node")}
    warnings = [r for r in caplog.records if r.name == "stores.sql"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert "'label'" in message and bad_id in message and "no label for this one" in message
    reader = SqlStore(db_url)
    opened.append(reader)
    loaded = reader.load(root_id)
    assert [c.name for c in loaded.children] == ["good", "bad", "good too"]
    assert loaded.children[1].parent is loaded and loaded.children[1].persistent_id == bad_id


def test_extra_field_fixed_later_fills_the_column(db_url: str, opened: list[SqlStore],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The NULL is not sticky: the next save whose function succeeds writes the value."""
    store = SqlStore(db_url, extra_fields={sa.Column("label", sa.String(20)): _label})
    opened.append(store)
    node = Node("bad")
    with caplog.at_level(logging.WARNING, logger="stores.sql"):
        pid = store.save(node)
    assert _rows(db_url, "SELECT label FROM store") == [(None,)]
    node.name = "fixed"
    store.save(node)
    assert _rows(db_url, "SELECT id, label FROM store") == [(pid, "FIXED")]
    assert len([r for r in caplog.records if r.name == "stores.sql"]) == 1
