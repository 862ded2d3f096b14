"""Helpers of the everyday-use tests: a real script, real ``gsession`` processes.

:class:`Everyday` is a :class:`~gc3session.cmdline.SessionBasedScript` run
as its own process (``python tests/_everyday.py ARGS``).  Task *i* is a
shell command named ``t<i>`` that prints ``out <i> code=<c>`` on stdout and
``err <i>`` on stderr, appends ``t<i>`` to ``<codes>/ran`` (so the tests
count executions) and exits with the number in the file ``<codes>/t<i>``
(0 when there is none): a test makes a task fail, then succeed, by writing
that file between runs.  ``--shape parallel|sequence`` puts the commands in
one collection.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
SCRIPT = os.path.abspath(__file__)


def child_env() -> dict[str, str]:
    """The environment of a child: this checkout's gc3session first, then what was there."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, TESTS_DIR, env.get("PYTHONPATH")) if p)
    env["COLUMNS"] = "80"
    return env


def script(cwd: Any, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the :class:`Everyday` script in ``cwd`` with ``argv``; the exit status is not checked."""
    return subprocess.run([sys.executable, SCRIPT, *argv], cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


def gsession(cwd: Any, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``gsession`` (``python -m gc3session``) in ``cwd`` with ``argv``."""
    return subprocess.run([sys.executable, "-m", "gc3session", *argv], cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


def set_code(codes: Any, index: int, code: int) -> None:
    """Make task ``t<index>`` exit with ``code`` from its next run on."""
    os.makedirs(codes, exist_ok=True)
    with open(os.path.join(codes, f"t{index}"), "w") as stream:
        stream.write(f"{code}\n")


def runs(codes: Any) -> list[str]:
    """The names of the tasks that ran, one per run, in order."""
    try:
        with open(os.path.join(codes, "ran")) as stream:
            return stream.read().split()
    except FileNotFoundError:
        return []


def main() -> None:
    """Run :class:`Everyday` (defined here, so that importing this module imports no script)."""
    from gc3session import Application, ParallelTaskCollection, SequentialTaskCollection
    from gc3session.cmdline import SessionBasedScript

    class Everyday(SessionBasedScript):
        """Shell commands whose exit codes come from files (module docstring)."""

        def __init__(self) -> None:
            super().__init__(version="1.0")

        def setup_args(self, parser: Any) -> None:
            super().setup_args(parser)
            parser.add_argument("--tasks", type=int, default=3)
            parser.add_argument("--codes", default="codes")
            parser.add_argument("--shape", choices=("flat", "parallel", "sequence"), default="flat")

        def new_tasks(self, extra: dict[str, Any]) -> list[Any]:
            codes = os.path.abspath(self.params.codes)
            os.makedirs(codes, exist_ok=True)
            apps = []
            for i in range(self.params.tasks):
                body = (f'code=$(cat "{codes}/t{i}" 2>/dev/null || echo 0); echo "out {i} code=$code";'
                        f' echo "err {i}" >&2; echo t{i} >> "{codes}/ran"; exit "$code"')
                apps.append(Application(["sh", "-c", body], jobname=f"t{i}", **extra))
            if self.params.shape == "flat":
                return apps
            group = ParallelTaskCollection if self.params.shape == "parallel" else SequentialTaskCollection
            return [group(apps, jobname="group")]

    Everyday().run()


if __name__ == "__main__":
    main()
