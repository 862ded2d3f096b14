"""The GC3Pie 2.6.8 side of the import tests: the real GC3Pie writes sessions, and says what it sees.

The file has two halves that never mix:

* **Host side** (imported by ``tests/test_gc3pie_import.py``; standard library
  only): :func:`gc3pie_python` builds, or reuses, a virtual environment with
  the real ``gc3pie==2.6.8`` from PyPI and what its session, persistence and
  engine layers import (SQLAlchemy 1.4: GC3Pie's SQL store does not run on
  2.x), and :func:`call` runs one command of this file there.
* **Peer side** (``python -I _gc3pie_peer.py COMMAND`` in that environment):
  the command reads one JSON request on stdin, drives GC3Pie's own classes
  (``Session``, ``Application``, the collections, ``create_engine`` with a
  ``shellcmd`` resource on this machine), and prints one JSON answer.

The environment lives in ``${XDG_CACHE_HOME:-~/.cache}/gc3session-test/gc3pie-2.6.8``;
it is built under a temporary name and renamed into place, so concurrent
runs never see a half-installed one.  Each call runs with ``HOME`` and
``GC3PIE_ID_FILE`` under the request's ``home`` directory, so GC3Pie writes
nothing outside the test's own directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

GC3PIE_VERSION = "2.6.8"
#: gc3pie is installed with --no-deps: its full list pulls in pycrypto, which
#: does not build on current Pythons; these are what sessions and the engine import.
REQUIREMENTS = ["SQLAlchemy==1.4.54", "future", "lockfile", "six", "blinker", "paramiko", "pyyaml",
                "prettytable", "parsedatetime", "coloredlogs", "dictproxyhack", "psycopg2-binary"]
INSTALL_TIMEOUT = 900
CALL_TIMEOUT = 600


class PeerUnavailable(Exception):
    """GC3Pie 2.6.8 could not be installed or started; the message says why."""


class PeerError(Exception):
    """A peer command failed; the message carries the command and its stderr."""


# --------------------------------------------------------------------- host side

def default_cache_dir() -> str:
    """Where the reusable environment is kept (XDG cache convention)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "gc3session-test", f"gc3pie-{GC3PIE_VERSION}")


def _interpreter(venv: str) -> str:
    return os.path.join(venv, "bin", "python")


def _works(venv: str) -> bool:
    """True if ``venv`` imports GC3Pie 2.6.8's session, SQL store and engine with SQLAlchemy 1.4."""
    python = _interpreter(venv)
    if not os.path.exists(python):
        return False
    probe = ("import gc3libs, gc3libs.session, gc3libs.persistence.sql, gc3libs.core, sqlalchemy,"
             " psycopg2, importlib.metadata as m; print(m.version('gc3pie'), sqlalchemy.__version__)")
    try:
        done = subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    words = done.stdout.split()
    return done.returncode == 0 and len(words) == 2 and words[0] == GC3PIE_VERSION \
        and words[1].startswith("1.4.")


