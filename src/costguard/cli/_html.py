"""``costguard report --html FILE``: one self-contained page of spend charts.

The page needs nothing but itself: CSS and JavaScript are inline, the charts are SVG drawn by
that script from a JSON block embedded in the page, and a Content-Security-Policy forbids any
network access and any script but the page's own (by hash). Ledger strings (feature, user and
model names) reach the page only as escaped HTML text or inside the JSON block, where every
``<``, ``>`` and ``&`` is a ``\\u`` escape, so a name cannot close the block; the script puts
them into the document as text nodes, never as markup.

Each chart is a ``<figure class="chart" data-chart="...">``; once its SVG is drawn the script
sets ``data-drawn="true"`` on it (tests and a watching eye can tell a drawn chart apart).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._common import cost_text, percent, plain, usd

if TYPE_CHECKING:
    from ..ledger import SummaryRow
    from ..ledger._dashboard import Dashboard, Slice

__all__ = ["render_html"]

_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
)
_OTHER_COLOUR = "#bab0ac"
_MAX_MODELS = len(_PALETTE)  # models beyond these share one "other models" colour
_OTHER_MODELS = "other models"

_CSS = """
:root { color-scheme: light; --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; }
* { box-sizing: border-box; }
body { margin: 0; background: #f5f7fa; color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; }
header h1 { font-size: 22px; margin: 0 0 4px; }
header p { margin: 0; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr));
  gap: 12px; margin: 20px 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card b { display: block; font-size: 20px; font-variant-numeric: tabular-nums; }
.card span { color: var(--muted); font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px;
  align-items: start; }
