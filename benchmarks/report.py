"""Report benchmark: the weight of the HTML report and how long it takes to make and to show.

    python3 -m benchmarks.report [--quick] [--sizes 1000,10000,100000] [--repeat 3]

For each N (default 1,000, 10,000 and 100,000 tasks; ``--quick``: 1,000
and 10,000) it makes N synthetic task summaries (``tests/_summaries.py``: a
mix of ok, failed, killed, running, new and stopped tasks) and measures:

* ``render_report`` in Python: seconds and peak memory growth;
* the page's size, raw and gzipped (what a mail attachment or a web server
  would carry);
* the time headless Chromium takes to load the page, run its script and
  dump the DOM (``chromium --dump-dom``), median of ``--repeat`` runs,
  beside the anchor: the same command on a blank page, which is the
  browser's own start and exit.  The two take turns.

Targets: at 100,000 tasks the page weighs at most 512 KiB, ``render_report``
takes at most 1 s, and the browser needs at most 1 s more than for the blank
page.  Chromium must be installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import os
import statistics
import sys
import time

from benchmarks._common import Report, peak_memory, scratch, time_once
from gc3session.report import render_report
from tests import _chromium, _summaries

DEFAULT_SIZES = [1_000, 10_000, 100_000]
QUICK_SIZES = [1_000, 10_000]
BLANK = "<!DOCTYPE html><html><head><title>blank</title></head><body><p>blank</p></body></html>\n"


def browser_seconds(binary: str, page: str, blank: str, repeat: int) -> tuple[float, float]:
    """Median seconds of ``--dump-dom`` on ``page`` and on ``blank``, taken in turns."""
    ours, anchor = [], []
    for _ in range(repeat):
        for path, spent in ((page, ours), (blank, anchor)):
            started = time.perf_counter()
            _chromium.dump_dom(binary, path)
            spent.append(time.perf_counter() - started)
    return statistics.median(ours), statistics.median(anchor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 tasks only")
    parser.add_argument("--sizes", type=lambda s: [int(x.replace("_", "")) for x in s.split(",")],
                        help="comma-separated task counts (default 1000,10000,100000)")
    parser.add_argument("--repeat", type=int, default=3, help="browser runs per figure (median)")
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    binary = _chromium.find()
    if binary is None:
        print("chromium is not on PATH (Debian: apt-get install --no-install-recommends chromium)",
              file=sys.stderr)
        return 2
    report = Report("gc3session HTML report: page weight, render time, browser time")
    report.section("anchor: chromium --dump-dom of a blank page (the browser's start and exit)")
    with scratch("report") as directory:
        blank = os.path.join(directory, "blank.html")
        with open(blank, "w", encoding="utf-8") as stream:
            stream.write(BLANK)
        for n in sizes:
            summaries = _summaries.synthetic(n)
            meta = _summaries.meta(summaries)
            with peak_memory() as memory:
                seconds, page = time_once(functools.partial(render_report, summaries, meta))
            data = page.encode("utf-8")
            path = os.path.join(directory, f"report-{n}.html")
            with open(path, "wb") as stream:
                stream.write(data)
            shown, anchor = browser_seconds(binary, path, blank, args.repeat)
            report.row("render_report (Python)", n, seconds, "s", peak_mib=memory["mib"])
            report.row("chromium --dump-dom, vs a blank page", n, shown, "s", anchor=anchor)
            report.note(f"page {len(data):,} B ({len(gzip.compress(data)):,} B gzipped);"
                        f" browser time over the blank page {shown - anchor:+.3f} s")
            if n == 100_000:
                report.target("page weight at 100,000 tasks <= 512 KiB", f"{len(data) / 1024:,.0f} KiB",
                              len(data) <= 512 * 1024)
                report.target("render_report at 100,000 tasks <= 1 s", f"{seconds:.3f} s", seconds <= 1)
                report.target("browser time at 100,000 tasks <= blank page + 1 s",
                              f"{shown:.3f} s vs {anchor:.3f} s", shown - anchor <= 1)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