def _build(venv: str) -> None:
    steps = [
        [sys.executable, "-m", "venv", venv],
        [_interpreter(venv), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", f"gc3pie=={GC3PIE_VERSION}"],
        [_interpreter(venv), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *REQUIREMENTS],
    ]
    for argv in steps:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise PeerUnavailable(f"{' '.join(argv)}: {err}") from err
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise PeerUnavailable(f"{' '.join(argv)} exited {done.returncode}: " + " | ".join(tail))
    if not _works(venv):
        raise PeerUnavailable(f"gc3pie {GC3PIE_VERSION} installed in {venv} does not import")


def gc3pie_python(cache_dir: str | None = None) -> str:
    """The interpreter of a working GC3Pie 2.6.8 environment, built on first use.

    :raises PeerUnavailable: if it cannot be built (no network, no ``ensurepip``...).
    """
    final = cache_dir or default_cache_dir()
    if _works(final):
        return _interpreter(final)
    try:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".building-", dir=os.path.dirname(final))
    except OSError as err:
        raise PeerUnavailable(f"cannot create {os.path.dirname(final)}: {err}") from err
    venv = os.path.join(staging, "venv")
    try:
        _build(venv)
        if os.path.isdir(final) and not _works(final):
            shutil.rmtree(final, ignore_errors=True)  # a broken earlier build: ours replaces it
        try:
            os.rename(venv, final)
        except OSError:
            if not _works(final):
                raise PeerUnavailable(f"cannot move the environment into {final}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _interpreter(final)


def call(python: str, command: str, request: dict[str, Any], timeout: float = CALL_TIMEOUT) -> Any:
    """Run peer ``command`` with ``request`` in GC3Pie's interpreter; return its JSON answer.

    ``request["home"]`` (created if needed) becomes ``HOME`` and holds
    GC3Pie's id counter.

    :raises PeerError: if the peer exits non-zero or prints no JSON.
    """
    home = request["home"]
    os.makedirs(home, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("GC3PIE")}
    env.update(HOME=home, GC3PIE_ID_FILE=os.path.join(home, "next_id.txt"))
    argv = [python, "-I", os.path.abspath(__file__), command]  # -I: never imports gc3session
    done = subprocess.run(argv, input=json.dumps(request), capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=home)
    if done.returncode != 0:
        raise PeerError(f"peer {command} exited {done.returncode}:\n{done.stderr.strip()[-3000:]}")
    try:
        return json.loads(done.stdout)
    except ValueError as err:
        raise PeerError(f"peer {command} printed no JSON: {done.stdout[:500]!r}") from err


# --------------------------------------------------------------------- peer side

def _extra_fields(names: list[str]) -> dict[Any, Any]:
    """GC3Pie ``extra_fields`` written with GC3Pie's own accessors."""
    import sqlalchemy as sa
    from gc3libs.persistence.accessors import GET, GetValue
    known = {"jobname": (sa.TEXT(), GET.jobname),
             "rc": (sa.INTEGER(), GetValue(default=None).execution.returncode),
             "cmd": (sa.TEXT(), GetValue(default=None).arguments[0])}
    return {sa.Column(name, known[name][0]): known[name][1] for name in names}


def _session(request: dict[str, Any]) -> Any:
    from gc3libs.session import Session
    path = request["path"]
    url = f"sqlite:///{path}/jobs.db" if request.get("store") == "sqlite" else request.get("url")
    return Session(path, store_or_url=url, **({"extra_fields": _extra_fields(request["extra_fields"])}
                                             if request.get("extra_fields") else {}))


def _finish(app: Any, exitcode: int, signal: int = 0) -> None:
    from gc3libs import Run
    for state in (Run.State.SUBMITTED, Run.State.RUNNING, Run.State.TERMINATING):
        app.execution.state = state
    app.execution.returncode = (signal, exitcode)
    app.execution.state = Run.State.TERMINATED


def cmd_write(request: dict[str, Any]) -> Any:
    """A session of every kind of task; ``store``: ``file`` or ``sqlite``, or ``url`` (PostgreSQL);
    ``extra_fields``: the names of extra-field columns.

    Top-level tasks, in order: ``fresh`` (NEW, with inputs, outputs, memory,
    wall time, environment, a ``Url`` and a ``Struct`` attribute), ``failed``
    (TERMINATED, exit code 3), ``plain`` (a ``gc3libs.Task``), ``par`` (a
    parallel collection of two NEW applications), ``seq`` (a sequence whose
    first child ended), ``custom`` (an Application subclass of this
    script's), ``remote`` (an input that is an http URL).
    """
    import gc3libs
    from gc3libs import Application, Run
    from gc3libs.quantity import GB, hours
    from gc3libs.url import Url
    from gc3libs.utils import Struct
    from gc3libs.workflow import ParallelTaskCollection, SequentialTaskCollection

    work = request["work"]
    os.makedirs(work, exist_ok=True)
    infile = os.path.join(work, "in.txt")
    with open(infile, "w") as stream:
        stream.write("input\n")

    def app(name: str, argv: list[str], **kwargs: Any) -> Any:
        return Application(argv, kwargs.pop("inputs", []), kwargs.pop("outputs", []),
                           os.path.join(work, "out", name), jobname=name, **kwargs)

    fresh = app("fresh", ["/bin/sh", "-c", "cat in.txt > result.txt; echo hello"],
                inputs=[infile], outputs=["result.txt"], stdout="out.txt", stderr="err.txt",
                requested_cores=2, requested_memory=2 * GB, requested_walltime=1 * hours,
                environment={"GREETING": "hi"}, tags=["demo"])
    fresh.sample = "S1"
    fresh.source = Url("http://example.org/data?x=1")
    fresh.params = Struct(alpha=1, beta=[1, 2])
    failed = app("failed", ["/bin/sh", "-c", "exit 3"], stdout="out.txt")
    _finish(failed, 3)
    plain = gc3libs.Task(jobname="plain")
    par = ParallelTaskCollection([app(f"par{n}", ["/bin/echo", str(n)]) for n in range(2)],
                                 jobname="par")
    seq = SequentialTaskCollection([app(f"seq{n}", ["/bin/echo", str(n)]) for n in range(2)],
                                   jobname="seq")
    _finish(seq.tasks[0], 0)
    seq._current_task = 1
    seq.execution.state = Run.State.RUNNING
    custom = _custom_class()(["/bin/echo", "custom"], [], [], os.path.join(work, "out", "custom"),
                             jobname="custom")
    remote = Application(["/bin/cat", "in.txt"], {"http://example.org/in.txt": "in.txt"}, [],
                         os.path.join(work, "out", "remote"), jobname="remote")
    session = _session(request)
    for task in (fresh, failed, plain, par, seq, custom, remote):
        session.add(task)
    _dispose(session)
    return {"ids": [str(i) for i in session.list_ids()]}


def _custom_class() -> Any:
    """An Application subclass of a GC3Pie script: its class path is ``__main__:CustomApp``.

    Made on first use (the host side never imports GC3Pie) and kept in this
    module's namespace, where unpickling looks it up.
    """
    from gc3libs import Application

    if "CustomApp" not in globals():
        class CustomApp(Application):
            def terminated(self) -> None:
                self.execution.returncode = (0, 42)

        CustomApp.__qualname__ = "CustomApp"
        globals()["CustomApp"] = CustomApp
    return globals()["CustomApp"]


def cmd_write_midrun(request: dict[str, Any]) -> Any:
    """GC3Pie's engine runs three commands on this machine; the session is saved mid-run.

    ``ok`` exits 0 and ``bad`` 3 (both TERMINATED); ``slow`` sleeps 2 s and
    is RUNNING when the session is saved.  GC3Pie is then left, as a driver
    killed mid-run leaves it.
    """
    import gc3libs
    from gc3libs import Application
    from gc3libs.quantity import MB

    work = request["work"]
    conf = os.path.join(work, "gc3pie.conf")
    os.makedirs(work, exist_ok=True)
    with open(conf, "w") as stream:
        stream.write(f"[resource/localhost]\nenabled = yes\ntype = shellcmd\ntransport = local\n"
                     f"auth = noauth\nmax_cores = 8\nmax_cores_per_job = 2\n"
                     f"max_memory_per_core = 2GiB\nmax_walltime = 8 hours\narchitecture = x86_64\n"
                     f"resourcedir = {work}/resourcedir\nspooldir = {work}/spool\n")
    session = _session(request)
    engine = gc3libs.create_engine(conf, store=session.store)
    apps = []
    for name, script in (("ok", "echo done"), ("bad", "echo failing; exit 3"), ("slow", "sleep 2")):
        app = Application(["/bin/sh", "-c", script], [], [], os.path.join(work, "out", name),
                          jobname=name, stdout="out.txt", stderr="err.txt",
                          requested_memory=100 * MB)
        session.add(app)
        engine.add(app)
        apps.append(app)
    deadline = time.time() + 120
    while time.time() < deadline:
        engine.progress()
        states = [a.execution.state for a in apps]
        if states == ["TERMINATED", "TERMINATED", "RUNNING"]:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"GC3Pie's engine did not reach the mid-run point: {states}")
    session.save_all()
    _dispose(session)
    return {"ids": [str(i) for i in session.list_ids()]}


