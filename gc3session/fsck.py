"""``gsession fsck``: check a session's index against its store, and repair what is safe.

What is checked
---------------
Every record of the store is read and decoded, and the references it holds
are noted; a referenced record that cannot be loaded is replaced by a
stand-in for that decode, so one damaged record is reported as itself and
never hides the records that refer to it.

=================  ==========================================================  ========
kind               what it means                                               class
=================  ==========================================================  ========
``corrupt-index``  ``session_ids.txt`` is missing or holds something else      problem
``missing-record`` an id listed in ``session_ids.txt`` has no record           problem
``dangling-ref``   a record refers to an id that has no record                 problem
``unloadable``     a record exists but cannot be decoded (id, place, cause)    problem
``orphan``         a record neither listed nor referenced by a listed task     leftover
``quarantined``    an orphan with a note in ``quarantine/`` (set aside, forgot) leftover
``tmp-file``       a temporary file of a writer that was killed                leftover
``torn-index``     a last index line without its newline (an append killed)    leftover
=================  ==========================================================  ========

and whatever the store finds when it checks itself (:meth:`Store.check
<gc3session.persistence.store.Store.check>`): the filesystem store reports
its own ``tmp-file`` leftovers and ``stale-states``, its state log against
its records.

Clean after a crash
-------------------
A session is *clean* when it has no problems; leftovers may remain.
Leftovers are exactly what a process killed in the middle of a write leaves
by design, and none of them changes what the session's tasks are or what
they hold:

* an add or a batch flush writes records before the index, so a kill in
  between leaves the records of an add that never returned: orphans;
* a remove takes the id out of the index before deleting the records (the
  parent first), so a kill in between leaves the removed task, or some of
  its children, as orphans;
* record and index writes go through temporary files, so a kill leaves at
  most one temporary file per writer (it never shadows a record);
* the state log of the filesystem store marks the ids of each write before
  it renames them, so a kill leaves no stale state (readers settle marked
  ids from the records);
* an append of the index killed half-way leaves a last line without its
  newline, which readers ignore and the next append cuts off.  Such a line
  is at most the beginning of an id; anything else after the last newline
  (NUL bytes a power cut can leave, garbage) is ``corrupt-index``.

Records saved with ``session.save()`` but never added, and the records of
other sessions sharing one SQL table, are orphans too; this is why orphans
are never deleted unless asked for (``orphans="delete"``).

Repairs (``repair=True``, under the session's driver lock)
-----------------------------------------------------------
* ``missing-record``: the id is dropped from the index (there is no data);
* ``corrupt-index``: the damaged file is kept as ``session_ids.txt.damaged-<time>``.
  When only its tail is damaged (bytes after the last newline that no
  interrupted append leaves, see :mod:`gc3session.index`), the complete lines
  are kept and the tail is cut; otherwise a new index lists every record that
  no other record refers to.  An index that is not a regular file (a FIFO...)
  is left for a human to move away;
* ``tmp-file``: removed, unless the process that wrote it is still alive;
* the store's own findings: as :meth:`Store.check` repairs them (the
  filesystem store rebuilds ``.states`` from the record headers);
* ``torn-index``: the index is rewritten without the torn line;
* ``orphan``: kept (default), added to the index (``orphans="adopt"``), or
  deleted (``orphans="delete"``, only when every record of the orphan's tree
  decodes);
* ``quarantined``: always kept; ``gsession adopt`` lists it again;
* ``unloadable`` and ``dangling-ref`` are never repaired: nothing that cannot
  be loaded is deleted or rewritten.  The findings say which record and why,
  for a human to decide.
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import fsio, index, quarantine, sessiondir
from .exceptions import (
    CorruptIndexError,
    CorruptSessionError,
    InvalidValue,
    LoadError,
    NotRegularFileError,
)
from .persistence.idfactory import Id
from .persistence.records import read_records, record_references
from .persistence.registry import make_store
from .persistence.store import Finding, Store, tmp_file_findings
from .sessionlock import driver_lock

ORPHAN_POLICIES = ("keep", "adopt", "delete")

#: fsck exit statuses (``gsession fsck``).
CLEAN = 0
REPAIRED = 2
PROBLEMS = 4


@dataclass
class Report:
    """The result of :func:`check`."""

    session: str
    store: str
    listed: int
    records: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        """Findings that are errors (leftovers of killed writers are not)."""
        return [f for f in self.findings if not f.leftover]

    @property
    def clean(self) -> bool:
        """True when nothing but leftovers was found."""
        return not self.problems

    @property
    def status(self) -> str:
        """``clean``, ``repaired`` (every problem was fixed) or ``problems``."""
        if self.clean:
            return "clean"
        return "repaired" if all(f.repaired for f in self.problems) else "problems"

    @property
    def exit_status(self) -> int:
        """:data:`CLEAN`, :data:`REPAIRED` or :data:`PROBLEMS`."""
        return {"clean": CLEAN, "repaired": REPAIRED, "problems": PROBLEMS}[self.status]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {"session": self.session, "store": self.store, "listed": self.listed,
                "records": self.records, "status": self.status,
                "findings": [f.as_dict() for f in self.findings]}


@dataclass
class _Scan:
    """Every record of a store: the ids it refers to, or why it cannot be decoded."""

    refs: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, LoadError] = field(default_factory=dict)


def _scan(store: Store) -> _Scan:
    scan = _Scan()
    ids = [str(i) for i in sorted(store.list(), key=lambda i: (i.seqno, i.prefix))]
    for key, data in read_records(store, ids):
        if isinstance(data, LoadError):
            if getattr(data, "cause", None) != "missing":  # else: deleted since it was listed
                scan.errors[key] = data
            continue
        try:
            scan.refs[key] = record_references(store, key, data)
        except LoadError as err:
            scan.errors[key] = err
    return scan


def check(path: "str | os.PathLike[str]", *, repair: bool = False, orphans: str = "keep",
          trusted: bool = True) -> Report:
    """Check the session at ``path``; with ``repair``, fix what the module docstring lists.

    Without ``repair`` nothing is written: the store is opened read-only.

    :param orphans: ``keep``, ``adopt`` or ``delete`` (only with ``repair``).
    :param trusted: False decodes records with the allow-list of untrusted loads.
    :raises SessionNotFoundError: if there is no session at ``path``.
    :raises CorruptSessionError: if ``store.url`` cannot be read (nothing to check against).
    :raises SessionBusyError: with ``repair``, if a driver runs the session.
    """
    if orphans not in ORPHAN_POLICIES:
        raise InvalidValue(f"orphans must be one of {', '.join(ORPHAN_POLICIES)}, not {orphans!r}")
    path = os.path.abspath(os.fspath(path))
    if not any(os.path.lexists(os.path.join(path, name))
               for name in (index.INDEX_FILENAME, sessiondir.STORE_URL_FILENAME)):
        raise sessiondir.not_a_session(path)  # a damaged session has one of them at least
    sessiondir.read_store_url(path)  # before the driver lock file is made: is it a session?
    if not repair:
        return _Checker(path, False, orphans, trusted).run()
    with driver_lock(path):
        return _Checker(path, True, orphans, trusted).run()


class _Checker:
    def __init__(self, path: str, repair: bool, orphans: str, trusted: bool) -> None:
        self.path = path
        self.repair = repair
        self.orphans = orphans
        self.index_file = os.path.join(path, index.INDEX_FILENAME)
        self.store = make_store(sessiondir.read_store_url(path), readonly=not repair,
                                trusted=trusted)
        self.findings: list[Finding] = []

    def run(self) -> Report:
        try:
            listed, damaged = self._read_index()
            scan = _scan(self.store)
            report = Report(self.path, str(self.store.url), len(listed or ()),
                            len(scan.refs) + len(scan.errors), self.findings)
            if damaged is not None and self.repair:
                self._repair_index(damaged, scan)
            self._check_index(listed, scan)
            self._check_refs(listed, scan)
            self._check_tmp_files()
            self.findings.extend(self.store.check(repair=self.repair))
        finally:
            self.store.close()
        return report

    def _add(self, kind: str, message: str, *, leftover: bool, **details: Any) -> Finding:
        finding = Finding(kind, message, leftover, **details)
        self.findings.append(finding)
        return finding

    # --- the index -----------------------------------------------------------
    def _read_index(self) -> tuple[list[str] | None, Finding | None]:
        """The listed ids, or None and the finding that says why there are none."""
        try:
            listed = sessiondir.read_index(self.path)
        except CorruptSessionError as err:
            return None, self._add("corrupt-index", str(err), leftover=False,
                                   path=self.index_file, cause=str(err))
        data = fsio.read_bytes(self.index_file)
        if data and not data.endswith(b"\n"):
            torn = self._add("torn-index", f"{self.index_file} ends with a line without its"
                             " newline (an add killed while appending; readers ignore it)",
                             leftover=True, path=self.index_file)
            if self.repair:
                with index.locked_dir(self.path):
                    index.write(self.index_file, index.read(self.index_file))
                self._repaired(torn, "rewrote the index without the torn line")
        return listed, None

    def _check_index(self, listed: list[str] | None, scan: _Scan) -> None:
        if listed is None:
            return
        records = set(scan.refs) | set(scan.errors)
        missing = [i for i in listed if i not in records]
        findings = [self._add("missing-record", f"{pid} is listed in {index.INDEX_FILENAME}"
                              f" but has no record ({self.store.location(pid)})",
                              leftover=False, id=pid) for pid in missing]
        if missing and self.repair:
            with index.locked_dir(self.path):
                index.rewrite_without(self.index_file, set(missing))
            for pid, finding in zip(missing, findings):
                self._repaired(finding, f"dropped {pid} from {index.INDEX_FILENAME}")

    def _repair_index(self, finding: Finding, scan: _Scan) -> None:
        with index.locked_dir(self.path):
            kept: str | None = f"{self.index_file}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
            try:
                data = fsio.read_bytes(self.index_file)
            except FileNotFoundError:
                data, kept = b"", None
            except NotRegularFileError as err:
                finding.action = (f"kept as it is: {err.strerror}; move it away by hand, then"
                                  " run the repair again")
                return
            if kept is not None:
                fsio.atomic_write(kept, data)
            complete = _lines_before_damaged_tail(data, self.index_file)
            if complete is not None:
                ids, cut = complete
                action = (f"cut the damaged tail (bytes {cut} to {len(data)}) after the last"
                          f" complete line, keeping the {len(ids)} ids before it")
            else:
                referenced = {r for refs in scan.refs.values() for r in refs}
                ids = [pid for pid in [*scan.refs, *scan.errors] if pid not in referenced]
                ids.sort(key=lambda i: (Id.parse(i).seqno, i))
                action = f"rebuilt the index from the store ({len(ids)} tasks no record refers to)"
            index.write(self.index_file, ids)
        self._repaired(finding, action + (f"; the damaged file is kept as {kept}" if kept else ""))

    # --- references ------------------------------------------------------------
    def _check_refs(self, listed: list[str] | None, scan: _Scan) -> None:
        records = set(scan.refs) | set(scan.errors)
        for pid, err in scan.errors.items():
            cause = getattr(err, "cause", None) or str(err)
            self._add("unloadable", f"{pid} cannot be loaded: {err}", leftover=False, id=pid,
                      path=getattr(err, "location", None) or self.store.location(pid),
                      cause=str(cause), action="kept as it is (fsck never deletes data it"
                      " cannot load)")
        for pid, refs in scan.refs.items():
            for ref in refs:
                if ref not in records:
                    self._add("dangling-ref", f"{pid} refers to {ref}, which has no record"
                              f" ({self.store.location(ref)})", leftover=False, id=pid,
                              cause=f"missing {ref}", action="kept as it is")
        if listed is None:
            return
        reachable = _closure(listed, scan.refs)
        unlisted = [pid for pid in [*scan.refs, *scan.errors] if pid not in reachable]
        referenced = {r for pid in unlisted for r in scan.refs.get(pid, ())}
        # roots first; then whatever they do not cover (unlisted records in a cycle)
        covered: set[str] = set()
        for root in [*(p for p in unlisted if p not in referenced), *unlisted]:
            if root in covered:
                continue
            tree = _closure([root], scan.refs) - reachable
            covered |= tree
            if os.path.exists(quarantine.note_path(self.path, root)):
                self._add("quarantined", f"{root} was taken out of the session on purpose (see"
                          f" {quarantine.note_path(self.path, root)}); gsession adopt"
                          f" {self.path} {root} lists it again", leftover=True, id=root,
                          path=self.store.location(root),
                          action="kept (fsck never adopts or deletes a quarantined record)")
                continue
            others = len(tree) - 1
            finding = self._add(
                "orphan", f"{root} is not listed in the session nor referenced by a listed task"
                + (f" (with {others} record{'s' if others != 1 else ''} it refers to)"
                   if others else "") + "; an add or remove that did not return, a record"
                " saved without add(), or another session's task",
                leftover=True, id=root, path=self.store.location(root))
            if self.repair:
                self._repair_orphan(finding, root, tree, scan)

    def _repair_orphan(self, finding: Finding, root: str, tree: set[str], scan: _Scan) -> None:
        if self.orphans == "adopt":
            with index.locked_dir(self.path):
                index.append(self.index_file, [root])
            self._repaired(finding, f"added {root} to {index.INDEX_FILENAME}")
        elif self.orphans == "delete":
            bad = sorted(tree & set(scan.errors))
            if bad:
                finding.action = f"kept: {', '.join(bad)} cannot be loaded"
                return
            self.store.remove_many(sorted(tree))
            self._repaired(finding, f"deleted {len(tree)} record{'s' if len(tree) != 1 else ''}")
        else:
            finding.action = "kept (use --orphans adopt or delete)"

    # --- files -------------------------------------------------------------------
    def _check_tmp_files(self) -> None:
        """Temporary files in the session directory; the store checks its own (:meth:`Store.check`)."""
        found = [os.path.join(self.path, name) for name in sorted(os.listdir(self.path))
                 if fsio.is_tmp_name(name)]
        self.findings.extend(tmp_file_findings(found, self.repair))

    def _repaired(self, finding: Finding, action: str) -> None:
        finding.repair(action)


def _lines_before_damaged_tail(data: bytes, path: str) -> tuple[list[str], int] | None:
    """``(ids, offset)`` if only the tail of index ``data`` is damaged, else None.

    The tail is what follows the last newline; it is damaged when no
    interrupted append leaves it.  Without a complete line before it the
    whole file is damage, and the index is better rebuilt from the store.
    """
    end = data.rfind(b"\n") + 1
    if end == 0 or index.is_torn_tail(data[end:]):
        return None
    try:
        return index.parse(data[:end], path), end
    except CorruptIndexError:
        return None


def _closure(start: Iterable[str], refs: dict[str, list[str]]) -> set[str]:
    seen = set(start)
    queue = collections.deque(seen)
    while queue:
        for ref in refs.get(queue.popleft(), ()):
            if ref not in seen:
                seen.add(ref)
                queue.append(ref)
    return seen


__all__ = ["CLEAN", "Finding", "ORPHAN_POLICIES", "PROBLEMS", "REPAIRED", "Report", "check"]
