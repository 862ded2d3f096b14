"""The logs of a filesystem store: every record's state (``.states``) and summary (``.summaries``).

Both logs let tools list a store without reading, let alone unpickling,
its records: ``gsession stats`` reads the small state log, ``gsession list``
and ``report`` the summary log too.  Both are caches of what the record
headers say (:mod:`gc3session.persistence.record`), appended while the
store's lock is held (so their order matches the renames) and never fsynced
on their own.

Format
------
One line per event; the last line about an id wins.  ``.states``:
``<id> <state>``, the state being the task state of the record's header,
``-`` for an object that has none, ``!`` for a removed record and ``?`` for
a record being written (see below).  ``.summaries``: ``<id> <class>
<summary>``, the class and the JSON summary of the record's header, or
``<id> !`` for a removed record.  A compacted log starts with a
``#<size> <highest>`` line.

Every write appends its lines to the state log twice: ``<id> ?`` for each record
*before* the renames (or unlinks), and ``<id> <state>`` (``<id> !`` for a
removal) after them.  A writer killed in between leaves ``?`` as the last
word about the ids of that batch, so the log never silently lags behind
the records: a reader takes the state of such an id from its record header
(a missing record: removed), and the next writer appends what it found, so
the log reconciles itself without any repair.  The summary log is written
after the renames only: an id the state log calls uncertain has its
summary read from its record as well.  (On ext4 in ordered mode the
``?`` lines, written before the renames, reach the disk no later than the
renames do; on other file systems a power cut can still leave the log
behind, which ``gsession fsck`` reports and repairs from the records.)

Each log compacts itself: when it has grown past twice its size after the
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
SUMMARIES_FILE = ".summaries"
#: The state of a removed record.
REMOVED = "!"
#: The state of a record a writer is about to rename or unlink.
WRITING = "?"
#: A log is compacted when it grows past twice its last compacted size plus this.
COMPACT_MIN_BYTES = 64 << 10
#: A state log whose every line is "<id> <state>" (anything else takes the line-by-line fold).
_WELL_FORMED = re.compile(rf"(?:{ID_PATTERN} [!-~]+\n)*".encode())
#: The id at the start of each line.
_LOGGED_ID = re.compile(rf"^({ID_PATTERN}) ".encode(), re.MULTILINE)
#: A line of the summary log: id, then class and summary, or "!".
_SUMMARY_LINE = re.compile(rf"^({ID_PATTERN}) (?:(!)|([!-~]+) (\{{[^\n]*))$".encode(),
                           re.MULTILINE)
#: A line of the summary log that says a record was removed.
_REMOVED_LINE = re.compile(rf"^{ID_PATTERN} !$".encode(), re.MULTILINE)
_HEADER = re.compile(rb"#([0-9]{1,18})(?: ([0-9]{1,19}))?\n")

#: ``state_of(id)`` reads the state of a record's header; raises
#: :class:`RecordNotFoundError` if there is no record, another
#: :class:`LoadError` or ``ValueError`` if it cannot be read.
StateOf = Callable[[str], "str | None"]
#: ``(class, summary JSON)`` of a record, in the summary log.
Summary = tuple[str, bytes]


class _Log:
    """What both logs share: appending, compaction when grown, rewriting with a header.

    Every method that writes expects the store's lock to be held.
    """

    def __init__(self, path: str, *, durable: bool, next_id: Callable[[], "int | None"]) -> None:
        self.path = path
        self.durable = durable
        self._next_id = next_id
        self._compact_at = -1
        #: ``(inode, size)`` where this handle's last append left the log (ending a line)
        self._end: tuple[int, int] | None = None

    def _read(self) -> bytes | None:
        """The complete lines of the log (a torn last line left out); None if there is none."""
        try:
            data = fsio.read_bytes(self.path)
        except FileNotFoundError:
            return None
        except OSError as err:  # not a directory, a symlink (ELOOP), not a regular file...
            raise LoadError(f"cannot read the log {self.path}: {err.strerror}",
                            location=self.path, cause=str(err)) from err
        return data[data.find(b"\n") + 1 if data.startswith(b"#") else 0:data.rfind(b"\n") + 1]

    def _append(self, lines: bytes) -> None:
        """Append ``lines``; compact the log when it has grown enough.

        The log is a cache, never fsynced on its own: an unterminated last
        line (a torn append) is cut off first, so new lines never glue onto it.
        (Its tail is not read when the log is as this handle's last append left
        it: the same file, grown by nobody since.)
        """
        if not lines:
            return
        self._end = fsio.append(self.path, lines, durable=False, cut_tail=_any_tail,
                                clean_end=self._end)
        if self._compact_at < 0:
            self._compact_at = 2 * _compaction_header(_read_head(self.path))[0] + COMPACT_MIN_BYTES
        if self._end[1] > self._compact_at:
            self._compact()

    def _compact(self) -> None:
        raise NotImplementedError

    def _rewrite(self, ids: list[str], body: bytes) -> None:
        """Replace the log by ``body`` (the lines of ``ids``), headed by ``#<size> <highest>``.

        The highest id number is the log's and the counter's, so that a
        counter rebuilt later stays above removed ids the new log no longer
        names.
        """
        highest = max([seqno_of(pid) for pid in ids]
                      + [_compaction_header(_read_head(self.path))[1], (self._next_id() or 1) - 1])
        fsio.atomic_write(self.path, b"#%d %d\n" % (len(body), highest) + body, durable=self.durable)
        self._compact_at = 2 * len(body) + COMPACT_MIN_BYTES
        self._end = None


class StateLog(_Log):
    """The ``.states`` file in ``directory``.

    :param state_of: reads a record's state (see :data:`StateOf`), to settle
        ids a stopped writer left marked.
    :param next_id: the store's counter (the next id number), or None if
        unknown; kept in the compaction header.
    """

    def __init__(self, directory: str, *, durable: bool, state_of: StateOf,
                 next_id: Callable[[], "int | None"]) -> None:
        super().__init__(os.path.join(directory, STATES_FILE), durable=durable, next_id=next_id)
        self._state_of = state_of

    def fold(self) -> dict[str, str | None] | None:
        """``{id: state}`` (``?`` left where a writer stopped); None if there is no log."""
        body = self._read()
        if body is None:
            return None
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
        if WRITING not in states.values():  # the usual case, answered by one scan in C
            return []
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

    def append(self, pairs: Iterable[tuple[str, str | None]]) -> None:
        """Append ``<id> <state>`` lines (``-`` for an object without a state)."""
        self._append(_state_lines(pairs))

    def rewrite(self, pairs: Iterable[tuple[str, str | None]]) -> None:
        """Replace the log by ``pairs`` (one line per record)."""
        pairs = list(pairs)
        self._rewrite([pid for pid, _ in pairs], _state_lines(pairs))

    def _compact(self) -> None:
        states = self.fold() or {}
        self.settle(states, self.unsure(states))
        self.rewrite(states.items())


class SummaryLog(_Log):
    """The ``.summaries`` file in ``directory``: each record's class and summary."""

    def __init__(self, directory: str, *, durable: bool,
                 next_id: Callable[[], "int | None"]) -> None:
        super().__init__(os.path.join(directory, SUMMARIES_FILE), durable=durable, next_id=next_id)

    def fold(self) -> dict[str, Summary]:
        """``{id: (class, summary JSON)}`` of every record the log names (empty if there is none)."""
        body = self._read() or b""
        lines = _SUMMARY_LINE.findall(body)
        if lines and (b" !\n" not in body or _REMOVED_LINE.search(body) is None):
            # Nothing removed: the last line of each id wins, as dict() makes it, and the
            # ids and classes are decoded all at once (newlines cannot occur in them).
            pids, _, classes, summaries = zip(*lines)
            return dict(zip(b"\n".join(pids).decode("ascii").split("\n"),
                            zip(b"\n".join(classes).decode("ascii").split("\n"), summaries)))
        folded: dict[str, Summary] = {}
        for pid, removed, cls, summary in lines:
            if removed:
                folded.pop(pid.decode("ascii"), None)
            else:
                folded[pid.decode("ascii")] = (cls.decode("ascii"), summary)
        return folded

    def append(self, entries: Iterable[tuple[str, "Summary | None"]]) -> None:
        """Append a line per ``(id, (class, summary))``; ``(id, None)`` for a removed record."""
        self._append(_summary_lines(entries))

    def rewrite(self, entries: dict[str, Summary]) -> None:
        """Replace the log by ``entries`` (one line per record)."""
        self._rewrite(list(entries), _summary_lines(entries.items()))

    def _compact(self) -> None:
        self.rewrite(self.fold())


def _any_tail(_tail: bytes) -> bool:
    """Every unterminated last line of a log is the remains of an interrupted append."""
    return True


def _state_lines(pairs: Iterable[tuple[str, str | None]]) -> bytes:
    """``<id> <state>`` lines (``-`` for an object without a state)."""
    return b"".join(b"%s %s\n" % (pid.encode(), (state or "-").encode()) for pid, state in pairs)


def _summary_lines(entries: Iterable[tuple[str, "Summary | None"]]) -> bytes:
    return b"".join(b"%s !\n" % pid.encode() if entry is None
                    else b"%s %s %s\n" % (pid.encode(), entry[0].encode(), entry[1])
                    for pid, entry in entries)


def _read_head(path: str) -> bytes:
    """The first bytes of a log (where a compaction header is), or b"" if unreadable."""
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


__all__ = ["COMPACT_MIN_BYTES", "REMOVED", "STATES_FILE", "SUMMARIES_FILE", "StateLog",
           "Summary", "SummaryLog", "WRITING"]
