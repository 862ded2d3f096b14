"""Run commands on a ``dask.distributed`` cluster (``dask://HOST:PORT``).

Each command becomes one Dask task, under a key unique to the run
(``gc3session-<working directory name>-<random>``).  Its function,
:func:`run_command`, runs on a worker and does there what the local executor
does on the driver's machine: it takes the run lock in the run's working
directory, starts the command under ``/bin/sh`` in a session of its own
(same exit-status file, same memory limit, same environment variables),
waits for it and returns its shell status.

Requirements
------------
* The driver creates each working directory (and stages the inputs into it)
  and the worker runs the command in it, so it must be on a file system that
  both see under the same path: the same machine, or a shared file system
  (NFS, Lustre, ...) mounted at the same place everywhere.
* ``gc3session`` must be importable on the workers and on the scheduler:
  the task function lives in this module, and the scheduler unpickles the
  task graph it is sent.
* A command occupies one worker thread for as long as it runs: how many run
  at once is bounded by the workers' threads and by the engine's
  ``max_in_flight``.  ``requested_cores`` reaches the command as
  ``GC3SESSION_CORES``.

Cores and memory
----------------
Workers that declare the Dask *resources* ``cores`` and ``memory`` (bytes),
e.g. ``dask worker --resources "cores=8,memory=32e9"``, get tasks only as
long as those they run leave enough: each command reserves its
``requested_cores`` and its ``requested_memory`` (when set) for as long as
it runs.  A resource that no connected worker declares is not reserved, so
a cluster started without ``--resources`` runs one command per worker
thread as before (Dask would otherwise keep such tasks waiting for ever).
A task asking more than the largest worker declares cannot start: it ends
with status 127 and the reason (:class:`WorkerResourcesError`).

Outliving the driver
--------------------
A Dask future normally dies with the client that holds it.  Each run's
future is therefore *published* on the scheduler under its key
(``Client.publish_dataset``): the scheduler keeps the task, and its result
once it ends, until a driver has read the result and unpublished it.  The
handle stored in the task names the key, and so does :data:`KEY_FILE` in the
run's working directory (written before the task is submitted, for a driver
that died before it saved the handle), so a restarted driver reattaches with
``Client.get_dataset(key)``.

:meth:`DaskExecutor.reattach` answers "ended" when the run has recorded its
exit status (whatever the scheduler says: its result may still be on its
way), "still running" when the scheduler still has the key, or else (the
scheduler was restarted meanwhile) when some process still holds the run
lock: a command that outlived its worker or its scheduler.  Otherwise the run
is gone.  For an ended or gone run the engine calls :meth:`DaskExecutor.poll`,
which reads the exit-status file: a run that ended while no driver watched is
accounted for, one that left no status is reported with the reason, and the
engine's resume policy decides what happens to it.

A worker that dies while running a command (the command goes on, in its own
session) makes the scheduler run the task again on another worker.  That
attempt blocks on the run lock until the first command has ended, then
returns the status it recorded: a command never runs twice in one working
directory.

Killing
-------
Dask cannot interrupt a task that runs, so :meth:`DaskExecutor.kill` asks
every worker (one ``Client.run`` call) to SIGKILL the process group of the
run's command; a worker that has not started it yet remembers the key and
never will.  The task is then cancelled on the scheduler.  When the shell
died before it could record a status, the worker records 137 (128 + SIGKILL).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal as signals
import socket
import subprocess
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from .. import fsio
from ..exceptions import Error, ExecutorUnavailableError
from ..locking import is_locked
from .base import EXIT_FILE, Executor, Outcome, command_environment, decode_status, read_exit_status

if TYPE_CHECKING:
    import distributed

# The commands this worker process runs, by key, and the keys killed here
# (a kill that arrives before the command starts must keep it from starting).
_registry_lock = threading.Lock()
_commands: dict[str, subprocess.Popen[bytes]] = {}
_killed_here: set[str] = set()

_KILLED_STATUS = 128 + signals.SIGKILL

#: Lock file in a run's working directory, ``flock``-ed by the worker and the
#: command's shell for as long as the run lives.  A file opened for writing,
#: not the directory itself as the local executor does, so that an exclusive
#: lock also works on NFS (where ``flock`` becomes a POSIX lock).
RUN_LOCK = ".gc3session-run"

#: File in a run's working directory naming its Dask key, written before the
#: task is submitted: a run whose handle was never saved is still found.
KEY_FILE = ".gc3session-dask-key"


def _not_a_lost_scheduler(record: logging.LogRecord) -> bool:
    """Drop the client's own "Failed to reconnect" error: the executor raises
    :class:`SchedulerUnavailableError` for it, which a script reports in one line."""
    return not str(record.msg).startswith("Failed to reconnect to scheduler")


class SchedulerUnavailableError(ExecutorUnavailableError):
    """The Dask scheduler cannot be reached (``address`` says which one)."""


class WorkerResourcesError(Error, ValueError):
    """A task asks more cores or memory than any Dask worker declares (``resource`` says which)."""


class WorkdirNotVisibleError(Error, FileNotFoundError):
    """A worker cannot see a run's working directory (it must be on a shared file system)."""


