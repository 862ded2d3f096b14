"""The porting yardstick: GC3Pie's and PlainBox's own tests, on the originals and on gc3session.

    python3 -m benchmarks.compat.run_peer_suites [--only gc3pie|plainbox]
                                                 [--markdown PATH] [--keep DIR]

For each peer the sdist is downloaded from the package registry into a
temporary directory (never into the repository) and its test files are
copied twice:

* **original**: run with pytest in the peer's own throwaway virtualenv
  (GC3Pie 2.6.8 with SQLAlchemy 1.4: :mod:`benchmarks._gc3pie`; PlainBox
  0.38: ``tests/_plainbox_peer.py``), unchanged;
* **gc3session**: run with pytest beside a ``conftest.py`` that binds the
  peer's module names to gc3session's modules of the same role (the name
  tables of :mod:`benchmarks.compat.shim`).  GC3Pie's files run in this
  interpreter (gc3session's dependencies, SQLAlchemy 2), after the listed
  textual patches of their SQLAlchemy 1.x idioms
  (:mod:`benchmarks.compat.patches`, printed as applied); PlainBox's run in
  PlainBox's virtualenv, so its job units, results and test helpers are
  PlainBox's own and only its session layer is gc3session's.  Both sides
  find this checkout on ``PYTHONPATH``, installed into the work directory
  (:func:`installed_layout`), whatever is installed in either interpreter.

GC3Pie's doctests (``gc3libs/session.py``, ``gc3libs/persistence/*.py``) are
extracted from the source into test files that run on both sides with one
harness (:mod:`benchmarks.compat.doctests`).

Printed per test file: passed / failed / skipped on gc3session beside the
same on the original, then every test that passes on the original but not on
gc3session.  ``--markdown PATH`` writes the same to a file; ``--keep DIR``
does the work in ``DIR`` (new or empty) and leaves it there.  If a peer
cannot be downloaded or installed (no network), one line says so and the
exit status is 2.  Otherwise it is 0: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET

from benchmarks import _gc3pie
from benchmarks.compat import doctests, patches, shim

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import _plainbox_peer  # noqa: E402  (PlainBox's virtualenv is built by the interop tests' helper)

RUN_TIMEOUT = 1200
PIP_TIMEOUT = 900


class Unavailable(Exception):
    """A peer cannot be downloaded or installed; the message says why, in one line."""


@dataclasses.dataclass(frozen=True)
class Peer:
    """What to download for a peer, which of its files to run, and how to map its names."""

    key: str
    requirement: str
    test_files: tuple[str, ...]
    doctest_globs: tuple[str, ...]
    table: dict[str, tuple[str, ...]]
    patch_list: tuple[patches.Patch, ...]


PEERS = {
    "gc3pie": Peer("gc3pie", f"gc3pie=={_gc3pie.VERSION}",
                   ("gc3libs/tests/test_session.py", "gc3libs/persistence/tests/test_persistence.py"),
                   ("gc3libs/session.py", "gc3libs/persistence/*.py"),
                   shim.GC3PIE, patches.SQLALCHEMY_2),
    "plainbox": Peer("plainbox", f"plainbox=={_plainbox_peer.PLAINBOX_VERSION}",
                     tuple(f"plainbox/impl/session/test_{name}.py"
                           for name in ("storage", "manager", "suspend", "resume")),
                     (), shim.PLAINBOX, ()),
}


def _run(argv: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {done.returncode}"


def peer_python(peer: Peer) -> str:
    """The peer's virtualenv interpreter, with pytest (and ``wheel``, to download sdists) added."""
    try:
        if peer.key == "gc3pie":
            python = _gc3pie.venv_python()
        else:
            python = _plainbox_peer.plainbox_python()
    except (_plainbox_peer.PeerUnavailable, subprocess.SubprocessError, OSError) as err:
        raise Unavailable(f"cannot install {peer.requirement} from the package registry: {err}") from err
    if _run([python, "-c", "import pytest, wheel"], 120).returncode != 0:
        done = _run([python, "-m", "pip", "install", "-q", "pytest", "wheel"], PIP_TIMEOUT)
        if done.returncode != 0:
            raise Unavailable(f"cannot install pytest into {python}: {_last_line(done)}")
    return python


