"""A store that keeps one record file per object in a directory.

On-disk layout (format 1)
-------------------------
::

    <directory>/
        .lock          empty; flock()ed while allocating ids and publishing
        .next_id       the next free sequence number, as decimal text
        .states        the state log (gc3session.stores.statelog)
        <shard>/<id>   one record per object (gc3session.persistence.record)

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

The state log (``.states``) lists states without unpickling; its format,
and how it stays right across crashes, is :mod:`gc3session.stores.statelog`'s.

Several processes (and hosts sharing the directory over a file system with
working ``flock``) may use one store: ids come from the locked counter, and
each record file is replaced atomically (last writer wins).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import Any, ContextManager

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
from gc3session.persistence.idfactory import IdFactory, is_valid_id, seqno_of
from gc3session.persistence.record import Record, parse_header, summary_dicts
from gc3session.persistence.recordstore import RecordStore
from gc3session.persistence.store import Finding, tmp_file_findings
from gc3session.persistence.url import StoreUrl
from gc3session.stores.statelog import REMOVED, WRITING, StateLog, SummaryLog

SHARD_SIZE = 1000
LOCK_FILE = ".lock"
COUNTER_FILE = ".next_id"
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

    ``url``, ``table_name``, ``extra_fields``, ``create`` and ``protocol`` are
    accepted and ignored: GC3Pie passes the SQL store's arguments to every
    store (``directory`` is what names this one), and the pickle protocol of
    records is pinned.  Any other keyword argument is a
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
                 extra_fields: Any = None, create: bool = True, protocol: Any = None,
                 url: Any = None) -> None:
        where = StoreUrl.parse(directory)
        if where.scheme != "file":
            raise InvalidValue(f"FilesystemStore needs a path or file:// URL, not {where}",
                               url=str(where))
        super().__init__(where, durable=durable, trusted=trusted, readonly=readonly,
                         idfactory=idfactory)
        self.directory = where.path
        self._log = StateLog(where.path, durable=durable, state_of=self._record_state,
                             next_id=self._peek_counter)
        self._summary_log = SummaryLog(where.path, durable=durable, next_id=self._peek_counter)

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

    def _locked(self, ensure: bool = True) -> ContextManager[int]:
        """Hold the store's lock (``.lock``, an ``flock`` that dies with the process).

        :param ensure: create the store directory first if it is missing
            (False: the caller just did).
        """
        if ensure:
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
        seqnos.append(self._log.highest_id_number())
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
            checked: set[str] = set()
            for record in records:
                shard = self._shard(record.id)
                if shard not in checked:
                    self._check_shard(shard, record.id)
                    checked.add(shard)
                pending.append((fsio.write_tmp(shard, record.id, record.data,
                                               durable=self.durable and not group_sync),
                                f"{shard}/{record.id}"))
            if group_sync and not fsio.sync_filesystem(self.directory):
                for tmp, _ in pending:
                    fsio.fsync_file(tmp)
        except BaseException:
            for tmp, _ in pending:
                fsio.discard(tmp)
            raise
        with self._locked(ensure=False):
            committed: list[Record] = []
            try:
                self._log.append((r.id, WRITING) for r in records)
                for record, (tmp, target) in zip(records, pending):
                    fsio.commit_tmp(tmp, target)
                    committed.append(record)
            except BaseException:
                for tmp, _ in pending[len(committed):]:
                    fsio.discard(tmp)  # the one that failed to rename is gone already
                raise
            finally:
                # summaries first: an id whose state line is missing is settled from its
                # record, summary included, so a kill in between leaves nothing stale
                self._summary_log.append((r.id, (r.cls, r.summary)) for r in committed)
                self._log.append((r.id, r.state) for r in committed)
        if self.durable:
            self._sync_shards({os.path.dirname(t) for _, t in pending})

    def _check_shard(self, shard: str, pid: str) -> None:
        """Make sure ``shard`` is a directory, not a symlink (one ``lstat``); create it if missing."""
        try:
            mode = os.lstat(shard).st_mode
        except FileNotFoundError:
            fsio.make_dirs(shard, durable=self.durable)
            return
        if stat.S_ISLNK(mode):
            raise StoreWriteError(f"refusing to write {pid}: shard {shard} is a symlink",
                                  id=pid, path=shard, step="create")
        if not stat.S_ISDIR(mode):
            fsio.make_dirs(shard, durable=self.durable)  # raises, naming what is there

    def _read(self, pid: str) -> bytes:
        shard = self._shard(pid)
        path = f"{shard}/{pid}"
        try:
            if stat.S_ISLNK(os.lstat(shard).st_mode):
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
            self._log.append((pid, WRITING) for pid in pids)
            for pid in pids:
                path = self.location(pid)
                if fsio.unlink(path):
                    shards.add(os.path.dirname(path))
            self._summary_log.append((pid, None) for pid in pids)
            self._log.append((pid, REMOVED) for pid in pids)
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
        if pids is None or (len(pids) == len(states) and all(map(states.__contains__, pids))):
            # every id asked for, and no other (a session asking for all its tasks): the
            # log's dict as it is, instead of a copy built in Python one id at a time
            return states
        return {pid: states[pid] for pid in pids if pid in states}

    def _read_states_log(self) -> dict[str, str | None] | None:
        """``{id: state}`` from the state log; None if there is none (read the headers then)."""
        found = self._settled_states()
        return None if found is None else found[0]

    def _settled_states(self) -> tuple[dict[str, str | None], list[str]] | None:
        """The state log's ``{id: state}``, and the ids whose state had to be settled.

        Ids that a writer marked and then stopped are settled from their
        records; a writable store also appends what it found (under the
        lock), so that later readers need not look.  None if there is no log.
        """
        folded = self._log.fold()
        if folded is None:
            return ({}, []) if not self._shards() else None
        unsure = StateLog.unsure(folded)
        if unsure:
            if self.readonly:
                self._log.settle(folded, unsure)
            else:
                with self._locked():
                    self._log.append(self._log.settle(folded, unsure))
        return folded, unsure

    def _summaries(self, pids: list[str] | None) -> dict[str, dict[str, Any]]:
        """From the logs; ids they do not cover (records written before the summary log,
        or whose write was interrupted) from their record headers."""
        found = self._settled_states()
        if found is None:
            return super()._summaries(pids)
        states, unsure = found
        logged = self._summary_log.fold()
        wanted = list(states) if pids is None else [pid for pid in pids if pid in states]
        if not unsure and all(map(logged.__contains__, wanted)):
            known = wanted  # the usual case, checked in C
        else:
            missing = set(unsure)
            known = [pid for pid in wanted if pid in logged and pid not in missing]
        result = dict(zip(known, summary_dicts([(entry[0], states[pid], entry[1]) for pid, entry
                                                in zip(known, map(logged.__getitem__, known))])))
        if len(result) < len(wanted):
            result.update(super()._summaries([pid for pid in wanted if pid not in result]))
        return result

    def _record_state(self, pid: str) -> str | None:
        """The state in the header of record ``pid`` (raises as :meth:`_read` does, or ValueError)."""
        return parse_header(self._read(pid)).state

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
        log = self._log.path
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
        """Rewrite the state and summary logs from the record headers (a repair of :meth:`check`)."""
        with self._locked():
            pairs = []
            summaries = {}
            for pid in self._list_ids():
                try:
                    header = parse_header(self._read(pid))
                except (LoadError, ValueError):
                    continue
                pairs.append((pid, header.state))
                summaries[pid] = (header.cls, header.summary_json)
            self._log.rewrite(pairs)
            self._summary_log.rewrite(summaries)


def _some(ids: list[str], limit: int = 5) -> str:
    text = ", ".join(ids[:limit])
    return text + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def make_filesystemstore(url: StoreUrl, **kwargs: Any) -> FilesystemStore:
    """Registry constructor for ``file://`` URLs and plain paths."""
    return FilesystemStore(url, **kwargs)


__all__ = ["FilesystemStore", "make_filesystemstore"]
