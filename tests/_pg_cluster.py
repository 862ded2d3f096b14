"""A throwaway PostgreSQL cluster: the test suite's server, and the benchmarks'.

``initdb`` and ``pg_ctl`` start a cluster in a temporary directory, listening
on a free loopback port (and a Unix socket in that directory).  PostgreSQL
refuses to run as root, so as root the cluster runs as the unprivileged
``nobody``, in a directory under ``/tmp`` that ``nobody`` can reach whatever
``TMPDIR`` says.  Stopping it deletes every file it had.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from typing import Any


def find_pg_bin() -> str | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (PATH first, then Debian's layout)."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(initdb))
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    return None


def free_port() -> int:
    """A TCP port nobody listens on now, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """A running cluster; :meth:`new_database` hands out fresh, empty databases.

    :param user: the superuser (trusted on loopback, no password).
    :param settings: server settings (``-c name=value``), e.g. ``fsync="off"``
        for tests, where the server itself is never killed.
    :param parent: where its temporary directory goes (default: ``/tmp`` as
        root, the system temporary directory otherwise).
    :raises RuntimeError: with the server's output, if it does not start.
    """

    def __init__(self, user: str, settings: dict[str, str] | None = None,
                 parent: str | None = None, bindir: str | None = None) -> None:
        self.bindir = bindir or find_pg_bin()
        if self.bindir is None:
            raise RuntimeError("initdb/pg_ctl not found (Debian: apt-get install postgresql)")
        self.user = user
        self._os_user = "nobody" if os.geteuid() == 0 else None
        self.base = tempfile.mkdtemp(prefix="gc3session-pg-",
                                     dir=parent or ("/tmp" if self._os_user else None))
        self.datadir = os.path.join(self.base, "data")
        self.port = free_port()
        self._counter = itertools.count(1)
        options = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                   "unix_socket_directories": self.base, **(settings or {})}
        try:
            if self._os_user:
                entry = pwd.getpwnam(self._os_user)
                os.chown(self.base, entry.pw_uid, entry.pw_gid)
            self._run(["initdb", "-D", self.datadir, "-U", user, "--auth=trust",
                       "--encoding=UTF8", "--no-instructions"])
            self._run(["pg_ctl", "-D", self.datadir, "-l", os.path.join(self.base, "log"),
                       "-o", " ".join(f"-c {k}={v}" for k, v in options.items()),
                       "-w", "-t", "60", "start"])
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    def _run(self, argv: list[str]) -> None:
        argv = [os.path.join(self.bindir, argv[0]), *argv[1:]]  # type: ignore[arg-type]
        result = subprocess.run(argv, user=self._os_user, cwd=self.base, capture_output=True,
                                text=True, timeout=120)
        if result.returncode != 0:
            log = os.path.join(self.base, "log")
            tail = open(log).read()[-2000:] if os.path.exists(log) else ""
            raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}{tail}")

    def connect_args(self, database: str = "postgres") -> dict[str, Any]:
        """Keyword arguments of ``psycopg.connect`` for ``database``."""
        return {"host": "127.0.0.1", "port": self.port, "user": self.user, "dbname": database}

    def url(self, database: str = "postgres") -> str:
        """A store URL for ``database`` (no password: the cluster trusts loopback)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "db") -> str:
        """Create a fresh database and return its name."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(**self.connect_args(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def stop(self) -> None:
        """Stop the cluster and delete its files."""
        try:
            self._run(["pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PgCluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
