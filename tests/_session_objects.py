"""Helpers shared by the session tests and the child processes they start.

Child processes run small scripts with :data:`REPO_ROOT` and this directory
on ``sys.path`` (see :func:`child_env`), so the classes and functions here
are importable there as ``_session_objects``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from typing import Any

from gc3session import Task

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)


class PayloadTask(Task):
    """A task whose ``payload`` attribute the tests compare after reloads."""


def child_env(*extra_paths: str) -> dict[str, str]:
    """The environment of a child process: repo root, tests dir and ``extra_paths`` importable."""
    env = dict(os.environ)
    paths = [*extra_paths, REPO_ROOT, TESTS_DIR]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_child(script: str, *args: str, extra_paths: tuple[str, ...] = (),
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter; fail with its stderr if it fails."""
    done = subprocess.run([sys.executable, "-c", script, *args], env=child_env(*extra_paths),
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"child failed with {done.returncode}:\n{done.stderr}")
    return done


def snapshot(root: str) -> dict[str, Any]:
    """Every entry under ``root`` (``root`` included): type, mode, inode, bytes and mtime.

    Two equal snapshots mean nothing was created, deleted, renamed, written
    or touched (a file created and deleted again changes its directory's
    mtime).  Unreadable files are recorded as such.
    """
    result: dict[str, Any] = {}
    for directory, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            path = os.path.normpath(os.path.join(directory, name))
            if name == "." and directory != root:
                continue
            st = os.lstat(path)
            content: Any = None
            if stat.S_ISREG(st.st_mode):
                try:
                    with open(path, "rb") as stream:
                        content = stream.read()
                except PermissionError:
                    content = "<unreadable>"
            result[os.path.relpath(path, root)] = (
                stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_ino, content,
                st.st_mtime_ns)
    return result


def index_lines(session_path: str) -> list[str]:
    """The raw lines of ``session_ids.txt``; asserts the file ends with a newline (or is empty)."""
    with open(os.path.join(session_path, "session_ids.txt"), "rb") as stream:
        data = stream.read()
    assert data == b"" or data.endswith(b"\n"), data[-80:]
    return data.decode("ascii").splitlines()


def payloads(session: Any) -> dict[str, Any]:
    """``{id: task.payload}`` of every task of ``session``, in index order (loads them)."""
    return {str(task.persistent_id): task.payload for task in session}
