"""Peek: read only the metadata of a checkpoint, format by format.

Peeking is how a launcher lists the sessions it could resume without
rebuilding any (see :mod:`gc3session.plainbox.discovery`): the envelope and
the metadata are decoded and checked, nothing else.  As in PlainBox, each
format has its helper (``SessionPeekHelper1`` to ``SessionPeekHelper11``,
``peek_json(json_repr)``) and :class:`SessionPeekHelper` decodes the bytes and
hands the document to the helper of its version.  They are importable from
:mod:`gc3session.plainbox.resume` too, where PlainBox defines them.
"""

from __future__ import annotations

from typing import Any

from .envelope import check_format, check_root, loads
from .metadata import SessionMetaData
from .parse import parse_metadata


class FormatPeekHelper:
    """Reads only the metadata of a checkpoint of format :attr:`VERSION`.

    The base of ``SessionPeekHelper1..11``.
    """

    VERSION = 0

    def peek_json(self, json_repr: Any) -> SessionMetaData:
        """The metadata of a decoded checkpoint.

        :raises SessionResumeError: (a subclass) if it cannot be read or is of another format.
        """
        return parse_metadata(self.VERSION, check_format(json_repr, self.VERSION, type(self).__name__))


class SessionPeekHelper1(FormatPeekHelper):
    """Peeks at format 1."""

    VERSION = 1


class SessionPeekHelper2(FormatPeekHelper):
    """Peeks at format 2."""

    VERSION = 2


class SessionPeekHelper3(FormatPeekHelper):
    """Peeks at format 3."""

    VERSION = 3


class SessionPeekHelper4(FormatPeekHelper):
    """Peeks at format 4."""

    VERSION = 4


class SessionPeekHelper5(FormatPeekHelper):
    """Peeks at format 5."""

    VERSION = 5


class SessionPeekHelper6(FormatPeekHelper):
    """Peeks at format 6."""

    VERSION = 6


class SessionPeekHelper7(FormatPeekHelper):
    """Peeks at format 7."""

    VERSION = 7


class SessionPeekHelper8(FormatPeekHelper):
    """Peeks at format 8."""

    VERSION = 8


class SessionPeekHelper9(FormatPeekHelper):
    """Peeks at format 9."""

    VERSION = 9


class SessionPeekHelper10(FormatPeekHelper):
    """Peeks at format 10."""

    VERSION = 10


class SessionPeekHelper11(FormatPeekHelper):
    """Peeks at format 11."""

    VERSION = 11


#: The peek helper of each format version.
PEEK_HELPERS: dict[int, type[FormatPeekHelper]] = {
    helper.VERSION: helper for helper in (
        SessionPeekHelper1, SessionPeekHelper2, SessionPeekHelper3, SessionPeekHelper4,
        SessionPeekHelper5, SessionPeekHelper6, SessionPeekHelper7, SessionPeekHelper8,
        SessionPeekHelper9, SessionPeekHelper10, SessionPeekHelper11)}


class SessionPeekHelper:
    """Reads only the metadata of a checkpoint of any format (cheap: no job is matched or rebuilt)."""

    def peek(self, data: bytes) -> SessionMetaData:
        """The metadata saved in ``data``.

        :raises SessionResumeError: (a subclass) if the envelope or the
            metadata cannot be read.
        """
        return self.peek_json(loads(data))

    def peek_json(self, json_repr: Any) -> SessionMetaData:
        """The metadata of a decoded checkpoint of any supported format."""
        version, _ = check_root(json_repr)
        return PEEK_HELPERS[version]().peek_json(json_repr)


__all__ = ["FormatPeekHelper", "PEEK_HELPERS", "SessionPeekHelper", "SessionPeekHelper1",
           "SessionPeekHelper2", "SessionPeekHelper3", "SessionPeekHelper4", "SessionPeekHelper5",
           "SessionPeekHelper6", "SessionPeekHelper7", "SessionPeekHelper8", "SessionPeekHelper9",
           "SessionPeekHelper10", "SessionPeekHelper11"]
