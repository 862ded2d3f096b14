"""The HTML report, checked in a real headless browser (Debian's ``chromium``).

Pages are rendered from synthetic task summaries (``tests/_summaries.py``),
written to ``tmp_path`` and loaded by Chromium: ``--dump-dom`` gives the DOM
after the page's script ran (the charts it drew, the tables, the counts), and
``--screenshot`` a PNG that is decoded by hand and checked for the outcome
colours.  What a test expects is computed here from the summaries, not by
the module under test.

Where Chromium is missing the browser tests are skipped with the reason,
unless ``GC3SESSION_REQUIRE_CHROMIUM=1`` (set by ``.ci/run``) makes that a
failure.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType
from typing import Any

import _chromium
import _summaries
import pytest
from _summaries import HOSTILE

from gc3session.exceptions import InvalidType, InvalidValue
from gc3session.report import render_report
from gc3session.reportdata import BAR_LIMIT, FAILED_ROWS, SLOWEST_ROWS, TIMELINE_BINS

REQUIRE_ENV = "GC3SESSION_REQUIRE_CHROMIUM"
#: The outcome colours of the page (Okabe-Ito), as a screenshot has them.
PALETTE = {"ok": (0, 158, 115), "failed": (213, 94, 0), "running": (0, 114, 178),
           "other": (154, 154, 154)}
HOSTILE_AT = 36   # a task that failed with exit code 1, so it is listed in the failed table


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = _chromium.find()
    if binary is None:
        reason = "chromium is not on PATH (Debian: apt-get install --no-install-recommends chromium)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
        pytest.skip(reason)
    return binary


# --- a small DOM, from the serialized HTML -------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Node | str] = []

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def all(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.walk() if n.tag == tag
                and (cls is None or cls in n.attrs.get("class", "").split())]

    def by_id(self, ident: str) -> Node:
        found = [n for n in self.walk() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: str) -> Node:
    builder = _Builder()
    builder.feed(page)
    builder.close()
    return builder.root


def rows(dom: Node, table_id: str) -> list[list[str]]:
    body = dom.by_id(table_id).all("tbody")[0]
    return [[td.text for td in tr.all("td")] for tr in body.all("tr")]


def blob(page: str) -> Any:
    return json.loads(parse(page).by_id("report-data").text)


# --- what the page must say, worked out independently ---------------------------------

def outcome_of(s: dict[str, Any]) -> str:
    if s["state"] == "TERMINATED":
        return "ok" if s["exitcode"] == 0 and not s["signal"] else "failed"
    return "running" if s["state"] in ("SUBMITTED", "RUNNING", "TERMINATING") else "other"


def cause_of(s: dict[str, Any]) -> str:
    names = {9: "SIGKILL", 15: "SIGTERM"}
    if s["signal"]:
        return f"killed by {names[s['signal']]} ({s['signal']})"
    return f"exit code {s['exitcode']}"


def slowest_ids(summaries: list[dict[str, Any]], now: float) -> list[str]:
    """The longest runs first (a running task: so far), equal ones in the order given."""
    timed = []
    for order, s in enumerate(summaries):
        if s["started"] is not None and s["ended"] is not None:
            timed.append((s["started"] - s["ended"], order, s["id"]))
        elif s["started"] is not None and outcome_of(s) == "running":
            timed.append((s["started"] - now, order, s["id"]))
    return [ident for _, _, ident in sorted(timed)[:SLOWEST_ROWS]]


# --- the report of a few hundred tasks, in a browser -------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A report of 300 tasks of every kind, written to a file."""
    summaries = _summaries.synthetic(300, hostile_at=HOSTILE_AT)
    meta = _summaries.meta(summaries)
    page = render_report(summaries, meta)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(page, encoding="utf-8")
    return {"summaries": summaries, "meta": meta, "page": page, "path": str(path)}


@pytest.fixture(scope="module")
def small_dom(small: dict[str, Any], chromium: str) -> Node:
    return parse(_chromium.dump_dom(chromium, small["path"]))


def test_the_browser_shows_the_counts(small: dict[str, Any], small_dom: Node) -> None:
    summaries = small["summaries"]
    assert small_dom.by_id("count-total").text == "300"
    for kind in ("ok", "failed", "running", "other"):
        expected = sum(outcome_of(s) == kind for s in summaries)
        assert expected > 0
        assert small_dom.by_id(f"count-{kind}").text == f"{expected:,}"
    states = {state: sum(s["state"] == state for s in summaries)
              for state in {s["state"] for s in summaries}}
    assert {row[0]: int(row[1]) for row in rows(small_dom, "state-counts")} == states


