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
import resource
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from typing import Any, Callable, NamedTuple

import pytest
from _report import record
from _session_objects import child_env, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gc3session import Session, Task, fsck, index
from gc3session.cli import main
from gc3session.exceptions import (
    CorruptIndexError,
    CorruptRecordError,
    CorruptSessionError,
    IdAllocationError,
    LoadError,
    StoreWriteError,
    UnsafeRecordError,
)
from gc3session.persistence import classes
from gc3session.persistence.decoding import Decoder
from gc3session.persistence.idfactory import MAX_ID_LENGTH
from gc3session.sessionlock import driver_lock, lock_owner
from gc3session.stores.filesystem import FilesystemStore

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
    rc, out, err = bounded(_run, "list", path)  # reads the summary log, not the records
    assert rc == 0 and "t1" in out
    rc, out, err = bounded(_run, "show", path, victim)  # reads the record
    assert rc != 0 and out == ""
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


# --- items 14 and 15: records crafted opcode by opcode ---------------------------------

class Named(NamedTuple):
    """A ``module:name`` global (the GLOBAL opcode)."""

    path: str


class Call(NamedTuple):
    """``func(*args)`` (REDUCE)."""

    func: str
    args: tuple[Any, ...]


class New(NamedTuple):
    """``cls.__new__(cls, *args, **kwargs)`` (NEWOBJ, or NEWOBJ_EX with keywords)."""

    cls: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] | None = None


class Build(NamedTuple):
    """``target`` with ``state`` set on it (BUILD)."""

    target: Any
    state: Any


class Ref(NamedTuple):
    """A reference to another record (BINPERSID of ``("gc3s", id)``)."""

    id: str


class Big(NamedTuple):
    """The integer ``sign * (2**bits - 1)``, kept small until it is written (its repr is cheap)."""

    bits: int
    sign: int = 1