def fetch_sdist(peer: Peer, python: str, workdir: str) -> str:
    """Download and unpack the peer's sdist; return the unpacked source directory.

    The download goes through the peer virtualenv's pip without build
    isolation: GC3Pie's ``setup.py`` fetches an old setuptools when isolated.
    """
    target = os.path.join(workdir, "download")
    done = _run([python, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                 "--no-build-isolation", "--disable-pip-version-check", peer.requirement,
                 "-d", target], PIP_TIMEOUT)
    archives = glob.glob(os.path.join(target, "*.tar.gz"))
    if done.returncode != 0 or not archives:
        raise Unavailable(f"cannot download the sdist of {peer.requirement}: {_last_line(done)}")
    with tarfile.open(archives[0]) as archive:
        archive.extractall(os.path.join(workdir, "src"), filter="data")
    (source,) = glob.glob(os.path.join(workdir, "src", "*"))
    return source


def prepare(peer: Peer, source: str, directory: str, side: str) -> list[str]:
    """Copy the peer's tests into ``directory`` for one side; return the lines to print."""
    os.makedirs(directory)
    with open(os.path.join(directory, "pytest.ini"), "w", encoding="utf-8") as stream:
        stream.write("[pytest]\njunit_family = xunit1\n")
    notes = []
    for relpath in peer.test_files:
        with open(os.path.join(source, relpath), encoding="utf-8") as stream:
            text = stream.read()
        if side == "gc3session" and peer.patch_list:
            text, counts = patches.apply(text, peer.patch_list)
            notes += [f"patched {os.path.basename(relpath)}: {count} x {patch.reason}"
                      for patch, count in counts if count]
        with open(os.path.join(directory, os.path.basename(relpath)), "w", encoding="utf-8") as stream:
            stream.write(text)
    for pattern in peer.doctest_globs:
        for path in sorted(glob.glob(os.path.join(source, pattern))):
            doctests.write_test_file(source, os.path.relpath(path, source), directory)
    if side == "gc3session":
        with open(os.path.join(directory, "conftest.py"), "w", encoding="utf-8") as stream:
            stream.write(shim.conftest_text(peer.table, shim.PEER_KEPT.get(peer.key)))
    return notes


def installed_layout(workdir: str) -> str:
    """Install this checkout, without its dependencies, into a directory of ``workdir``; return it.

    The repository keeps ``stores/`` at its top and setup.cfg installs it
    as ``gc3session.stores``, so the repository itself on ``PYTHONPATH``
    has no ``gc3session.stores``.  ``pip install --target`` lays the
    package out as users get it (what setup.cfg lists, nothing else), and
    both interpreters find it there whatever they have installed.
    """
    layout = os.path.join(workdir, "gc3session-installed")
    done = _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
                 "--disable-pip-version-check", "--target", layout, ROOT], PIP_TIMEOUT)
    if done.returncode != 0:
        raise Unavailable(f"cannot install this checkout into {layout}: {_last_line(done)}")
    return layout


