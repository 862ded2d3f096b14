"""Hostile and malformed input: only typed errors escape, nothing on disk changes.

Property-based fuzzing of every parser (session_ids.txt, store.url, record
headers, store URLs, ids), ids and names that try to escape the session,
symlinks planted in a session directory, untrusted records that would run
code under plain pickle, and the permissions of what gc3session creates.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import stat
from typing import Any

import pytest
from _report import record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gc3session import Session, Task, index, make_store
from gc3session.exceptions import (
    CorruptIndexError,
    CorruptSessionError,
    Error,
    InvalidValue,
    LoadError,
    UnsafeRecordError,
)
from gc3session.persistence import Id, StoreUrl
from gc3session.persistence.decoding import Decoder
from gc3session.persistence.idfactory import MAX_ID_LENGTH
from gc3session.persistence.record import parse_header

FUZZ = settings(max_examples=int(os.environ.get("GC3SESSION_FUZZ_EXAMPLES", "200")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _tree(root: str) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` with its bytes and mode, symlinks as their target."""
    result = {}
    for directory, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                result[path] = (os.readlink(path).encode(), 0)
            else:
                with open(path, "rb") as stream:
                    result[path] = (hashlib.sha256(stream.read()).digest(), os.lstat(path).st_mode)
    return result


@FUZZ
@given(st.binary(max_size=300))
def test_index_parser_only_raises_corrupt_index(data: bytes) -> None:
    record(fuzz_cases=1)
    try:
        ids = index.parse(data, "/x/session_ids.txt")
    except CorruptIndexError as err:
        assert "/x/session_ids.txt" in str(err) and f"byte {err.offset}" in str(err)
        assert 0 <= err.offset <= len(data)
        return
    assert all(Id.parse(i) == i for i in ids)
    # what an accepted index may end with: at most the beginning of one id
    tail = data[data.rfind(b"\n") + 1:]
    assert b"\0" not in tail and len(tail) <= MAX_ID_LENGTH


@FUZZ
@given(st.text(max_size=200))
def test_store_url_parser_only_raises_typed_errors(text: str) -> None:
    record(fuzz_cases=1)
    try:
        url = StoreUrl.parse(text)
    except Error:
        return
    assert StoreUrl.parse(url.render(hide_password=False)).scheme == url.scheme


@FUZZ
@given(st.text(max_size=80))
def test_id_parser(text: str) -> None:
    record(fuzz_cases=1)
    try:
        parsed = Id.parse(text)
    except InvalidValue:
        return
    assert parsed == text and "/" not in parsed and "\x00" not in parsed


@FUZZ
@given(st.binary(max_size=400))
def test_record_decoder_only_raises_load_errors(data: bytes) -> None:
    record(fuzz_cases=1)
    decoder = Decoder(lambda pid: b"", lambda pid: "/store/" + pid, {}, trusted=False)
    try:
        decoder.decode("Task.1", b"GC3S 1 pickle4 gc3session.task:Task NEW\n" + data)
    except LoadError as err:
        assert "Task.1" in str(err) and "/store/Task.1" in str(err)
    try:
        parse_header(data)
    except ValueError:
        pass


@FUZZ
@given(st.binary(max_size=200))
def test_garbage_store_url_file_is_refused_and_left_alone(tmp_path: Any, data: bytes) -> None:
    record(fuzz_cases=1)
    path = str(tmp_path / "fuzz")
    if not os.path.exists(path):
        Session(path)
    with open(os.path.join(path, "store.url"), "wb") as stream:
        stream.write(data)
    before = _tree(path)
    try:
        session = Session(path, mode="r")
    except Error:
        pass
    else:
        assert len(session) == 0
    assert _tree(path) == before


@FUZZ
@given(st.binary(max_size=200))
def test_garbage_index_is_refused_and_left_alone(tmp_path: Any, data: bytes) -> None:
    record(fuzz_cases=1)
    path = str(tmp_path / "fuzz")
    if not os.path.exists(path):
        Session(path).add(Task(jobname="kept"))
    with open(os.path.join(path, "session_ids.txt"), "wb") as stream:
        stream.write(data)
    before = _tree(path)
    try:
        Session(path, ignore_errors=True)
    except Error as err:
        assert isinstance(err, (CorruptSessionError, LoadError))
    assert _tree(path) == before


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "Task.1/../../x", "Task.\x001", "",
                                 "Task." + "9" * 40, "x" * 5000, "Task.1\n"])
