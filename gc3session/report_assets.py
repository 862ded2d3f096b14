"""The style sheet and the chart script of the HTML report (:mod:`gc3session.report`).

Both are inlined into every page, so a report needs nothing but itself.  They
live here, apart from the code that builds the page, and are plain strings
rather than package data files so that no install step can leave them out.

The script reads the JSON blob ``#report-data`` (``outcomes``, ``timeline``,
``durations``; see :mod:`gc3session.report`) and draws the two charts as SVG
into ``#timeline-chart`` and ``#durations-chart``, at the width of their
boxes; it redraws them when the window is resized.  It builds every element
with ``createElementNS`` and every text with ``textContent`` (never
``innerHTML``), so job names stay text.  When it is done it sets
``data-charts="drawn"`` on the ``<html>`` element.

Colours are the Okabe-Ito palette (told apart with the common colour vision
deficiencies): ok #009e73, failed #d55e00, running #0072b2, other #9a9a9a.
"""

from __future__ import annotations

STYLE = """
:root{--ok:#009e73;--failed:#d55e00;--running:#0072b2;--other:#9a9a9a;--fg:#1d2329;--muted:#5b6670;
--line:#dde2e6;--bg:#fff;--band:#f3f5f7;--zebra:#fafbfc;color:var(--fg);background:var(--bg);
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
@media (prefers-color-scheme:dark){:root{--fg:#e4e8ec;--muted:#a3adb6;--line:#39424a;--bg:#161a1e;
--band:#20262c;--zebra:#1b2025}}
body{margin:0 auto;max-width:72rem;padding:1rem 1.25rem 3rem;line-height:1.45}
h1{font-size:1.5rem;margin:.5rem 0 1rem;overflow-wrap:anywhere}
h2{font-size:1.15rem;margin:2rem 0 .5rem;padding-bottom:.25rem;border-bottom:1px solid var(--line)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
dl.meta{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.15rem 1rem;margin:0;
font-size:.92rem}
dl.meta dt{color:var(--muted)}
dl.meta dd{margin:0;overflow-wrap:anywhere}
.cards{display:flex;flex-wrap:wrap;gap:.75rem;margin:.75rem 0 1rem}
.card{flex:1 1 7rem;border:1px solid var(--line);border-left:6px solid var(--other);border-radius:6px;
padding:.45rem .75rem;color:var(--muted)}
.card .n{display:block;font-size:1.6rem;font-weight:600;color:var(--fg);font-variant-numeric:tabular-nums}
.card.total{border-left-color:var(--fg)}
.card.ok{border-left-color:var(--ok)}
.card.failed{border-left-color:var(--failed)}
.card.running{border-left-color:var(--running)}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.9rem}
#slowest table,#failed table{width:100%}
th,td{padding:.3rem .6rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--band);font-weight:600;white-space:nowrap}
tbody tr:nth-child(even){background:var(--zebra)}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code.path{overflow-wrap:anywhere}
td:has(code.path){min-width:14rem}
.tag{display:inline-block;padding:0 .45rem;border-radius:3px;color:#fff;font-size:.8rem;
background:var(--other)}
.tag.ok{background:var(--ok)}
.tag.failed{background:var(--failed)}
.tag.running{background:var(--running)}
#failure-causes{min-width:min(100%,36rem)}
#failure-causes td:last-child{width:50%}
.bar{display:inline-block;height:.8rem;background:var(--failed);border-radius:2px;min-width:2px}
.caption{color:var(--muted);font-size:.9rem;margin:.25rem 0 .5rem;max-width:60rem}
.legend{display:flex;flex-wrap:wrap;gap:.4rem 1rem;font-size:.85rem;color:var(--muted)}
.key::before{content:"";display:inline-block;width:.8rem;height:.8rem;border-radius:2px;
margin-right:.35rem;vertical-align:-.1rem;background:var(--other)}
.key.ok::before{background:var(--ok)}
.key.failed::before{background:var(--failed)}
.key.running::before{background:var(--running)}
.chart{margin-top:.5rem}
.chart svg{display:block;max-width:100%;height:auto;font-size:11px;font-family:inherit}
.chart .grid{stroke:var(--line);shape-rendering:crispEdges}
.chart text{fill:var(--muted)}
.o-ok{fill:var(--ok)}
.o-failed{fill:var(--failed)}
.o-running{fill:var(--running)}
.o-other{fill:var(--other)}
.more,.hint{color:var(--muted)}
.hint{font-size:.85rem;margin:-.25rem 0 1rem}
footer{margin-top:3rem;color:var(--muted);font-size:.85rem}
@media (max-width:40rem){body{padding:.75rem}.card .n{font-size:1.3rem}h1{font-size:1.25rem}}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var OUT = data.outcomes;
  var STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120,
               300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

  function node(parent, name, attrs, text) {
    var n = document.createElementNS(NS, name);
    for (var key in attrs) { n.setAttribute(key, attrs[key]); }
    if (text !== undefined) { n.textContent = text; }
    parent.appendChild(n);
    return n;
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function dur(s) {
    if (s > 0 && s < 0.1) { return +(s * 1000).toPrecision(2) + " ms"; }
    if (s < 10) { return s.toFixed(2).replace(/\.?0+$/, "") + " s"; }
    var r = Math.round(s), m = Math.floor(r / 60), h = Math.floor(m / 60);
    if (r < 60) { return r + " s"; }
    if (m < 60) { return m + " min" + (r % 60 ? " " + pad(r % 60) + " s" : ""); }
    if (h < 24) { return h + " h" + (m % 60 ? " " + pad(m % 60) + " min" : ""); }
    return Math.floor(h / 24) + " d" + (h % 24 ? " " + pad(h % 24) + " h" : "");
  }
  function timeStep(span, most) {
    for (var i = 0; i < STEPS.length; i++) { if (span / STEPS[i] <= most) { return STEPS[i]; } }
    return Math.ceil(span / most / 604800) * 604800;
  }
  function countStep(top, most) {
    var step = 1;
    while (top / step > most) {
      var base = step;
      step = base * 2; if (top / step <= most) { break; }
      step = base * 5; if (top / step <= most) { break; }
      step = base * 10;
    }
    return step;
  }
  function canvas(name, height) {
    var box = document.getElementById(name + "-chart");
    var old = box.querySelector("svg");
    if (old) { box.removeChild(old); }
    var width = Math.max(box.clientWidth, 240);
    var svg = node(box, "svg", {width: width, height: height, viewBox: "0 0 " + width + " " + height,
                                role: "img", "aria-label": name + " chart", id: name + "-svg"});
    return {svg: svg, width: width};
  }
  function anchor(at, end, step) {
    return at === 0 ? "start" : at + (step || 1) / 2 > end ? "end" : "middle";
  }
  function xAxis(svg, left, right, top, bottom, span) {
    var step = timeStep(span, Math.max(2, Math.floor((right - left) / 90)));
    for (var t = 0; t <= span + 1e-9; t += step) {
      var x = left + (right - left) * t / span;
      node(svg, "line", {"class": "grid", x1: x, x2: x, y1: top, y2: bottom});
      node(svg, "text", {x: x, y: bottom + 14, "text-anchor": anchor(t, span, step)},
           t ? "+" + dur(t) : "0");
    }
  }
  function yAxis(svg, left, right, top, bottom, most) {
    var step = countStep(most, Math.max(2, Math.floor((bottom - top) / 40)));
    for (var c = 0; c <= most; c += step) {
      var y = bottom - (bottom - top) * c / most;
      node(svg, "line", {"class": "grid", x1: left, x2: right, y1: y, y2: y});
      node(svg, "text", {x: left - 6, y: y + 4, "text-anchor": "end"}, c.toLocaleString("en"));
    }
  }
  function stacks(svg, counts, most, x0, width, top, bottom, label) {
    for (var i = 0; i < counts.length; i++) {
      var y = bottom;
      for (var k = 0; k < OUT.length; k++) {
        var n = counts[i][k];
        if (!n) { continue; }
        var h = (bottom - top) * n / most;
        y -= h;
        var rect = node(svg, "rect", {"class": "col o-" + OUT[k], x: x0 + i * width + 0.5, y: y,
                                      width: Math.max(width - 1, 1), height: h});
        node(rect, "title", {}, label(i) + ": " + n.toLocaleString("en") + " " + OUT[k]);
      }
    }
  }
  function timeline() {
    var tl = data.timeline;
    if (!tl) { return; }
    var span = tl.span > 0 ? tl.span : 1, left, right, top = 10, bottom, c;
    if (tl.mode === "bars") {
      var row = Math.min(24, 480 / tl.lanes);
      bottom = top + row * tl.lanes;
      c = canvas("timeline", bottom + 24);
      left = 8; right = c.width - 12;
      xAxis(c.svg, left, right, top, bottom, span);
      tl.bars.forEach(function (b) {
        var x = left + (right - left) * b[0] / span;
        var rect = node(c.svg, "rect", {"class": "bar o-" + OUT[b[2]], x: x, y: top + b[3] * row,
                                        width: Math.max((right - left) * (b[1] - b[0]) / span, 1),
                                        height: row > 4 ? row - 1 : row});
        node(rect, "title", {}, b[4] + (b[5] === null ? "" : " " + b[5]) + ": " + OUT[b[2]] +
             ", " + dur(b[1] - b[0]) + " (from +" + dur(b[0]) + ")");
      });
    } else {
      var most = Math.max(1, Math.max.apply(null, tl.counts.map(function (r) {
        return r.reduce(function (a, b) { return a + b; }, 0); })));
      bottom = top + 240;
      c = canvas("timeline", bottom + 24);
      left = 56; right = c.width - 12;
      most = countStep(most, 6) * Math.ceil(most / countStep(most, 6));
      yAxis(c.svg, left, right, top, bottom, most);
      xAxis(c.svg, left, right, top, bottom, span);
      var w = (right - left) / tl.counts.length;
      stacks(c.svg, tl.counts, most, left, w, top, bottom, function (i) {
        return "+" + dur(i * tl.width) + " to +" + dur((i + 1) * tl.width); });
    }
  }
  function durations() {
    var h = data.durations;
    if (!h) { return; }
    var top = 10, bottom = top + 220, c = canvas("durations", bottom + 24);
    var left = 56, right = c.width - 12, n = h.counts.length;
    var most = Math.max(1, Math.max.apply(null, h.counts.map(function (r) {
      return r.reduce(function (a, b) { return a + b; }, 0); })));
    most = countStep(most, 6) * Math.ceil(most / countStep(most, 6));
    yAxis(c.svg, left, right, top, bottom, most);
    var w = (right - left) / n, every = Math.max(1, Math.ceil(n / Math.floor((right - left) / 80)));
    for (var i = 0; i <= n; i += every) {
      node(c.svg, "text", {x: left + i * w, y: bottom + 14, "text-anchor": anchor(i, n)},
           dur(h.edges[i]));
    }
    stacks(c.svg, h.counts, most, left, w, top, bottom, function (i) {
      return dur(h.edges[i]) + " to " + dur(h.edges[i + 1]); });
  }
  function draw() { timeline(); durations(); }
  draw();
  var pending = null, drawnWidth = window.innerWidth;
  window.addEventListener("resize", function () {
    if (window.innerWidth === drawnWidth) { return; }
    clearTimeout(pending);
    pending = setTimeout(function () { drawnWidth = window.innerWidth; draw(); }, 150);
  });
  document.documentElement.setAttribute("data-charts", "drawn");
})();
"""
