"""``gc3session.persistence.accessors``: GC3Pie's ``GET`` notation, alone and as ``extra_fields``."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from gc3session import Application, Session, Task
from gc3session.persistence.accessors import GET, GetAttributeValue, GetItemValue, GetOnly, GetValue
from gc3session.utils import Struct


def test_chains_read_like_python() -> None:
    """``GET.a.b[0]`` is ``obj.a.b[0]``; dotted names chain; xform composes."""
    obj = Struct(a=Struct(b=["x", "y"]), d={"k": 1})
    assert GET(obj) is obj and GET.a.b[1](obj) == "y" and GET.d["k"](obj) == 1
    assert GetAttributeValue("a.b")(obj) == ["x", "y"]
    assert GetItemValue(0, xform=GetAttributeValue("a.b"))(obj) == "x"
    assert GetItemValue("k", xform=dict)([("k", 2)]) == 2
    assert (repr(GET.a.b[1]), repr(GetValue(default=None).execution.state)) == \
        ("GET.a.b[1]", "GetValue(default=None).execution.state")


def test_missing_values_raise_unless_a_default_is_given() -> None:
    """AttributeError, KeyError and IndexError propagate; ``GetValue(default=d)`` gives d instead."""
    obj = Struct(a=[1])
    with pytest.raises(AttributeError):
        GET.b(obj)
    with pytest.raises(IndexError):
        GET.a[5](obj)
    with pytest.raises(KeyError):
        GET["z"]({})
    assert GetValue(default=None).b.c(obj) is None and GetValue(default=0).a[5](obj) == 0
    assert GetItemValue(3, default="-")("ab") == "-"
    with pytest.raises(TypeError):  # only the three lookup errors are turned into the default
        GetValue(default=0).a["key"](obj)
    with pytest.raises(AttributeError):
        GET._private  # noqa: B018


def test_only_is_applied_to_the_object_given() -> None:
    """``.ONLY(cls)`` checks the object the chain receives; others get the default, else None."""
    first_arg = GetValue(default="-").arguments[0].ONLY(Application)
    assert first_arg(Application(["/bin/echo", "hi"])) == "/bin/echo" and first_arg(Task()) == "-"
    assert GET.jobname.ONLY(Application)(Task(jobname="t")) is None
    assert GetOnly((Task, Struct), default=1)(Struct()) == Struct()
    assert repr(GET.jobname.ONLY(Application)) == "GET.jobname.ONLY(Application)"


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    return request.getfixturevalue("pg_url")  # type: ignore[no-any-return]


def test_accessors_fill_extra_fields_of_a_real_store(sql_url: str, tmp_path: Any,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """GET chains as ``extra_fields`` of an SQL store: each column holds what the chain reads.

    As in gc3libs, a default met halfway is what the rest of the chain reads
    from: ``GetValue(default=None).arguments[0]`` on a task without
    arguments indexes None, raises TypeError, and the store keeps NULL.
    """
    extra = {
        sa.Column("jobname", sa.Text()): GET.jobname,
        sa.Column("run_state", sa.String(32)): GET.execution.state,
        sa.Column("rc", sa.Integer()): GetValue(default=None).execution.returncode,
        sa.Column("cmd", sa.Text()): GetValue(default=None).arguments[0],
        sa.Column("cores", sa.Integer()): GetValue(default=0).requested_cores.ONLY(Application),
        sa.Column("sample", sa.Text()): GetValue(default="?").params["sample"],
    }
    done = Application(["/bin/sh", "-c", "true"], jobname="done", requested_cores=2,
                       params=Struct(sample="S1"))
    done.execution.returncode = 0
    done.execution.state = "TERMINATED"
    with Session(tmp_path / "s", store_or_url=sql_url, extra_fields=extra) as session:
        ids = [session.add(done), session.add(Task(jobname="plain"))]
        store_url = session.store.url.render(hide_password=False)
    engine = sa.create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        rows = {r.id: tuple(r)[1:] for r in conn.execute(sa.text(
            "SELECT id, jobname, run_state, rc, cmd, cores, sample FROM store"))}
    engine.dispose()
    assert rows == {ids[0]: ("done", "TERMINATED", 0, "/bin/sh", 2, "S1"),
                    ids[1]: ("plain", "NEW", None, None, 0, None)}
    assert sorted(r.getMessage().split("'")[1] for r in caplog.records
                  if "could not be computed" in r.getMessage()) == ["cmd", "sample"]
