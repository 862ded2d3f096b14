"""The import-mapping shim: which peer module name stands for which gc3session module.

A peer's test file runs unchanged against gc3session when, in its process,
the peer's module names are bound to gc3session's modules of the same role.
That binding is all the shim does: :data:`GC3PIE` and :data:`PLAINBOX` are
name tables, and :func:`conftest_text` renders one of them as a
``conftest.py`` that puts each gc3session module into ``sys.modules`` under
the peer's name (and as an attribute of the peer's parent package, so
``import gc3libs.persistence.sql`` followed by attribute access works).
No behaviour is added or adapted: a name gc3session does not provide stays
unbound, and the test that imports it fails with ``ModuleNotFoundError``.

A target is a tuple of candidates, the first importable one that lies in
the same tree as the ``gc3session`` package being measured wins: the
concrete stores are ``stores.*`` today and ``gc3session.stores.*`` once the
package is restructured (and an editable install of another checkout may
answer for ``gc3session.stores`` meanwhile: its modules are not bound).

PlainBox's own packages stay importable (the run uses PlainBox's
environment): only its session layer is mapped, so its tests still find
PlainBox's job units, results, ``plainbox.vendor.mock`` and test helpers.
One module of that layer stays PlainBox's (:data:`PEER_KEPT`):
``plainbox.impl.session.jobs``, the job readiness inhibitors of PlainBox's
dependency solver, which gc3session has no counterpart for and which
PlainBox's own ``JobDefinition`` imports when it is constructed; it is
loaded from PlainBox's file under its own name (it imports no other module
of the session layer).
``plainbox.impl.result`` is deliberately not mapped: PlainBox's test helpers
(``plainbox.impl.testing_utils``) import its ``IOLogRecordWriter`` at import
time, and mapping it would fail whole test files for a helper class.
"""

from __future__ import annotations

#: GC3Pie 2.6.8 module -> gc3session module(s) of the same role.
GC3PIE: dict[str, tuple[str, ...]] = {
    "gc3libs": ("gc3session",),
    "gc3libs.exceptions": ("gc3session.exceptions",),
    "gc3libs.session": ("gc3session.session",),
    "gc3libs.workflow": ("gc3session.workflow",),
    "gc3libs.utils": ("gc3session.utils",),
    "gc3libs.url": ("gc3session.url",),
    "gc3libs.persistence": ("gc3session.persistence",),
    "gc3libs.persistence.store": ("gc3session.persistence.store",),
    "gc3libs.persistence.idfactory": ("gc3session.persistence.idfactory",),
    "gc3libs.persistence.serialization": ("gc3session.persistence.serialization",),
    "gc3libs.persistence.accessors": ("gc3session.persistence.accessors",),
    "gc3libs.persistence.filesystem": ("gc3session.stores.filesystem", "stores.filesystem"),
    "gc3libs.persistence.sql": ("gc3session.stores.sql", "stores.sql"),
}

#: PlainBox 0.38 module -> gc3session module(s) of the same role.
PLAINBOX: dict[str, tuple[str, ...]] = {
    "plainbox.impl.session": ("gc3session.plainbox",),
    "plainbox.impl.session.storage": ("gc3session.plainbox.storage",),
    "plainbox.impl.session.manager": ("gc3session.plainbox.manager",),
    "plainbox.impl.session.state": ("gc3session.plainbox.state",),
    "plainbox.impl.session.suspend": ("gc3session.plainbox.suspend",),
    "plainbox.impl.session.resume": ("gc3session.plainbox.resume",),
}

#: Peer modules inside a mapped package that stay the peer's own: name -> file in the peer's tree.
PEER_KEPT: dict[str, dict[str, str]] = {
    "plainbox": {"plainbox.impl.session.jobs": "impl/session/jobs.py"},
}

_CONFTEST = '''"""Written by benchmarks/compat/run_peer_suites.py: binds peer module names to gc3session's."""

import importlib
import importlib.util
import os
import sys

TABLE = {table!r}
KEPT = {kept!r}
BOUND = {{}}
MISSING = {{}}


def _ours(target):
    """True if ``target`` (and each package above it) lies in the gc3session tree being measured.

    Checked on the import specs, before anything runs: another checkout's
    module may not even import against this tree.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["gc3session"].__file__)))
    parts = target.split(".")
    for end in range(1, len(parts) + 1):
        try:
            spec = importlib.util.find_spec(".".join(parts[:end]))
        except ModuleNotFoundError:
            return False
        if spec is None:
            return False
        where = spec.origin if spec.has_location else next(iter(spec.submodule_search_locations or ()), None)
        if where is None or os.path.commonpath([root, os.path.abspath(where)]) != root:
            return False
    return True


def _bind():
    importlib.import_module("gc3session")
    for alias in sorted(TABLE, key=lambda name: name.count(".")):
        module = None
        for target in TABLE[alias]:
            if _ours(target):
                module = importlib.import_module(target)
                break
        if module is None:
            MISSING[alias] = TABLE[alias]
            continue
        sys.modules[alias] = module
        BOUND[alias] = module.__name__
        parent, _, child = alias.rpartition(".")
        if parent:
            setattr(importlib.import_module(parent), child, module)
    for alias, relpath in sorted(KEPT.items()):
        top = importlib.util.find_spec(alias.split(".")[0])
        path = os.path.join(top.submodule_search_locations[0], relpath)
        spec = importlib.util.spec_from_file_location(alias, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[alias] = module
        spec.loader.exec_module(module)
        BOUND[alias] = "(the peer's own, %s)" % path


_bind()


def pytest_report_header(config):
    lines = ["import shim: %s -> %s" % item for item in sorted(BOUND.items())]
    lines += ["import shim: %s -> (not provided by gc3session: %s)" % (alias, ", ".join(targets))
              for alias, targets in sorted(MISSING.items())]
    return lines
'''


def conftest_text(table: dict[str, tuple[str, ...]], kept: dict[str, str] | None = None) -> str:
    """The ``conftest.py`` that binds the names of ``table`` (and ``kept``)
    before any test module is imported."""
    return _CONFTEST.format(table=table, kept=kept or {})


__all__ = ["GC3PIE", "PEER_KEPT", "PLAINBOX", "conftest_text"]
