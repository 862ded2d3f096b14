"""GC3Pie's doctests as a pytest file that runs the same way on GC3Pie and on gc3session.

``pytest --doctest-modules gc3libs/session.py`` imports the module to find
its doctests; under the import shim that would import gc3session's module
and run gc3session's doctests.  So the examples are taken from the peer's
*source* instead (its syntax tree: the docstrings of the module, its classes,
functions and methods, the objects ``doctest.DocTestFinder`` visits), written
into a test file, and each is run in the globals of the module it belongs to
as imported in that process: GC3Pie's module in GC3Pie's environment,
gc3session's module of the same role under the shim.  GC3Pie's examples
also use the names their module imports (``gc3libs``, ``Url``, ...), so the
module's own top-level import statements are run first, through the shim on
gc3session's side (one that fails leaves its names out); the module's globals
are laid over them.  Both sides therefore use one harness; an example fails
or passes for what the modules do.

Option flags are pytest's default for doctests (``ELLIPSIS``).
"""

from __future__ import annotations

import ast
import os

_TEMPLATE = '''"""Doctests of {source} (GC3Pie 2.6.8), extracted by benchmarks/compat/doctests.py."""

import doctest
import importlib

import pytest

MODULE = {module!r}
SOURCE = {source!r}
IMPORTS = {imports!r}
CASES = {cases!r}


@pytest.mark.parametrize("name,lineno,text", CASES, ids=[case[0] for case in CASES])
def test_doctest(name, lineno, text):
    module = importlib.import_module(MODULE)
    globs = {{}}
    for statement in IMPORTS:
        try:
            exec(statement, globs)
        except ImportError:
            pass
    globs.update(vars(module))
    test = doctest.DocTestParser().get_doctest(text, globs, name, SOURCE, lineno)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS, verbose=False)
    report = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
'''


def docstrings(path: str, module: str) -> list[tuple[str, int, str]]:
    """``(qualified name, line, docstring)`` of every docstring with examples in ``path``."""
    with open(path, encoding="utf-8") as stream:
        tree = ast.parse(stream.read(), filename=path)
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, name: str) -> None:
        text = ast.get_docstring(node, clean=False)  # type: ignore[arg-type]
        if text and ">>>" in text:
            found.append((name, getattr(node, "lineno", 1), text))
        for child in getattr(node, "body", ()):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, f"{name}.{child.name}")

    visit(tree, module)
    return found


def imports(path: str) -> list[str]:
    """The module's top-level ``import`` and ``from ... import`` statements (``__future__`` left out)."""
    with open(path, encoding="utf-8") as stream:
        source = stream.read()
    statements = []
    for node in ast.parse(source, filename=path).body:
        if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.level == 0
                                             and node.module != "__future__"):
            statements.append(ast.get_source_segment(source, node) or "")
    return [statement for statement in statements if statement]


def write_test_file(source_root: str, relpath: str, directory: str) -> str | None:
    """Write ``test_doctests__<module>.py`` for the module at ``relpath``; None if it has no examples."""
    module = relpath[:-3].replace(os.sep, ".").removesuffix(".__init__")
    cases = docstrings(os.path.join(source_root, relpath), module)
    if not cases:
        return None
    target = os.path.join(directory, f"test_doctests__{module.replace('.', '_')}.py")
    with open(target, "w", encoding="utf-8") as stream:
        stream.write(_TEMPLATE.format(source=relpath, module=module, cases=cases,
                                      imports=imports(os.path.join(source_root, relpath))))
    return target


__all__ = ["docstrings", "imports", "write_test_file"]
