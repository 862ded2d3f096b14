"""``gc3session.utils.Struct``: the attribute dict GC3Pie's API hands out and accepts."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest

from gc3session import Session, Task
from gc3session.utils import Struct


def test_keys_are_attributes() -> None:
    """Keys and attributes are one namespace; a missing one raises the error each syntax expects."""
    s = Struct({"a": 1}, b=2)
    s.c = 3
    s["d"] = 4
    assert (s.a, s["b"], s["c"], s.d) == (1, 2, 3, 4)
    assert dict(s) == {"a": 1, "b": 2, "c": 3, "d": 4} and isinstance(s, dict)
    del s.a
    del s["b"]
    assert sorted(s) == ["c", "d"] and "c" in dir(s)
    with pytest.raises(AttributeError, match="'Struct' object has no attribute 'a'"):
        s.a  # noqa: B018
    with pytest.raises(AttributeError):
        del s.a
    with pytest.raises(KeyError):
        s["a"]
    assert Struct([("x", 1), ("y", 2)]) == {"x": 1, "y": 2}
    assert Struct({"x": 1}, x=2).x == 2  # keywords win, as for dict


def test_dict_methods_win_over_keys() -> None:
    """``s.items`` stays the method even with an ``items`` key (the key is reachable with [...])."""
    s = Struct(items=[1, 2], keys="k")
    assert callable(s.items) and s["items"] == [1, 2] and list(s.keys()) == ["items", "keys"]


def test_copies_are_structs() -> None:
    """copy(), copy.copy, copy.deepcopy and pickle give a Struct with the same keys."""
    s = Struct(a=[1], b=Struct(c=2))
    for twin in (s.copy(), copy.copy(s), copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert type(twin) is Struct and twin == s and twin.b.c == 2
    assert s.copy().a is s.a and copy.deepcopy(s).a is not s.a
    assert json.loads(json.dumps(s)) == {"a": [1], "b": {"c": 2}}
    assert repr(Struct(a=1)) == "Struct({'a': 1})"


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_a_struct_on_a_task_survives_a_store(tmp_path: Any, kind: str) -> None:
    """A task holding a Struct saves and loads back with a Struct (real stores, a new handle)."""
    url = None if kind == "file" else f"sqlite:///{tmp_path}/s.db"
    with Session(tmp_path / "s", store_or_url=url) as session:
        pid = session.add(Task(jobname="t", params=Struct(alpha=1, nested=Struct(beta=[2]))))
    with Session(tmp_path / "s") as session:
        params = session.load(pid).params
    assert type(params) is Struct and params.alpha == 1 and params.nested.beta == [2]