def _ops(value: Any) -> bytes:
    """The pickle opcodes that rebuild ``value`` (protocol 4, no memo)."""
    if value is None or isinstance(value, bool):
        return {None: b"N", True: b"\x88", False: b"\x89"}[value]
    if isinstance(value, int):
        if -2**31 <= value < 2**31:
            return b"J" + struct.pack("<i", value)
        data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        return b"\x8b" + struct.pack("<i", len(data)) + data
    if isinstance(value, float):
        return b"G" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return b"X" + struct.pack("<I", len(data)) + data
    if isinstance(value, bytes):
        return b"B" + struct.pack("<I", len(value)) + value
    if isinstance(value, Named):
        module, name = value.path.split(":")
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    if isinstance(value, Call):
        return _ops(Named(value.func)) + _ops(tuple(value.args)) + b"R"
    if isinstance(value, New):
        head = _ops(Named(value.cls)) + _ops(tuple(value.args))
        return head + (b"\x81" if value.kwargs is None else _ops(value.kwargs) + b"\x92")
    if isinstance(value, Build):
        return _ops(value.target) + _ops(value.state) + b"b"
    if isinstance(value, Ref):
        return _ops(("gc3s", value.id)) + b"Q"
    if isinstance(value, Big):
        return _ops(value.sign * ((1 << value.bits) - 1))
    if isinstance(value, tuple):
        return b"(" + b"".join(_ops(v) for v in value) + b"t"
    if isinstance(value, list):
        return b"](" + b"".join(_ops(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"}(" + b"".join(_ops(k) + _ops(v) for k, v in value.items()) + b"u"
    raise TypeError(f"no opcodes for {value!r}")


def crafted(state: Any, cls: str = "gc3session.task:Task", args: tuple[Any, ...] = ()) -> bytes:
    """A record of class ``cls`` whose state pickle rebuilds ``state`` (its constructor: ``args``)."""
    return (f"GC3S 1 pickle4 {cls} NEW\n".encode() + b"\x80\x04" + _ops(tuple(args)) + b"."
            + b"\x80\x04" + _ops((state, None, None)) + b".")


def _limit_memory(extra: int = 1 << 30) -> None:
    """Allow this process ``extra`` bytes of address space beyond what it has mapped now."""
    with open("/proc/self/statm") as stream:
        mapped = int(stream.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, resource.getrlimit(resource.RLIMIT_AS)[1]))


def _decode_untrusted(data: bytes, seconds: int = 5) -> str:
    """Decode ``data`` as Task.1 with trusted=False, within ``seconds`` and 1 GiB more memory.

    Returns ``loaded`` or the name of the LoadError subclass raised; the
    alarm kills the process if the load runs over time, and an allocation
    over budget (MemoryError) is reported as such.
    """
    _limit_memory()
    signal.alarm(seconds)
    store = {"Task.2": crafted({"jobname": "child"})}
    decoder = Decoder(lambda pid: store[pid], lambda pid: f"/store/{pid}", {}, trusted=False)
    try:
        decoder.decode("Task.1", data)
    except LoadError as err:
        cause: BaseException | None = err
        while cause is not None:
            if isinstance(cause, MemoryError):
                return f"out of memory: {err}"
            cause = cause.__cause__ or cause.__context__
        assert err.id == "Task.1" or err.id == "Task.2", err
        return type(err).__name__
    finally:
        signal.alarm(0)
    return "loaded"


#: The reproducers of the issue and their relatives: each would hang, or allocate
#: gigabytes, or change a class for the whole process.
BOMBS = {
    "fraction-exponent": Call("fractions:Fraction", ("1e1000000000",)),
    "bytearray-size": Call("builtins:bytearray", (1 << 40,)),
    "bytearray-size-newobj-ex": New("builtins:bytearray", (), {"source": 1 << 40}),
    "bytearray-8-gib": Call("builtins:bytearray", (8 << 30,)),
    "set-of-range": Call("builtins:set", (Call("builtins:range", (10**10,)),)),
    "reconstructor-bytearray": Call("copyreg:_reconstructor",
                                    (Named("builtins:bytearray"), Named("builtins:bytearray"),
                                     8 << 30)),
    "decimal-of-huge-int": Call("decimal:Decimal", (Big(4_000_000),)),
    "decimal-of-huge-int-newobj": New("decimal:Decimal", (Big(4_000_000),)),
    "enum-functional-api": Call("enum:Enum", ("E", "A B C")),
}


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_untrusted_load_refuses_calls_that_compute_or_allocate_without_bound(bomb: str) -> None:
    data = crafted({"jobname": "bomb", "payload": BOMBS[bomb]})
    started = time.monotonic()
    assert bounded(_decode_untrusted, data) == "UnsafeRecordError"
    assert time.monotonic() - started < 5


def test_the_fraction_reproducer_is_refused_at_once() -> None:
    """The issue's record: a Task whose state calls fractions.Fraction("1e1000000000")."""
    data = crafted({"x": Call("fractions:Fraction", ("1e1000000000",))})
    assert len(data) <= 126  # the size of the record
    with pytest.raises(UnsafeRecordError) as info:
        bounded(Decoder(lambda pid: b"", lambda pid: "/store/" + pid, {}, trusted=False).decode,
                "Task.1", data)
    assert info.value.id == "Task.1" and "fractions:Fraction" in str(info.value)


def _build_on_a_class(target: str) -> tuple[str, bool]:
    from gc3session import exceptions, task
    before = dict(vars(task.History)), dict(vars(exceptions._rebuild))
    data = crafted({"x": Build(Named(target), (None, {"__repr__": Call("builtins:object", ())}))})
    try:
        Decoder(lambda pid: b"", lambda pid: "/store/" + pid, {}, trusted=False).decode("Task.1", data)
    except LoadError as err:
        outcome = type(err).__name__
    else:
        outcome = "loaded"
    return outcome, (dict(vars(task.History)), dict(vars(exceptions._rebuild))) == before


@pytest.mark.parametrize("target", ["gc3session.task:History", "gc3session.exceptions:_rebuild"])
def test_an_untrusted_record_cannot_change_a_class_or_function(target: str) -> None:
    assert bounded(_build_on_a_class, target) == ("UnsafeRecordError", True)


def test_untrusted_load_still_rebuilds_every_admitted_type(tmp_path: Any) -> None:
    """What task state holds (every allow-listed type) loads untrusted as it was saved.

    (gc3session's exceptions are covered by test_persistence: once dask is
    imported, tblib pickles them through a function of its own.)
    """
    import collections
    import datetime
    import decimal
    import pathlib
    import uuid

    from gc3session.persistence import Id, StoreUrl
    from gc3session.task import State
    values = {
        "set": {1, 2}, "frozenset": frozenset("ab"), "complex": 1 + 2j, "bytes": b"\0\xff",
        "bytearray": bytearray(b"buf"), "slice": slice(1, None, 2), "big": -(2**10000) + 1,
        "ordered": collections.OrderedDict(b=1, a=2), "deque": collections.deque([1, 2], maxlen=3),
        "defaultdict": collections.defaultdict(None, {"k": [1]}),
        "when": datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        "day": datetime.date(2024, 5, 1), "time": datetime.time(1, 2, 3), "span": datetime.timedelta(3),
        "decimal": decimal.Decimal("1.50"), "uuid": uuid.UUID(int=12345),
        "paths": [pathlib.PurePosixPath("/a/b"), pathlib.Path("rel/c")],
        "state": State.RUNNING, "id": Id("Task", 7),
        "url": StoreUrl.parse("sqlite:////tmp/x.db"),
    }
    writer = FilesystemStore(str(tmp_path / "jobs"))
    pid = writer.save(Task(jobname="all", **values))
    loaded = FilesystemStore(str(tmp_path / "jobs"), trusted=False).load(pid)
    for name, value in values.items():
        got = getattr(loaded, name)
        assert type(got) is type(value) and (got == value or str(got) == str(value)), name
    assert loaded.deque.maxlen == 3 and loaded.when.utcoffset() == datetime.timedelta(hours=2)


# --- the fuzzer: admitted (and refused) names called with extreme arguments ------------------

_NAMES = sorted(classes._ALLOWED_BUILTINS) + [
    "gc3session.task:Task", "gc3session.task:History", "gc3session.task:Application",
    "gc3session.task:TaskCollection", "gc3session.task:State", "gc3session.task:Run",
    "gc3session.persistence.idfactory:Id", "gc3session.persistence.idfactory:IdFactory",
    "gc3session.persistence.url:StoreUrl", "gc3session.exceptions:InvalidValue",
    "gc3session.exceptions:UnknownSchemeError",
    "fractions:Fraction", "builtins:range", "enum:Enum", "builtins:eval", "builtins:getattr",
]
_HEADERS = ["gc3session.task:Task", "gc3session.task:Application", "builtins:frozenset",
            "datetime:timedelta", "decimal:Decimal", "builtins:bytearray", "builtins:object",
            "gc3session.exceptions:_rebuild", "fractions:Fraction"]
_extreme = st.one_of(
    st.sampled_from([2**31, 2**64, 10**100, 8 << 30, 1 << 40, -1, 0, 10**10]),
    st.sampled_from([Big(16383), Big(16383, -1), Big(16400), Big(4_000_000)]),
    st.integers(-10, 10),
    st.sampled_from(["1e1000000000", "-1e999999999", "1e-1000000000", "nan", "inf", "1/3",
                     "9" * 100_000, "0x" + "f" * 10_000, "2**10**10", "\0", "a/" * 50_000,
                     "sqlite:///x", "file:///etc", "Task.1", ""]),
    st.text(max_size=8), st.binary(max_size=8), st.floats(), st.none(), st.booleans(),
    st.sampled_from([b"\0" * 100_000]),
    st.builds(Named, st.sampled_from(_NAMES)),
    st.builds(Ref, st.sampled_from(["Task.1", "Task.2", "../../x.0", "Task.01", "", "x" * 200])),
)
_values = st.recursive(_extreme, lambda inner: st.one_of(
    st.lists(inner, max_size=3).map(tuple), st.lists(inner, max_size=3),
    st.dictionaries(st.text(max_size=4), inner, max_size=3),
    st.builds(Call, st.sampled_from(_NAMES), st.lists(inner, max_size=3).map(tuple)),
    st.builds(New, st.sampled_from(_NAMES), st.lists(inner, max_size=3).map(tuple),
              st.none() | st.dictionaries(st.sampled_from(["source", "value", "int", "days",
                                                           "maxlen", "encoding", "hex"]),
                                          inner, max_size=2)),
    st.builds(Build, inner, inner),
), max_leaves=8)


@settings(max_examples=int(os.environ.get("GC3SESSION_LOADER_FUZZ_EXAMPLES", "200")),
          deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cls=st.one_of(st.just("gc3session.task:Task"), st.sampled_from(_HEADERS)),
       args=st.lists(_values, max_size=2),
       state=st.one_of(st.dictionaries(st.text(max_size=4), _values, max_size=3), _values))
def test_untrusted_loader_ends_in_time_and_memory_with_a_load_error(cls: str, args: list[Any],
                                                                   state: Any) -> None:
    """Each crafted record loads, or raises a LoadError, within 5 s and 1 GiB more memory."""
    record(fuzz_cases=1)
    data = crafted(state, cls, tuple(args))
    outcome = bounded(_decode_untrusted, data)
    assert outcome == "loaded" or outcome in {"UnsafeRecordError", "CorruptRecordError",
                                              "ClassNotFoundError", "RecordNotFoundError"}, outcome


# --- the reproducers through Session and gsession ----------------------------------------------

def _session_with_records(path: str, records: dict[str, bytes]) -> dict[str, str]:
    """A session with one good task and one task per crafted record: name -> id."""
    with Session(path) as session:
        named = {name: str(session.add(Task(jobname=name))) for name in ["good", *records]}
    for name, data in records.items():
        _write(os.path.join(path, "jobs", "0", named[name]), data)
    return named


def _gsession(*argv: str) -> subprocess.CompletedProcess[str]:
    """The gsession command in a fresh interpreter, with a deadline and 2 GiB of address space."""
    return subprocess.run([sys.executable, "-m", "gc3session.cli", *argv], capture_output=True,
                          text=True, env=child_env(), timeout=30,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)))


