"""Shared fixtures: a throwaway PostgreSQL server, the tests' import path, docs' cwd.

The server is real: ``initdb`` and ``pg_ctl`` start a cluster in a temporary
directory, listening on a free loopback port, once per test run.  As root,
the cluster runs as the unprivileged ``nobody`` (PostgreSQL refuses to run as
root).  Each test that asks for ``pg_url`` gets a database of its own, so
tests never see each other's tables.

Where ``initdb``/``pg_ctl`` are missing the PostgreSQL tests are skipped with
the reason, unless ``GC3SESSION_REQUIRE_POSTGRESQL=1`` (set by ``.ci/run``)
makes that a failure.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Iterator

import pytest

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the helpers tests import (_report, ...)

REQUIRE_ENV = "GC3SESSION_REQUIRE_POSTGRESQL"
PG_USER = "gc3test"


def _find_pg_bin() -> str | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (PATH first, then Debian's layout)."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(initdb))
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A running throwaway cluster; :meth:`new_database` hands out fresh databases."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        # As root the cluster runs as nobody, who must reach its directory: /tmp,
        # whatever TMPDIR says (it may point into root's private home).
        self.base = tempfile.mkdtemp(prefix="gc3session-pg-",
                                     dir="/tmp" if os.geteuid() == 0 else None)
        self.datadir = os.path.join(self.base, "data")
        self.port = _free_port()
        self._counter = itertools.count(1)
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "nobody"
            entry = pwd.getpwnam(self._user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self._run(["initdb", "-D", self.datadir, "-U", PG_USER, "--auth=trust",
                   "--encoding=UTF8", "--no-instructions"])
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port}"
                   f" -c unix_socket_directories={self.base} -c fsync=off"
                   " -c max_connections=200 -c shared_buffers=32MB")
        self._run(["pg_ctl", "-D", self.datadir, "-l", os.path.join(self.base, "log"),
                   "-o", options, "-w", "-t", "60", "start"])

    def _run(self, argv: list[str]) -> None:
        argv = [os.path.join(self.bindir, argv[0]), *argv[1:]]
        result = subprocess.run(argv, user=self._user, cwd=self.base, capture_output=True,
                                text=True, timeout=120)
        if result.returncode != 0:
            log = os.path.join(self.base, "log")
            tail = open(log).read()[-2000:] if os.path.exists(log) else ""
            raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}{tail}")

    def url(self, database: str = "postgres") -> str:
        """A URL for ``database`` (no password: the cluster trusts loopback)."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create a fresh database and return its URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the cluster and delete its files."""
        try:
            self._run(["pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"PostgreSQL is required ({REQUIRE_ENV}=1) but {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The throwaway PostgreSQL cluster of this test run."""
    bindir = _find_pg_bin()
    if bindir is None:
        _unavailable("initdb/pg_ctl not found (Debian: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("the psycopg package is not installed (pip install 'gc3session[postgresql]')")
    started = time.monotonic()
    try:
        server = PostgresServer(bindir)  # type: ignore[arg-type]
    except (RuntimeError, OSError, KeyError, subprocess.TimeoutExpired) as err:
        _unavailable(f"the throwaway server did not start: {err}")
    print(f"PostgreSQL test server on port {server.port} ({time.monotonic() - started:.1f}s)")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """URL of a fresh, empty database on the throwaway server."""
    return pg_server.new_database()


@pytest.fixture(autouse=True)
def _docs_run_in_a_fresh_directory(request: pytest.FixtureRequest, tmp_path: "os.PathLike[str]",
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each doctest of ``docs/`` starts in an empty temporary directory of its own."""
    if str(request.node.path).startswith(os.path.join(ROOT, "docs") + os.sep):
        monkeypatch.chdir(tmp_path)
