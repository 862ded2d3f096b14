"""The session state: a gc3session :class:`~gc3session.Session` of jobs, plus PlainBox's extras.

A :class:`SessionState` lives in a storage directory: its tasks are kept by
a gc3session session in ``<storage>/tasks`` (so ``gsession`` and every
gc3session API see them) and its IO log files in ``<storage>/io-logs``.
Each task is one PlainBox *job*: its ``jobname`` is the job id (unique in
the session) and ``task.checksum`` the fingerprint of its definition.

What PlainBox adds to a set of jobs -- the result history of each job, the
session metadata, the desired and mandatory job lists, the system
information -- is kept in memory and made durable by a *checkpoint*
(:meth:`gc3session.plainbox.manager.SessionManager.checkpoint`), whose
bytes are the authoritative copy: task records are written when a job is
added and are not rewritten for each result, so a checkpoint costs one
serialization and one atomic file write, whatever the number of results.
"""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import tempfile
import types
from typing import Any, Iterable, Mapping

from .. import fsio
from ..exceptions import InvalidType, InvalidValue
from ..session import Session
from ..task import Task
from .jobstate import JobState
from .metadata import SessionMetaData
from .results import IO_LOG_SUFFIX, DiskJobResult, JobResult, MemoryJobResult, write_io_log
from .storage import slugify

#: The gc3session session of the jobs, inside the storage directory.
TASKS_DIR = "tasks"
#: The directory of IO log files, inside the storage directory.
IO_LOGS_DIR = "io-logs"
#: Output larger than this (bytes, all records together) is never inlined in
#: a checkpoint: :meth:`SessionState.update_job_result` writes it to ``io-logs/``.
INLINE_IO_LOG_LIMIT = 4096