def test_the_browser_shows_the_failed_and_slowest_tables(small: dict[str, Any],
                                                         small_dom: Node) -> None:
    summaries = small["summaries"]
    failed = [s for s in summaries if outcome_of(s) == "failed"]
    table = rows(small_dom, "failed-tasks")
    assert [row[0] for row in table] == [s["id"] for s in failed]
    by_id = {s["id"]: s for s in failed}
    for row in table:
        s = by_id[row[0]]
        assert row[1] == s["jobname"] and row[2] == "failed" and row[6] == s["stderr"]
        assert row[3] == (f"{ {9: 'SIGKILL', 15: 'SIGTERM'}[s['signal']]} ({s['signal']})"
                          if s["signal"] else f"exit {s['exitcode']}")
    causes: dict[str, int] = {}
    for s in failed:
        causes[cause_of(s)] = causes.get(cause_of(s), 0) + 1
    assert {row[0]: int(row[1]) for row in rows(small_dom, "failure-causes")} == causes
    assert ([row[0] for row in rows(small_dom, "slowest-tasks")]
            == slowest_ids(summaries, small["meta"]["generated"]))


def test_the_script_draws_one_bar_per_run_and_the_durations(small: dict[str, Any],
                                                            small_dom: Node) -> None:
    summaries = small["summaries"]
    assert small_dom.by_id("report-data") and small_dom.all("html")[0].attrs["data-charts"] == "drawn"
    bars = small_dom.by_id("timeline-svg").all("rect", "bar")
    started = [s for s in summaries if s["started"] is not None]
    assert len(bars) == len(started)
    titles = [bar.all("title")[0].text for bar in bars]
    assert sorted(t.split(" ", 1)[0].rstrip(":") for t in titles) == sorted(s["id"] for s in started)
    for kind in ("ok", "failed", "running", "other"):
        assert (len(small_dom.by_id("timeline-svg").all("rect", f"o-{kind}"))
                == sum(outcome_of(s) == kind for s in started))
    # Each histogram column's title says how many runs it stands for: together, every finished run.
    columns = small_dom.by_id("durations-svg").all("rect", "col")
    counted = [int(re.search(r": (\d+) (ok|failed|other)$", c.all("title")[0].text)[1])
               for c in columns]
    assert sum(counted) == sum(s["started"] is not None and s["ended"] is not None
                               for s in summaries)


def test_a_hostile_job_name_stays_text(small: dict[str, Any], request: pytest.FixtureRequest) -> None:
    # First the page's text: had the name become markup, its alert() would block the browser.
    page = small["page"]
    assert "<script>alert" not in page and "<b onmouseover" not in page
    assert page.count("<script") == 2
    assert blob(page)["timeline"]["bars"]  # the blob still parses, with the name in it
    # In the browser: no element came out of the name, which shows as itself in the table...
    small_dom = request.getfixturevalue("small_dom")
    assert len(small_dom.all("script")) == 2 and not small_dom.all("b")
    row = next(r for r in rows(small_dom, "failed-tasks") if r[0] == f"Application.{HOSTILE_AT}")
    assert row[1] == HOSTILE
    # ...and in the tooltip of its timeline bar (drawn by the script from the JSON blob).
    titles = [t.text for t in small_dom.by_id("timeline-svg").all("title")]
    assert f"Application.{HOSTILE_AT} {HOSTILE}: failed, " in "\n".join(titles)


def test_the_screenshot_shows_the_charts(small: dict[str, Any], chromium: str,
                                         tmp_path: Path) -> None:
    drawn, plain = str(tmp_path / "drawn.png"), str(tmp_path / "plain.png")
    _chromium.screenshot(chromium, small["path"], drawn)
    code = re.compile(r"<script>.*?</script>", re.DOTALL)
    assert len(code.findall(small["page"])) == 1
    unscripted = tmp_path / "unscripted.html"
    unscripted.write_text(code.sub("", small["page"]), encoding="utf-8")
    _chromium.screenshot(chromium, str(unscripted), plain)
    width, height, pixels = _chromium.png_pixels(drawn)
    assert (width, height) == (1000, 1400)
    colours = _chromium.colours(pixels)
    assert len(colours) > 100                     # text, borders, bars: not a blank page
    for kind, rgb in PALETTE.items():
        assert colours[rgb] > 0, f"no {kind} colour in the screenshot"
    assert colours[PALETTE["ok"]] > 20_000       # the timeline's bars, not just a card border
    # Without its script the page still shows its text and tables, but no chart.
    width, height, pixels = _chromium.png_pixels(plain)
    without = _chromium.colours(pixels)
    assert len(without) > 50 and without[PALETTE["ok"]] < 2_000


