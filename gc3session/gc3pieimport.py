"""``gsession import``: turn a session written by GC3Pie 2.6.8 into a gc3session session.

:func:`import_session` reads the GC3Pie session (filesystem or SQL store)
without changing a byte of it (:mod:`gc3session.gc3piestore`), rebuilds
every task it reaches from ``session_ids.txt`` with gc3session's classes,
and writes a new session: the same ids (SQL stores number their rows, so
row ``17`` of an ``Application`` becomes ``Application.17``), states,
return codes, histories, job names, output directories and SQL extra
fields.

What is mapped
--------------
=========================================  ====================================
GC3Pie                                     gc3session
=========================================  ====================================
``gc3libs.Task``, ``Application``          :class:`~gc3session.task.Task`,
                                           :class:`~gc3session.task.Application`
``gc3libs.workflow.TaskCollection``,       the collections of the same names,
``ParallelTaskCollection``,                children as children, the position of
``SequentialTaskCollection``               a sequence kept
``gc3libs.Run``, ``Run.State``, history    :class:`~gc3session.task.Run`
``gc3libs.utils.Struct``                   :class:`gc3session.utils.Struct`
``gc3libs.url.Url``, ``UrlKeyDict``,       :mod:`gc3session.url`; an
``UrlValueDict``                           Application's inputs and outputs
                                           become paths and names
``gc3libs.quantity.Memory``/``Duration``   bytes (int) / seconds (float)
``Id`` / ``IntId`` (references)            the referenced task
=========================================  ====================================

Classes of your own (subclasses of ``gc3libs.Application``...) map with
``classes={"oldmodule:MyApp": NewClass}``: ``NewClass`` must derive from a
gc3session task class, and is filled in as unpickling would, without
calling its ``__init__``.  A task that cannot be mapped (a class nobody
mapped, a value of an unknown class, an input that is not a local file, a
record that does not unpickle) is kept as a :class:`GC3PieRecord`: its
id, job name, state and output directory, the reason, and GC3Pie's bytes
unchanged.  It is listed in the report, never dropped; a collection keeps it
as a child.

Tasks GC3Pie was running (SUBMITTED, RUNNING, TERMINATING) keep that state:
gc3session did not start their commands and cannot watch them, so its
engine finds no run of its own, and runs them again (``resume_policy=
"rerun"``, the default) or marks them UNKNOWN (``"report"``).  Stop
GC3Pie's script first.

The new session is written in one batch; if the import fails, the new
session directory is removed again and the GC3Pie session is untouched.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import sqlalchemy as sa

from .exceptions import InvalidValue
from .gc3piemap import Unmappable, build_run, build_task, reference_key, state_name
from .gc3piestore import (
    GC3PieImportError,
    GC3PieStoreError,
    ImportTargetError,
    NotAGC3PieSessionError,
    Source,
    open_source,
    read_index,
    record_class,
)
from .persistence.inert import Shadow, attributes, unpickle
from .persistence.registry import make_store
from .persistence.url import StoreUrl
from .session import Session
from .task import (
    Application,
    ParallelTaskCollection,
    Run,
    SequentialTaskCollection,
    State,
    Task,
    TaskCollection,
)

#: GC3Pie's task classes and the gc3session classes they become.
GC3PIE_CLASSES: Mapping[str, type] = {
    "gc3libs:Task": Task,
    "gc3libs:Application": Application,
    "gc3libs.workflow:TaskCollection": TaskCollection,
    "gc3libs.workflow:ParallelTaskCollection": ParallelTaskCollection,
    "gc3libs.workflow:SequentialTaskCollection": SequentialTaskCollection,
}
_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_IN_FLIGHT = (State.SUBMITTED.value, State.RUNNING.value, State.TERMINATING.value)


class GC3PieRecord(Task):
    """A GC3Pie task that could not be mapped to a gc3session class, kept as it was.

    ``gc3pie_id`` and ``gc3pie_class`` say what it was, ``reason`` why it
    was not mapped, and ``gc3pie_data`` holds GC3Pie's record bytes
    unchanged (empty if there was no record).  Its ``jobname``,
    ``output_dir``, state and return code are GC3Pie's where they could be
    read; ``gc3pie_children`` holds the tasks it referred to (an engine does
    not run them through it).
    """

    def __init__(self, gc3pie_id: str, gc3pie_class: str | None, data: bytes, reason: str,
                 **fields: Any) -> None:
        super().__init__(**fields)
        self.gc3pie_id = gc3pie_id
        self.gc3pie_class = gc3pie_class
        self.gc3pie_data = data
        self.reason = reason
        self.gc3pie_children: list[Task] = []


@dataclass
class RawTask:
    """One task kept as a :class:`GC3PieRecord`."""

    id: str
    gc3pie_id: str
    gc3pie_class: str | None
    reason: str


@dataclass
class ImportReport:
    """What :func:`import_session` did.

    ``renamed`` maps GC3Pie ids to new ones where they differ (SQL stores),
    ``in_flight`` lists tasks GC3Pie was running, ``from_backup`` the ids
    read from GC3Pie's ``<id>.OLD`` backup, ``unlisted`` the records of a
    filesystem store that the session does not reach (not imported).
    """

    source: str
    destination: str
    store: str
    tasks: int = 0
    records: int = 0
    mapped: dict[str, int] = field(default_factory=dict)
    raw: list[RawTask] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    in_flight: list[str] = field(default_factory=list)
    from_backup: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    extra_fields: list[str] = field(default_factory=list)
    extra_fields_kept: bool = True
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        data = dict(self.__dict__)
        data["raw"] = [dict(r.__dict__) for r in self.raw]
        return data


def import_session(src: "str | os.PathLike[str]", dst: "str | os.PathLike[str]",
                   store_url: "str | StoreUrl | None" = None, *,
                   classes: Mapping[str, "type | str"] | None = None) -> ImportReport:
    """Import the GC3Pie session ``src`` as a new gc3session session ``dst``.

    :param store_url: the new session's store; by default the kind of the
        GC3Pie store, inside ``dst``: ``<dst>/jobs``, or ``<dst>/jobs.db``
        (SQLite) for an SQL store.  GC3Pie's SQL extra fields become columns
        of the same names and values in an SQL store; a filesystem store
        has none (the report says so).
    :param classes: ``{"module:qualname": class or "module:qualname"}``
        for task classes of your own (module docstring).
    :raises NotAGC3PieSessionError: if ``src`` holds no GC3Pie session.
    :raises GC3PieStoreError: if its store cannot be read.
    :raises ImportTargetError: if ``dst`` exists and is not empty, or would
        write into the GC3Pie session or its store.
    :raises InvalidValue: for a ``classes`` entry that is not a task class.
    """
    started = time.monotonic()
    src = os.path.abspath(os.fspath(src))
    dst = os.path.abspath(os.fspath(dst))
    if not os.path.isdir(src):
        raise NotAGC3PieSessionError(f"no GC3Pie session in {src}: not a directory", path=src)
    keys = read_index(src)
    targets = {**GC3PIE_CLASSES, **{k: _class(v) for k, v in (classes or {}).items()}}
    source = open_source(src)
    try:
        for bad in (k for k in keys if not source.valid_id(k)):
            raise NotAGC3PieSessionError(f"{os.path.join(src, 'session_ids.txt')} lists {bad!r},"
                                         " which is not an id of its store", path=src, id=bad)
        url = StoreUrl.parse(store_url) if store_url is not None else (
            None if source.kind == "file" else StoreUrl.for_path("sqlite", os.path.join(dst, "jobs.db")))
        _check_target(src, dst, url, source)
        mapper = _Mapper(source, targets, src)
        source.prefetch(keys)
        tops = [mapper.load(key) for key in keys]
        report = _write(src, dst, url, source, mapper, tops)
        report.unlisted = source.unlisted(set(mapper.objects))
    finally:
        source.close()
    report.seconds = time.monotonic() - started
    return report


def _class(target: "type | str") -> type:
    """A ``classes`` entry: a gc3session task class, or its ``module:qualname``."""
    cls: Any = target
    if isinstance(target, str):
        module, _, qualname = target.partition(":")
        try:
            cls = importlib.import_module(module)
            for part in qualname.split("."):
                cls = getattr(cls, part)
        except (ImportError, AttributeError, ValueError) as err:
            raise InvalidValue(f"cannot import {target!r} to map a GC3Pie class to: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise InvalidValue(f"{target!r} is not a gc3session task class (a subclass of Task)")
    return cls  # type: ignore[no-any-return]


def _check_target(src: str, dst: str, url: StoreUrl | None, source: Source) -> None:
    """Refuse a destination that exists with content, or that would write into the source."""
    real_src = os.path.realpath(src)

    def inside_source(path: str) -> bool:
        real = os.path.realpath(path)
        return real == real_src or real.startswith(real_src + os.sep)

    if inside_source(dst):
        raise ImportTargetError(f"the new session {dst} would be inside the GC3Pie session {src},"
                                " which is never written to", path=dst)
    if os.path.lexists(dst) and (not os.path.isdir(dst) or os.listdir(dst)):
        raise ImportTargetError(f"{dst} already exists; the new session needs a new (or empty)"
                                " directory", path=dst)
    if url is None:
        return
    if url.base_scheme in ("file", "sqlite") and url.path and inside_source(url.path):
        raise ImportTargetError(f"the store {url} would be inside the GC3Pie session {src},"
                                " which is never written to", path=url.path)
    if source.overlaps(url):
        raise ImportTargetError(f"the store {url} is (or holds) the GC3Pie session's own store,"
                                " which is never written to", url=str(url))


class _Mapper:
    """Rebuilds GC3Pie records as gc3session objects, one id at a time (memoized)."""

    def __init__(self, source: Source, targets: Mapping[str, type], src: str) -> None:
        self.source = source
        self.targets = targets
        self.src = src  # the GC3Pie session, named in the history of raw records
        self.objects: dict[str, Task] = {}
        self.new_ids: dict[str, str] = {}
        self.mapped: dict[str, int] = {}
        self.raw: list[RawTask] = []
        self.from_backup: list[str] = []
        self._loading: set[str] = set()

    def load(self, key: str) -> Task:
        """The object of GC3Pie id ``key`` (raw if it cannot be mapped); never raises."""
        if key in self.objects:
            return self.objects[key]
        if key in self._loading:
            raise Unmappable(f"{key} refers back to itself through its children")
        self._loading.add(key)
        try:
            obj = self._load(key)
        finally:
            self._loading.discard(key)
        # The history stays GC3Pie's (so ``info`` is its last word), except
        # where a person must know more: raw records say why (``_raw``), and:
        if _in_flight(obj):
            obj.execution.info = (f"was {obj.execution.state} under GC3Pie: gc3session did not"
                                  " start its command and cannot watch it")
        self.objects[key] = obj
        return obj

    def _load(self, key: str) -> Task:
        versions = self.source.read(key)
        new_id = self._new_id(key, versions[0].data if versions else None)
        if not versions:
            return self._raw(key, new_id, None, b"", "no record of it in the GC3Pie store")
        errors = []
        for number, version in enumerate(versions):
            if version.data is None:
                errors.append(f"{version.where}: {version.error}")
                continue
            try:
                shadow = unpickle(version.data, self._reference)
            except Exception as err:  # anything garbled bytes can make pickle raise
                errors.append(f"{version.where} does not unpickle ({type(err).__name__}: {err})")
                continue
            if number:
                self.from_backup.append(new_id)
            return self._from_shadow(key, new_id, shadow, version.data)
        data = next((v.data for v in versions if v.data is not None), b"")
        return self._raw(key, new_id, record_class(data), data, "; ".join(errors))

    def _new_id(self, key: str, data: bytes | None) -> str:
        if self.source.kind == "file":
            new_id = key
        else:
            name = (record_class(data) or "") if data else ""
            prefix = name.rpartition(":")[2].rpartition(".")[2]
            new_id = f"{prefix if _PREFIX.fullmatch(prefix) else 'Task'}.{key}"
        self.new_ids[key] = new_id
        return new_id

    def _reference(self, pid: Any) -> Task:
        """pickle's ``persistent_load``: the task a GC3Pie reference names."""
        key = reference_key(pid)
        if key is None or not self.source.valid_id(key):
            raise Unmappable(f"a reference {pid!r:.80} that is not an id of the store")
        return self.load(key)

    def _from_shadow(self, key: str, new_id: str, shadow: Any, data: bytes) -> Task:
        path = getattr(shadow, "path", type(shadow).__name__)
        try:
            target = self.targets.get(path)
            if target is None:
                raise Unmappable(f"no gc3session class is mapped to {path}")
            state = attributes(shadow)
            if state is None:
                raise Unmappable(f"the {path} object has no attributes")
            pid = state.get("persistent_id")
            pid = reference_key(pid) if pid is not None else None
            if self.source.kind == "file" and pid is not None and pid != key:
                raise Unmappable(f"the record holds the id {pid}, not {key}")
            obj = build_task(target, state)
        except Unmappable as err:
            return self._raw(key, new_id, path, data, str(err), shadow)
        except (InvalidValue, TypeError, ValueError) as err:  # a constructor refused a value
            return self._raw(key, new_id, path, data, f"{type(err).__name__}: {err}", shadow)
        obj.persistent_id = new_id  # type: ignore[attr-defined]
        self.mapped[path] = self.mapped.get(path, 0) + 1
        return obj

    def _raw(self, key: str, new_id: str, cls: str | None, data: bytes, reason: str,
             shadow: Any = None) -> GC3PieRecord:
        """A :class:`GC3PieRecord` with whatever of the task could be read."""
        state = (attributes(shadow) if isinstance(shadow, Shadow) else None) or {}
        jobname = state.get("jobname")
        record = GC3PieRecord(key, cls, data, reason,
                              jobname=jobname if isinstance(jobname, str) else None)
        if isinstance(state.get("output_dir"), str):
            record.output_dir = state["output_dir"]
        record.gc3pie_children = [v for v in (state.get("tasks") or ()) if isinstance(v, Task)] \
            if isinstance(state.get("tasks"), list) else []
        execution = state.get("execution")
        run_state = attributes(execution) if isinstance(execution, Shadow) else None
        run = Run()
        try:
            if run_state is None:  # nothing of it could be read: the SQL state column, if any
                run._state = state_name(self.source.state(key) or State.UNKNOWN.value)
            else:
                run = build_run(run_state, strict=False)
        except (Unmappable, TypeError, ValueError, IndexError):
            run._state = State.UNKNOWN.value
        object.__setattr__(run, "_ref", record)
        record.execution = run
        record.execution.info = (f"kept as a GC3Pie record (GC3Pie id {key} in {self.src}):"
                                 f" {reason}")
        record.persistent_id = new_id
        self.raw.append(RawTask(new_id, key, cls, reason))
        return record