def test_gsession_untrusted_list_reports_the_reproducers_one_line_each(tmp_path: Any) -> None:
    """list reads record headers only; show reads the record inertly (nothing is called);
    show --full loads it: one stderr line per bad task, in time, and nothing is built."""
    path = str(tmp_path / "s")
    named = _session_with_records(path, {
        "fraction": crafted({"jobname": "fraction", "x": Call("fractions:Fraction", ("1e1000000000",))}),
        "bytearray": crafted({"jobname": "bytearray", "x": Call("builtins:bytearray", (8 << 30,))}),
    })
    done = _gsession("list", "--untrusted", path)
    assert done.returncode == 0 and "good" in done.stdout and done.stderr == ""
    inert = _gsession("show", "--untrusted", path, named["fraction"])  # a name, never called
    assert inert.returncode == 0 and "x: <fractions:Fraction>" in inert.stdout, inert.stderr
    for name, refused, how in (("fraction", "fractions:Fraction", ["--full"]),
                               ("bytearray", "bytearray(int)", ["--full"]),
                               ("bytearray", "bytearray(int)", [])):  # refused even inertly
        shown = _gsession("show", *how, "--untrusted", path, named[name])
        assert shown.returncode == 1 and shown.stdout == "" and "Traceback" not in shown.stderr
        lines = shown.stderr.splitlines()
        assert len(lines) == 1 and named[name] in lines[0] and refused in lines[0], lines


