"""The standard options of a :class:`~gc3session.cmdline.SessionBasedScript`, and their values.

GC3Pie's scripts share one set of options (``-s``, ``-u``, ``-N``, ``-C``,
``-J``, ``-o``, ``-l``, ``-c``, ``-m``, ``-w``, ``-r``...), declared here
with GC3Pie's names and meanings, and checked while the command line is
parsed: a misspelt resource or a malformed memory size is a usage error
(exit status 64) before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import os
import re

from .cliplumbing import UsageError
from .engine import RESUME_POLICIES
from .executors import known_executors
from .persistence.url import StoreUrl
from .task import State


def add_standard_options(parser: argparse.ArgumentParser, version: str, default_session: str) -> None:
    """Declare the options every script has (gc3libs' names)."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more messages (repeat for even more)")
    parser.add_argument("-s", "--session", default=default_session,
                        help="session directory (default: %(default)s)")
    parser.add_argument("-u", "--store-url", default=None,
                        help="store for a new session: a URL, or 'sqlite' / 'file' for one"
                             " inside the session directory")
    parser.add_argument("-N", "--new-session", action="store_true",
                        help="kill and remove the session's tasks, then start anew")
    parser.add_argument("-C", "--continuous", "--watch", type=positive_int, default=0,
                        metavar="SECONDS", help="keep running until every task is done,"
                        " checking at least every SECONDS (default: one pass)")
    parser.add_argument("-J", "--max-running", type=positive_int, default=50, metavar="NUM",
                        help="run at most NUM commands at once (default: %(default)s)")
    parser.add_argument("-o", "--output", default=os.path.join(os.getcwd(), "NAME"),
                        metavar="DIR", help="output directory of each task; NAME, SESSION,"
                        " DATE and TIME are replaced (default: %(default)s)")
    parser.add_argument("-l", "--state", nargs="?", const=",".join(s.value for s in State),
                        default="", metavar="STATES", help="after the summary, list the"
                        " tasks in these states (comma-separated; also 'ok', 'failed')")
    parser.add_argument("-c", "--cpu-cores", type=positive_int, default=1, metavar="NUM",
                        help="cores each task requests (default: %(default)s)")
    parser.add_argument("-m", "--memory-per-core", type=parse_memory, default=None,
                        metavar="MEM", help="memory per core, e.g. 2GB (enforced as an"
                        " address-space limit on the local executor)")
    parser.add_argument("-w", "--wall-clock-time", type=parse_duration, default=None,
                        metavar="DURATION", help="wall time limit per task, e.g. '8 hours'")
    parser.add_argument("-r", "--resource", "-x", "--executor", dest="executor",
                        type=executor_spec, default="local", metavar="NAME",
                        help="where tasks run: 'local' (default; 'localhost' is the same)"
                             " or dask://HOST:PORT")
    parser.add_argument("--config-files", type=comma_list, default=None, metavar="FILES",
                        help="GC3Pie configuration files: accepted, not read (a warning"
                             " says so); choose where tasks run with -r")
    parser.add_argument("--resume-policy", choices=RESUME_POLICIES, default="rerun",
                        help="what to do with tasks whose run was lost while no driver"
                             " watched (default: %(default)s)")
    parser.add_argument("--redo-failed", action="store_true",
                        help="run the failed tasks again (earlier outputs are kept as"
                             " numbered backups: stdout.txt.~1~)")


def add_gc3pie_names(params: argparse.Namespace, log: logging.Logger) -> None:
    """Add GC3Pie's names of the standard options to ``params``; warn about what is ignored."""
    params.ncores = params.cpu_cores
    params.wait = params.continuous
    params.resource_name = params.executor
    if params.config_files is not None:
        log.warning("GC3Pie configuration files are not read, ignoring --config-files %s"
                    " (tasks run where -r says: local, or dask://HOST:PORT)",
                    ",".join(params.config_files))
    else:
        params.config_files = []


def check_list_states(params: argparse.Namespace) -> None:
    """Refuse a ``-l`` state that does not exist (a usage error)."""
    known = {s.value for s in State} | {"ok", "failed"}
    unknown = [s for s in params.state.split(",") if s and s not in known]
    if unknown:
        raise UsageError(f"unknown state {', '.join(unknown)} for -l; known: {', '.join(sorted(known))}")


def store_url(params: argparse.Namespace) -> StoreUrl | str | None:
    """The ``-u`` store: ``sqlite`` and ``file`` name one inside the session directory.

    Those URLs are built from the path (never by pasting it into a URL
    string, where a ``#`` or ``?`` in a directory name would cut it short).
    """
    url = params.store_url
    path = os.path.abspath(params.session)
    if url == "sqlite":
        return StoreUrl.for_path("sqlite", os.path.join(path, "jobs.db"))
    if url == "file":
        return StoreUrl.for_path("file", os.path.join(path, "jobs"))
    return url  # type: ignore[no-any-return]


def executor_spec(text: str) -> str:
    """``-r``: an executor name (``localhost`` is GC3Pie's name for this machine: ``local``).

    Checked while parsing, so that a misspelt name changes nothing on disk.
    """
    spec = "local" if text == "localhost" else text
    name, _, address = spec.partition("://")
    known = known_executors()
    shown = ", ".join("local (or localhost)" if k == "local" else "dask://HOST:PORT" if k == "dask"
                      else k for k in known)
    if "," in spec:
        raise argparse.ArgumentTypeError(f"{text!r}: a session's tasks run on one resource;"
                                         f" known: {shown}")
    if name not in known:
        raise argparse.ArgumentTypeError(f"unknown resource {text!r}; known: {shown}")
    if name == "dask" and not address:
        raise argparse.ArgumentTypeError(f"{text!r}: name the Dask scheduler, dask://HOST:PORT")
    return spec


def comma_list(text: str) -> list[str]:
    """``a,b,,c`` -> ``['a', 'b', 'c']``."""
    return [item for item in text.split(",") if item]


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_DURATIONS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60,
              "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
              "days": 86400}


def parse_memory(text: str) -> int:
    """``"2GB"`` -> 2000000000 bytes (KB/MB/GB/TB are decimal, KiB/MiB/GiB binary)."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    unit = match and match[2].upper()
    if not match or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a memory size: {text!r} (e.g. 512MB, 2GB, 4GiB)")
    return int(float(match[1]) * _UNITS[unit])


def parse_duration(text: str) -> float:
    """``"8 hours"``, ``"90m"``, ``"3600"`` -> seconds."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    unit = match and (match[2].lower() or "s")
    if not match or unit not in _DURATIONS:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 90 minutes, 8 hours)")
    return float(match[1]) * _DURATIONS[unit]


def positive_int(text: str) -> int:
    """A whole number above zero, or an argparse type error."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {text!r}")
    return value


__all__ = ["add_gc3pie_names", "add_standard_options", "check_list_states", "comma_list",
           "executor_spec", "parse_duration", "parse_memory", "positive_int", "store_url"]
