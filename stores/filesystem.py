"""A store that keeps one record file per object in a directory.

On-disk layout (format 1)
-------------------------
::

    <directory>/
        .lock          empty; flock()ed while allocating ids and publishing
        .next_id       the next free sequence number, as decimal text
        .states        state log: one "<id> <state>" line per write,
                       "<id> !" per removal; the last line of an id wins
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
``.states`` is a cache for listing states without unpickling: it is appended
while the lock is held (so its order matches the renames) and is not
fsynced on its own; the shard fsync that follows commits it on ext4
(ordered data mode).  A process killed between a batch's renames and that
append, or a power cut on another file system, leaves it lagging the records
of that batch, which ``gsession fsck`` reports and repairs from the records.

Several processes (and hosts sharing the directory over a file system with
working ``flock``) may use one store: ids come from the locked counter, and
each record file is replaced atomically (last writer wins).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from typing import Any, Iterator

from gc3session import fsio
from gc3session.exceptions import (CorruptRecordError, IdAllocationError, InvalidValue,
                                   LoadError, NotRegularFileError, RecordNotFoundError,
                                   StoreWriteError)
from gc3session.persistence.idfactory import ID_PATTERN, Id, is_valid_id
from gc3session.persistence.serialization import Record, parse_header
from gc3session.persistence.store import Store
from gc3session.persistence.url import StoreUrl

SHARD_SIZE = 1000
LOCK_FILE = ".lock"
COUNTER_FILE = ".next_id"
STATES_FILE = ".states"
_REMOVED = "!"
_COMPACT_MIN_BYTES = 1 << 20
#: A state log whose every line is "<id> <state>" (anything else takes the line-by-line fold).
_WELL_FORMED_STATES = re.compile(rf"(?:{ID_PATTERN} [!-~]+\n)*".encode())
#: Batches at least this large are synced with one ``syncfs`` instead of an fsync per file.
GROUP_SYNC_MIN = 8
#: Batches touching at least this many shards commit their renames with one ``syncfs``.
GROUP_SYNC_SHARDS = 4


class FilesystemStore(Store):
    """Save objects as record files under ``directory``.

    :param directory: the store directory (created at the first save, mode
        0700), or a ``file://`` URL.
    :param durable: fsync every write (default); False skips fsync.
    :param trusted: False restricts loads to allow-listed classes.

    Unknown keyword arguments are ignored (GC3Pie passes the SQL store's
    ``table_name`` and ``extra_fields`` to every store).

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
                 **ignored: Any) -> None:
        url = StoreUrl.parse(directory)
        if url.scheme != "file":
            raise InvalidValue(f"FilesystemStore needs a path or file:// URL, not {url}", url=str(url))
        super().__init__(url, durable=durable, trusted=trusted, readonly=readonly)
        self.directory = url.path
        self._compact_at = -1

    # --- paths -------------------------------------------------------------
    def _shard(self, pid: str) -> str:
        # ids reaching here are validated "Prefix.N" strings
        return f"{self.directory}/{int(pid.rpartition('.')[2]) // SHARD_SIZE}"

    def location(self, pid: str) -> str:
        """The path of the record file of ``pid``."""
        return f"{self._shard(pid)}/{pid}"

    def _ensure_directory(self) -> None:
        if not os.path.isdir(self.directory):
            if os.path.lexists(self.directory):
                raise StoreWriteError(f"store path {self.directory} exists and is not a directory",
                                      path=self.directory, step="mkdir")
            fsio.make_dirs(self.directory, durable=self.durable)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store's flock; it dies with the process, never goes stale."""
        self._ensure_directory()
        path = os.path.join(self.directory, LOCK_FILE)
        try:
            # never a FIFO or a device: the lock would block or lock something else
            fd = fsio.open_regular(path, os.O_RDWR | os.O_CREAT)
        except OSError as err:
            raise StoreWriteError(f"cannot open lock file {path!r}: {err.strerror}",
                                  path=path, step="lock", errno=err.errno) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

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

    def _scan_next_seqno(self) -> int:
        """First free number when the counter is missing.

        Above every record, and above every id the state log still names
        (removed records included), so ids of removed records are not handed
        out again; only removals older than the log's last compaction are out
        of its sight.
        """
        seqnos = [Id.parse(pid).seqno for pid in self._list_ids()]
        with contextlib.suppress(OSError):
            log = fsio.read_bytes(os.path.join(self.directory, STATES_FILE))
            seqnos.extend(int(m) for m in re.findall(rb"^[A-Za-z_][A-Za-z0-9_]*\.([0-9]{1,19}) ",
                                                     log, re.MULTILINE))
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
                for record, (tmp, target) in zip(records, pending):
                    fsio.commit_tmp(tmp, target)
                    committed.append(record)
            except StoreWriteError:
                for tmp, _ in pending[len(committed) + 1:]:
                    fsio.discard(tmp)
                raise
            finally:
                self._append_states(b"".join(
                    b"%s %s\n" % (r.id.encode(), (r.state or "-").encode()) for r in committed))
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
            for pid in pids:
                path = self.location(pid)
                if fsio.unlink(path):
                    shards.add(os.path.dirname(path))
            self._append_states(b"".join(b"%s %s\n" % (p.encode(), _REMOVED.encode()) for p in pids))
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
        """Fold ``.states`` into ``{id: state}``; None if there is no log."""
        path = os.path.join(self.directory, STATES_FILE)
        try:
            data = fsio.read_bytes(path)
        except FileNotFoundError:
            return {} if not self._shards() else None
        except OSError as err:  # not a directory, a symlink (ELOOP), unreadable
            raise LoadError(f"cannot read the state log {path}: {err.strerror}",
                            location=path, cause=str(err)) from err
        body = data[:data.rfind(b"\n") + 1]  # a torn last line has no newline
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
            self._compact_at = 2 * size + _COMPACT_MIN_BYTES
        elif size > self._compact_at:
            self._compact_states(path)

    def _compact_states(self, path: str) -> None:
        states = self._read_states_log() or {}
        data = b"".join(b"%s %s\n" % (pid.encode(), (state or "-").encode())
                        for pid, state in states.items())
        fsio.atomic_write(path, data, durable=self.durable)
        self._compact_at = 2 * len(data) + _COMPACT_MIN_BYTES

    # --- maintenance ---------------------------------------------------------
    def leftover_tmp_files(self) -> list[str]:
        """Temporary files left by killed writers (for fsck)."""
        found = []
        for shard in [self.directory, *self._shards()]:
            with contextlib.suppress(FileNotFoundError), os.scandir(shard) as entries:
                found.extend(e.path for e in entries if fsio.is_tmp_name(e.name))
        return sorted(found)

    def rebuild_states(self) -> None:
        """Rewrite ``.states`` from the record headers (fsck's repair)."""
        with self._locked():
            lines = []
            for pid in self._list_ids():
                try:
                    state = parse_header(self._read(pid)).state
                except (LoadError, ValueError):
                    continue
                lines.append(b"%s %s\n" % (pid.encode(), (state or "-").encode()))
            fsio.atomic_write(os.path.join(self.directory, STATES_FILE), b"".join(lines),
                              durable=self.durable)


def make_filesystemstore(url: StoreUrl, **kwargs: Any) -> FilesystemStore:
    """Registry constructor for ``file://`` URLs and plain paths."""
    return FilesystemStore(url, **kwargs)


__all__ = ["FilesystemStore", "make_filesystemstore"]
