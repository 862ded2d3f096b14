"""Store URLs of paths with reserved characters: one path, one store.

A session directory named ``run#41`` used to get the store URL
``sqlite:////.../run#41/jobs.db``, whose ``#`` starts a fragment: the store
was ``.../run``, shared with ``run#42``.  These tests build sessions in real
directories named with every character that means something in a URL and
check that each one's store lives inside it and holds its tasks only.
"""

from __future__ import annotations

import os
import string
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gc3session import Application, Session, StoreUrl, make_store
from gc3session import exceptions as exc
from gc3session.cmdline import SessionBasedScript
from gc3session.sessiondir import parse_store_url, read_store_url
from gc3session.stores.filesystem import FilesystemStore
from gc3session.stores.sql import SqlStore

#: Every character with a meaning in a URL (RFC 3986 gen-delims and sub-delims,
#: "%" and the space), except "/" which separates path components anyway.
RESERVED = list("#?%&;=+@:[]!$'(),*") + [" "]


# --- StoreUrl -----------------------------------------------------------------------------

@pytest.mark.parametrize("char", RESERVED + ["\t", "\n", "\r", "é", "\u00a0", "%41"])
@pytest.mark.parametrize("scheme", ["file", "sqlite", "sqlite+pysqlite"])
def test_a_path_with_a_reserved_character_round_trips(scheme: str, char: str) -> None:
    """render() quotes what would change the URL's meaning; parse() gives the same path back."""
    path = f"/data/run{char}41/jobs{char}"
    url = StoreUrl.for_path(scheme, path)
    text = url.render()
    assert (url.scheme, url.path, url.fragment, url.query) == (scheme, path, "", "")
    assert StoreUrl.parse(text) == url
    # nothing that urlsplit cuts at or drops, or that read_store_url strips
    assert "#" not in text and "?" not in text and not any(c.isspace() for c in text)


@pytest.mark.parametrize("char", RESERVED)
def test_server_url_database_names_round_trip(char: str) -> None:
    """The database name of a server URL is quoted the same way, and the table still parses."""
    url = StoreUrl(scheme="postgresql", path=f"/db{char}1", username="u", host="h", port=5432,
                   fragment="table=runs")
    parsed = StoreUrl.parse(url.render())
    assert parsed == url and parsed.database == f"db{char}1" and parsed.table == "runs"


_PATH_CHARS = st.sampled_from([c for c in string.printable if c != "/"]
                              + list(" \u00a0éßøΩжدあ"))
_PATHS = st.lists(st.text(_PATH_CHARS, min_size=1, max_size=12), min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts))


@settings(max_examples=300, deadline=None, database=None)
@given(path=_PATHS, scheme=st.sampled_from(["file", "sqlite"]))
def test_every_path_round_trips(path: str, scheme: str) -> None:
    """parse(render(url)) == url for paths of printable ASCII, spaces and non-ASCII letters."""
    url = StoreUrl.for_path(scheme, path)
    assert url.path == os.path.abspath(path)
    assert StoreUrl.parse(url.render()) == url
    assert StoreUrl.parse(url.render().strip()) == url


@pytest.mark.parametrize("text, path", [
    ("file:///home/me/my session/jobs", "/home/me/my session/jobs"),
    ("file:///home/me/a=b,c;d@e:f!(g)'h*i+j&k$l[m]/jobs", "/home/me/a=b,c;d@e:f!(g)'h*i+j&k$l[m]/jobs"),
    ("file:///home/me/d\u00e9j\u00e0/jobs", "/home/me/d\u00e9j\u00e0/jobs"),
    ("file:///home/me/d%C3%A9j%C3%A0%20vu/jobs", "/home/me/d\u00e9j\u00e0 vu/jobs"),
    ("sqlite:////home/me/my session/jobs.db", "/home/me/my session/jobs.db"),
    ("sqlite:////home/me/a=b,c;d@e:f!(g)'h*i+j&k$l[m]/jobs.db",
     "/home/me/a=b,c;d@e:f!(g)'h*i+j&k$l[m]/jobs.db"),
    ("sqlite:////home/me/d\u00e9j\u00e0/jobs.db", "/home/me/d\u00e9j\u00e0/jobs.db"),
])
def test_store_urls_of_older_versions_and_gc3pie_still_read(text: str, path: str) -> None:
    """URLs written with unreserved characters left as they are name the same path."""
    assert StoreUrl.parse(text).path == path


