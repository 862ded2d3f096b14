"""Store implementations of gc3session, one module each.

* :mod:`gc3session.stores.filesystem` -- :class:`~gc3session.stores.filesystem.FilesystemStore`, a
  directory of record files (the embedded default);
* :mod:`gc3session.stores.sql` -- :class:`~gc3session.stores.sql.SqlStore`, SQLAlchemy 2 Core over
  SQLite, PostgreSQL or MySQL.

They are registered with :func:`gc3session.make_store` as import strings, so
importing one does not import the other.
"""
