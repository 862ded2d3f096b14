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

import os
import subprocess
import sys
import time
from typing import Iterator

import pytest

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the helpers tests import (_report, ...)

from _pg_cluster import PgCluster, find_pg_bin  # noqa: E402

REQUIRE_ENV = "GC3SESSION_REQUIRE_POSTGRESQL"
PG_USER = "gc3test"


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"PostgreSQL is required ({REQUIRE_ENV}=1) but {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgCluster]:
    """The throwaway PostgreSQL cluster of this test run (see ``tests/_pg_cluster.py``)."""
    bindir = find_pg_bin()
    if bindir is None:
        _unavailable("initdb/pg_ctl not found (Debian: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("the psycopg package is not installed (pip install 'gc3session[postgresql]')")
    started = time.monotonic()
    try:
        # fsync off: the server is never killed by the tests, only its clients
        server = PgCluster(PG_USER, {"fsync": "off", "max_connections": "200",
                                     "shared_buffers": "32MB"}, bindir=bindir)
    except (RuntimeError, OSError, KeyError, subprocess.TimeoutExpired) as err:
        _unavailable(f"the throwaway server did not start: {err}")
    print(f"PostgreSQL test server on port {server.port} ({time.monotonic() - started:.1f}s)")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgCluster) -> str:
    """URL of a fresh, empty database on the throwaway server."""
    return pg_server.url(pg_server.new_database("test"))


@pytest.fixture(autouse=True)
def _docs_run_in_a_fresh_directory(request: pytest.FixtureRequest, tmp_path: "os.PathLike[str]",
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each doctest of ``docs/`` starts in an empty temporary directory of its own."""
    if str(request.node.path).startswith(os.path.join(ROOT, "docs") + os.sep):
        monkeypatch.chdir(tmp_path)