class SessionState(Session):
    """The jobs of one PlainBox session, their results and the session metadata.

    :param location: the storage directory (created if needed); the tasks
        live in its ``tasks/`` subdirectory.  PlainBox's signature,
        ``SessionState(unit_list)``, is accepted too: given a list (or any
        iterable that is not a path) of jobs, the state is *detached* (see
        :meth:`detached`) and holds those jobs.
    :param durable: fsync every write (default).
    :param jobs: jobs to add at once (one batch of record writes); if one
        cannot be added, the state is closed and the error raised.

    It is a :class:`~gc3session.Session` (``add``, ``list_names``,
    ``list_ids``, iteration, ``close``, ...), with PlainBox's view on top:
    :attr:`job_state_map`, :meth:`update_job_result`, :attr:`metadata`,
    :attr:`desired_job_list`, :attr:`mandatory_job_list`,
    :attr:`system_information`.
    """

    def __init__(self, location: "str | os.PathLike[str] | Iterable[Task]", *,
                 durable: bool = True, jobs: Iterable[Task] = ()) -> None:
        units = list(jobs)
        if isinstance(location, (bytes, bytearray)):
            raise InvalidType("a session state's location must be a str path (or a list of jobs), not bytes")
        if not isinstance(location, (str, os.PathLike)):
            units = list(location) + units
            location = _scratch_directory()
        self.location = os.path.abspath(os.fspath(location))
        self.metadata = SessionMetaData()
        self.system_information: dict[str, Any] = {}
        self._desired: list[str] = []
        self._mandatory: list[str] = []
        self._job_states: dict[str, JobState] = {}
        super().__init__(os.path.join(self.location, TASKS_DIR), durable=durable)
        for task in self.tasks.values():
            name = getattr(task, "jobname", None)
            if isinstance(name, str) and name not in self._job_states:
                self._job_states[name] = JobState(task)
        if units:
            try:
                for unit in units:
                    self.add(unit, flush=False)
                self.flush()
            except BaseException:
                self.close()
                raise

    @classmethod
    def detached(cls) -> "SessionState":
        """A state in a fresh temporary directory, removed when the program exits.

        It is what PlainBox calls a session state without storage: usable,
        but gone at exit unless :meth:`SessionManager.create_with_state`
        copies it into a storage.
        """
        return cls(_scratch_directory())

    # --- jobs -------------------------------------------------------------------
    @property
    def job_list(self) -> list[Task]:
        """The jobs, in session order (as added, or as ``job_list`` orders them at resume)."""
        return [state.job for state in self._job_states.values()]

    @property
    def unit_list(self) -> list[Task]:
        """PlainBox's units of the session: here its jobs, the only units a state keeps."""
        return self.job_list

    @property
    def job_state_map(self) -> Mapping[str, JobState]:
        """``{job id: JobState}``, read-only."""
        return types.MappingProxyType(self._job_states)

    def add(self, task: Any, flush: bool = True) -> Any:
        """Add a job; its ``jobname`` is its id and must be unique in the session.

        :raises InvalidValue: if the task has no ``jobname`` or another job has it.
        """
        name = self._jobname(task)
        known = self._job_states.get(name)
        if known is not None and known.job is not task:
            raise InvalidValue(f"session {self.location} already has a job {name!r}",
                               path=self.path, id=name)
        pid = super().add(task, flush=flush)
        if known is None:
            self._job_states[name] = JobState(task)
        return pid

    def forget(self, task_id: str, flush: bool = True) -> None:
        """Drop a task from the session (its record stays in the store), with its results."""
        task = self.tasks.get(str(task_id))
        super().forget(task_id, flush=flush)
        name = getattr(task, "jobname", None)
        known = self._job_states.get(name) if isinstance(name, str) else None
        if known is not None and known.job is task:
            del self._job_states[name]  # type: ignore[arg-type]

    def get_job(self, job_id: str) -> Task:
        """The job with id ``job_id``.

        :raises InvalidValue: if there is none.
        """
        return self._state_of(job_id).job

    def _jobname(self, task: Any) -> str:
        """The job id of ``task``: its ``jobname``.

        :raises InvalidValue: if it has none.
        """
        name = getattr(task, "jobname", None)
        if not isinstance(name, str) or not name:
            raise InvalidValue(f"a job needs a jobname (its PlainBox id), {task!r} has none",
                               path=self.path)
        return name

    def _state_of(self, job: "Task | str") -> JobState:
        name = job if isinstance(job, str) else getattr(job, "jobname", None)
        state = self._job_states.get(name) if isinstance(name, str) else None
        if state is None or (not isinstance(job, str) and state.job is not job):
            raise InvalidValue(f"job {name!r} is not part of session {self.location}",
                               path=self.path, id=name)
        return state

    # --- results ----------------------------------------------------------------
    def update_job_result(self, job: "Task | str", result: JobResult) -> JobResult:
        """Record a result of ``job`` (a job of this session, or its id); return what was kept.

        A hollow result is not kept.  Output larger than
        :data:`INLINE_IO_LOG_LIMIT` is written to ``io-logs/<job>.record.gz``
        (one durable file write) and the result becomes a
        :class:`DiskJobResult`, so checkpoints stay small.  The result is
        durable at the next checkpoint.

        :raises InvalidValue: if the job is not part of this session.
        :raises InvalidType: if ``result`` is not a :class:`JobResult`.
        """
        state = self._state_of(job)
        if not isinstance(result, JobResult):
            raise InvalidType(f"a job result must be a JobResult, not {type(result).__name__}")
        if isinstance(result, MemoryJobResult) and \
                sum(len(record.data) for record in result.io_log) > INLINE_IO_LOG_LIMIT:
            path = self._new_io_log_path(self._jobname(state.job))
            write_io_log(path, result.io_log, durable=self.durable)
            result = DiskJobResult({"outcome": result.outcome, "return_code": result.return_code,
                                    "execution_duration": result.execution_duration,
                                    "comments": result.comments, "io_log_filename": path})
        if not result.is_hollow:
            state.result_history.append(result)
        return result

    @property
    def io_log_dir(self) -> str:
        """The directory of this session's IO log files."""
        return os.path.join(self.location, IO_LOGS_DIR)

    def _new_io_log_path(self, job_id: str) -> str:
        fsio.make_dirs(self.io_log_dir, durable=self.durable)
        stem = os.path.join(self.io_log_dir, slugify(job_id))
        path, n = stem + IO_LOG_SUFFIX, 1
        while os.path.lexists(path):
            n += 1
            path = f"{stem}_{n}{IO_LOG_SUFFIX}"
        return path

    # --- plans ------------------------------------------------------------------
    @property
    def desired_job_list(self) -> list[str]:
        """Ids of the jobs the application wants to run, mandatory ones first, no repeats."""
        return list(dict.fromkeys([*self._mandatory, *self._desired]))

    @desired_job_list.setter
    def desired_job_list(self, jobs: Iterable["Task | str"]) -> None:
        self._desired = _ids(jobs)

    def update_desired_job_list(self, jobs: Iterable["Task | str"]) -> None:
        """Set the desired jobs (PlainBox's name for assigning :attr:`desired_job_list`)."""
        self.desired_job_list = jobs  # type: ignore[assignment]

    @property
    def mandatory_job_list(self) -> list[str]:
        """Ids of the jobs that always run, whatever was desired."""
        return list(self._mandatory)

    @mandatory_job_list.setter
    def mandatory_job_list(self, jobs: Iterable["Task | str"]) -> None:
        self._mandatory = _ids(jobs)

    def update_mandatory_job_list(self, jobs: Iterable["Task | str"]) -> None:
        """Set the mandatory jobs (PlainBox's name for assigning :attr:`mandatory_job_list`)."""
        self.mandatory_job_list = jobs  # type: ignore[assignment]

    # --- restoring and copying ----------------------------------------------------
    def _take_jobs(self, jobs: Iterable[Task], changed: Iterable[str] = ()) -> None:
        """Make ``jobs`` (the application's objects) exactly the jobs of this session.

        A job whose id matches a task already in the session takes over that
        task's record (rewritten only if its id is in ``changed``); new jobs
        get records; tasks not listed are forgotten (their records stay in
        the store).  Results of the session are dropped.  One index update.
        """
        wanted = {self._jobname(job): job for job in jobs}
        rewrite = set(changed)
        for name, state in list(self._job_states.items()):
            if name not in wanted:
                self.forget(state.job.persistent_id, flush=False)
        for name, job in wanted.items():
            known = self._job_states.get(name)
            if known is not None and known.job is not job:
                pid = known.job.persistent_id
                job.persistent_id = pid
                self.tasks[str(pid)] = job
                if name in rewrite:
                    self.save(job)
                else:
                    job.changed = False
                known.job = job
            elif known is None:
                if str(getattr(job, "persistent_id", None)) not in self.tasks:
                    job.persistent_id = None  # a record of some other store: not ours to overwrite
                self.add(job, flush=False)
            self._job_states[name].result_history = []
        self._job_states = {name: self._job_states[name] for name in wanted}
        self.flush()

    def copy_to(self, location: "str | os.PathLike[str]") -> "SessionState":
        """A new state in ``location`` holding copies of these jobs, results and metadata.

        IO log files kept under this state's directory are copied into the
        new ``io-logs/``; other file names are kept as they are.
        """
        other = SessionState(location, durable=self.durable,
                             jobs=[_fresh_copy(state.job) for state in self._job_states.values()])
        try:
            for name, state in self._job_states.items():
                history = other._job_states[name].result_history
                for result in state.result_history:
                    history.append(self._copy_result(result, other))
        except BaseException:
            other.close()
            raise
        other.metadata = copy.deepcopy(self.metadata)
        other._desired, other._mandatory = list(self._desired), list(self._mandatory)
        other.system_information = copy.deepcopy(self.system_information)
        return other

    def _copy_result(self, result: JobResult, other: "SessionState") -> JobResult:
        if not isinstance(result, DiskJobResult) or result.io_log_filename is None:
            return result
        name = result.io_log_filename
        if os.path.commonpath([self.location, os.path.abspath(name)]) != self.location:
            return result
        target = os.path.join(other.io_log_dir, os.path.relpath(name, self.io_log_dir))
        fsio.make_dirs(os.path.dirname(target), durable=other.durable)
        fsio.atomic_write(target, fsio.read_bytes(name), durable=other.durable, mode=0o644)
        return DiskJobResult({"outcome": result.outcome, "return_code": result.return_code,
                              "execution_duration": result.execution_duration,
                              "comments": result.comments, "io_log_filename": target})

    def __repr__(self) -> str:
        return f"<SessionState {self.location} ({len(self)} jobs)>"


