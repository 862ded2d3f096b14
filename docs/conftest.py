"""Run the doctests of docs/ in a fresh temporary directory each."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: "pytest.TempPathFactory", monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