figure.chart { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 14px 16px; }
figure.chart figcaption { font-weight: 600; margin-bottom: 2px; }
figure.chart .note { color: var(--muted); font-size: 12px; margin: 0 0 6px; }
figure.chart svg { width: 100%; height: auto; display: block; }
svg text { font-size: 11px; fill: #52606d; }
svg .value { fill: var(--ink); font-variant-numeric: tabular-nums; }
svg .axis-title { font-size: 11px; fill: var(--muted); }
svg .grid-line { stroke: var(--line); }
svg text.inside { fill: #fff; font-weight: 600; }
ul.legend { list-style: none; padding: 0; margin: 8px 0 0; display: flex; flex-wrap: wrap;
  gap: 4px 14px; font-size: 12px; }
ul.legend li { display: flex; align-items: center; gap: 6px; }
ul.legend i { width: 10px; height: 10px; border-radius: 2px; display: inline-block; }
section.table { margin-top: 16px; background: #fff; border: 1px solid var(--line);
  border-radius: 8px; padding: 14px 16px; overflow-x: auto; }
section.table h2, section.defs h2 { font-size: 15px; margin: 0 0 8px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 10px 4px 0; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; }
td.n, th.n { text-align: right; }
section.defs { margin-top: 16px; color: var(--muted); font-size: 12px; }
section.defs dt { font-weight: 600; color: var(--ink); margin-top: 6px; }
section.defs dd { margin: 0; }
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("costguard-data").textContent);
  var NS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, parent, text) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function tip(node, text) { el("title", {}, node, text); }
  function num(s) { var v = parseFloat(s); return isFinite(v) ? v : 0; }
  function short(s, n) { return s.length > n ? s.slice(0, n - 1) + "\u2026" : s; }
  function pct(x) { return (Math.round(x * 1000) / 10) + "%"; }

  function ticks(lo, hi, count) {
    if (!(hi > lo)) { hi = lo + 1; }
    var raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / mag, step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    var out = [], v = Math.floor(lo / step) * step;
    for (; v <= hi + step * 1e-9; v += step) { out.push(Math.round(v / step) * step); }
    if (out[out.length - 1] < hi) { out.push(out[out.length - 1] + step); }
    return { values: out, step: step };
  }
  function money(v, step) {
    var d = Math.max(0, Math.min(12, -Math.floor(Math.log10(step) + 1e-9)));
    var text = Math.abs(v).toLocaleString("en-US",
      { minimumFractionDigits: d, maximumFractionDigits: d });
    return (v < 0 ? "-$" : "$") + text;
  }
  function svg(id, w, h, label) {
    var fig = document.getElementById(id);
    return el("svg", { viewBox: "0 0 " + w + " " + h, role: "img", "aria-label": label },
      fig.querySelector(".plot"));
  }
  function legend(id, items) {
    var ul = document.createElement("ul");
    ul.className = "legend";
    items.forEach(function (it) {
      var li = document.createElement("li"), sw = document.createElement("i");
      sw.style.background = it.color;
      li.appendChild(sw);
      li.appendChild(document.createTextNode(it.name));
      ul.appendChild(li);
    });
    document.getElementById(id).appendChild(ul);
  }
  function drawn(id) { document.getElementById(id).setAttribute("data-drawn", "true"); }

  function spendPerDay() {
    var W = 600, H = 290, L = 70, R = 12, T = 12, B = 44, days = data.days;
    var s = svg("chart-daily", W, H, "Spend per day, stacked by model");
    var top = Math.max.apply(null, days.map(function (d) { return num(d.usd); }).concat([0]));
    var t = ticks(0, top, 4), max = t.values[t.values.length - 1];
    var y = function (v) { return T + (H - T - B) * (1 - v / max); };
    t.values.forEach(function (v) {
      el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), "class": "grid-line" }, s);
      el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, s, money(v, t.step));
    });
    var band = (W - L - R) / Math.max(days.length, 1), bw = Math.min(46, band * 0.7);
    var every = Math.ceil(days.length / 12);
    days.forEach(function (d, i) {
      var x = L + band * i + (band - bw) / 2, base = 0;
      d.models.forEach(function (m) {
        var v = num(m.usd), r = el("rect", {
          x: x, y: y(base + v), width: bw, height: Math.max(0, y(base) - y(base + v)),
          fill: data.colors[m.model] || data.other_color, "class": "seg",
          "data-day": d.day, "data-model": m.model }, s);
        tip(r, d.day + " \u00b7 " + m.model + ": " + m.label);
        base += v;
      });
      if (i % every === 0) {
        el("text", { x: x + bw / 2, y: H - B + 16, "text-anchor": "middle" }, s, d.day.slice(5));
      }
    });
    el("line", { x1: L, x2: W - R, y1: y(0), y2: y(0), stroke: "#9aa5b1" }, s);
    el("text", { x: 12, y: T + (H - T - B) / 2, "class": "axis-title",
      transform: "rotate(-90 12 " + (T + (H - T - B) / 2) + ")", "text-anchor": "middle" },
      s, "USD per day");
    el("text", { x: L + (W - L - R) / 2, y: H - 6, "class": "axis-title", "text-anchor": "middle" },
      s, "day (UTC, month-day)");
    legend("chart-daily", data.legend);
    drawn("chart-daily");
  }

  function hbars(id, items, label) {
    var W = 600, L = 170, R = 96, T = 20, row = 26, H = T + row * Math.max(items.length, 1) + 8;
    var s = svg(id, W, H, label);
    var vals = items.map(function (it) { return num(it.usd); });
    var lo = Math.min.apply(null, vals.concat([0])), hi = Math.max.apply(null, vals.concat([0]));
    var t = ticks(lo, hi, 4), a = t.values[0], b = t.values[t.values.length - 1];
    var x = function (v) { return L + (W - L - R) * (v - a) / (b - a); };
    t.values.forEach(function (v) {
      el("line", { x1: x(v), x2: x(v), y1: T - 4, y2: H - 6, "class": "grid-line" }, s);
      el("text", { x: x(v), y: T - 8, "text-anchor": "middle" }, s, money(v, t.step));
    });
    items.forEach(function (it, i) {
      var v = vals[i], y0 = T + row * i + 4, x0 = x(Math.min(0, v)), x1 = x(Math.max(0, v));
      var name = el("text", { x: L - 8, y: y0 + 13, "text-anchor": "end" }, s, short(it.name, 26));
      tip(name, it.name);
      var r = el("rect", { x: x0, y: y0, width: Math.max(x1 - x0, 0.5), height: row - 8, rx: 2,
        fill: it.color || (v < 0 ? "#e15759" : "#4e79a7"), "class": "bar",
        "data-name": it.name }, s);
      var calls = it.calls !== undefined ? " (" + it.calls + " calls)" : "";
      tip(r, it.name + ": " + it.label + calls);
      el("text", { x: x(Math.max(0, v)) + 6, y: y0 + 13, "class": "value" }, s, it.label);
    });
    el("line", { x1: x(0), x2: x(0), y1: T - 4, y2: H - 6, stroke: "#9aa5b1" }, s);
    drawn(id);
  }

  function hitRate() {
    var W = 600, H = 250, L = 50, R = 16, T = 14, B = 44, days = data.days;
    var s = svg("chart-hits", W, H, "Cache hit rate per day");
    var y = function (v) { return T + (H - T - B) * (1 - v); };
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), "class": "grid-line" }, s);
      el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, s, pct(v));
    });
    var n = days.length, step = n > 1 ? (W - L - R - 20) / (n - 1) : 0;
    var x = function (i) { return n > 1 ? L + 10 + step * i : L + (W - L - R) / 2; };
    var every = Math.ceil(n / 12), path = "";
    days.forEach(function (d, i) { path += (i ? " L " : "M ") + x(i) + " " + y(d.hit_rate); });
    el("path", { d: path, fill: "none", stroke: "#59a14f", "stroke-width": 2, "class": "line" }, s);
    days.forEach(function (d, i) {
      var c = el("circle", { cx: x(i), cy: y(d.hit_rate), r: 3.5, fill: "#59a14f",
        "class": "pt", "data-day": d.day }, s);
      tip(c, d.day + ": " + d.hits + " of " + d.calls + " calls from the cache (" +
        pct(d.hit_rate) + ")");
      if (i % every === 0) {
        el("text", { x: x(i), y: H - B + 16, "text-anchor": "middle" }, s, d.day.slice(5));
      }
    });
    el("text", { x: 12, y: T + (H - T - B) / 2, "class": "axis-title", "text-anchor": "middle",
      transform: "rotate(-90 12 " + (T + (H - T - B) / 2) + ")" }, s, "calls from cache");
    el("text", { x: L + (W - L - R) / 2, y: H - 6, "class": "axis-title", "text-anchor": "middle" },
      s, "day (UTC, month-day)");
    drawn("chart-hits");
  }

  function models() {
    var W = 600, L = 60, R = 12, T = 8, row = 34, H = T + row * 2 + 8;
    var s = svg("chart-models", W, H, "Model distribution: share of calls and of spend");
    [["calls", "call_share"], ["spend", "cost_share"]].forEach(function (kind, i) {
      var y0 = T + row * i, x0 = L;
      el("text", { x: L - 8, y: y0 + 17, "text-anchor": "end" }, s, kind[0]);
      data.models.forEach(function (m) {
        var w = (W - L - R) * m[kind[1]];
        if (w <= 0) { return; }
        var r = el("rect", { x: x0, y: y0, width: w, height: row - 8, fill: m.color,
          "class": "seg", "data-model": m.model, "data-kind": kind[0] }, s);
        tip(r, m.model + ": " + pct(m[kind[1]]) + " of " + kind[0] +
          " (" + m.calls + " calls, " + m.label + ")");
        if (w > 38) {
          el("text", { x: x0 + w / 2, y: y0 + 17, "text-anchor": "middle", "class": "inside" },
            s, pct(m[kind[1]]));
        }
        x0 += w;
      });
    });
    legend("chart-models", data.legend);
    drawn("chart-models");
  }

  [
    spendPerDay,
    function () { hbars("chart-savings", data.savings, "Money saved, by kind"); },
    hitRate,
    function () { hbars("chart-features", data.features, "Spend by feature"); },
    function () { hbars("chart-users", data.users, "Spend by user"); },
    models
  ].forEach(function (draw) {
    try { draw(); } catch (err) { if (window.console) { console.error(err); } }
  });
})();
"""

# The script is fixed, so its CSP hash is too.
_JS_HASH = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
_CSP = (
    f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{_JS_HASH}'"
)


def _script_json(data: object) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _named(value: str | None, none: str) -> str:
    return none if value is None else value


def _folded(slices: Sequence[Slice], top: int, none: str, kind: str) -> list[dict[str, Any]]:
    """The ``top`` most expensive slices, then one bar for the rest."""
    out = [
        {"name": _named(s.key, none), "usd": plain(s.cost_usd), "calls": s.calls}
        | {"label": cost_text(s.cost_usd, s.unpriced)}
        for s in slices[:top]
    ]
    rest = slices[top:]
    if rest:
        cost = sum((s.cost_usd for s in rest), Decimal(0))
        out.append(
            {
                "name": f"{len(rest)} other {kind}",
                "usd": plain(cost),
                "label": cost_text(cost, sum(s.unpriced for s in rest)),
                "calls": sum(s.calls for s in rest),
                "color": _OTHER_COLOUR,
            }
        )
    return out


def chart_data(board: Dashboard, *, top: int = 10) -> dict[str, Any]:
    """What the page's script draws (names are plain strings; money exact strings)."""
    names = [_named(m.model, "(no model)") for m in board.models]
    shown = names[:_MAX_MODELS] if len(names) <= _MAX_MODELS else names[: _MAX_MODELS - 1]
    colors = {name: _PALETTE[i] for i, name in enumerate(shown)}

    def colour_of(name: str) -> str:
        return colors.get(name, _OTHER_COLOUR)

    def bucket(name: str) -> str:
        return name if name in colors else _OTHER_MODELS

    models: dict[str, dict[str, Any]] = {}
    for m, name in zip(board.models, names, strict=True):
        entry = models.setdefault(
            bucket(name),
            {"model": bucket(name), "calls": 0, "cost": Decimal(0), "call_share": 0.0}
            | {"cost_share": 0.0, "color": colour_of(name)},
        )
        entry["calls"] += m.calls
        entry["cost"] += m.cost_usd
        entry["call_share"] += m.call_share
        entry["cost_share"] += m.cost_share
    for entry in models.values():
        cost = entry.pop("cost")
        entry |= {"usd": plain(cost), "label": usd(cost)}
    days = []
    for d in board.days:
        per_model: dict[str, Decimal] = {}
        for model, cost in d.by_model.items():
            key = bucket(_named(model, "(no model)"))
            per_model[key] = per_model.get(key, Decimal(0)) + cost
        days.append(
            {
                "day": d.day,
                "usd": plain(d.cost_usd),
                "calls": d.calls,
                "hits": d.cache_hits,
                "hit_rate": round(d.cache_hit_rate, 4),
                "models": [
                    {"model": k, "usd": plain(v), "label": usd(v)}
                    for k, v in per_model.items()
                    if v
                ],
            }
        )
    s = board.savings
    savings = [
        ("costguard cache", s.cache, "#59a14f"),
        ("routing", s.routing, "#4e79a7"),
        ("output caps (up to)", s.capping, "#edc948"),
        ("provider prompt caching", s.prompt_caching, "#76b7b2"),
    ]
    return {
        "days": days,
        "colors": {m["model"]: m["color"] for m in models.values()},
        "other_color": _OTHER_COLOUR,
        "legend": [{"name": m["model"], "color": m["color"]} for m in models.values()],
        "models": list(models.values()),
        "savings": [
            {
                "name": name,
                "usd": plain(saving.usd),
                "label": ("up to " if saving.upper_bound else "") + usd(saving.usd),
                "calls": saving.calls,
                "color": color if saving.usd >= 0 else "#e15759",
            }
            for name, saving, color in savings
        ],
        "features": _folded(board.features, top, "(no feature)", "features"),
        "users": _folded(board.users, top, "(no user)", "users"),
    }