class DaskExecutor(Executor):
    """Run each command as a task on the workers of a Dask scheduler.

    :param address: the scheduler, ``HOST:PORT`` or ``tcp://HOST:PORT``.
    :param connect_timeout: seconds to wait for the scheduler to answer.
    :raises SchedulerUnavailableError: if it does not answer in time.
    """

    name = "dask"

    def __init__(self, address: str, connect_timeout: float = 10.0) -> None:
        try:
            import distributed
        except ImportError as err:
            raise Error("the dask executor needs the 'distributed' package:"
                        " pip install 'gc3session[dask]'") from err
        self.address = address if "://" in address else f"tcp://{address}"
        self._distributed = distributed
        client_log = logging.getLogger("distributed.client")
        if _not_a_lost_scheduler not in client_log.filters:
            client_log.addFilter(_not_a_lost_scheduler)
        try:
            self._client = distributed.Client(self.address, timeout=connect_timeout,
                                              set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise SchedulerUnavailableError(f"cannot reach the Dask scheduler at {self.address}:"
                                            f" {err}", address=self.address) from err
        self._futures: dict[str, distributed.Future] = {}
        self._killed: set[str] = set()
        self._offered: tuple[float, list[dict[str, float]]] = (-1.0, [])

    def submit(self, task: Any, workdir: str) -> dict[str, Any]:
        """Send the command of ``task`` to the cluster; it runs in ``workdir``.

        :raises SchedulerUnavailableError: if the scheduler cannot be reached.
        :raises WorkerResourcesError: if no worker can ever run it (module docstring).
        """
        key = f"gc3session-{os.path.basename(workdir)}-{uuid.uuid4().hex[:16]}"
        with self._reaching(f"submit {task} to"):
            resources = self._reservation(task)
        fsio.atomic_write(os.path.join(workdir, KEY_FILE), key.encode(), durable=False)
        with self._reaching(f"submit {task} to"):
            future = self._client.submit(
                run_command, key, list(task.arguments), workdir, task.stdout, task.stderr,
                dict(task.environment or {}), int(task.requested_cores), task.requested_memory,
                key=key, pure=False, resources=resources or None)
            self._client.publish_dataset(future, name=key)
        self._futures[key] = future
        return {"executor": self.name, "key": key, "scheduler": self.address, "workdir": workdir}

    @contextlib.contextmanager
    def _reaching(self, what: str) -> Iterator[None]:
        """Turn the client's connection errors into :class:`SchedulerUnavailableError`."""
        try:
            yield
        except (OSError, TimeoutError) as err:
            raise SchedulerUnavailableError(f"cannot {what} the Dask scheduler at {self.address}:"
                                            f" {err}", address=self.address) from err
        except Exception as err:
            # Once the client gave up reconnecting it closes itself, and its calls fail with
            # whatever it meets first ("ConnectionPool is closed", ClosedClientError, ...).
            if self._client.status == "running":
                raise
            raise SchedulerUnavailableError(f"cannot {what} the Dask scheduler at {self.address}:"
                                            f" it went away ({type(err).__name__}: {err})",
                                            address=self.address) from err

    def _reservation(self, task: Any) -> dict[str, float]:
        """The worker resources ``task`` reserves: those some worker declares (module docstring)."""
        wanted = {"cores": int(task.requested_cores)}
        if task.requested_memory:
            wanted["memory"] = int(task.requested_memory)
        when, offered = self._offered
        if time.monotonic() - when > 1.0:  # one look at the workers per second is enough
            workers = (self._client.scheduler_info().get("workers") or {}).values()
            offered = [dict(info.get("resources") or {}) for info in workers]
            self._offered = (time.monotonic(), offered)
        reserved: dict[str, float] = {}
        for name, amount in wanted.items():
            declared = [resources[name] for resources in offered if name in resources]
            if not declared:
                continue
            if amount > max(declared):
                raise WorkerResourcesError(
                    f"{task} requests {amount:g} {name} and the largest Dask worker of"
                    f" {self.address} declares {max(declared):g}", resource=name, requested=amount)
            reserved[name] = amount
        return reserved

    def poll(self, task: Any, handle: dict[str, Any]) -> Outcome | None:
        """The outcome from the task's result, or else from the working directory.

        A task whose function raised (the command could not be started there:
        see :class:`WorkdirNotVisibleError`) ends with status 127, like a
        command a shell cannot start, so that it is not run again in vain.
        """
        key = _key_of(handle)
        workdir = handle["workdir"]
        problem, failed = "", False
        future = self._futures.get(key) if key is not None else None
        if key is not None and future is not None:
            if future.status == "pending":
                return None
            if future.status == "finished":
                status = future.result()
                self._release(key)
                return decode_status(status)
            if future.status == "error":
                error = future.exception()
                problem, failed = f"{type(error).__name__}: {error}", True
            else:
                problem = f"its Dask task was {future.status}"
            self._release(key)
        status = read_exit_status(workdir)
        if status is not None:
            return decode_status(status)
        if is_locked(os.path.join(workdir, RUN_LOCK)):
            return None
        if key in self._killed:
            return Outcome(None, signals.SIGKILL, "killed before its command started")
        if failed:
            return Outcome(127, None, f"could not be started on a Dask worker: {problem}")
        return Outcome(None, None, problem or "the run ended while no driver watched it"
                                              " and left no exit status")

    def reattach(self, task: Any, handle: dict[str, Any]) -> bool:
        """True if the run has not recorded an exit status yet and the scheduler still
        has its key, or a process still holds its lock."""
        key = _key_of(handle)
        if read_exit_status(handle["workdir"]) is not None:
            if key is not None:
                self._release(key)  # ended while no driver watched: poll reads its status
            return False
        if key is not None:
            with self._reaching(f"find the run of {task} on"):
                future = self._client.get_dataset(key, default=None)
            if future is not None:
                self._futures[key] = future
                return True
        return is_locked(os.path.join(handle["workdir"], RUN_LOCK))

    def kill(self, task: Any, handle: dict[str, Any]) -> None:
        """Kill the command on whichever worker runs it, and cancel its task."""
        key = _key_of(handle)
        if key is None:
            return
        self._killed.add(key)
        with self._reaching(f"kill {task} through"):
            self._client.run(_kill_command, key, on_error="return")
            future = self._futures.get(key) or self._client.get_dataset(key, default=None)
            if future is not None:
                self._client.cancel([future])
        self._release(key)

    def wait(self, handles: Iterable[dict[str, Any]], timeout: float) -> None:
        """Block until one of the runs' tasks ends, or ``timeout`` seconds."""
        futures = [self._futures[key] for key in map(_key_of, handles) if key in self._futures]
        if not futures:
            time.sleep(timeout)  # runs followed through their working directories only
            return
        with self._client.as_current(), contextlib.suppress(TimeoutError):
            self._distributed.wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")

    def close(self) -> None:
        """Disconnect from the scheduler; published runs go on and can be reattached."""
        self._futures.clear()
        self._client.close()

    def _release(self, key: str) -> None:
        """Forget the run's future and unpublish it, so the scheduler drops the task."""
        self._futures.pop(key, None)
        with self._reaching(f"release run {key} on"), \
                contextlib.suppress(KeyError):  # unpublished already: by a kill, or another driver
            self._client.unpublish_dataset(key)


def _key_of(handle: dict[str, Any]) -> str | None:
    """The Dask key of a run: from its handle, or else from its working directory."""
    if handle.get("key"):
        return str(handle["key"])
    try:
        with open(os.path.join(handle["workdir"], KEY_FILE), "rb") as stream:
            return stream.read().decode() or None
    except (OSError, UnicodeDecodeError):
        return None


def run_command(key: str, argv: list[str], workdir: str, stdout: str | None, stderr: str | None,
                environment: Mapping[str, str], cores: int, memory: int | None) -> int:
    """Run one command on this worker (the Dask task); return its shell status.

    The run lock is taken before anything else: if an earlier attempt of the
    same run (on a worker that died) left its command running, this waits for
    it and returns the status it recorded instead of starting it again.
    """
    try:
        lock = os.open(os.path.join(workdir, RUN_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError as err:
        raise WorkdirNotVisibleError(
            f"working directory {workdir} does not exist on Dask worker {socket.gethostname()}:"
            " it must be on a file system that the driver and the workers share",
            path=workdir) from err
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        status = read_exit_status(workdir)
        if status is not None:
            return status
        env, script = command_environment(os.environ, environment, cores, memory)
        with _registry_lock:
            if key in _killed_here:
                return _record(workdir, _KILLED_STATUS)
            proc = _start(script, argv, workdir, stdout, stderr, env, lock)
            _commands[key] = proc
        try:
            returncode = proc.wait()
        finally:
            with _registry_lock:
                _commands.pop(key, None)
        status = returncode if returncode >= 0 else 128 - returncode
        recorded = read_exit_status(workdir)
        return recorded if recorded is not None else _record(workdir, status)
    finally:
        os.close(lock)


def _start(script: str, argv: list[str], workdir: str, stdout: str | None, stderr: str | None,
           env: dict[str, str], lock: int) -> subprocess.Popen[bytes]:
    """Start ``/bin/sh -c SCRIPT sh ARGV...`` in a session of its own, holding ``lock``."""
    out = err = subprocess.DEVNULL
    try:
        out = _open_stream(workdir, stdout)
        err = subprocess.STDOUT if stderr is not None and stderr == stdout \
            else _open_stream(workdir, stderr)
        return subprocess.Popen(["/bin/sh", "-c", script, "sh", *argv], cwd=workdir,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                start_new_session=True, pass_fds=(lock,))
    finally:
        for stream in (out, err):
            if stream >= 0:
                os.close(stream)


def _open_stream(workdir: str, name: str | None) -> int:
    if name is None:
        return subprocess.DEVNULL
    return os.open(os.path.join(workdir, name),
                   os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)


def _record(workdir: str, status: int) -> int:
    """Write ``status`` to the run's exit-status file (the shell could not)."""
    fsio.atomic_write(os.path.join(workdir, EXIT_FILE), b"%d\n" % status)
    return status


def _kill_command(key: str) -> bool:
    """On a worker: SIGKILL the command of ``key`` if it runs here; never start it later."""
    with _registry_lock:
        _killed_here.add(key)
        proc = _commands.get(key)
        if proc is None or proc.returncode is not None:
            return False
        try:
            os.killpg(proc.pid, signals.SIGKILL)
        except ProcessLookupError:
            return False
        return True


__all__ = ["DaskExecutor", "KEY_FILE", "RUN_LOCK", "SchedulerUnavailableError",
           "WorkdirNotVisibleError", "WorkerResourcesError", "run_command"]
