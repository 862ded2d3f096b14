"""``gc3session.url``: GC3Pie's ``Url``, ``UrlKeyDict`` and ``UrlValueDict``; Url objects as store URLs."""

from __future__ import annotations

import os
import pickle
from typing import Any

import pytest

from gc3session import Session, Task, make_store
from gc3session.exceptions import InvalidValue
from gc3session.persistence.url import StoreUrl
from gc3session.url import Url, UrlKeyDict, UrlValueDict


def test_parsing_as_gc3pie() -> None:
    """Fields and their order, the ``file`` default, absolute paths, hosts, fragments."""
    u = Url("postgresql://bob:s3cret@DB.example:5433/jobs?sslmode=require#table=runs")
    assert tuple(u) == ("postgresql", "bob:s3cret@DB.example:5433", "/jobs", "db.example", 5433,
                        "sslmode=require", "bob", "s3cret", "table=runs")
    assert (u[2], u.path) == ("/jobs", "/jobs")
    assert Url("/tmp/foo")[:3] == ("file", "", "/tmp/foo")
    assert Url("rel/dir").path == os.path.join(os.getcwd(), "rel/dir")
    assert Url("rel/dir", force_abs=False).path == "rel/dir"
    assert (Url("//foo/bar").netloc, Url("//foo/bar").path) == ("foo", "/bar")
    assert Url("/tmp/foo#1")[2::6] == ("/tmp/foo", "1")
    assert Url("/tmp/foo", scheme="file", netloc="localhost").netloc == "localhost"
    kw = Url(scheme="http", netloc="example.org", path="/data")
    assert str(kw) == "http://example.org/data" and kw.hostname is None
    assert Url(u) == u and Url(os.path.join(os.sep, "x")) == "file:///x"
    with pytest.raises(InvalidValue, match=r"cannot parse 'http://bob:\*\*\*@h:99999/' as a URL"):
        Url("http://bob:pw@h:99999/")
    with pytest.raises(InvalidValue):
        Url(42)  # type: ignore[arg-type]


def test_equality_hash_and_adjoin() -> None:
    """Equal to the strings that parse to it; hashable; adjoin appends to the path."""
    u = Url("/tmp/foo")
    assert u == "/tmp/foo" and u == "file:///tmp/foo" and u == Url("file:///tmp/foo")
    assert u != "http://example.org/" and u != Url("file:///tmp/foo?bar") and not (u == 42)
    assert len({Url("/tmp/foo"), Url("file:///tmp/foo")}) == 1
    assert Url("http://h/a").adjoin("/b").adjoin("c") == "http://h/a/b/c"
    assert str(Url("http://h?q").adjoin("x")) == "http://h/x?q"
    assert Url("http://a:pw1@h/") != Url("http://a:pw2@h/")  # the text is the same, the URLs are not


def test_password_never_shown() -> None:
    """str() and repr() hide the password; render(hide_password=False) is the way to get it."""
    u = Url("https://alice:t0p-secret@example.org:8443/x")
    for text in (str(u), repr(u), repr([u]), repr(UrlKeyDict({u: 1})), repr(UrlValueDict(a=u))):
        assert "t0p-secret" not in text and "alice:***@example.org:8443" in text
    assert u.render(hide_password=False) == "https://alice:t0p-secret@example.org:8443/x"
    assert u.password == "t0p-secret"


def test_pickling_keeps_every_field() -> None:
    """A pickled Url comes back equal, fragment included (GC3Pie's loses it)."""
    for u in (Url("http://a:b@h:80/p?q=1#frag"), Url("rel", force_abs=False), Url(scheme="s")):
        again = pickle.loads(pickle.dumps(u))
        assert again == u and tuple(again) == tuple(u) and type(again) is Url


def test_url_key_dict() -> None:
    """Keys become Urls; look-ups, membership, get, pop, update and setdefault take text too."""
    d = UrlKeyDict({"/tmp/a": 1}, force_abs=True)
    d["rel"] = 2
    d.update({"/tmp/b": 3}, c=4)
    assert all(isinstance(k, Url) for k in d) and len(d) == 4
    assert d["/tmp/a"] == d["file:///tmp/a"] == d[Url("/tmp/a")] == 1
    assert d[os.path.abspath("rel")] == 2 and "/tmp/b" in d and 42 not in d
    assert d.get("/tmp/zz", "none") == "none" and d.setdefault("/tmp/a", 9) == 1
    assert d.setdefault("/tmp/new", 5) == 5 and d.pop("file:///tmp/new") == 5
    del d["/tmp/b"]
    assert "/tmp/b" not in d
    copied = d.copy()
    assert type(copied) is UrlKeyDict and copied == d and copied._force_abs
    again = pickle.loads(pickle.dumps(d))
    assert again == d and again._force_abs and again["/tmp/a"] == 1
    assert UrlKeyDict(force_abs=False, **{"x": 1}) == {Url("x", force_abs=False): 1}


def test_url_value_dict() -> None:
    """Values become Urls (relative paths stay relative by default)."""
    d = UrlValueDict([("out", "result.txt")], err="/tmp/err")
    d["log"] = Url("http://h/log")
    d.setdefault("more", "more.txt")
    assert all(isinstance(v, Url) for v in d.values())
    assert d["out"].path == "result.txt" and d["err"] == "/tmp/err" and d["more"].path == "more.txt"
    assert pickle.loads(pickle.dumps(d)) == d


@pytest.fixture(params=["file", "sqlite", "postgresql"])
def text_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A store URL of each kind, as text."""
    if request.param == "file":
        return str(tmp_path / "run 1" / "jobs")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db#table=runs"
    return request.getfixturevalue("pg_url") + "#table=runs"


def test_make_store_takes_a_url_object(text_url: str, tmp_path: Any) -> None:
    """make_store(Url(text)) is make_store(text); a session created with one uses that store."""
    assert StoreUrl.parse(Url(text_url)) == StoreUrl.parse(text_url)
    with make_store(Url(text_url)) as store:
        pid = store.save(Task(jobname="via-url"))
    with make_store(text_url) as store:
        assert store.load(pid).jobname == "via-url"
    with Session(tmp_path / "session", store_or_url=Url(text_url)) as session:
        assert session.store_url == StoreUrl.parse(text_url).without_password()
        assert session.load(pid, add=False).jobname == "via-url"


def test_a_password_in_a_url_object_reaches_the_store() -> None:
    """The password of a Url object is used (escapes read as in text), never shown."""
    url = StoreUrl.parse(Url("postgresql://bob:p%40ss:w@db:5432/jobs#table=t"))
    assert (url.username, url.password, url.host, url.port, url.database, url.table) == \
        ("bob", "p@ss:w", "db", 5432, "jobs", "t")
    assert "p@ss" not in str(url)
    built = StoreUrl.parse(Url(scheme="postgresql", hostname="db", username="u", password="pw",
                               port=1, path="/x"))
    assert built.render(hide_password=False) == "postgresql://u:pw@db:1/x"
    assert StoreUrl.parse(Url(scheme="file", path="/data/run#1")).path == "/data/run#1"


def test_tasks_holding_urls_and_structs_load_untrusted(tmp_path: Any) -> None:
    """Url and Struct are plain data: an untrusted load rebuilds them
    (imported GC3Pie tasks hold them)."""
    from gc3session.utils import Struct

    path = str(tmp_path / "s")
    with Session(path) as session:
        pid = session.add(Task(jobname="t", where=Url("http://host/x"), extra=Struct(a=1)))
    with Session(path, trusted=False) as again:
        task = again.load(pid)
    assert task.where == Url("http://host/x") and task.extra.a == 1