def _in_flight(task: Task) -> bool:
    """A task (not a collection) that GC3Pie had started and not seen end."""
    return not isinstance(task, TaskCollection) and str(task.execution.state) in _IN_FLIGHT


def _write(src: str, dst: str, url: StoreUrl | None, source: Source, mapper: _Mapper,
           tops: list[Task]) -> ImportReport:
    """Create the session ``dst``, write every object in one batch; on failure undo ``dst``."""
    sql = url is not None and url.base_scheme != "file"
    store_kwargs: dict[str, Any] = {}
    if sql and source.extra_columns:
        values = {mapper.new_ids[key]: source.extras(key) for key in mapper.objects}
        store_kwargs["extra_fields"] = {sa.Column(column.name, column.type): _extra(values, column.name)
                                        for column in source.extra_columns}
    existed = os.path.isdir(dst)  # and empty (checked): everything in it is this import's
    try:
        store = make_store(url, **store_kwargs) if url is not None else None
        with Session(dst, store_or_url=store) as session:
            for task in tops:
                session.add(task, flush=False)
            session.flush()
            report = ImportReport(source=src, destination=session.path,
                                  store=str(session.store_url.without_password()),
                                  tasks=len(session), records=len(mapper.objects))
    except BaseException:
        for name in os.listdir(dst) if existed else ():
            _remove(os.path.join(dst, name))
        if not existed:
            shutil.rmtree(dst, ignore_errors=True)
        raise
    report.mapped = dict(mapper.mapped)
    report.raw = list(mapper.raw)
    report.renamed = {k: v for k, v in mapper.new_ids.items() if k != v}
    report.in_flight = [mapper.new_ids[k] for k, obj in mapper.objects.items() if _in_flight(obj)]
    report.from_backup = list(mapper.from_backup)
    report.extra_fields = [c.name for c in source.extra_columns]
    report.extra_fields_kept = sql or not source.extra_columns
    return report


def _extra(values: dict[str, dict[str, Any]], name: str) -> Any:
    """The extra-field function of column ``name``: GC3Pie's value for each imported id."""
    return lambda obj: values[str(obj.persistent_id)][name]


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


__all__ = ["GC3PIE_CLASSES", "GC3PieImportError", "GC3PieRecord", "GC3PieStoreError",
           "ImportReport", "ImportTargetError", "NotAGC3PieSessionError", "RawTask",
           "import_session"]
