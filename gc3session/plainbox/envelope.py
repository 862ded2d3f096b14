"""The checkpoint envelope: gzip of UTF-8 JSON ``{"session": {...}, "version": N}``.

Writing follows PlainBox byte for byte up to gzip's header: the JSON has
sorted keys, ``","``/``":"`` separators, no indentation and raw (not
escaped) non-ASCII characters.  Reading turns every way the bytes can fail
to decode -- not gzip, a truncated or damaged deflate stream, invalid UTF-8,
invalid JSON, a root that is not an object, a missing or unusable version --
into a :class:`~gc3session.plainbox.errors.SessionResumeError`; the low-level
exception is its ``__cause__``.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

from ..exceptions import InvalidType
from .errors import CorruptedSessionError, IncompatibleSessionError, MalformedSessionError

#: The format version written by :func:`encode`.
CURRENT_VERSION = 11
#: The versions that can be read.
SUPPORTED_VERSIONS = range(1, CURRENT_VERSION + 1)
#: gzip level of checkpoints: checksums (hex) dominate and do not compress
#: much further at 9, which costs several times the CPU of 6.
COMPRESS_LEVEL = 6

#: The metadata fields of each version: (first version, key, accepted JSON
#: types, may be null, required).  PlainBox wrote version 6 both before and
#: after ``custom_joblist``/``rejected_jobs`` were added, so those two are
#: read when present.
METADATA_FIELDS: tuple[tuple[int, str, tuple[type, ...], bool, bool], ...] = (
    (1, "title", (str,), True, True),
    (1, "flags", (list,), False, True),
    (1, "running_job_name", (str,), True, True),
    (2, "app_blob", (str,), True, True),
    (3, "app_id", (str,), True, True),
    (6, "custom_joblist", (bool,), False, False),
    (6, "rejected_jobs", (list,), False, False),
    (7, "last_job_start_time", (float, int), True, True),
    (11, "remaining_todo_jobs", (bool,), False, True),
)


def encode(session: dict[str, Any], version: int = CURRENT_VERSION) -> bytes:
    """The checkpoint bytes of a ``session`` object."""
    text = json.dumps({"session": session, "version": version}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=COMPRESS_LEVEL)


def loads(data: bytes) -> Any:
    """The JSON document inside checkpoint bytes, not yet checked.

    :raises InvalidType: if ``data`` is not bytes.
    :raises CorruptedSessionError: if the bytes do not decode (``b''`` included).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidType(f"checkpoint data must be bytes, not {type(data).__name__}")
    try:
        raw = gzip.decompress(bytes(data))
    except (OSError, EOFError, zlib.error) as err:
        raise CorruptedSessionError(f"Cannot decompress session data ({err or type(err).__name__})",
                                    cause=repr(err)) from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorruptedSessionError(f"Cannot decode session text ({err})", cause=repr(err)) from err
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise CorruptedSessionError(f"Cannot interpret session JSON ({err})", cause=repr(err)) from err


def check_root(root: Any) -> tuple[int, dict[str, Any]]:
    """``(version, session object)`` of a decoded checkpoint document.

    Only the envelope is checked here; what the session object must hold
    depends on the version and is checked by :mod:`gc3session.plainbox.parse`.

    :raises IncompatibleSessionError: for a version outside 1 to 11.
    :raises MalformedSessionError: if the root or ``session`` is not an object
        or a key is missing (both of the above).
    """
    if not isinstance(root, dict):
        raise MalformedSessionError(f"Value of object is of incorrect type {type(root).__name__}")
    if "version" not in root:
        raise MalformedSessionError("Missing value for key 'version'")
    version = root["version"]
    if version is None:
        raise CorruptedSessionError("Value of key 'version' cannot be None")
    if isinstance(version, bool) or not isinstance(version, int) or version not in SUPPORTED_VERSIONS:
        raise IncompatibleSessionError(f"Unsupported version {version!r}", version=version)
    if "session" not in root:
        raise MalformedSessionError("Missing value for key 'session'", version=version)
    session = root["session"]
    if not isinstance(session, dict):
        raise MalformedSessionError(
            f"Value of key 'session' is of incorrect type {type(session).__name__}", version=version)
    return version, session


def check_format(root: Any, expected: int, reader: str) -> dict[str, Any]:
    """The ``session`` object of ``root``, a document that must be of format ``expected``.

    :param reader: who asks (named in the error).
    :raises IncompatibleSessionError: if the document is of another format
        (and whatever :func:`check_root` raises).
    """
    version, session = check_root(root)
    if version != expected:
        raise IncompatibleSessionError(f"{reader} reads format {expected}, not {version}", version=version)
    return session


def decode(data: bytes) -> tuple[int, dict[str, Any]]:
    """Unpack checkpoint bytes into ``(version, session object)``: :func:`loads`, then :func:`check_root`."""
    return check_root(loads(data))


__all__ = ["COMPRESS_LEVEL", "CURRENT_VERSION", "METADATA_FIELDS", "SUPPORTED_VERSIONS",
           "check_format", "check_root", "decode", "encode", "loads"]