def test_the_page_fits_a_narrow_window(small: dict[str, Any], chromium: str,
                                       tmp_path: Path) -> None:
    """At the narrowest headless window nothing sticks out: wide tables scroll inside their box."""
    probe = ('<script>(function(){var d=document.documentElement,r=[];'
             'document.querySelectorAll("svg").forEach(function(s){'
             'r.push(Math.ceil(s.getBoundingClientRect().right))});'
             'd.setAttribute("data-probe",JSON.stringify({scroll:d.scrollWidth,'
             'inner:window.innerWidth,svg:r}));})();</script></body>')
    path = tmp_path / "probed.html"
    path.write_text(small["page"].replace("</body>", probe), encoding="utf-8")
    dom = parse(_chromium.dump_dom(chromium, str(path), width=_chromium.MIN_WIDTH))
    found = json.loads(dom.all("html")[0].attrs["data-probe"])
    assert found["inner"] == _chromium.MIN_WIDTH
    assert found["scroll"] <= found["inner"], found
    assert len(found["svg"]) == 2 and max(found["svg"]) <= found["inner"], found


# --- a large session ------------------------------------------------------------------

def test_a_large_session_is_drawn_as_counts_per_interval(chromium: str, tmp_path: Path) -> None:
    summaries = _summaries.synthetic(5000)
    meta = _summaries.meta(summaries, finished=True)
    page = render_report(summaries, meta)
    timeline = blob(page)["timeline"]
    assert timeline["mode"] == "bins" and "bars" not in timeline
    runs = [s for s in summaries if s["started"] is not None]
    assert len(runs) > BAR_LIMIT
    # Interval i is [i, i + 1) widths after the first start (the last one is closed); it
    # counts, by outcome, the runs under way at some time in it (brute force here).
    t0, width = min(s["started"] for s in runs), timeline["width"]
    assert len(timeline["counts"]) == TIMELINE_BINS
    for i, counts in enumerate(timeline["counts"]):
        expected = [0, 0, 0, 0]
        for s in runs:
            end = s["ended"] if s["ended"] is not None else meta["generated"]
            if ((s["started"] - t0) / width < i + 1 or i == TIMELINE_BINS - 1) \
                    and (end - t0) / width >= i:
                expected[("ok", "failed", "running", "other").index(outcome_of(s))] += 1
        assert counts == expected, i
    path = tmp_path / "large.html"
    path.write_text(page, encoding="utf-8")
    dom = parse(_chromium.dump_dom(chromium, str(path)))
    svg = dom.by_id("timeline-svg")
    assert not svg.all("rect", "bar")
    assert len(svg.all("rect", "col")) == sum(n > 0 for counts in timeline["counts"] for n in counts)
    failed = sum(outcome_of(s) == "failed" for s in summaries)
    assert len(rows(dom, "failed-tasks")) == FAILED_ROWS
    assert f"and {failed - FAILED_ROWS:,} more failed tasks" in dom.by_id("failed").text


def test_the_page_weight_stops_growing_with_the_task_count() -> None:
    sizes = []
    for n in (3_000, 30_000):
        summaries = _summaries.synthetic(n)
        sizes.append(len(render_report(summaries, _summaries.meta(summaries)).encode()))
    assert sizes[1] < 1.3 * sizes[0] and sizes[1] < 400_000, sizes


# --- the page without a browser ------------------------------------------------------------

def test_counts_and_tables_need_no_script(small: dict[str, Any]) -> None:
    dom = parse(small["page"])
    assert dom.by_id("count-total").text == "300"
    assert len(rows(dom, "failed-tasks")) == sum(outcome_of(s) == "failed" for s in small["summaries"])
    assert len(rows(dom, "slowest-tasks")) == SLOWEST_ROWS
    for name in ("timeline", "durations"):
        chart = dom.by_id(f"{name}-chart")
        assert not chart.all("svg") and "JavaScript" in chart.all("noscript")[0].text


def test_the_page_refers_to_nothing_outside(small: dict[str, Any]) -> None:
    page = small["page"]
    for reference in ("src=", "href=", "url(", "@import", "<link", "<iframe"):
        assert reference not in page
    assert re.findall(r"https?://[^\s\"']+", page) == ["http://www.w3.org/2000/svg"]