@pytest.mark.parametrize("trusted", [True, False])
@pytest.mark.parametrize("cls", ["builtins:frozenset", "datetime:timedelta", "builtins:object",
                                 "gc3session.exceptions:_rebuild"])
def test_a_header_naming_no_record_class_is_a_load_error(tmp_path: Any, cls: str,
                                                         trusted: bool) -> None:
    path = str(tmp_path / "s")
    named = _session_with_records(path, {"odd": crafted(None, cls)})
    odd = named["odd"]
    record_file = os.path.join(path, "jobs", "0", odd)
    with Session(path, ignore_errors=True, trusted=trusted) as session:
        assert [t.jobname for t in session] == ["good"]
        error = session.load_errors[odd]
    assert isinstance(error, LoadError) and error.id == odd and error.location == record_file
    assert cls in str(error)
    untrusted = [] if trusted else ["--untrusted"]
    rc, out, err = _run("list", *untrusted, path)  # headers only: the class is a name there
    assert rc == 0 and "good" in out and odd in out and err == ""
    rc, out, err = _run("show", *untrusted, path, odd)  # the record as data, nothing built
    assert rc == 0 and out.startswith(f"{odd} ({cls})")  # what the record says, not the index
    rc, out, err = _run("show", "--full", *untrusted, path, odd)
    assert rc == 1 and out == "" and record_file in _one_line_error(err)


@pytest.mark.parametrize("reference, planted", [("../../planted.0", "s/planted.0"),
                                                ("../../../outside.0", "outside.0")])
@pytest.mark.parametrize("trusted", [True, False])
def test_a_reference_that_is_a_path_is_never_followed(tmp_path: Any, reference: str,
                                                      planted: str, trusted: bool) -> None:
    """A record referring to ``../../x.0`` is damaged; the file that path reaches is never read."""
    path = str(tmp_path / "s")
    named = _session_with_records(path, {"parent": crafted({"jobname": "parent",
                                                            "child": Ref(reference)})})
    parent = named["parent"]
    secret = FilesystemStore(str(tmp_path / "elsewhere"))
    secret_id = secret.save(Task(jobname="PLANTED-SECRET"))
    _write(str(tmp_path / planted), secret.read_record(secret_id))
    with Session(path, ignore_errors=True, trusted=trusted) as session:
        assert [t.jobname for t in session] == ["good"]
        error = session.load_errors[parent]
    assert isinstance(error, CorruptRecordError) and error.id == parent
    assert reference in str(error) and "PLANTED" not in str(error)
    untrusted = [] if trusted else ["--untrusted"]
    rc, out, err = _run("list", *untrusted, path)  # headers only: no reference is followed
    assert rc == 0 and parent in out and "PLANTED" not in out + err
    for full in ([], ["--full"]):  # the record read inertly, or loaded
        rc, out, err = _run("show", *full, *untrusted, path, parent)
        assert rc == 1 and out == "" and "PLANTED" not in _one_line_error(err)
