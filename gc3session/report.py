"""The HTML report of a session (``gsession report``): one self-contained page of what happened.

:func:`render_report` turns task summaries (:mod:`gc3session.summary`) into a
single HTML page with no outside references (styles, data and script are
inline; no font, image or CDN), so the file can be mailed, archived or opened
offline.  The page has:

* the state counts, and the outcomes (ok, failed, running, other);
* a timeline of the task runs: one bar per run from its start to its end,
  coloured by outcome, packed into rows so that runs that overlap sit on
  different rows; above :data:`~gc3session.reportdata.BAR_LIMIT` runs, the
  number of runs under way in each of 120 intervals, stacked by outcome, so
  that 100,000 tasks still make a page of about 150 KB;
* a histogram of the durations of the finished runs;
* the failures grouped by signal and by exit code;
* the slowest tasks (runs of equal length in the order given) and the
  failed tasks (in the order given; the first 500), in tables.

The counts and tables are plain HTML, readable without JavaScript; the script
at the end of the page (:mod:`gc3session.report_assets`) draws the two charts
as inline SVG from a JSON blob (``<script type="application/json">``) at the
width of the window.  Every user string (job names, ids, paths, the session
and store) is escaped as HTML text, and the blob escapes ``<``, ``>`` and
``&``, so nothing a user wrote can end an element or start a script.

``meta`` is ``{"session": path, "store": url, "created": float, "finished":
float|None, "generated": float}``: the session directory, its store URL (a
password in it is shown as ``***``), when the session was created and
finished, and when the report is made (the "now" of running tasks).  Times
are shown in the local time of the machine that renders the page, in ISO 8601
with the UTC offset.

The returned text always encodes to UTF-8: characters that cannot (lone
surrogates, e.g. from undecodable bytes in a path) are shown as U+FFFD.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from . import __version__
from .exceptions import InvalidType, InvalidValue
from .persistence.url import StoreUrl
from .report_assets import SCRIPT, STYLE
from .reportdata import ReportData, duration, histogram, timeline
from .run import signal_name
from .summary import OUTCOMES, TaskSummary, is_epoch, outcome
from .task import State

__all__ = ["duration_text", "render_report", "validate_meta"]

_STATES = [s.value for s in State]
_SURROGATE = re.compile("[\ud800-\udfff]")
_META = frozenset({"session", "store", "created", "finished", "generated"})
_TASK_HEADERS = ["Task", "Job name", "Outcome", "Exit status", "Duration", "Attempts", "stderr"]


def render_report(summaries: Iterable[TaskSummary], meta: Mapping[str, Any]) -> str:
    """One self-contained HTML page reporting on ``summaries`` (see the module docstring).

    Costs one pass over the summaries plus a sort of the runs by start time
    (under a second for 100,000 tasks on an idle machine); the page's size
    grows with the number of runs only up to
    :data:`~gc3session.reportdata.BAR_LIMIT` runs.

    :param summaries: task summaries, one per task, in the order to list them.
    :param meta: the session, store, created, finished and generated fields.
    :returns: the page, as text (encode it as UTF-8).
    :raises InvalidType: a summary or ``meta`` has a value of the wrong type.
    :raises InvalidValue: a summary or ``meta`` is invalid, or two summaries
        have the same id (the message names the task).
    """
    validate_meta(meta)
    generated = float(meta["generated"])
    facts = ReportData(summaries, generated)
    store = StoreUrl.parse(meta["store"]).render() if "://" in meta["store"] else meta["store"]
    name = os.path.basename(os.path.normpath(meta["session"])) or meta["session"]
    created, finished = meta["created"], meta["finished"]
    elapsed = (duration_text(finished - created) if finished is not None else
               f"{duration_text(max(0.0, generated - created))} so far (not finished)")
    rows = [("Session", f"<code>{_text(meta['session'])}</code>"),
            ("Store", f"<code>{_text(store)}</code>"), ("Created", _when(created)),
            ("Finished", _when(finished)), ("Elapsed", elapsed), ("Report made", _when(generated))]
    header = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(name)}: gc3session report</title><style>{STYLE}</style></head><body>",
        f"<header><h1>Session report: <code>{_text(name)}</code></h1><dl class=meta>{header}</dl>",
        "</header>",
        "<main>", *_sections(facts), "</main>",
        f"<footer>Made by gc3session {_text(__version__)}.</footer>",
        f"<script>{SCRIPT}</script>", "</body></html>", ""])


def validate_meta(meta: Any) -> None:
    """Check the ``meta`` dictionary of :func:`render_report` (see the module docstring).

    :raises InvalidType: it is not a dict, or a value has the wrong type.
    :raises InvalidValue: a key is missing or unknown.
    """
    if not isinstance(meta, Mapping):
        raise InvalidType(f"report meta must be a dict, not {type(meta).__name__}")
    if meta.keys() != _META:
        raise InvalidValue(f"report meta: missing keys {sorted(_META - meta.keys())},"
                           f" unknown keys {sorted(meta.keys() - _META)}")
    for key in ("session", "store"):
        if not isinstance(meta[key], str):
            raise InvalidType(f"report meta: {key} must be a string, not {meta[key]!r}")
    for key in ("created", "finished", "generated"):
        if not is_epoch(meta[key]) and not (key == "finished" and meta[key] is None):
            raise InvalidType(f"report meta: {key} must be epoch seconds, not {meta[key]!r}")


def duration_text(seconds: float) -> str:
    """A duration for people: ``"0.25 s"``, ``"42 s"``, ``"3 min 05 s"``, ``"2 h 07 min"``, ``"3 d 04 h"``.

    >>> duration_text(0.25), duration_text(185), duration_text(7620), duration_text(273600)
    ('0.25 s', '3 min 05 s', '2 h 07 min', '3 d 04 h')
    """
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


# --- the sections of the page ----------------------------------------------------------

def _sections(facts: ReportData) -> list[str]:
    """The page's sections, then the JSON blob the script draws from."""
    total = facts.total
    cards = "".join(f'<div class="card {kind}"><span class=n id="count-{kind}">'
                    f"{facts.outcomes[kind]:,}</span> {kind}</div>" for kind in OUTCOMES)
    state_rows = [[s, f"{facts.states[s]:,}", f"{100 * facts.states[s] / total:.1f} %"]
                  for s in _STATES if s in facts.states]
    out = ['<section id=counts><h2>Tasks</h2><div class=cards><div class="card total">'
           f"<span class=n id=count-total>{total:,}</span> tasks</div>{cards}</div>"
           "<p class=hint>ok: TERMINATED with exit code 0; failed: TERMINATED otherwise;"
           " running: SUBMITTED, RUNNING or TERMINATING; other: NEW, STOPPED or UNKNOWN.</p>"
           + (_table("state-counts", ["State", "Tasks", "Share"], state_rows, {1, 2}) if total
              else "<p>The session holds no task.</p>") + "</section>"]

    runs = timeline(facts.runs)
    if runs is None:
        caption = "No task has started yet."
    elif runs["mode"] == "bars":
        caption = (f"{len(facts.runs):,} runs from {_when(facts.runs[0][0])}, over"
                   f" {duration_text(runs['span'])}. Each bar is one run, from its start to its"
                   " end (or to now, for a run that has not ended); runs that overlap in time are"
                   f" on different rows, so the {runs['lanes']:,} rows are the peak number of runs"
                   " under way at once.")
    else:
        caption = (f"{len(facts.runs):,} runs from {_when(facts.runs[0][0])}, over"
                   f" {duration_text(runs['span'])}: too many to draw one by one, so each column"
                   f" counts the runs under way during {duration_text(runs['width'])}.")
    out.append(_chart("timeline", "Timeline", caption, runs is not None, OUTCOMES))

    hist = histogram(facts.durations)
    caption = ("No run has finished yet." if hist is None else
               f"Durations of the {len(facts.durations):,} finished runs"
               f" ({'logarithmic' if hist['log'] else 'linear'} scale), stacked by outcome.")
    out.append(_chart("durations", "Durations", caption, hist is not None,
                      [k for k in OUTCOMES if k != "running"]))

    most = max(facts.failures.values(), default=1)
    failure_rows = [[_text(_cause_text(cause)), f"{count:,}",
                     f'<span class=bar style="width:{100 * count / most:.1f}%"></span>']
                    for cause, count in sorted(facts.failures.items())]
    out.append("<section id=failures><h2>Failures by exit status</h2>"
               + (_table("failure-causes", ["Cause", "Tasks", ""], failure_rows, {1})
                  if failure_rows else "<p>No task failed.</p>") + "</section>")

    rows = [_task_row(s, seconds, outcome(s)) for seconds, s in facts.slowest()]
    out.append("<section id=slowest><h2>Slowest tasks</h2>"
               + (f"<p>The {len(rows)} longest runs (a running task counts the time it has run"
                  " so far).</p>" + _table("slowest-tasks", _TASK_HEADERS, rows, {4, 5})
                  if rows else "<p>No run yet.</p>") + "</section>")

    failed = facts.outcomes["failed"]
    rows = [_task_row(s, duration(s), "failed") for s in facts.failed]
    more = (f"<p class=more>and {failed - len(rows):,} more failed tasks, not listed here.</p>"
            if failed > len(rows) else "")
    out.append(f"<section id=failed><h2>Failed tasks ({failed:,})</h2>"
               + (_table("failed-tasks", _TASK_HEADERS, rows, {4, 5}) + more if rows
                  else "<p>No task failed.</p>") + "</section>")
    data = {"outcomes": OUTCOMES, "timeline": runs, "durations": hist}
    out.append(f'<script type="application/json" id=report-data>{_json_blob(data)}</script>')
    return out


