"""Property: whatever a record holds comes back equal from every store.

Values are drawn by hypothesis: nested dicts, lists, tuples, sets, bytes,
text, integers of any size, floats (NaN and -0.0 included), None, dates and
times (naive and with a UTC offset), and Persistable children anywhere in
them, one of which is referenced twice.  Each store is opened once per test
and shared by its examples (hence the suppressed health check): every
example saves new records and reads back only its own, after dropping the
cache so the bytes really come from the store.
"""

from __future__ import annotations

import datetime
import math
from typing import Any, Iterator

import pytest
from _store_objects import Item
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gc3session.persistence import Store, make_store

_SETTINGS = settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])

_hashables = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                       st.binary(max_size=20))
_offsets = st.builds(datetime.timezone, st.timedeltas(min_value=datetime.timedelta(hours=-23),
                                                      max_value=datetime.timedelta(hours=23)))
_dates = st.one_of(st.datetimes(), st.datetimes(timezones=_offsets), st.dates(), st.times(),
                   st.timedeltas())
_leaves = st.one_of(_hashables, st.floats(allow_nan=True, allow_infinity=True), _dates,
                    st.frozensets(_hashables, max_size=5), st.sets(_hashables, max_size=5))


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(children, max_size=5),
                     st.tuples(children, children),
                     st.dictionaries(_hashables, children, max_size=5),
                     st.builds(Item, children))


_values = st.recursive(_leaves, _containers, max_leaves=25)


def _same(a: Any, b: Any) -> bool:
    """Deep equality where NaN equals NaN, -0.0 differs from 0.0 and types must match."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, Item):
        return _same(a.payload, b.payload)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (datetime.datetime, datetime.time)):
        return a == b and a.utcoffset() == b.utcoffset()
    return bool(a == b)


@pytest.fixture(params=["filesystem", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    """One store of each kind, shared by the examples of one test."""
    if request.param == "filesystem":
        url = str(tmp_path / "jobs")
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/x.db"
    else:
        url = request.getfixturevalue("pg_url")
    opened = make_store(url)
    yield opened
    opened.close()


@_SETTINGS
@given(value=_values, shared=_values)
def test_any_value_round_trips(store: Store, value: Any, shared: Any) -> None:
    """A record holding any value (children included) loads back equal;
    a twice-referenced child is one object."""
    child = Item(shared)
    root = Item({"value": value, "twice": [child, child]})
    pid = store.save(root)
    store.invalidate_cache()
    loaded = store.load(pid)
    assert type(loaded) is Item and loaded.persistent_id == pid
    assert _same(loaded.payload["value"], value)
    first, second = loaded.payload["twice"]
    assert first is second and first.persistent_id == child.persistent_id
    assert _same(first.payload, shared)
