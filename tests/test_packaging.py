"""What ``pip install .`` puts into site-packages, checked in a fresh virtual environment.

``stores/`` sits at the top of the repository but is installed as
``gc3session.stores``: a top-level package named ``stores`` would clash with
an unrelated package of that name on the package registry (and the safe
loader's allow-list trusts only ``gc3session.``).  The store modules'
doctests run here too, on the installed names (pytest would import the
files as ``stores.*``, a second copy of each module).
"""

from __future__ import annotations

import doctest
import importlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("module", ["gc3session.stores.filesystem", "gc3session.stores.sqlschema"])
def test_store_modules_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_install_puts_stores_under_gc3session_only(tmp_path: Any) -> None:
    source = tmp_path / "source"  # pip builds in the tree it is given: never in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "__pycache__", ".hypothesis"))
    env_dir = tmp_path / "venv"
    # the system's packages (SQLAlchemy, tqdm...) are reused; pip builds the wheel
    # as any user's pip would (its build requirements come from the package registry)
    venv.create(env_dir, with_pip=True, system_site_packages=True)
    python = str(env_dir / "bin" / "python")
    build = subprocess.run([python, "-m", "pip", "install", "--no-deps",
                            "--disable-pip-version-check", "-q", str(source)],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    probe = subprocess.run(
        [python, "-c", "import importlib.util, sys, gc3session.stores.sql as sql\n"
         "print(sql.__file__)\n"
         "print(importlib.util.find_spec('stores'))\n"
         "import stores"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    where, spec = probe.stdout.splitlines()[:2]
    assert where.startswith(str(env_dir)) and where.endswith("gc3session/stores/sql.py")
    assert spec == "None"
    assert probe.returncode == 1 and "No module named 'stores'" in probe.stderr
    site = [p for p in (env_dir / "lib").glob("python*/site-packages")][0]
    assert not (site / "stores").exists() and (site / "gc3session" / "stores" / "filesystem.py").is_file()
    # every package of the source tree was installed: the gsession entry point runs
    installed = sorted(p.name for p in (site / "gc3session").iterdir() if (p / "__init__.py").exists())
    in_tree = [p.name for p in Path(ROOT, "gc3session").iterdir() if (p / "__init__.py").exists()]
    assert installed == sorted([*in_tree, "stores"])
    gsession = subprocess.run([str(env_dir / "bin" / "gsession"), "--help"], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path)
    assert gsession.returncode == 0 and "fsck" in gsession.stdout


def test_the_public_names_resolve_and_are_listed_once() -> None:
    """``gc3session.__all__`` lists exactly the lazily imported names (and the two plain
    attributes ``__version__`` and ``log``), and each resolves."""
    import gc3session

    assert set(gc3session.__all__) == {*gc3session._EXPORTS, "__version__", "log"}
    for name in gc3session.__all__:
        assert getattr(gc3session, name) is not None


def test_importing_the_file_primitives_loads_nothing_else() -> None:
    """The low layers import alone: ``gc3session.fsio`` does not pull in the session layer."""
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, gc3session.fsio, gc3session.locking\n"
         "print(' '.join(sorted(m for m in sys.modules if m.startswith('gc3session'))))"],
        capture_output=True, text=True, timeout=60, check=True)
    assert probe.stdout.split() == ["gc3session", "gc3session.exceptions", "gc3session.fsio",
                                    "gc3session.locking", "gc3session.regularfile"]
