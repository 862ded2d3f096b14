"""What every command line of gc3session shares: exit statuses, usage errors, one-line messages.

Two faces run from a shell: ``gsession`` (:mod:`gc3session.cli`, also
``python -m gc3session``) and the scripts users build on
:class:`~gc3session.cmdline.SessionBasedScript`.  Both parse with
:class:`ArgumentParser` (a usage error is an exception, not a
``SystemExit``, so ``main()`` can be called from tests), and both turn an
expected error into one line on stderr and an exit status with
:func:`report_error`.  Tracebacks are for bugs.

Exit statuses (BSD ``sysexits`` where one fits):

==========  ================================================================
0           success
1           an error (the line on stderr names the file, the id or the URL)
13          interrupted by Ctrl-C
64          usage error
65          some tasks could not be loaded (the others were handled)
69          a driver holds the session
74          an operating-system error outside gc3session (e.g. permissions)
75          where tasks run cannot be reached (a Dask scheduler that is
            down): nothing was started, run the same command again later
==========  ================================================================
"""

from __future__ import annotations

import argparse
from typing import NoReturn, TextIO

from .exceptions import Error, ExecutorUnavailableError, InvalidUsage, StoreUnavailableError
from .persistence.url import StoreUrl, mask_passwords
from .sessionlock import SessionBusyError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 13
EXIT_USAGE = 64
EXIT_LOAD_ERRORS = 65
EXIT_LOCKED = 69
EXIT_OSERROR = 74
EXIT_TEMPFAIL = 75


class UsageError(InvalidUsage):
    """The command line is wrong (exit status 64); a script's own checks may raise either."""

    exit_status = EXIT_USAGE


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError` exceptions."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


#: Exit statuses of errors (the first class that matches wins).
_EXIT_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidUsage, EXIT_USAGE),
    (SessionBusyError, EXIT_LOCKED),
    (ExecutorUnavailableError, EXIT_TEMPFAIL),
    (Error, EXIT_ERROR),
    (KeyboardInterrupt, EXIT_INTERRUPTED),
    (OSError, EXIT_OSERROR),
)


def exit_status_of(err: BaseException) -> int:
    """The exit status that reports ``err`` (an ``exit_status`` attribute wins)."""
    status = getattr(err, "exit_status", None)
    if isinstance(status, int):
        return status
    return next((code for cls, code in _EXIT_STATUS if isinstance(err, cls)), EXIT_ERROR)


def one_line(text: str) -> str:
    """``text`` on one line, with the password of any URL in it hidden."""
    return mask_passwords(" ".join(text.split()))


def warn(prog: str, text: str, stream: TextIO) -> None:
    """Print ``prog: text`` as one line on ``stream``."""
    print(f"{prog}: {one_line(text)}", file=stream)


def report_error(prog: str, err: BaseException, stream: TextIO) -> int:
    """Say what went wrong in one line (two for a usage error); return the exit status."""
    if isinstance(err, InvalidUsage):
        warn(prog, str(err), stream)
        print(f"Type '{prog} --help' for usage.", file=stream)
    elif isinstance(err, SessionBusyError):
        warn(prog, f"{err}; stop it first (or wait for it to finish)", stream)
    elif isinstance(err, KeyboardInterrupt):
        warn(prog, "exiting upon user request (Ctrl+C)", stream)
    else:
        warn(prog, f"error: {err}{connection_hint(err)}", stream)
    return exit_status_of(err)


def connection_hint(err: BaseException) -> str:
    """What to check when a PostgreSQL store cannot be reached ("" for any other error).

    The error names the URL (password hidden); the hint spells out the host,
    port, database and user it means, and where a password may come from,
    since ``store.url`` never holds one.

    >>> from gc3session.exceptions import StoreUnavailableError
    >>> print(connection_hint(StoreUnavailableError("x", url="postgresql://bob@db:5433/runs")))
     (host db, port 5433, database runs, user bob: check that the server runs and lets this user
     in; a password comes from the URL given on the command line, ~/.pgpass (or the file
     PGPASSFILE names) or PGPASSWORD, never from store.url)
    """
    text = getattr(err, "url", None)
    if not isinstance(err, StoreUnavailableError) or not isinstance(text, str) \
            or isinstance(err.__cause__, ImportError):
        return ""
    try:
        url = StoreUrl.parse(text)
    except Error:
        return ""
    if url.base_scheme != "postgresql":
        return ""
    return (f" (host {url.host or 'from PGHOST, else the local socket'},"
            f" port {url.port or 'from PGPORT, else 5432'}, database {url.database or 'from PGDATABASE'},"
            f" user {url.username or 'from PGUSER, else your login'}: check that the server runs"
            " and lets this user in; a password comes from the URL given on the command line,"
            " ~/.pgpass (or the file PGPASSFILE names) or PGPASSWORD, never from store.url)")


__all__ = ["ArgumentParser", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_LOAD_ERRORS", "EXIT_LOCKED",
           "EXIT_OK", "EXIT_OSERROR", "EXIT_TEMPFAIL", "EXIT_USAGE", "UsageError", "connection_hint",
           "exit_status_of",
           "one_line", "report_error", "warn"]
