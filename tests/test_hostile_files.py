"""Hostile files in a session: damaged index tails, FIFOs and devices, records that attack the loader.

Every situation is set up for real in a session directory: bytes written
after the last line of ``session_ids.txt``, FIFOs (``os.mkfifo``), sockets
and device nodes planted in place of metadata, records and locks, and
records crafted opcode by opcode.  Whatever could hang (opening a FIFO,
computing a billion-digit number) runs in a forked child with a deadline, so
that a regression fails its test instead of hanging the suite, and the
untrusted loader is fuzzed in children limited in time and address space.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import socket
import stat
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gc3session import Session, Task, fsck, index
from gc3session.cli import main
from gc3session.exceptions import (CorruptIndexError, CorruptRecordError, CorruptSessionError,
                                   IdAllocationError, LoadError, StoreWriteError)
from gc3session.persistence.idfactory import MAX_ID_LENGTH
from gc3session.sessionlock import driver_lock, lock_owner

from _report import record
from _session_objects import snapshot

#: Seconds a child may take before its test fails as "blocks".
DEADLINE = 10.0


# --- running what might hang in a child ------------------------------------------

def _child(sender: Any, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        result: tuple[str, Any] = ("returned", func(*args))
    except BaseException as err:  # the parent re-raises it and the test judges it
        result = ("raised", err)
    try:
        sender.send(result)
    except Exception as err:  # an unpicklable result
        sender.send(("raised", AssertionError(f"cannot send {result!r:.200}: {err}")))


def bounded(func: Callable[..., Any], *args: Any, deadline: float = DEADLINE, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)`` in a forked child: its result, or its exception raised here.

    Fails the test if the child is not done within ``deadline`` seconds (it
    is then killed), so an open that blocks is a failure, not a hang.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender, lambda: func(*args, **kwargs), ()))
    child.start()
    sender.close()
    try:
        if not receiver.poll(deadline):
            pytest.fail(f"{getattr(func, '__name__', func)}{args} did not finish within {deadline} s"
                        " (it blocks)")
        try:
            kind, value = receiver.recv()
        except EOFError:
            child.join()
            pytest.fail(f"the child died without an answer (exit code {child.exitcode})")
    finally:
        child.kill()
        child.join()
        receiver.close()
    if kind == "raised":
        raise value
    return value


def _run(*argv: str) -> tuple[int, str, str]:
    """gsession in-process (in the calling process): exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()