def test_meta_is_escaped_and_passwords_hidden() -> None:
    summaries = _summaries.synthetic(60)
    meta = dict(_summaries.meta(summaries), session="/tmp/<img src=x onerror=alert(1)>",
                store="postgresql://alice:s3cret@db.example/runs#tasks")
    page = render_report(summaries, meta)
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "s3cret" not in page and "postgresql://alice:***@db.example/runs#tasks" in page


def test_undecodable_paths_still_give_utf8(small: dict[str, Any]) -> None:
    summaries = _summaries.synthetic(60)
    summaries[36]["stderr"] = os.fsdecode(b"/data/caf\xe9/stderr")   # failed: listed
    summaries[36]["jobname"] = "\ud800 lone"
    page = render_report(summaries, _summaries.meta(summaries))
    page.encode("utf-8")
    assert "/data/caf\ufffd/stderr" in page and "\ufffd lone" in page


def test_an_empty_session() -> None:
    page = render_report([], _summaries.meta([]))
    dom = parse(page)
    assert dom.by_id("count-total").text == "0"
    assert "The session holds no task." in page and not dom.all("table")
    assert "No task has started yet." in page and "No task failed." in page
    assert blob(page)["timeline"] is None and blob(page)["durations"] is None


# --- validation ----------------------------------------------------------------------------

def _bad(change: dict[str, Any], drop: str | None = None) -> dict[str, Any]:
    s = _summaries.synthetic(1)[0]
    s.update(change)
    if drop:
        del s[drop]
    return s


@pytest.mark.parametrize("summary, error, words", [
    (_bad({}, drop="attempts"), InvalidValue, "missing keys ['attempts']"),
    (_bad({"host": "n1"}), InvalidValue, "unknown keys ['host']"),
    (_bad({"jobname": 42}), InvalidType, "jobname must be a string"),
    (_bad({"started": "noon"}), InvalidType, "started must be epoch seconds"),
    (_bad({"ended": float("nan")}), InvalidType, "ended must be epoch seconds"),
    (_bad({"exitcode": True}), InvalidType, "exitcode must be an int"),
    (_bad({"attempts": 1.0}), InvalidType, "attempts must be an int"),
    (_bad({"class": "WordCount"}), InvalidValue, "class must be 'module:qualname'"),
    (_bad({"state": "FAILED"}), InvalidValue, "unknown state 'FAILED'"),
    (_bad({"exitcode": 256}), InvalidValue, "exit code 256 is not in 0..255"),
    (_bad({"signal": 128}), InvalidValue, "signal 128 is not in 0..127"),
    (_bad({"attempts": -1}), InvalidValue, "negative attempts"),
    (_bad({"started": 100.0, "ended": 99.0}), InvalidValue, "ended (99.0) before started (100.0)"),
])
def test_invalid_summaries_are_refused_naming_the_task(summary: dict[str, Any], error: type,
                                                      words: str) -> None:
    with pytest.raises(error) as caught:
        render_report([_summaries.synthetic(2)[1], summary], _summaries.meta([]))
    assert words in str(caught.value) and "Application.0" in str(caught.value)
    assert caught.value.id == "Application.0"
    assert isinstance(caught.value, ValueError if error is InvalidValue else TypeError)


def test_subclasses_of_the_schema_types_and_other_mappings_are_accepted() -> None:
    class Epoch(float):
        pass

    summaries: list[Any] = _summaries.synthetic(3)
    summaries[0]["started"] = Epoch(summaries[0]["started"])
    summaries[1] = MappingProxyType(summaries[1])
    page = render_report(summaries, _summaries.meta(_summaries.synthetic(3)))
    assert parse(page).by_id("count-total").text == "3"


def test_other_invalid_input_is_refused() -> None:
    meta = _summaries.meta([])
    twice = _summaries.synthetic(3) + _summaries.synthetic(1)
    with pytest.raises(InvalidValue, match="task summary Application.0 is given twice"):
        render_report(twice, meta)
    with pytest.raises(InvalidType, match="a task summary must be a dict, not list"):
        render_report([["Application.0"]], meta)
    with pytest.raises(InvalidValue, match="without a valid id"):
        render_report([_bad({"id": ""})], meta)
    with pytest.raises(InvalidValue, match=r"missing keys \['generated'\]"):
        render_report([], {k: v for k, v in meta.items() if k != "generated"})
    with pytest.raises(InvalidType, match="created must be epoch seconds"):
        render_report([], dict(meta, created="yesterday"))
