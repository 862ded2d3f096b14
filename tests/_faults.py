"""Fault hooks for :func:`gc3session.fsio.inject_faults`, shared by the fault-injection tests."""

from __future__ import annotations

import os
import signal
from typing import Callable


class FaultAt:
    """Run ``action(step, path)`` at the ``at``-th write step (counting from 1), and only there."""

    def __init__(self, at: int, action: Callable[[str, str], None]) -> None:
        self.at, self.action, self.count = at, action, 0

    def __call__(self, step: str, path: str) -> None:
        self.count += 1
        if self.count == self.at:
            self.action(step, path)


def fail_with(code: int) -> Callable[[str, str], None]:
    """An action that makes the step fail as a disk would, with errno ``code``."""
    def fail(step: str, path: str) -> None:
        raise OSError(code, os.strerror(code), path)
    return fail


def die(step: str, path: str) -> None:
    """An action that kills this process at the step, as a crash or the OOM killer would."""
    os.kill(os.getpid(), signal.SIGKILL)
