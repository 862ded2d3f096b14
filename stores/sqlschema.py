"""The tables of an SQL store, and how they are created and migrated.

Schema (version 1)
------------------
``<table>`` (default ``store``)::

    id     VARCHAR(255) PRIMARY KEY   -- "Prefix.N"
    data   BLOB                       -- the record bytes (gc3session.persistence.record)
    state  VARCHAR(128) NULL, indexed -- execution.state of tasks, for plain SQL
    cls    VARCHAR(255)               -- module:qualname of the object's class
    summary TEXT NULL                 -- the JSON summary of the record's header
    ...    one column per ``extra_fields`` entry

``gc3session_meta``, shared by every store table of a database::

    key    VARCHAR(255) PRIMARY KEY   -- "schema:<table>", "next_id:<table>"
    value  BIGINT

``schema:<table>`` holds the schema version so that later versions can
migrate (a table of a newer version is refused, not written over);
``next_id:<table>`` is the id counter, advanced by an ``UPDATE`` in its own
transaction (the row lock makes it unique across processes and hosts).  A
counter row that is missing for a table that already holds records starts
above the highest id in it, so ids are never handed out twice.  SQLite
table names are case-insensitive, so its keys use the lower-case name: the
tables ``Runs`` and ``runs`` are one table with one counter.  Missing
``extra_fields`` columns, and ``summary`` in tables made before it existed,
are added with ``ALTER TABLE`` (rows written before have it NULL: their
summaries are read from their record headers).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection

from gc3session.exceptions import InvalidTableName, LoadError, StoreUnavailableError
from gc3session.persistence.idfactory import is_valid_id, seqno_of

SCHEMA_VERSION = 1
META_TABLE = "gc3session_meta"
DEFAULT_TABLE = "store"
#: PostgreSQL advisory lock key taken while creating or migrating tables.
_SCHEMA_LOCK_KEY = 0x6763_3373  # "gc3s"
_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: The columns every store table has (extra fields may not take these names).
BUILT_IN_COLUMNS = ("id", "data", "state", "cls", "summary")


def validate_table_name(name: Any) -> str:
    """Accept only plain identifiers as table names (no quoting tricks, no injection).

    >>> validate_table_name("runs_2024")
    'runs_2024'
    >>> validate_table_name("x; DROP TABLE store")
    Traceback (most recent call last):
    ...
    gc3session.exceptions.InvalidTableName: invalid SQL table name 'x; DROP TABLE store': ...
    """
    # The meta table's name is refused in any case: SQLite and MySQL fold case.
    if not isinstance(name, str) or not _TABLE_RE.fullmatch(name) or name.lower() == META_TABLE:
        raise InvalidTableName(
            f"invalid SQL table name {name!r}: use letters, digits and _"
            " (at most 63, not starting with a digit)", table=name)
    return name


def define_tables(table_name: str, extra_columns: Iterable[sa.Column]) -> tuple[sa.Table, sa.Table]:  # type: ignore[type-arg]
    """The store table (with copies of ``extra_columns``) and the meta table."""
    metadata = sa.MetaData()
    table = sa.Table(
        table_name, metadata,
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("data", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"),
                  nullable=False),
        sa.Column("state", sa.String(128), nullable=True, index=True),
        sa.Column("cls", sa.String(255), nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        *[column._copy() for column in extra_columns],
    )
    meta = sa.Table(META_TABLE, metadata,
                    sa.Column("key", sa.String(255), primary_key=True),
                    sa.Column("value", sa.BigInteger, nullable=False))
    return table, meta


def set_up(conn: Connection, table: sa.Table, meta: sa.Table, *, meta_name: str, create: bool,
           readonly: bool, location: str) -> None:
    """Create what is missing, migrate an older table, refuse a newer one (one transaction).

    :param meta_name: the table's name in the meta rows (lower case on SQLite).
    :param create: create the tables if missing (else a missing table raises).
    :param readonly: check only: create, migrate and insert nothing.
    :param location: where the table is, for messages.
    :raises LoadError: for a missing table with ``create=False``.
    :raises StoreUnavailableError: for a table of a newer schema version.
    """
    if conn.dialect.name == "postgresql" and not readonly:
        # two processes creating the tables at once would clash; SQLite's
        # BEGIN IMMEDIATE already serializes them
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
    inspector = sa.inspect(conn)
    # has_table() follows the database's own rules for names (SQLite:
    # case-insensitive), where a lookup in get_table_names() would not.
    had_table = inspector.has_table(table.name)
    had_meta = inspector.has_table(META_TABLE)
    if not had_table or (not had_meta and not readonly):
        if not create:
            raise LoadError(f"no table {table.name} in {location} (create=False)",
                            location=location, cause="missing table")
        assert table.metadata is not None
        table.metadata.create_all(conn, checkfirst=True)
    if had_table and not readonly:
        # Schema migration: a table made by an earlier version, by GC3Pie
        # (no ``cls``) or without a newly declared extra field.
        have = {c["name"].lower() for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name.lower() not in have:
                ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
                conn.exec_driver_sql(
                    f"ALTER TABLE {conn.dialect.identifier_preparer.quote(table.name)}"
                    f" ADD COLUMN {ddl}")
    if had_meta:
        version = conn.execute(sa.select(meta.c.value)
                               .where(meta.c.key == f"schema:{meta_name}")).scalar()
        if version is not None and version > SCHEMA_VERSION:
            raise StoreUnavailableError(
                f"{location} has schema version {version}; this gc3session reads"
                f" version {SCHEMA_VERSION} and older: upgrade gc3session", table=table.name)
    if not readonly:
        _insert_meta_rows(conn, table, meta, meta_name, had_table)


def _insert_meta_rows(conn: Connection, table: sa.Table, meta: sa.Table, meta_name: str,
                      had_table: bool) -> None:
    """Insert the schema and counter rows that are missing.

    A missing counter of a table that already has records (a table copied
    in, a meta table dropped) starts above its highest id number.
    """
    key = f"schema:{meta_name}"
    if conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).first() is None:
        conn.execute(meta.insert().values(key=key, value=SCHEMA_VERSION))
    key = f"next_id:{meta_name}"
    if conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).first() is None:
        first = 1
        if had_table:
            seqnos = [seqno_of(pid) for (pid,) in conn.execute(sa.select(table.c.id))
                      if is_valid_id(pid)]
            first = max(seqnos, default=0) + 1
        conn.execute(meta.insert().values(key=key, value=first))


__all__ = ["BUILT_IN_COLUMNS", "DEFAULT_TABLE", "META_TABLE", "SCHEMA_VERSION", "define_tables",
           "set_up", "validate_table_name"]
