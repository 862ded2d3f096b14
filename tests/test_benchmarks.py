"""The benchmark report runs: ``python -m benchmarks --quick`` (what CI runs; it asserts no speed)."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AREAS = ("runner", "stores", "sessions", "checkpoints")


def test_quick_run_writes_a_table_per_area_and_the_machine(tmp_path):
    """Every area runs once at tiny sizes, and RESULTS.md holds its table, targets and the machine."""
    output = tmp_path / "RESULTS.md"
    env = dict(os.environ, GC3SESSION_BENCH_DIR=str(tmp_path), TMPDIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    text = output.read_text()
    for area in AREAS:
        section = text.split(f"## {area}\n", 1)[1].split("\n## ", 1)[0]
        assert "| operation | N | ours | anchor |" in section, area
        assert section.count("\n| ") >= 2 and "Targets:" in section, area
    assert "- cores: " in text and "Python " in text and "SQLite " in text and "PostgreSQL " in text
    assert "Smoke run" in text
    assert not [name for name in os.listdir(tmp_path) if name.startswith("gc3session-bench-")]