def _one_line_error(stderr: str) -> str:
    """The single stderr line of an expected error (never a traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gsession: "), stderr
    return lines[0]


def _read(path: str) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as stream:
        stream.write(data)


# --- item 12: what may follow the last newline of session_ids.txt -------------------

def _session_with_tasks(path: str, count: int = 3) -> list[str]:
    with Session(path) as session:
        return [str(session.add(Task(jobname=f"t{n}"))) for n in range(count)]


@pytest.mark.parametrize("tail", [
    b"\0",                       # a single NUL byte
    b"Task.1\0",                 # an id prefix with a NUL
    b"garbage" * 150_000,        # a megabyte of letters after the last newline
    b"A" * (MAX_ID_LENGTH + 1),  # longer than any id
    b"Task.01",                  # no id starts like this (leading zero)
    b"Task.1 ",                  # nor ends in a blank
], ids=["nul", "prefix-nul", "megabyte", "too-long", "leading-zero", "blank"])
@pytest.mark.parametrize("lines", [0, 2])
def test_an_index_tail_that_no_append_leaves_is_damage_naming_file_and_offset(
        tmp_path: Any, tail: bytes, lines: int) -> None:
    path = str(tmp_path / "s")
    ids = _session_with_tasks(path)
    index_file = os.path.join(path, "session_ids.txt")
    head = "".join(f"{i}\n" for i in ids[:lines]).encode()
    _write(index_file, head + tail)
    before = snapshot(path)
    for mode in ("a", "r"):
        with pytest.raises(CorruptIndexError) as info:
            Session(path, mode=mode)
        assert info.value.offset == len(head) and info.value.path == index_file
        assert index_file in str(info.value) and f"byte {len(head)}" in str(info.value)
    assert snapshot(path) == before


@pytest.mark.parametrize("tail", [b"T", b"Task", b"Task.", b"Task.1",
                                  b"A" * 128 + b"." + b"9" * 19])
def test_the_beginning_of_an_id_is_a_torn_tail_that_the_next_add_cuts(tmp_path: Any,
                                                                       tail: bytes) -> None:
    """A torn append (at most the longest id, no NUL) is still ignored, then cut off."""
    path = str(tmp_path / "s")
    ids = _session_with_tasks(path, 1)
    index_file = os.path.join(path, "session_ids.txt")
    with open(index_file, "ab") as stream:
        stream.write(tail)
    with Session(path) as session:
        assert session.list_ids() == ids
        new = session.add(Task())
    assert _read(index_file) == f"{ids[0]}\n{new}\n".encode()


@settings(max_examples=100, deadline=None)
@given(ids=st.lists(st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,127}\.(0|[1-9][0-9]{0,18})\Z"),
                    min_size=1, max_size=5),
       cut=st.integers(0, MAX_ID_LENGTH),
       extra=st.sampled_from([b"\0", b" ", b"\r", b"/", b"-", b"\xff"]))
def test_a_tail_is_torn_exactly_when_it_begins_an_id(ids: list[str], cut: int, extra: bytes) -> None:
    """Any prefix of an id after the last newline is ignored; one more odd byte makes it damage."""
    record(fuzz_cases=1)
    body = "".join(f"{i}\n" for i in ids[:-1]).encode()
    torn = ids[-1].encode()[:cut]
    assert index.parse(body + torn, "/x/session_ids.txt") == list(dict.fromkeys(ids[:-1]))
    with pytest.raises(CorruptIndexError) as info:
        index.parse(body + torn + extra, "/x/session_ids.txt")
    assert info.value.offset == len(body)


def test_fsck_reports_a_damaged_tail_and_repair_cuts_it_keeping_a_copy(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    ids = _session_with_tasks(path)
    index_file = os.path.join(path, "session_ids.txt")
    good = _read(index_file)
    damaged = good + b"garbage" * 150_000
    _write(index_file, damaged)
    rc, out, _ = _run("fsck", path)
    assert rc == fsck.PROBLEMS and f"problem: {index_file}, line 4, byte {len(good)}" in out
    assert _read(index_file) == damaged
    rc, out, _ = _run("fsck", "--repair", path)
    assert rc == fsck.REPAIRED and f"(bytes {len(good)} to {len(damaged)})" in out
    assert _read(index_file) == good
    copies = [n for n in os.listdir(path) if n.startswith("session_ids.txt.damaged-")]
    assert len(copies) == 1 and _read(os.path.join(path, copies[0])) == damaged
    with Session(path) as session:
        assert session.list_ids() == ids and [t.jobname for t in session] == ["t0", "t1", "t2"]
    assert _run("fsck", path)[0] == fsck.CLEAN


def test_fsck_repair_rebuilds_an_index_that_is_a_single_nul_from_the_store(tmp_path: Any) -> None:
    """With no complete line left, the whole file is damage: the store says what the tasks are."""
    path = str(tmp_path / "s")
    ids = _session_with_tasks(path)
    index_file = os.path.join(path, "session_ids.txt")
    _write(index_file, b"\0")
    report = fsck.check(path)
    assert [f.kind for f in report.problems] == ["corrupt-index"] and "byte 0" in report.problems[0].message
    assert fsck.check(path, repair=True).status == "repaired"
    assert index.read(index_file) == ids
    assert [_read(os.path.join(path, n)) for n in os.listdir(path) if ".damaged-" in n] == [b"\0"]


# --- item 13: FIFOs, sockets and devices in place of files ----------------------------

KINDS = ["fifo", "socket", "device"]


def _plant(path: str, kind: str) -> None:
    """Replace ``path`` (if there) by a FIFO, a bound socket or a /dev/null device node."""
    if os.path.lexists(path):
        os.unlink(path)
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "socket":
        cwd = os.getcwd()
        os.chdir(os.path.dirname(path))  # AF_UNIX paths are short: bind a relative name
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(os.path.basename(path))
        finally:
            os.chdir(cwd)
    else:
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers


def _open(path: str, mode: str = "a") -> int:
    with Session(path, mode=mode) as session:
        return len(session)


def _mode_of(path: str) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


def _open_all(path: str) -> tuple[list[str], dict[str, tuple[str, str, str]]]:
    with Session(path, ignore_errors=True) as session:
        names = sorted(t.jobname for t in session)
        errors = {k: (type(e).__name__, str(getattr(e, "id", "")), str(getattr(e, "location", "")))
                  for k, e in session.load_errors.items()}
    return names, errors


def _add_one(path: str) -> str:
    with Session(path) as session:
        return str(session.add(Task(jobname="new")))


@pytest.mark.parametrize("kind", KINDS)
def test_a_record_that_is_not_a_regular_file_is_a_load_error(tmp_path: Any, kind: str) -> None:
    path = str(tmp_path / "s")
    victim, _kept = _session_with_tasks(path, 2)
    record_file = os.path.join(path, "jobs", "0", victim)
    _plant(record_file, kind)
    names, errors = bounded(_open_all, path)
    assert names == ["t1"] and errors == {victim: ("CorruptRecordError", victim, record_file)}
    with pytest.raises(CorruptRecordError, match="not a regular file"):
        bounded(_open, path)
    rc, out, err = bounded(_run, "list", path)
    assert rc == 65 and "t1" in out
    assert victim in _one_line_error(err) and record_file in err
    assert _mode_of(record_file) != stat.S_IFREG


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["session_ids.txt", "store.url"])
def test_session_metadata_that_is_not_a_regular_file_is_refused(tmp_path: Any, name: str,
                                                                kind: str) -> None:
    path = str(tmp_path / "s")
    _session_with_tasks(path, 1)
    target = os.path.join(path, name)
    _plant(target, kind)
    before = snapshot(path)
    for mode in ("a", "r"):
        with pytest.raises(CorruptSessionError) as info:
            bounded(_open, path, mode)
        assert target in str(info.value) and "not a regular file" in str(info.value)
    rc, _, err = bounded(_run, "list", path)
    assert rc == 1 and target in _one_line_error(err)
    assert snapshot(path) == before


@pytest.mark.parametrize("kind", KINDS)
def test_an_id_counter_that_is_not_a_regular_file_is_refused(tmp_path: Any, kind: str) -> None:
    path = str(tmp_path / "s")
    _session_with_tasks(path, 1)
    counter = os.path.join(path, "jobs", ".next_id")
    _plant(counter, kind)
    kind_before = _mode_of(counter)
    with pytest.raises(IdAllocationError) as info:
        bounded(_add_one, path)
    assert counter in str(info.value) and "not a regular file" in str(info.value)
    assert _mode_of(counter) == kind_before  # left where it is, never replaced


def _hold_driver_lock(path: str) -> None:
    with driver_lock(path):
        pass


@pytest.mark.parametrize("kind", KINDS)
def test_lock_files_that_are_not_regular_files_are_refused(tmp_path: Any, kind: str) -> None:
    path = str(tmp_path / "s")
    _session_with_tasks(path, 1)
    store_lock = os.path.join(path, "jobs", ".lock")
    _plant(store_lock, kind)
    with pytest.raises(StoreWriteError) as info:
        bounded(_add_one, path)
    assert store_lock in str(info.value) and "not a regular file" in str(info.value)
    driver = os.path.join(path, "driver.lock")
    _plant(driver, kind)
    with pytest.raises(StoreWriteError) as info:
        bounded(_hold_driver_lock, path)
    assert driver in str(info.value) and "not a regular file" in str(info.value)
    assert bounded(lock_owner, path) is None  # gsession stats asks this
    rc, _, err = bounded(_run, "abort", path)
    assert rc == 1 and driver in _one_line_error(err)


def _states(path: str) -> dict[str, str | None]:
    with Session(path, load=False, mode="r") as session:
        return session.states()


@pytest.mark.parametrize("kind", KINDS)
def test_a_state_log_that_is_not_a_regular_file_is_refused(tmp_path: Any, kind: str) -> None:
    path = str(tmp_path / "s")
    _session_with_tasks(path, 1)
    log = os.path.join(path, "jobs", ".states")
    _plant(log, kind)
    with pytest.raises(LoadError) as info:
        bounded(_states, path)
    assert log in str(info.value) and "not a regular file" in str(info.value)
    rc, _, err = bounded(_run, "stats", path)
    assert rc == 1 and log in _one_line_error(err)
    with pytest.raises(StoreWriteError) as info:  # appending to it after a save
        bounded(_add_one, path)
    assert log in str(info.value) and "not a regular file" in str(info.value)


def _finish(path: str) -> None:
    with Session(path) as session:
        session.set_end_timestamp()


def test_a_timestamp_file_that_is_a_fifo_does_not_block(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    _session_with_tasks(path, 1)
    _plant(os.path.join(path, "finished"), "fifo")
    with pytest.raises(StoreWriteError, match="not a regular file"):
        bounded(_finish, path)


def test_fsck_leaves_an_index_that_is_a_fifo_for_a_human(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    _session_with_tasks(path, 2)
    index_file = os.path.join(path, "session_ids.txt")
    _plant(index_file, "fifo")
    rc, out, _ = bounded(_run, "fsck", path)
    assert rc == fsck.PROBLEMS and "not a regular file but a FIFO" in out
    rc, out, _ = bounded(_run, "fsck", "--repair", path)
    assert rc == fsck.PROBLEMS and "move it away by hand" in out
    assert _mode_of(index_file) == stat.S_IFIFO

