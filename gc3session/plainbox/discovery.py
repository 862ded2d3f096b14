"""Finding the sessions an application can resume, by peeking at their metadata.

A launcher starting up asks which of its sessions were interrupted: those
of its ``app_id`` that still carry the ``incomplete`` flag.  Each storage's
checkpoint is only *peeked* (envelope and metadata), never rebuilt, so the
listing is cheap and a damaged or foreign session is skipped, not fatal.
"""

from __future__ import annotations

import logging
from typing import Iterator

from .errors import SessionResumeError
from .metadata import SessionMetaData
from .resume import SessionPeekHelper
from .storage import SessionStorage, SessionStorageRepository

logger = logging.getLogger(__name__)


def iter_session_metadata(repo: SessionStorageRepository | None = None
                          ) -> Iterator[tuple[SessionStorage, SessionMetaData]]:
    """``(storage, metadata)`` of every readable checkpoint of ``repo``, youngest first.

    Storages never checkpointed are skipped; unreadable or undecodable ones
    are skipped with a warning naming them.
    """
    repo = repo if repo is not None else SessionStorageRepository()
    peek = SessionPeekHelper()
    for storage in repo.get_storage_list():
        try:
            data = storage.load_checkpoint()
            if not data:
                continue
            yield storage, peek.peek(data)
        except (OSError, SessionResumeError) as err:
            logger.warning("skipping session %s: %s", storage.location, err)


def get_resumable_sessions(app_id: str | None, repo: SessionStorageRepository | None = None
                           ) -> list[tuple[SessionStorage, SessionMetaData]]:
    """The sessions of application ``app_id`` flagged ``incomplete``, youngest first."""
    return [(storage, meta) for storage, meta in iter_session_metadata(repo)
            if meta.app_id == app_id and SessionMetaData.FLAG_INCOMPLETE in meta.flags]


__all__ = ["get_resumable_sessions", "iter_session_metadata"]
