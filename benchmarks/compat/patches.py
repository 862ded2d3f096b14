"""The textual patches applied to GC3Pie's test files before they run on gc3session.

gc3session runs on SQLAlchemy 2; GC3Pie 2.6.8's tests talk to the database
themselves in SQLAlchemy 1.x idioms.  Those idioms, and only those, are
rewritten into their SQLAlchemy 2 spelling in the copies run against
gc3session (the copies run against GC3Pie, on SQLAlchemy 1.4, are not
touched).  Each patch is a regular expression with its replacement and the
1.x idiom it replaces; :func:`apply` reports how many places each changed,
and the runner prints that.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Patch(NamedTuple):
    """One rewrite: ``pattern`` -> ``replacement`` in the test's source, and why."""

    pattern: str
    replacement: str
    reason: str


#: The SQLAlchemy 1.x idioms of GC3Pie's tests, and their 2.x spelling.
SQLALCHEMY_2: tuple[Patch, ...] = (
    Patch(r"\bsql\.select\(\[", "sql.select(*[",
          "select([cols]) takes the columns as positional arguments in SQLAlchemy 2"),
    Patch(r"\.execute\((\s*(?:'[^'\n]*'|\"[^\"\n]*\")(?:\s*%\s*[\w.]+)?\s*)\)",
          r".execute(sqlalchemy.text(\1))",
          "a plain SQL string must be wrapped in text() in SQLAlchemy 2"),
    Patch(r"(\._engine\.connect\(\))",
          r'\1.execution_options(isolation_level="AUTOCOMMIT")',
          "SQLAlchemy 1.x connections autocommitted DDL (alter/drop table); 2.x needs it asked"),
)


def apply(text: str, patches: tuple[Patch, ...] = SQLALCHEMY_2) -> tuple[str, list[tuple[Patch, int]]]:
    """``text`` with every patch applied, and how many places each one changed."""
    counts = []
    for patch in patches:
        text, count = re.subn(patch.pattern, patch.replacement, text)
        counts.append((patch, count))
    return text, counts


__all__ = ["Patch", "SQLALCHEMY_2", "apply"]