class SessionDeviceContext:
    """The session state of one device, as a :class:`SessionManager` holds it.

    PlainBox 0.38 manages a session through device contexts and accepts at
    most one, the local machine's; gc3session runs jobs on that machine
    only, so :attr:`device` is always None, as for PlainBox's local context.

    :param state: the state of the context; if None, a state in
        ``location`` (the storage directory), or a detached one (see
        :meth:`SessionState.detached`) when no location is given either.
    """

    def __init__(self, state: "SessionState | None" = None, *,
                 location: "str | os.PathLike[str] | None" = None) -> None:
        if state is None:
            state = SessionState(location) if location is not None else SessionState.detached()
        elif location is not None:
            raise InvalidType("a device context takes a state or a location, not both")
        elif not isinstance(state, SessionState):
            raise InvalidType(f"a device context holds a SessionState, not {state!r}")
        self._state = state

    @property
    def device(self) -> object:
        """The device the jobs run on: None, the local machine."""
        return None

    @property
    def state(self) -> SessionState:
        """The session state of this device."""
        return self._state

    def __repr__(self) -> str:
        return f"<SessionDeviceContext {self._state!r}>"


def _scratch_directory() -> str:
    """A new temporary directory for a detached state, removed when the program exits."""
    path = tempfile.mkdtemp(prefix="gc3session-plainbox-")
    atexit.register(shutil.rmtree, path, True)
    return path


def _ids(jobs: Iterable["Task | str"]) -> list[str]:
    """Job ids of ``jobs`` (tasks or ids), first occurrence of each kept."""
    ids = []
    for job in jobs:
        name = job if isinstance(job, str) else getattr(job, "jobname", None)
        if not isinstance(name, str):
            raise InvalidType(f"a job list holds job ids or jobs, not {job!r}")
        ids.append(name)
    return list(dict.fromkeys(ids))


def _fresh_copy(task: Task) -> Task:
    """A deep copy of ``task`` (and of its children) without store ids, ready for another store."""
    clone = copy.deepcopy(task)
    pending = [clone]
    while pending:
        current = pending.pop()
        current.persistent_id = None
        current.changed = True
        pending.extend(getattr(current, "tasks", None) or ())
    return clone


__all__ = ["INLINE_IO_LOG_LIMIT", "IO_LOGS_DIR", "JobState", "SessionDeviceContext", "SessionMetaData",
           "SessionState", "TASKS_DIR"]