def test_a_plain_path_containing_scheme_separator(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path starting with / ./ ../ is a path even with "://" in it; "name://" is a URL."""
    monkeypatch.chdir(tmp_path)
    for text in (f"{tmp_path}/odd://store", "./odd://store", "../" + tmp_path.name + "/odd://store"):
        url = StoreUrl.parse(text)
        assert (url.scheme, url.path) == ("file", f"{tmp_path}/odd:/store"), text
    store = make_store(f"{tmp_path}/odd://store")
    assert isinstance(store, FilesystemStore) and store.directory == f"{tmp_path}/odd:/store"
    with pytest.raises(exc.UnknownSchemeError):
        make_store("odd://store")
    with pytest.raises(exc.InvalidUrlError, match=r"\./"):  # the message says how to write a path
        StoreUrl.parse("run 1://store")


def test_for_path_refuses_server_schemes() -> None:
    """Only schemes whose URL is a local path can be built from one."""
    with pytest.raises(exc.InvalidUrlError):
        StoreUrl.for_path("postgresql", "/db")


# --- sessions in directories with reserved characters -----------------------------------

class Named(SessionBasedScript):
    """Two tasks named after the session directory."""

    def __init__(self) -> None:
        super().__init__(version="0.1")

    def new_tasks(self, extra: dict[str, Any]) -> list[Application]:
        name = os.path.basename(os.path.abspath(self.params.session))
        return [Application(["true"], jobname=f"{name} {i}", **extra) for i in range(2)]


def _check_own_store(session_dir: str, store: str) -> None:
    """The store that ``store.url`` names is inside ``session_dir`` and holds its tasks only."""
    url = read_store_url(session_dir)
    expected = {"sqlite": "jobs.db", "file": "jobs", "default": "jobs"}[store]
    assert url.path == os.path.join(session_dir, expected), url
    assert (os.path.isfile if store == "sqlite" else os.path.isdir)(url.path)
    name = os.path.basename(session_dir)
    with Session(session_dir) as session:
        assert isinstance(session.store, SqlStore if store == "sqlite" else FilesystemStore)
        assert sorted(t.jobname for t in session) == [f"{name} 0", f"{name} 1"]
        assert len(session.store.list()) == 2


@pytest.mark.parametrize("store", ["sqlite", "file", "default"])
def test_scripts_in_sibling_sessions_never_share_a_store(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                         store: str) -> None:
    """``-s 'run#41'`` and ``-s 'run#42'`` (and every other reserved character) get a store each."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "named.py")])
    for char in RESERVED:
        for n in (41, 42):
            argv = ["-s", f"run{char}{n}", "-C", "1", "-o", str(tmp_path / "out" / "NAME")]
            if store != "default":
                argv += ["-u", store]
            assert Named().main(argv) == 0, (char, n)
    for char in RESERVED:
        for n in (41, 42):
            _check_own_store(str(tmp_path / f"run{char}{n}"), store)
    # nothing else appeared beside them (a cut URL made a store named "run")
    assert {e for e in os.listdir(tmp_path) if e != "out"} == {
        f"run{c}{n}" for c in RESERVED for n in (41, 42)}


@pytest.mark.parametrize("scheme", ["sqlite", "file"])
def test_library_sessions_with_urls_built_from_paths(tmp_path: Any, scheme: str) -> None:
    """``Session(path, StoreUrl.for_path(...))`` in directories with reserved characters."""
    for char in RESERVED:
        for n in (41, 42):
            path = str(tmp_path / f"lib{char}{n}")
            name = "jobs.db" if scheme == "sqlite" else "jobs"
            with Session(path, store_or_url=StoreUrl.for_path(scheme, os.path.join(path, name))) as session:
                for i in range(2):
                    session.add(Application(["true"], jobname=f"lib{char}{n} {i}"))
    for char in RESERVED:
        for n in (41, 42):
            _check_own_store(str(tmp_path / f"lib{char}{n}"), scheme)


def test_missing_store_url_hint_names_the_default_store(tmp_path: Any) -> None:
    """The repair hint for a lost ``store.url`` gives a URL that reads back as ``<session>/jobs``."""
    path = str(tmp_path / "run#41")
    Session(path).close()
    os.unlink(os.path.join(path, "store.url"))
    with pytest.raises(exc.CorruptSessionError) as info:
        Session(path)
    hint = str(info.value).split(" e.g. ", 1)[1].split(" for the default store", 1)[0]
    assert parse_store_url(path, hint).path == os.path.join(path, "jobs")


@pytest.mark.parametrize("store", ["sqlite", "file", "default"])
def test_scripts_in_directories_whose_names_are_not_utf8(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                          store: str) -> None:
    """``-s run\\xff`` (os.fsdecode gives a surrogate): ``store.url`` names the store inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "named.py")])
    path = os.fsdecode(os.fsencode(str(tmp_path)) + b"/run\xff")
    argv = ["-s", path, "-C", "1", "-o", str(tmp_path / "out" / "NAME")]
    assert Named().main(argv + (["-u", store] if store != "default" else [])) == 0
    with open(os.path.join(path, "store.url"), "rb") as stream:
        assert stream.read() == (b"sqlite:jobs.db" if store == "sqlite" else b"file:jobs")
    _check_own_store(path, store)