def cmd_write_many(request: dict[str, Any]) -> Any:
    """``n`` Applications (every third TERMINATED), added with one flush: for timing the import."""
    from gc3libs import Application

    session = _session(request)
    for n in range(int(request["n"])):
        app = Application(["/bin/echo", str(n)], [], [], os.path.join(request["work"], "out", f"t{n}"),
                          jobname=f"t{n}", stdout="out.txt")
        if n % 3 == 0:
            _finish(app, n % 2)
        session.add(app, flush=False)
    session.flush()
    _dispose(session)
    return {"ids": [str(i) for i in session.list_ids()]}


def _dispose(session: Any) -> None:
    engine = getattr(session.store, "_real_engine", None)
    if engine is not None:
        engine.dispose()


def cmd_describe(request: dict[str, Any]) -> Any:
    """What GC3Pie reads back from the session at ``path``, loading each record by itself.

    Answer: ``index`` (the ids of ``session_ids.txt``), ``records`` (id ->
    class, jobname, state, returncode, output_dir, children, or ``error``
    when GC3Pie cannot load it), ``extras`` (id -> extra-field columns, SQL
    stores).  Nothing is written: the store is made from ``store.url`` (as
    ``Session`` does) and only ``load`` is called.
    """
    from gc3libs.persistence import make_store

    _custom_class()
    path = request["path"]
    with open(os.path.join(path, "session_ids.txt")) as stream:
        index = stream.read().split()
    with open(os.path.join(path, "store.url")) as stream:
        store = make_store(stream.read().strip())
    records: dict[str, Any] = {}
    pending = [int(i) if i.isdigit() else i for i in index]
    while pending:
        key = pending.pop(0)
        if str(key) in records:
            continue
        try:
            obj = store.load(key)
        except Exception as err:  # what GC3Pie reports for a record it cannot load
            records[str(key)] = {"error": f"{type(err).__name__}: {err}"}
            continue
        children = [c.persistent_id for c in getattr(obj, "tasks", [])]
        pending.extend(children)
        records[str(key)] = {
            "class": f"{type(obj).__module__}:{type(obj).__qualname__}",
            "jobname": getattr(obj, "jobname", None), "state": obj.execution.state,
            "returncode": obj.execution.returncode, "output_dir": getattr(obj, "output_dir", None),
            "children": [str(c) for c in children],
            "current_task": getattr(obj, "_current_task", None),
            "history": [m[0] for m in obj.execution.history._messages],
        }
    extras: dict[str, Any] = {}
    if hasattr(store, "table_name"):
        import sqlalchemy as sa
        with store._engine.connect() as conn:
            for row in conn.execute(sa.text(f"SELECT * FROM {store.table_name}")):
                data = dict(row._mapping)
                extras[str(data["id"])] = {k: v for k, v in data.items()
                                           if k not in ("id", "data", "state")}
        store._real_engine.dispose()
    return {"index": index, "records": records, "extras": extras}


COMMANDS = {name[4:].replace("_", "-"): func for name, func in list(globals().items())
            if name.startswith("cmd_")}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print(f"usage: {argv[0]} {{{','.join(sorted(COMMANDS))}}} < request.json", file=sys.stderr)
        return 2
    import logging
    logging.disable(logging.CRITICAL)  # GC3Pie logs every SQL column at DEBUG
    answer = COMMANDS[argv[1]](json.load(sys.stdin))
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