def _chart(name: str, title: str, caption: str, drawn: bool, keys: Iterable[str]) -> str:
    """A chart's section: title, caption, legend and the box the script draws into."""
    box = (f'<div class=chart id="{name}-chart"><noscript>This chart is drawn by JavaScript, which'
           " is off; the counts and tables are complete without it.</noscript></div>" if drawn else "")
    legend = "".join(f'<span class="key {k}">{k}</span>' for k in keys) if drawn else ""
    return (f"<section id={name}><h2>{title}</h2><p class=caption>{_text(caption)}</p>"
            f"<div class=legend>{legend}</div>{box}</section>")


def _table(table_id: str, headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    """A table of already escaped cells, in a box that scrolls sideways when it is too wide."""
    def cell(tag: str, i: int, content: str) -> str:
        return f'<{tag}{" class=num" if i in numeric else ""}>{content}</{tag}>'

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "\n".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>"
                     for row in rows)
    return (f'<div class=scroll><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table></div>")


def _task_row(summary: Mapping[str, Any], seconds: float | None, kind: str) -> list[str]:
    return [f"<code>{_text(summary['id'])}</code>",
            _text(summary["jobname"]) if summary["jobname"] is not None else "—",
            f'<span class="tag {kind}">{kind}</span>', _text(_status(summary)),
            "—" if seconds is None else duration_text(seconds),
            _text(summary["attempts"]),
            f"<code class=path>{_text(summary['stderr'])}</code>" if summary["stderr"] else "—"]


# --- text ------------------------------------------------------------------------------

def _text(value: Any) -> str:
    """``value`` as HTML-escaped text that encodes to UTF-8 (lone surrogates become U+FFFD)."""
    return html.escape(_SURROGATE.sub("\ufffd", str(value)), quote=True)


def _json_blob(data: Any) -> str:
    """JSON that cannot end its ``<script>`` element early: ``<``, ``>``, ``&`` are escaped.

    It is ASCII (``ensure_ascii``), so lone surrogates travel as ``\\udcxx``
    escapes, which the browser shows as U+FFFD.
    """
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def _signal_name(number: int) -> str:
    return f"{signal_name(number)} ({number})"


def _status(summary: Mapping[str, Any]) -> str:
    if summary["signal"]:
        return _signal_name(summary["signal"])
    return "—" if summary["exitcode"] is None else f"exit {summary['exitcode']}"


def _cause_text(cause: tuple[int, int]) -> str:
    """The words for a :func:`~gc3session.reportdata.cause_of` key."""
    kind, number = cause
    return (f"killed by {_signal_name(number)}", f"exit code {number}", "no exit status")[kind]