def _card(value: str, label: str) -> str:
    return f'<div class="card"><b>{html.escape(value)}</b><span>{html.escape(label)}</span></div>'


def _figure(chart_id: str, kind: str, title: str, note: str) -> str:
    return (
        f'<figure class="chart" id="{chart_id}" data-chart="{kind}">'
        f"<figcaption>{html.escape(title)}</figcaption>"
        f'<p class="note">{html.escape(note)}</p><div class="plot"></div></figure>'
    )


def _table(rows: Sequence[SummaryRow], group_by: Sequence[str], total_groups: int) -> str:
    heads = [*group_by, "calls", "input tok", "output tok", "cost", "errors", "unpriced"]
    numeric = [False] * len(group_by) + [True] * 6
    head = "".join(
        f'<th class="n">{html.escape(h)}</th>' if n else f"<th>{html.escape(h)}</th>"
        for h, n in zip(heads, numeric, strict=True)
    )
    body = []
    for r in rows:
        cells = [str(r.key.get(g) if r.key.get(g) is not None else "-") for g in group_by]
        nums = [
            f"{r.calls:,}",
            f"{r.input_tokens:,}",
            f"{r.output_tokens:,}",
            usd(r.cost_usd),
            f"{r.errors:,}",
            f"{r.unpriced:,}",
        ]
        body.append(
            "<tr>"
            + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
            + "".join(f'<td class="n">{html.escape(c)}</td>' for c in nums)
            + "</tr>"
        )
    by = ", ".join(group_by) or "everything"
    more = f" (top {len(rows)} of {total_groups})" if len(rows) < total_groups else ""
    return (
        f'<section class="table"><h2>Spend by {html.escape(by)}{more}</h2>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></section>"
    )


