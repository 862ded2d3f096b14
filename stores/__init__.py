"""Store implementations of gc3session, one module each.

* :mod:`stores.filesystem` -- :class:`~stores.filesystem.FilesystemStore`, a
  directory of record files (the embedded default);
* :mod:`stores.sql` -- :class:`~stores.sql.SqlStore`, SQLAlchemy 2 Core over
  SQLite, PostgreSQL or MySQL.

They are registered with :func:`gc3session.make_store` as import strings, so
importing one does not import the other.
"""
