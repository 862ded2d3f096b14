"""The state log of a filesystem store (``.states``): every record's state, without unpickling.

Format
------
One line per event, ``<id> <state>``; the last line about an id wins.  The
state is the task state of the record's header, ``-`` for an object that
has none, ``!`` for a removed record and ``?`` for a record being written
(see below).  A compacted log starts with a ``#<size> <highest>`` line.

``.states`` lists states without unpickling.  It is appended while the lock
is held, so its order matches the renames, and it is not fsynced on its
own.  Every write appends its lines twice: ``<id> ?`` for each record
*before* the renames (or unlinks), and ``<id> <state>`` (``<id> !`` for a
removal) after them.  A writer killed in between leaves ``?`` as the last
word about the ids of that batch, so the log never silently lags behind
the records: a reader takes the state of such an id from its record header
(a missing record: removed), and the next writer appends what it found, so
the log reconciles itself without any repair.  (On ext4 in ordered mode the
``?`` lines, written before the renames, reach the disk no later than the
renames do; on other file systems a power cut can still leave the log
behind, which ``gsession fsck`` reports and repairs from the records.)

The log compacts itself: when it has grown past twice its size after the
last compaction (plus 64 KiB), the writer holding the lock rewrites it with
one line per record.  A compacted log starts with ``#<size> <highest>``: its
size then, so every handle (also short-lived ones) knows when to compact
again, and the highest id number it had seen, so that a counter rebuilt from
the log never hands out the id of a record removed before the compaction.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Iterable

from gc3session import fsio
from gc3session.exceptions import LoadError, RecordNotFoundError
from gc3session.persistence.idfactory import ID_PATTERN, is_valid_id, seqno_of

STATES_FILE = ".states"
#: The state of a removed record.
REMOVED = "!"
#: The state of a record a writer is about to rename or unlink.
WRITING = "?"
#: The log is compacted when it grows past twice its last compacted size plus this.
COMPACT_MIN_BYTES = 64 << 10
#: A log whose every line is "<id> <state>" (anything else takes the line-by-line fold).
_WELL_FORMED = re.compile(rf"(?:{ID_PATTERN} [!-~]+\n)*".encode())
#: The id at the start of each line.
_LOGGED_ID = re.compile(rf"^({ID_PATTERN}) ".encode(), re.MULTILINE)
_HEADER = re.compile(rb"#([0-9]{1,18})(?: ([0-9]{1,19}))?\n")

#: ``state_of(id)`` reads the state of a record's header; raises
#: :class:`RecordNotFoundError` if there is no record, another
#: :class:`LoadError` or ``ValueError`` if it cannot be read.
StateOf = Callable[[str], "str | None"]


class StateLog:
    """The ``.states`` file in ``directory``.

    :param state_of: reads a record's state (see :data:`StateOf`), to settle
        ids a stopped writer left marked.
    :param next_id: the store's counter (the next id number), or None if
        unknown; kept in the compaction header.

    Every method that writes expects the store's lock to be held.
    """

    def __init__(self, directory: str, *, durable: bool, state_of: StateOf,
                 next_id: Callable[[], "int | None"]) -> None:
        self.path = os.path.join(directory, STATES_FILE)
        self.durable = durable
        self._state_of = state_of
        self._next_id = next_id
        self._compact_at = -1

    # --- reading -----------------------------------------------------------------
    def fold(self) -> dict[str, str | None] | None:
        """``{id: state}`` (``?`` left where a writer stopped); None if there is no log."""
        try:
            data = fsio.read_bytes(self.path)
        except FileNotFoundError:
            return None
        except OSError as err:  # not a directory, a symlink (ELOOP), not a regular file...
            raise LoadError(f"cannot read the state log {self.path}: {err.strerror}",
                            location=self.path, cause=str(err)) from err
        body = data[data.find(b"\n") + 1 if data.startswith(b"#") else 0:data.rfind(b"\n") + 1]
        if _WELL_FORMED.fullmatch(body):
            # The common case, checked by one regex pass: fold the "<id> <state>"
            # pairs in C (the last line of an id wins) instead of line by line.
            words = iter(body.decode("ascii").split())
            folded: dict[str, str | None] = dict(zip(words, words))
            if b" " + REMOVED.encode() + b"\n" in body or b" -\n" in body:
                folded = {pid: None if state == "-" else state
                          for pid, state in folded.items() if state != REMOVED}
            return folded
        states: dict[str, str | None] = {}
        for line in body.split(b"\n")[:-1]:
            pid, _, state = line.decode("ascii", "replace").partition(" ")
            if state == REMOVED:
                states.pop(pid, None)
            elif is_valid_id(pid) and state:
                states[pid] = None if state == "-" else state
        return states

    @staticmethod
    def unsure(states: dict[str, str | None]) -> list[str]:
        """The ids of ``states`` that a writer marked and then stopped."""
        return [pid for pid, state in states.items() if state == WRITING]

    def settle(self, states: dict[str, str | None],
               unsure: list[str]) -> list[tuple[str, str | None]]:
        """Put in ``states`` what the records of the ``unsure`` ids say; return those lines.

        A missing record was removed; an unreadable one is left out (its
        state is unknown, and ``gsession fsck`` says why).
        """
        found: list[tuple[str, str | None]] = []
        for pid in unsure:
            try:
                state = self._state_of(pid)
            except RecordNotFoundError:
                states.pop(pid, None)
                found.append((pid, REMOVED))
                continue
            except (LoadError, ValueError):
                states.pop(pid, None)
                continue
            states[pid] = state
            found.append((pid, state))
        return found

    def highest_id_number(self) -> int:
        """The highest id number the log names or its last compaction had seen (0 if none)."""
        try:
            data = fsio.read_bytes(self.path)
        except OSError:
            return 0
        named = [seqno_of(pid.decode("ascii")) for pid in _LOGGED_ID.findall(data)]
        return max([*named, _compaction_header(data[:64])[1]])

    # --- writing (the store's lock held) -----------------------------------------
    def append(self, pairs: Iterable[tuple[str, str | None]]) -> None:
        """Append ``<id> <state>`` lines; compact the log when it has grown enough.

        The log is a cache, never fsynced on its own: an unterminated last
        line (a torn append) is cut off first, so new lines never glue onto it.
        """
        lines = _lines(pairs)
        if not lines:
            return
        fsio.append(self.path, lines, durable=False, cut_tail=lambda _tail: True)
        if self._compact_at < 0:
            self._compact_at = 2 * _compaction_header(_read_head(self.path))[0] + COMPACT_MIN_BYTES
        if os.stat(self.path).st_size > self._compact_at:
            states = self.fold() or {}
            self.settle(states, self.unsure(states))
            self.rewrite(states.items())

    def rewrite(self, pairs: Iterable[tuple[str, str | None]]) -> None:
        """Replace the log by ``pairs``, headed by ``#<size> <highest id number>``.

        The highest number is the log's and the counter's, so that a counter
        rebuilt later stays above removed ids the new log no longer names.
        """
        pairs = list(pairs)
        highest = max([seqno_of(pid) for pid, _ in pairs]
                      + [_compaction_header(_read_head(self.path))[1], (self._next_id() or 1) - 1])
        body = _lines(pairs)
        fsio.atomic_write(self.path, b"#%d %d\n" % (len(body), highest) + body, durable=self.durable)
        self._compact_at = 2 * len(body) + COMPACT_MIN_BYTES


def _lines(pairs: Iterable[tuple[str, str | None]]) -> bytes:
    """``<id> <state>`` lines (``-`` for an object without a state)."""
    return b"".join(b"%s %s\n" % (pid.encode(), (state or "-").encode()) for pid, state in pairs)


def _read_head(path: str) -> bytes:
    """The first bytes of the log (where a compaction header is), or b"" if unreadable."""
    try:
        fd = fsio.open_regular(path, os.O_RDONLY)
    except OSError:
        return b""
    try:
        return os.pread(fd, 64, 0)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _compaction_header(head: bytes) -> tuple[int, int]:
    """``(size, highest id number)`` of a ``#<size> <highest>`` header line, else zeros."""
    match = _HEADER.match(head)
    if match is None:
        return 0, 0
    return int(match[1]), int(match[2] or 0)


__all__ = ["COMPACT_MIN_BYTES", "REMOVED", "STATES_FILE", "StateLog", "WRITING"]