def run_side(python: str, directory: str, pythonpath: str | None) -> dict[str, dict[str, str]]:
    """Run pytest in ``directory``; return ``{file: {test id: outcome}}`` from its JUnit report."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    report = os.path.join(directory, "junit.xml")
    argv = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            "--continue-on-collection-errors",
            "-c", os.path.join(directory, "pytest.ini"), f"--junitxml={report}", directory]
    try:
        _run(argv, RUN_TIMEOUT, cwd=directory, env=env)
    except subprocess.TimeoutExpired:
        print(f"  pytest in {directory} timed out after {RUN_TIMEOUT} s", flush=True)
    return parse_junit(report) if os.path.exists(report) else {}


def parse_junit(path: str) -> dict[str, dict[str, str]]:
    """``{file: {test id: passed|failed|skipped}}``; a collection error is one failed id."""
    results: dict[str, dict[str, str]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = case.get("classname", "")
        name = case.get("name", "")
        file = os.path.basename(case.get("file") or classname.split(".")[0] + ".py")
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        results.setdefault(file, {})[f"{classname}::{name}"] = outcome
    return results


def compare(peer: Peer, ours: dict[str, dict[str, str]], theirs: dict[str, dict[str, str]]
            ) -> tuple[list[list[str]], list[str]]:
    """Table rows per file and the ids that pass on the original but not on gc3session.

    A test the original ran but gc3session never collected (its file did
    not import) counts as failed on gc3session.
    """
    rows, regressions = [], []
    for file in sorted(set(ours) | set(theirs)):
        mine, orig = ours.get(file, {}), theirs.get(file, {})
        outcome = {test: mine.get(test, "failed") for test in set(mine) | set(orig)}
        outcome = {test: result for test, result in outcome.items()
                   if test in orig or not test.startswith("::")}  # drop our own collection-error row
        kinds = ("passed", "failed", "skipped")
        count = {kind: sum(1 for r in outcome.values() if r == kind) for kind in kinds}
        base = {kind: sum(1 for r in orig.values() if r == kind) for kind in kinds}
        rows.append([peer.key, file, *(str(count[k]) for k in ("passed", "failed", "skipped")),
                     *(str(base[k]) for k in ("passed", "failed", "skipped"))])
        regressions += [f"{file}::{test.split('::', 1)[1] if test.startswith('::') else test}"
                        for test, result in sorted(orig.items())
                        if result == "passed" and outcome.get(test) != "passed"]
    return rows, regressions


HEADER = ["peer", "file", "gc3session passed", "failed", "skipped", "original passed", "failed", "skipped"]


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in [HEADER, *rows])


def render_markdown(rows: list[list[str]], notes: list[str], regressions: list[str]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if notes:
        lines += ["", "Patches applied to the copies run on gc3session:", ""]
        lines += [f"- {note}" for note in notes]
    lines += ["", f"Tests that pass on the original but not on gc3session ({len(regressions)}):", ""]
    lines += [f"- `{test}`" for test in regressions]
    return "\n".join(lines) + "\n"


def measure(peer: Peer, workdir: str, layout: str) -> tuple[list[list[str]], list[str], list[str]]:
    """Download, prepare and run one peer on both sides."""
    print(f"{peer.requirement}: preparing the original's virtualenv", flush=True)
    python = peer_python(peer)
    source = fetch_sdist(peer, python, os.path.join(workdir, peer.key))
    sides = {}
    notes: list[str] = []
    for side in ("original", "gc3session"):
        directory = os.path.join(workdir, peer.key, side)
        notes += prepare(peer, source, directory, side)
        if side == "original":
            interpreter, path = python, None
        else:
            interpreter = python if peer.key == "plainbox" else sys.executable
            path = layout
        print(f"{peer.requirement}: running its tests on {side}", flush=True)
        sides[side] = run_side(interpreter, directory, path)
    for note in notes:
        print(f"  {note}")
    rows, regressions = compare(peer, sides["gc3session"], sides["original"])
    return rows, notes, regressions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(PEERS), help="run one peer only")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table to PATH")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR (new or empty) and leave it there")
    args = parser.parse_args(argv)
    if args.keep:
        keep = os.path.abspath(args.keep)
        if os.path.commonpath([keep, ROOT]) == ROOT:
            parser.error(f"--keep {args.keep}: the peers' files never go into the repository")
        if os.path.exists(keep) and os.listdir(keep):
            parser.error(f"--keep {args.keep}: the directory is not empty")
        os.makedirs(keep, exist_ok=True)
        workdir, cleanup = keep, None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="gc3session-peers-")
        workdir = cleanup.name
    rows: list[list[str]] = []
    notes: list[str] = []
    regressions: list[str] = []
    try:
        layout = installed_layout(workdir)
        for key in [args.only] if args.only else sorted(PEERS):
            peer_rows, peer_notes, peer_regressions = measure(PEERS[key], workdir, layout)
            rows += peer_rows
            notes += peer_notes
            regressions += [f"{key}: {test}" for test in peer_regressions]
    except Unavailable as err:
        print(f"run_peer_suites: {err}", file=sys.stderr)
        return 2
    finally:
        if cleanup is not None:
            cleanup.cleanup()
    print()
    print(render_text(rows))
    print(f"\npass on the original, not on gc3session: {len(regressions)}")
    for test in regressions:
        print(f"  {test}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as stream:
            stream.write(render_markdown(rows, notes, regressions))
    if args.keep:
        print(f"\nthe work directory is kept in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
