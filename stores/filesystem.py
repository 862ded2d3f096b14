"""A store that keeps one record file per object in a directory.

On-disk layout (format 1)
-------------------------
::

    <directory>/
        .lock          empty; flock()ed while allocating ids and publishing
        .next_id       the next free sequence number, as decimal text
        .states        state log: "<id> <state>" lines, the last line of an
                       id wins ("!": removed, "?": being written; see below)
        <shard>/<id>   one record per object (format: serialization module)

``<shard>`` is the sequence number divided by 1000, so a directory never
holds more than 1000 records and ``fsync`` of a directory stays cheap at
10^6 records.  Ids contain no path separators (they are validated as
``Prefix.N``), so a record name cannot escape the store.

Crash safety
------------
A record is written to a temporary file in its shard, fsynced, renamed over
the old record, and the shard directory is fsynced: a crash leaves the old or
the new record, never a torn one.  ``.next_id`` is replaced the same way
*before* any id of a new block is handed out, so ids are never reused.

The state log
-------------
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

Several processes (and hosts sharing the directory over a file system with
working ``flock``) may use one store: ids come from the locked counter, and
each record file is replaced atomically (last writer wins).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from typing import Any, ContextManager, Iterable

from gc3session import fsio, locking
from gc3session.exceptions import (
    CorruptRecordError,
    IdAllocationError,
    InvalidValue,
    LoadError,
    NotRegularFileError,
    RecordNotFoundError,
    StoreWriteError,
)
from gc3session.persistence.idfactory import ID_PATTERN, IdFactory, is_valid_id, seqno_of
from gc3session.persistence.record import Record, parse_header
from gc3session.persistence.recordstore import RecordStore
from gc3session.persistence.store import Finding, tmp_file_findings
from gc3session.persistence.url import StoreUrl

SHARD_SIZE = 1000
LOCK_FILE = ".lock"
COUNTER_FILE = ".next_id"
STATES_FILE = ".states"
_REMOVED = "!"
_WRITING = "?"
_COMPACT_MIN_BYTES = 64 << 10
#: A state log whose every line is "<id> <state>" (anything else takes the line-by-line fold).
_WELL_FORMED_STATES = re.compile(rf"(?:{ID_PATTERN} [!-~]+\n)*".encode())
#: The id at the start of each line of the state log.
_LOGGED_ID = re.compile(rf"^({ID_PATTERN}) ".encode(), re.MULTILINE)
#: Batches at least this large are synced with one ``syncfs`` instead of an fsync per file.
GROUP_SYNC_MIN = 8
#: Batches touching at least this many shards commit their renames with one ``syncfs``.
GROUP_SYNC_SHARDS = 4


class FilesystemStore(RecordStore):
    """Save objects as record files under ``directory``.

    :param directory: the store directory (created at the first save, mode
        0700), or a ``file://`` URL.
    :param durable: fsync every write (default); False skips fsync.
    :param trusted: False restricts loads to allow-listed classes.
    :param readonly: every write raises; opening changes nothing.
    :param idfactory: hands out ids (default: the store's own counter).

    ``table_name``, ``extra_fields``, ``create`` and ``protocol`` are accepted
    and ignored: GC3Pie passes the SQL store's arguments to every store, and
    the pickle protocol of records is pinned.  Any other keyword argument is a
    ``TypeError`` (a misspelt ``readonly`` must not give a writable store).

    >>> import tempfile
    >>> from gc3session.persistence import Persistable
    >>> store = FilesystemStore(tempfile.mkdtemp() + "/jobs")
    >>> obj = Persistable(); obj.answer = 42
    >>> pid = store.save(obj)
    >>> store.invalidate_cache(); store.load(pid).answer
    42
    """

    def __init__(self, directory: "str | os.PathLike[str] | StoreUrl", *,
                 durable: bool = True, trusted: bool = True, readonly: bool = False,
                 idfactory: IdFactory | None = None, table_name: str | None = None,
                 extra_fields: Any = None, create: bool = True, protocol: Any = None) -> None:
        url = StoreUrl.parse(directory)
        if url.scheme != "file":
            raise InvalidValue(f"FilesystemStore needs a path or file:// URL, not {url}", url=str(url))
        super().__init__(url, durable=durable, trusted=trusted, readonly=readonly,
                         idfactory=idfactory)
        self.directory = url.path
        self._compact_at = -1

    # --- paths -------------------------------------------------------------
    def _shard(self, pid: str) -> str:
        # ids reaching here are validated "Prefix.N" strings
        return f"{self.directory}/{seqno_of(pid) // SHARD_SIZE}"

    def location(self, pid: str) -> str:
        """The path of the record file of ``pid``."""
        return f"{self._shard(pid)}/{pid}"

    def _ensure_directory(self) -> None:
        """Create the store directory if needed; racing creators all succeed.

        Creating is tried first and "already exists" is accepted when what
        exists is a directory, so two processes making their first save at
        the same moment never see each other's fresh directory as an error.
        """
        try:
            fsio.make_dirs(self.directory, durable=self.durable)
        except StoreWriteError as err:
            if err.context.get("errno") != errno.EEXIST:
                raise
            raise StoreWriteError(f"store path {self.directory} exists and is not a directory",
                                  path=self.directory, step="mkdir", errno=errno.EEXIST) from err

    def _locked(self) -> ContextManager[int]:
        """Hold the store's lock (``.lock``, an ``flock`` that dies with the process)."""
        self._ensure_directory()
        return locking.flocked(os.path.join(self.directory, LOCK_FILE))

    # --- primitives ----------------------------------------------------------
    def _allocate_ids(self, n: int) -> int:
        path = os.path.join(self.directory, COUNTER_FILE)
        with self._locked():
            try:
                text = fsio.read_bytes(path, on_missing=lambda: b"").decode("ascii").strip()
                first = int(text) if text else self._scan_next_seqno()
                if first < 1:
                    raise ValueError(f"{first} is not a positive number")
            except (OSError, ValueError, UnicodeDecodeError) as err:
                raise IdAllocationError(
                    f"cannot read id counter {path!r}: {err}; it must hold one decimal"
                    " number (delete it to have it rebuilt from the records and the"
                    " state log)",
                    path=path, step="read") from err
            fsio.atomic_write(path, b"%d\n" % (first + n), durable=self.durable)
        return first

    def _peek_counter(self) -> int | None:
        """The number in ``.next_id`` (read without the lock), or None if unreadable."""
        try:
            return int(fsio.read_bytes(os.path.join(self.directory, COUNTER_FILE)).strip())
        except (OSError, ValueError):
            return None

    def _scan_next_seqno(self) -> int:
        """First free number when the counter is missing.

        Above every record, above every id the state log still names (removed
        records included) and above the highest id its last compaction had
        seen, so ids of removed records are not handed out again.
        """
        seqnos = [seqno_of(pid) for pid in self._list_ids()]
        with contextlib.suppress(OSError):
            log = fsio.read_bytes(os.path.join(self.directory, STATES_FILE))
            seqnos.extend(seqno_of(pid.decode("ascii"))
                          for pid in _LOGGED_ID.findall(log))
            seqnos.append(_compaction_header(log[:64])[1])
        return max(seqnos, default=0) + 1

    def _write(self, records: list[Record]) -> None:
        if not records:
            return
        self._ensure_directory()
        # A batch is written unsynced and made durable by one syncfs before
        # the renames: one flush of the disk instead of one fsync per file.
        group_sync = self.durable and len(records) >= GROUP_SYNC_MIN
        pending: list[tuple[str, str]] = []
        try:
            for record in records:
                target = self.location(record.id)
                shard = os.path.dirname(target)
                if os.path.islink(shard):
                    raise StoreWriteError(f"refusing to write {record.id}: shard {shard} is a"
                                          " symlink", id=record.id, path=shard, step="create")
                if not os.path.isdir(shard):
                    fsio.make_dirs(shard, durable=self.durable)
                pending.append((fsio.write_tmp(shard, record.id, record.data,
                                               durable=self.durable and not group_sync), target))
            if group_sync and not fsio.sync_filesystem(self.directory):
                for tmp, _ in pending:
                    fsio.fsync_file(tmp)
        except BaseException:
            for tmp, _ in pending:
                fsio.discard(tmp)
            raise
        with self._locked():
            committed: list[Record] = []
            try:
                self._append_states(_log_lines((r.id, _WRITING) for r in records))
                for record, (tmp, target) in zip(records, pending):
                    fsio.commit_tmp(tmp, target)
                    committed.append(record)
            except BaseException:
                for tmp, _ in pending[len(committed):]:
                    fsio.discard(tmp)  # the one that failed to rename is gone already
                raise
            finally:
                self._append_states(_log_lines((r.id, r.state) for r in committed))
        if self.durable:
            self._sync_shards({os.path.dirname(t) for _, t in pending})

    def _read(self, pid: str) -> bytes:
        path = self.location(pid)
        try:
            if os.path.islink(os.path.dirname(path)):
                raise OSError(errno.ELOOP, "shard directory is a symlink", path)
            return fsio.read_bytes(path)
        except FileNotFoundError as err:
            raise RecordNotFoundError(f"no record {pid} in {self.directory} (no file {path})",
                                      id=pid, location=path, cause="missing") from err
        except NotRegularFileError as err:
            raise CorruptRecordError(f"cannot load {pid} from {path}: {err.strerror}",
                                     id=pid, location=path, cause=err.strerror) from err
        except OSError as err:
            raise LoadError(f"cannot read record {pid} from {path}: {err.strerror}",
                            id=pid, location=path, cause=str(err)) from err

    def _delete(self, pids: list[str]) -> None:
        shards = set()
        with self._locked():
            self._append_states(_log_lines((pid, _WRITING) for pid in pids))
            for pid in pids:
                path = self.location(pid)
                if fsio.unlink(path):
                    shards.add(os.path.dirname(path))
            self._append_states(_log_lines((pid, _REMOVED) for pid in pids))
        if self.durable:
            self._sync_shards(shards)

    def _sync_shards(self, shards: set[str]) -> None:
        """Make the renames and unlinks in ``shards`` durable.

        One ``syncfs`` (it commits every directory change of the file system)
        when a batch touched many shards, e.g. a ``save_all`` of tasks spread
        over the whole session; else one directory fsync per shard.
        """
        if len(shards) >= GROUP_SYNC_SHARDS and fsio.sync_filesystem(self.directory):
            return
        for shard in sorted(shards):
            fsio.fsync_dir(shard)

    def _list_ids(self) -> list[str]:
        result: list[str] = []
        for shard in self._shards():
            with os.scandir(shard) as entries:
                result.extend(e.name for e in entries if is_valid_id(e.name))
        return result

    def _shards(self) -> list[str]:
        try:
            with os.scandir(self.directory) as entries:
                return [e.path for e in entries if e.name.isdigit() and e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []
        except NotADirectoryError as err:
            raise LoadError(f"store path {self.directory} is not a directory",
                            location=self.directory, cause="not a directory") from err

    def _states(self, pids: list[str] | None) -> dict[str, str | None]:
        states = self._read_states_log()
        if states is None:
            return super()._states(pids)
        if pids is None:
            return states
        return {pid: states[pid] for pid in pids if pid in states}

    # --- the state log -------------------------------------------------------
    def _read_states_log(self) -> dict[str, str | None] | None:
        """``{id: state}`` from ``.states`` (records being written: from their headers).

        None if there is no log (then the headers are read instead).
        """
        folded = self._fold_states_log()
        if folded is None:
            return None
        unsure = [pid for pid, state in folded.items() if state == _WRITING]
        if unsure:
            self._settle(folded, unsure)
        return folded

    def _fold_states_log(self) -> dict[str, str | None] | None:
        """Fold ``.states`` into ``{id: state}``, ``?`` left where a writer stopped."""
        path = os.path.join(self.directory, STATES_FILE)
        try:
            data = fsio.read_bytes(path)
        except FileNotFoundError:
            return {} if not self._shards() else None
        except OSError as err:  # not a directory, a symlink (ELOOP), unreadable
            raise LoadError(f"cannot read the state log {path}: {err.strerror}",
                            location=path, cause=str(err)) from err
        body = data[data.find(b"\n") + 1 if data.startswith(b"#") else 0:data.rfind(b"\n") + 1]
        if _WELL_FORMED_STATES.fullmatch(body):
            # The common case, checked by one regex pass: fold the "<id> <state>"
            # pairs in C (the last line of an id wins) instead of line by line.
            words = iter(body.decode("ascii").split())
            folded: dict[str, str | None] = dict(zip(words, words))
            if b" " + _REMOVED.encode() + b"\n" in body or b" -\n" in body:
                folded = {pid: None if state == "-" else state
                          for pid, state in folded.items() if state != _REMOVED}
            return folded
        states: dict[str, str | None] = {}
        for line in body.split(b"\n")[:-1]:
            pid, _, state = line.decode("ascii", "replace").partition(" ")
            if state == _REMOVED:
                states.pop(pid, None)
            elif is_valid_id(pid) and state:
                states[pid] = None if state == "-" else state
        return states

    def _settle(self, states: dict[str, str | None], unsure: list[str]) -> None:
        """Replace the ``?`` of ``unsure`` ids in ``states`` by what their records say.

        A writable store also appends what it found (under the lock, reading
        the records again there), so that later readers need not look.
        """
        if self.readonly:
            self._settle_from_records(states, unsure)
            return
        with self._locked():
            found = self._settle_from_records(states, unsure)
            self._append_states(_log_lines(found))

    def _settle_from_records(self, states: dict[str, str | None],
                             unsure: list[str]) -> list[tuple[str, str | None]]:
        found: list[tuple[str, str | None]] = []
        for pid in unsure:
            try:
                state = parse_header(self._read(pid)).state
            except RecordNotFoundError:
                states.pop(pid, None)
                found.append((pid, _REMOVED))
                continue
            except (LoadError, ValueError):
                states.pop(pid, None)  # unreadable: its state is unknown (fsck says why)
                continue
            states[pid] = state
            found.append((pid, state))
        return found

    def _append_states(self, lines: bytes) -> None:
        """Append to the state log (lock held); compact it when it has grown."""
        if not lines:
            return
        path = os.path.join(self.directory, STATES_FILE)
        # The log is a cache: an unterminated last line (a torn append) is cut
        # off first, so the new lines never glue onto it.
        fsio.append(path, lines, durable=False, cut_tail=lambda _tail: True)
        size = os.stat(path).st_size
        if self._compact_at < 0:
            self._compact_at = 2 * _compaction_header(_read_head(path))[0] + _COMPACT_MIN_BYTES
        if size > self._compact_at:
            self._compact_states(path)

    def _compact_states(self, path: str) -> None:
        """Rewrite the log with one line per record (lock held)."""
        states = self._fold_states_log() or {}
        self._settle_from_records(states, [pid for pid, st in states.items() if st == _WRITING])
        self._write_states_log(states.items())

    def _write_states_log(self, pairs: Iterable[tuple[str, str | None]]) -> None:
        """Replace the log (lock held) by ``pairs``, headed by ``#<size> <highest id number>``.

        The highest number is the log's and the counter's, so that a counter
        rebuilt later (:meth:`_scan_next_seqno`) stays above removed ids the
        compacted log no longer names.
        """
        pairs = list(pairs)
        path = os.path.join(self.directory, STATES_FILE)
        highest = max([seqno_of(pid) for pid, _ in pairs]
                      + [_compaction_header(_read_head(path))[1], (self._peek_counter() or 1) - 1])
        body = _log_lines(pairs)
        fsio.atomic_write(path, b"#%d %d\n" % (len(body), highest) + body, durable=self.durable)
        self._compact_at = 2 * len(body) + _COMPACT_MIN_BYTES

    # --- what tools ask ----------------------------------------------------
    def exists(self) -> bool:
        """Whether the store directory is there (a directory, not a symlink)."""
        return os.path.isdir(self.directory) and not os.path.islink(self.directory)

    def describe(self) -> dict[str, Any]:
        """The store's kind, URL and directory."""
        return {"kind": "filesystem", "url": str(self.url), "location": self.directory}

    def check(self, repair: bool = False) -> list[Finding]:
        """Temporary files of killed writers, and the state log against the records.

        ``tmp-file`` findings are leftovers; a repair removes those whose
        writer is gone.  ``stale-states``: the log contradicts a record that
        was renamed into place before the log's last append (the log was
        damaged: a problem); or one renamed after it (what a power cut on a
        file system without ordered data leaves: a leftover).  A repair
        rebuilds the log from the record headers.
        """
        tmp: list[str] = []
        for shard in [self.directory, *self._shards()]:
            with contextlib.suppress(FileNotFoundError), os.scandir(shard) as entries:
                tmp.extend(e.path for e in entries if fsio.is_tmp_name(e.name))
        findings = tmp_file_findings(sorted(tmp), repair)
        stale = self._stale_states()
        if stale:
            findings.extend(stale)
            if repair:
                self.rebuild_states()
                for finding in stale:
                    finding.repair("rebuilt .states from the record headers")
        return findings

    def _stale_states(self) -> list[Finding]:
        log = os.path.join(self.directory, STATES_FILE)
        try:
            log_mtime = os.stat(log).st_mtime_ns
        except FileNotFoundError:
            return []  # no log: states are read from the record headers
        logged = self._states(None)
        problems: list[str] = []
        leftovers: list[str] = []
        for pid in sorted(set(logged) | set(self._list_ids()), key=seqno_of):
            try:
                state = parse_header(self._read(pid)).state
            except RecordNotFoundError:
                state = "<absent>"
            except (LoadError, ValueError):
                continue  # no readable header to compare with (fsck reports the record)
            if logged.get(pid, "<absent>") == state:
                continue
            try:
                renamed_after = os.stat(self.location(pid)).st_ctime_ns >= log_mtime
            except OSError:
                renamed_after = False
            (leftovers if renamed_after else problems).append(pid)
        findings = []
        if problems:
            findings.append(Finding(
                "stale-states", f"{log} disagrees with the records of {len(problems)}"
                f" task{'s' if len(problems) != 1 else ''}: {_some(problems)}",
                leftover=False, path=log))
        if leftovers:
            findings.append(Finding(
                "stale-states", f"{log} lags behind records written after its last line, about"
                f" {len(leftovers)} id{'s' if len(leftovers) != 1 else ''}: {_some(leftovers)}",
                leftover=True, path=log))
        return findings

    def rebuild_states(self) -> None:
        """Rewrite ``.states`` from the record headers (a repair of :meth:`check`)."""
        with self._locked():
            pairs = []
            for pid in self._list_ids():
                try:
                    pairs.append((pid, parse_header(self._read(pid)).state))
                except (LoadError, ValueError):
                    continue
            self._write_states_log(pairs)


def _some(ids: list[str], limit: int = 5) -> str:
    text = ", ".join(ids[:limit])
    return text + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _log_lines(pairs: Iterable[tuple[str, str | None]]) -> bytes:
    """``<id> <state>`` lines of the state log (``-`` for an object without a state)."""
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
    match = re.match(rb"#([0-9]{1,18})(?: ([0-9]{1,19}))?\n", head)
    if match is None:
        return 0, 0
    return int(match[1]), int(match[2] or 0)


def make_filesystemstore(url: StoreUrl, **kwargs: Any) -> FilesystemStore:
    """Registry constructor for ``file://`` URLs and plain paths."""
    return FilesystemStore(url, **kwargs)


__all__ = ["FilesystemStore", "make_filesystemstore"]