def test_ids_that_try_to_escape_are_refused(tmp_path: Any, bad: str) -> None:
    session = Session(str(tmp_path / "s"))
    store = session.store
    before = _tree(str(tmp_path))
    for call in (store.load, store.remove, store.read_record, session.load):
        with pytest.raises(InvalidValue):
            call(bad)
    with pytest.raises(InvalidValue):
        store.replace(bad, Task())
    assert _tree(str(tmp_path)) == before


def test_index_line_that_is_a_path_is_refused(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    Session(path)
    with open(os.path.join(path, "session_ids.txt"), "w") as stream:
        stream.write("Task.1\n../../etc/passwd\n")
    with pytest.raises(CorruptIndexError, match="line 2"):
        Session(path)


@pytest.mark.parametrize("name", ["session_ids.txt", "store.url"])
def test_planted_symlink_metadata_is_not_followed(tmp_path: Any, name: str) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"Task.7\n" if name == "session_ids.txt" else b"file:///tmp/elsewhere")
    path = str(tmp_path / "s")
    Session(path)
    os.unlink(os.path.join(path, name))
    os.symlink(outside, os.path.join(path, name))
    with pytest.raises(CorruptSessionError):
        Session(path)
    assert outside.read_bytes() in (b"Task.7\n", b"file:///tmp/elsewhere")


def test_planted_symlink_records_and_shards_are_not_followed(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    session = Session(path)
    task_id = session.add(Task(jobname="victim"))
    secret = tmp_path / "secret"
    secret.write_bytes(b"GC3S 1 pickle4 gc3session.task:Task NEW\nnot yours")
    record = os.path.join(path, "jobs", "0", task_id)
    os.unlink(record)
    os.symlink(secret, record)
    session.store.invalidate_cache()
    with pytest.raises(LoadError):
        session.store.load(task_id)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, os.path.join(path, "jobs", "1"))
    task = Task(jobname="x")
    task.persistent_id = Id("Task", 1500)
    with pytest.raises(Error):
        session.store.save(task)
    assert list(outside.iterdir()) == []


def test_planted_symlink_jobs_dir_is_refused(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    Session(path).add(Task())
    os.rename(os.path.join(path, "jobs"), str(tmp_path / "moved"))
    os.symlink(str(tmp_path / "moved"), os.path.join(path, "jobs"))
    with pytest.raises(CorruptSessionError, match="symlink"):
        Session(path)


class _RunsCode:
    """Pickles into a call of os.system, as a malicious record would."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


def test_untrusted_session_does_not_run_code_from_a_record(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    session = Session(path)
    task_id = session.add(Task(jobname="innocent"))
    marker = tmp_path / "pwned"
    stream = io.BytesIO()
    stream.write(b"GC3S 1 pickle4 gc3session.task:Task NEW\n")
    pickle.dump((), stream, protocol=4)
    pickle.dump(({"jobname": "evil", "payload": _RunsCode(str(marker))}, None, None), stream,
                protocol=4)
    record = os.path.join(path, "jobs", "0", task_id)
    with open(record, "wb") as out:
        out.write(stream.getvalue())
    with pytest.raises(UnsafeRecordError, match="posix:system"):
        Session(path, trusted=False)
    assert not marker.exists()
    # the same record under plain (trusted) pickle would run the command:
    Session(path, trusted=True)
    assert marker.exists()


def test_new_session_files_are_private(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    session = Session(path)
    session.add(Task())
    session.set_end_timestamp()
    sqlite = Session(str(tmp_path / "q"), store_or_url=f"sqlite:///{tmp_path}/q.db")
    sqlite.add(Task())
    for root in (path, str(tmp_path / "q")):
        for directory, _dirs, files in os.walk(root):
            assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700, directory
            for name in files:
                mode = stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode)
                assert mode == 0o600, (name, oct(mode))
    assert stat.S_IMODE(os.stat(tmp_path / "q.db").st_mode) == 0o600


def test_password_never_written(tmp_path: Any) -> None:
    url = "postgresql://alice:s3cr3t@db.invalid/jobs#table=runs"
    store = make_store(url)
    assert "s3cr3t" not in str(store.url) and "s3cr3t" not in repr(store)
    path = str(tmp_path / "s")
    Session(path, store_or_url=store)
    with open(os.path.join(path, "store.url")) as stream:
        text = stream.read()
    assert text == "postgresql://alice@db.invalid/jobs#table=runs"
