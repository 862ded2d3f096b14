"""Counters for the reliability report (``python -m benchmarks.reliability``).

Tests call :func:`record` with what they did (faults injected, crashes
survived, fuzz cases, operations verified...).  Nothing happens unless the
environment variable ``GC3SESSION_REPORT`` names a file: then one JSON line
per call is appended to it (a single short ``O_APPEND`` write, so parallel
test processes do not interleave).
"""

from __future__ import annotations

import json
import os


def record(**counts: float) -> None:
    """Add ``counts`` to the report, if one is being collected."""
    path = os.environ.get("GC3SESSION_REPORT")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(counts) + "\n").encode())
    finally:
        os.close(fd)