_DEFINITIONS = (
    (
        "costguard cache",
        "what the calls answered by costguard's exact or semantic cache would have cost.",
    ),
    (
        "routing",
        "for routed calls, the cost of the same usage at the requested model's price minus "
        "the real cost; discarded cascade attempts count against it; fallbacks are left out.",
    ),
    (
        "output caps (up to)",
        "an upper bound: for answers that used all of a lowered output limit, the tokens "
        "between that limit and the one requested (or the model's maximum) at the output rate.",
    ),
    (
        "provider prompt caching",
        "cache-read tokens at the input rate minus the cache-read rate, minus the premium paid "
        "for cache writes over the input rate, at the rates each call was charged.",
    ),
)


def _when(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC") if ts is not None else "-"


def render_html(
    board: Dashboard,
    rows: Sequence[SummaryRow],
    group_by: Sequence[str],
    *,
    source: str,
    total_groups: int,
    top: int = 10,
) -> str:
    """The whole page for ``board`` (and the grouped ``rows``), as one HTML string."""
    s = board.savings
    cards = "".join(
        [
            _card(usd(board.cost_usd), f"spent over {board.calls:,} calls"),
            _card(
                percent(board.cache_hit_rate),
                f"cache hit rate ({board.cache_hits:,} calls), saved {usd(s.cache.usd)}",
            ),
            _card(usd(s.exact_usd), f"saved (plus up to {usd(s.capping.usd)} by output caps)"),
            _card(
                percent(board.cheaper_share),
                f"of calls sent to a cheaper model ({s.cheaper_calls:,})",
            ),
            _card(percent(board.error_rate), f"error rate ({board.errors:,} calls)"),
            _card(f"{board.unpriced:,}", "unpriced calls"),
        ]
    )
    charts = "".join(
        [
            _figure("chart-daily", "daily", "Spend per day", "USD per UTC day, stacked by model"),
            _figure(
                "chart-savings",
                "savings",
                "Money saved, by kind",
                "output caps: an upper bound; definitions below",
            ),
            _figure("chart-hits", "hits", "Cache hit rate", "share of each day's calls"),
            _figure("chart-models", "models", "Model distribution", "share of calls and spend"),
            _figure("chart-features", "features", "Spend by feature", f"top {top}, USD"),
            _figure("chart-users", "users", "Spend by user", f"top {top} spenders, USD"),
        ]
    )
    defs = "".join(
        f"<dt>{html.escape(name)}</dt><dd>{html.escape(text)}</dd>" for name, text in _DEFINITIONS
    )
    period = f"{_when(board.first_ts)} to {_when(board.last_ts)}"
    data = _script_json(chart_data(board, top=top))
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>costguard spend report</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<header><h1>costguard spend report</h1>
<p>{html.escape(source)} &middot; calls from {html.escape(period)}</p></header>
<div class="cards">{cards}</div>
<div class="grid">{charts}</div>
{_table(rows, group_by, total_groups)}
<section class="defs"><h2>How savings are computed</h2><dl>{defs}</dl></section>
</main>
<script type="application/json" id="costguard-data">{data}</script>
<script>{_JS}</script>
</body>
</html>
"""
