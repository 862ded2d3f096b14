"""What every ``gsession`` command uses: its output streams and the way it declares itself.

Each module of this package holds a few commands and an ``add_commands(add)``
that declares them with the :class:`AddCommand` it is given, so a command's
options sit next to its code.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Callable, Protocol, TextIO

from .. import cliformat
from ..cliplumbing import EXIT_LOAD_ERRORS, warn
from ..index import INDEX_FILENAME
from ..session import Session
from ..sessiondir import not_a_session

PROG = "gsession"


class Output:
    """The streams of one command, and the load errors it met on the way."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout = stdout
        self.stderr = stderr

    def print(self, text: str = "") -> None:
        """One or more lines of text on stdout."""
        print(text, file=self.stdout)

    def json(self, data: Any) -> None:
        """``data`` as indented JSON on stdout (records it refers to by their ids)."""
        json.dump(data, self.stdout, indent=2, sort_keys=True, default=cliformat.json_default)
        self.stdout.write("\n")

    def warn(self, text: str) -> None:
        """One line on stderr; a password in a URL the user typed is masked."""
        warn(PROG, text, self.stderr)

    def load_errors(self, session: Session) -> int:
        """Report the tasks that failed to load; the exit status that says so."""
        for pid, err in session.load_errors.items():
            self.warn(f"cannot load {pid}: {err}")
        return EXIT_LOAD_ERRORS if session.load_errors else 0


Command = Callable[[argparse.Namespace, Output], int]


def existing_session(path: str) -> str:
    """The absolute path of a session directory, checked before its driver lock is created.

    :raises SessionNotFoundError: (:func:`~gc3session.sessiondir.not_a_session`) if
        ``path`` holds no session.
    """
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, INDEX_FILENAME)):
        raise not_a_session(path)
    return path


class AddCommand(Protocol):
    """Declares a subcommand; returns its parser, to which the command adds its options.

    Every command takes the session directory as its first argument,
    ``-v`` and ``--untrusted``; ``reader=True`` adds ``--json``.
    """

    def __call__(self, name: str, func: Command, help_text: str, *,
                 reader: bool = False) -> argparse.ArgumentParser: ...


__all__ = ["AddCommand", "Command", "Output", "PROG", "existing_session"]
