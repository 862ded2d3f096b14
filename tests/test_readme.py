"""The README's quick start runs as written, and survives a kill -9 as it promises."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _quick_start() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as stream:
        readme = stream.read()
    section = readme.split("## Quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _run(tmp_path: "os.PathLike[str]") -> str:
    result = subprocess.run([sys.executable, "-c", _quick_start()], cwd=tmp_path, timeout=300,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quick_start_runs_and_is_done_on_a_rerun(tmp_path: "os.PathLike[str]") -> None:
    """First run does all 100 tasks; a second run finds them done and adds nothing."""
    assert _run(tmp_path) == "100/100 tasks done\n"
    assert _run(tmp_path) == "100/100 tasks done\n"


def test_quick_start_killed_halfway_finishes_on_the_next_run(tmp_path: "os.PathLike[str]") -> None:
    """kill -9 while it adds tasks, run it again: all 100 are defined and done."""
    child = subprocess.Popen([sys.executable, "-c", _quick_start()], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index = os.path.join(tmp_path, "my-analysis", "session_ids.txt")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if os.path.exists(index) and os.path.getsize(index) > 0:
            break
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert _run(tmp_path) == "100/100 tasks done\n"
