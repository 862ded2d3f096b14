"""Objects and helpers shared by the store tests and the child processes they start.

The classes live in an importable module (not in a test file or a ``-c``
script) because a record names its class as ``module:qualname``: a parent
process must be able to load what a child saved.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from gc3session.persistence import Persistable, Store

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(TESTS_DIR, "_store_child.py")


class Item(Persistable):
    """A record holding one ``payload`` (any picklable value)."""

    def __init__(self, payload: Any = None) -> None:
        super().__init__()
        self.payload = payload


class Node(Persistable):
    """A record that may refer to other records (``children``, ``parent``, ``other``)."""

    def __init__(self, name: str = "") -> None:
        super().__init__()
        self.name = name
        self.children: list[Node] = []
        self.parent: Node | None = None


class WithNewArgs(Persistable):
    """A record built from constructor arguments that its state shares.

    The arguments and the state are two pickles of one record; a list that
    both refer to must come back as one list.
    """

    def __new__(cls, *args: Any) -> "WithNewArgs":
        return super().__new__(cls)

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (self.tags, ["not", "shared"])


def store_url(kind: str, directory: str, pg_url: str | None = None) -> str:
    """The URL of a store of ``kind`` (``fs``, ``sqlite``, ``pg``) kept under ``directory``."""
    if kind == "fs":
        return os.path.join(directory, "jobs")
    if kind == "sqlite":
        return f"sqlite:///{directory}/store.db"
    assert pg_url is not None
    return pg_url


def child_env() -> dict[str, str]:
    """Environment of a child: this directory importable (for ``_store_objects``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS_DIR, env.get("PYTHONPATH")) if p)
    return env


def start_child(*args: str) -> "subprocess.Popen[str]":
    """Start ``_store_child.py`` with ``args``; stdin, stdout and stderr are text pipes."""
    return subprocess.Popen([sys.executable, CHILD, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env())


def save_in_forked_child(store: Store, payload: Any) -> str:
    """``pre_fork``, fork, and in the child ``post_fork`` then save ``Item(payload)``.

    Returns the id the child got (it reports it through a pipe).

    :raises AssertionError: if the child did not exit cleanly.
    """
    store.pre_fork()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: save one record and report its id
        try:
            store.post_fork()
            os.write(write_end, store.save(Item(payload)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as stream:
        child_id = stream.read().decode()
    assert os.waitstatus_to_exitcode(status) == 0
    return child_id
