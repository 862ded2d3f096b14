"""Synthetic task summaries (the input of :func:`gc3session.report.render_report`).

:func:`synthetic` makes a session's worth of summaries with a fixed mix of
outcomes, repeating every 50 tasks: 36 ok, 5 failed with exit codes 1, 2,
127, 1, 2, 2 killed by SIGKILL and SIGTERM, 2 running (only among the last
200 tasks, which started last; earlier ones are ok), 3 new, 1 stopped, and
1 submitted.  Runs start 8 at a time, a batch every 30 seconds, and last 1
to 200 seconds (log-normal, seeded, so the same ``n`` always gives the same
summaries).  The tests and ``benchmarks/report.py``
share it.
"""

from __future__ import annotations

import random
from typing import Any

#: When the synthetic session was created (2026-06-01 12:00:00 UTC).
T0 = 1_780_315_200.0
#: A job name that would run a script if it were pasted into the page as markup.
HOSTILE = "</script><script>alert(1)</script><b onmouseover=alert(2)>&amp;"

_FAILED_CODES = (1, 2, 127, 1, 2)
_SIGNALS = (9, 15)


def summary(i: int, state: str, **fields: Any) -> dict[str, Any]:
    """A NEW-looking summary of task ``i`` with ``state`` and ``fields`` overriding the defaults."""
    task_id = f"Application.{i}"
    base: dict[str, Any] = {
        "id": task_id, "jobname": f"sample-{i:06d}", "class": "__main__:WordCount",
        "state": state, "exitcode": None, "signal": None,
        "submitted": None, "started": None, "ended": None, "attempts": 0,
        "stdout": None, "stderr": None}
    base.update(fields)
    return base


def synthetic(n: int, hostile_at: int | None = None) -> list[dict[str, Any]]:
    """``n`` summaries as the module docstring describes; task ``hostile_at`` gets :data:`HOSTILE`."""
    rng = random.Random(n)
    out = []
    for i in range(n):
        start = T0 + (i // 8) * 30.0 + rng.uniform(0, 5)
        end = start + min(200.0, max(1.0, rng.lognormvariate(3.0, 0.8)))
        ran = {"submitted": start - 1.0, "started": start, "attempts": 1,
               "stdout": f"/data/wc/out/{i}/stdout.txt", "stderr": f"/data/wc/out/{i}/stderr.txt"}
        r = i % 50
        if r < 36:
            s = summary(i, "TERMINATED", exitcode=0, signal=0, ended=end, **ran)
        elif r < 41:
            s = summary(i, "TERMINATED", exitcode=_FAILED_CODES[r - 36], signal=0, ended=end, **ran)
        elif r < 43:
            s = summary(i, "TERMINATED", exitcode=0, signal=_SIGNALS[r - 41], ended=end, **ran)
        elif r < 45 and i >= n - 200:
            s = summary(i, "RUNNING", **ran)
        elif r < 45:
            s = summary(i, "TERMINATED", exitcode=0, signal=0, ended=end, **ran)
        elif r < 48:
            s = summary(i, "NEW")
        elif r == 48:
            s = summary(i, "STOPPED", ended=end, **ran)
        else:
            s = summary(i, "SUBMITTED", submitted=start, attempts=1)
        if i == hostile_at:
            s["jobname"] = HOSTILE
        out.append(s)
    return out


def meta(summaries: list[dict[str, Any]], finished: bool = False) -> dict[str, Any]:
    """The ``meta`` of a report on ``summaries``, made 10 s after the last event."""
    last = max([s[k] for s in summaries for k in ("started", "ended") if s[k] is not None]
               or [T0])
    return {"session": "/data/wc/session", "store": "file:///data/wc/session/jobs",
            "created": T0 - 5.0, "finished": last + 1.0 if finished else None,
            "generated": last + 10.0}
