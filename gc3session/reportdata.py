"""What the HTML report shows, worked out from task summaries in one pass.

:class:`ReportData` counts states and outcomes, groups failures by signal and
exit code, keeps the slowest runs and the first failed tasks, and collects
the runs (tasks with a start time) for the timeline and the finished runs for
the duration histogram.  :func:`timeline` and :func:`histogram` turn those
into the charts' data, which the page carries as JSON.

Everything here is bounded, so the page stays small however many tasks
there are: the timeline has one entry per run up to :data:`BAR_LIMIT` runs
and :data:`TIMELINE_BINS` columns above; the histogram :data:`HISTOGRAM_BINS`
bars; the tables :data:`SLOWEST_ROWS` and :data:`FAILED_ROWS` rows.

A run's bar goes from ``started`` to ``ended``, or to the report's
``generated`` time for a task that has not ended.  Its duration is
``ended - started``; a running task counts the time it has run so far.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from typing import Any

from .exceptions import InvalidValue
from .summary import OUTCOMES, outcome, validate_summary

__all__ = ["BAR_LIMIT", "FAILED_ROWS", "HISTOGRAM_BINS", "SLOWEST_ROWS", "TIMELINE_BINS",
           "ReportData", "cause_of", "duration", "histogram", "timeline"]

#: Above this many runs the timeline shows counts per interval instead of one bar per run.
BAR_LIMIT = 2000
#: Intervals (columns) of the aggregated timeline.
TIMELINE_BINS = 120
#: Bars of the duration histogram.
HISTOGRAM_BINS = 30
#: Rows of the "slowest tasks" table.
SLOWEST_ROWS = 20
#: At most this many failed tasks are listed (the others are counted).
FAILED_ROWS = 500

#: A run: start, end (epoch seconds), index of its outcome in OUTCOMES, its summary.
Run = tuple[float, float, int, Mapping[str, Any]]


class ReportData:
    """The counts, runs and rows of a report, gathered in one pass over valid summaries.

    :raises InvalidType, InvalidValue: a summary is invalid
        (:func:`~gc3session.summary.validate_summary`), or two have the same id.
    """

    def __init__(self, summaries: Iterable[Any], generated: float) -> None:
        self.states: dict[str, int] = {}
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        #: Failed tasks by cause: (0, signal), (1, exit code) or (2, 0) for no exit status.
        self.failures: dict[tuple[int, int], int] = {}
        #: The first FAILED_ROWS failed tasks, in the order given.
        self.failed: list[Mapping[str, Any]] = []
        self.runs: list[Run] = []
        #: Durations of the finished runs, with the index of their outcome.
        self.durations: list[tuple[float, int]] = []
        self._slowest: list[tuple[float, int, Mapping[str, Any]]] = []   # heap: seconds, -order
        seen: set[str] = set()
        for order, summary in enumerate(summaries):
            validate_summary(summary)
            if summary["id"] in seen:
                raise InvalidValue(f"task summary {summary['id']} is given twice", id=summary["id"])
            seen.add(summary["id"])
            self._add(order, summary, generated)
        self.total = len(seen)

    def _add(self, order: int, summary: Mapping[str, Any], generated: float) -> None:
        state, kind = summary["state"], outcome(summary)
        index = OUTCOMES.index(kind)
        self.states[state] = self.states.get(state, 0) + 1
        self.outcomes[kind] += 1
        if kind == "failed":
            cause = cause_of(summary)
            self.failures[cause] = self.failures.get(cause, 0) + 1
            if len(self.failed) < FAILED_ROWS:
                self.failed.append(summary)
        started, ended = summary["started"], summary["ended"]
        if started is None:
            return
        end = ended if ended is not None else max(started, generated)
        self.runs.append((started, end, index, summary))
        if ended is not None:
            self.durations.append((ended - started, index))
        if ended is not None or kind == "running":
            entry = (end - started, -order, summary)
            if len(self._slowest) < SLOWEST_ROWS:
                heapq.heappush(self._slowest, entry)
            elif (entry[0], entry[1]) > (self._slowest[0][0], self._slowest[0][1]):
                heapq.heapreplace(self._slowest, entry)

    def slowest(self) -> list[tuple[float, Mapping[str, Any]]]:
        """The longest runs, longest first (equal ones in the order given): (seconds, summary)."""
        return [(seconds, s) for seconds, _, s in sorted(self._slowest, key=lambda e: e[:2],
                                                         reverse=True)]


def cause_of(summary: Mapping[str, Any]) -> tuple[int, int]:
    """Why a task failed, as a sort key: (0, signal), (1, exit code) or (2, 0) for no status."""
    if summary["signal"]:
        return (0, summary["signal"])
    if summary["exitcode"] is not None:
        return (1, summary["exitcode"])
    return (2, 0)


def duration(summary: Mapping[str, Any]) -> float | None:
    """``ended - started`` of a summary, or None when either is unknown."""
    if summary["started"] is None or summary["ended"] is None:
        return None
    return float(summary["ended"] - summary["started"])


def _lanes(runs: list[Run]) -> list[int]:
    """Rows for the runs (sorted by start) so that overlapping runs never share a row.

    Greedy by start time, reusing the row that frees first: the number of rows
    is the peak number of runs under way at once.
    """
    free: list[tuple[float, int]] = []
    lanes: list[int] = []
    for start, end, _, _ in runs:
        lane = heapq.heappop(free)[1] if free and free[0][0] <= start else len(free)
        heapq.heappush(free, (end, lane))
        lanes.append(lane)
    return lanes


def timeline(runs: list[Run]) -> dict[str, Any] | None:
    """The timeline's data (None without runs); sorts ``runs`` by start time.

    Times are seconds after the first start.  Up to :data:`BAR_LIMIT` runs:
    ``{"mode": "bars", "span", "lanes", "bars": [[start, end, outcome index,
    row, id, jobname], ...]}``.  Above: ``{"mode": "bins", "span", "width",
    "counts": [[ok, failed, running, other], ...]}``, where interval ``i``
    covers ``[i, i + 1)`` widths (the last one is closed) and counts the
    runs under way at some time in it.
    """
    if not runs:
        return None
    runs.sort(key=lambda run: run[0])
    t0 = runs[0][0]
    span = max(end for _, end, _, _ in runs) - t0
    if len(runs) <= BAR_LIMIT:
        lanes = _lanes(runs)
        bars = [[round(start - t0, 3), round(end - t0, 3), index, lane, s["id"], s["jobname"]]
                for (start, end, index, s), lane in zip(runs, lanes)]
        return {"mode": "bars", "span": span, "lanes": max(lanes) + 1, "bars": bars}
    width = span / TIMELINE_BINS if span > 0 else 1.0
    # Difference arrays: +1 in the interval where a run starts, -1 after the one where it ends.
    delta = [[0] * len(OUTCOMES) for _ in range(TIMELINE_BINS + 1)]
    for start, end, index, _ in runs:
        delta[min(int((start - t0) / width), TIMELINE_BINS - 1)][index] += 1
        delta[min(int((end - t0) / width), TIMELINE_BINS - 1) + 1][index] -= 1
    counts, level = [], [0] * len(OUTCOMES)
    for step in delta[:TIMELINE_BINS]:
        level = [a + b for a, b in zip(level, step)]
        counts.append(level)
    return {"mode": "bins", "span": span, "width": width, "counts": counts}


def histogram(durations: list[tuple[float, int]]) -> dict[str, Any] | None:
    """Duration bars (None without durations), stacked by outcome.

    ``{"log", "edges", "counts"}``: :data:`HISTOGRAM_BINS` bars between
    ``edges[i]`` and ``edges[i + 1]``, on a logarithmic scale when the
    positive durations span more than two decades (zero durations go to the
    first bar), else linear from 0.
    """
    if not durations:
        return None
    longest = max(d for d, _ in durations)
    shortest = min((d for d, _ in durations if d > 0), default=0.0)
    log = shortest > 0 and longest / shortest > 100
    if log:
        ratio = (longest / shortest) ** (1 / HISTOGRAM_BINS)
        edges = [shortest * ratio ** i for i in range(HISTOGRAM_BINS)] + [longest]
    else:
        top = longest or 1.0
        edges = [top * i / HISTOGRAM_BINS for i in range(HISTOGRAM_BINS + 1)]
    counts = [[0] * len(OUTCOMES) for _ in range(HISTOGRAM_BINS)]
    for seconds, index in durations:
        counts[min(max(bisect_right(edges, seconds) - 1, 0), HISTOGRAM_BINS - 1)][index] += 1
    return {"log": log, "edges": edges, "counts": counts}
