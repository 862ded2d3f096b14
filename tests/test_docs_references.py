"""The docs name tests as evidence: every test they name exists.

``docs/guarantees.md`` backs each promise with ``tests/FILE.py::test_name``
(or ``::test_name`` after a file named earlier in the same cell); a renamed
or deleted test would leave a promise without its proof.
"""

from __future__ import annotations

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?[^`]*`|`::(\w+)[^`]*`")


def _references(text: str) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    current = None
    for match in _REFERENCE.finditer(text):
        if match[1]:
            current = match[1]
            found.append((current, match[2]))
        elif current is not None:
            found.append((current, match[3]))
    return found


@pytest.mark.parametrize("page", sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))),
                         ids=os.path.basename)
def test_every_test_the_docs_name_exists(page: str) -> None:
    with open(page, encoding="utf-8") as stream:
        references = _references(stream.read())
    missing = []
    for path, name in references:
        full = os.path.join(ROOT, path)
        if not os.path.isfile(full):
            missing.append(path)
            continue
        if name is not None:
            with open(full, encoding="utf-8") as stream:
                if not re.search(rf"^(?:async )?def {name}\(", stream.read(), re.MULTILINE):
                    missing.append(f"{path}::{name}")
    assert not missing, f"{os.path.basename(page)} names tests that do not exist: {missing}"
