#!/usr/bin/env python3
"""compare.py — sets glmoe's benchmark JSON beside its peers' (transformers, llama.cpp, mlx) and writes a
markdown report and an SVG plot. Inputs follow the common schema in notes/bench_schema.md.

usage: compare.py GLMOE.json [PEER.json [PEER.json]] --md OUT.md --svg OUT.svg

The engine of each file is read from its "engine" field; the file whose engine is "glmoe" is the subject
(else the first file), the others are peers, in the order given. Standard library only.

What the report holds (all times in milliseconds, as the JSONs give them):
  Prefill   ms to evaluate an N-token prompt from an empty cache, per engine; "glmoe tok/s" = N / seconds;
            "× <peer>" = peer ms / glmoe ms (> 1: glmoe is faster; shown when there are two peers);
            "ratio (best peer / glmoe)" = the fastest peer's ms / glmoe ms.
  Cliffs    per engine, each prompt length whose time exceeds 1.10 × the time of the next longer length
            in that engine's list: a longer prompt should never be cheaper, so these mark shape cliffs.
  Decode    ms per generated token with C tokens already in the KV cache, and the same ratios.
  Ops       per-op medians (schema names); ops are matched on (op, tokens, context), or on (op, tokens)
            when a peer recorded that pair once with another context; ratio = peer ms / glmoe ms.
  Extras    any other top-level key of the glmoe JSON (scalars, flat dicts, lists), printed as found.
  Notes     entries that carry an "error" or "skipped" string.
A missing engine, entry or time shows as "—".
The SVG (hand-written, no plotting library) has one line per engine in each of three panels: prefill ms
and prefill tokens/s against prompt length (log-log), and a linear zoom on 96..192 tokens where each
engine's ms is divided by its own median over that window, so shape cliffs of every engine show as
spikes above 1 on one scale (engines with fewer than 5 lengths there are left out of the zoom).
"""
import argparse
import json
import math
import os
import sys
from xml.sax.saxutils import escape

SCHEMA_KEYS = {"engine", "version", "device", "model", "prefill", "decode", "ops"}
CLIFF_FACTOR = 1.10
DASH = "—"
COLORS = {"glmoe": "#d62728", "transformers": "#1f77b4", "llama.cpp": "#2ca02c", "mlx": "#ff7f0e"}
SPARE_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


# ---------------------------------------------------------------- reading

def load_run(path):
    with open(path) as f:
        run = json.load(f)
    if not isinstance(run, dict) or "engine" not in run:
        raise ValueError(f"{path}: not a benchmark JSON (no \"engine\" field)")
    run["_file"] = path
    return run


def number(x):
    """x when it is a usable time (a positive finite number), else None."""
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0:
        return float(x)
    return None


def prefill_map(run):
    return {e["tokens"]: number(e.get("ms")) for e in run.get("prefill") or [] if "tokens" in e}


def decode_map(run):
    return {e["context"]: number(e.get("ms_per_token")) for e in run.get("decode") or [] if "context" in e}


def ops_map(run):
    return {(e["op"], e.get("tokens", 0), e.get("context", 0)): number(e.get("ms"))
            for e in run.get("ops") or [] if "op" in e}


def op_lookup(table, key):
    """Exact (op, tokens, context) match, else the one entry with the same (op, tokens)."""
    if key in table:
        return table[key]
    near = [v for (op, t, _), v in table.items() if (op, t) == key[:2]]
    return near[0] if len(near) == 1 else None


def split_runs(runs):
    """(subject, peers): the glmoe run (else the first) and the others in order."""
    subject = next((r for r in runs if r["engine"] == "glmoe"), runs[0])
    return subject, [r for r in runs if r is not subject]


# ---------------------------------------------------------------- formatting

def fmt_ms(x):
    if x is None:
        return DASH
    if x < 1:
        return f"{x:.4f}"
    if x < 100:
        return f"{x:.2f}"
    return f"{x:.1f}"


def fmt_ratio(peer_ms, own_ms):
    if peer_ms is None or own_ms is None:
        return DASH
    return f"{peer_ms / own_ms:.2f}×"


def fmt_rate(tokens, ms):
    return DASH if ms is None else f"{tokens / ms * 1e3:,.0f}"


def fmt_count(n):
    for scale, unit in ((1e9, " B"), (1e6, " M"), (1e3, " k")):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def best(values):
    vals = [v for v in values if v is not None]
    return min(vals) if vals else None


def ratio_columns(peers):
    """Ratio headers: one per peer when there are several, then the best-peer one."""
    cols = [f"× {p['engine']}" for p in peers] if len(peers) > 1 else []
    return cols + (["ratio (best peer / glmoe)"] if peers else [])


def ratio_cells(peer_vals, own):
    cells = [fmt_ratio(v, own) for v in peer_vals] if len(peer_vals) > 1 else []
    return cells + ([fmt_ratio(best(peer_vals), own)] if peer_vals else [])


# ---------------------------------------------------------------- markdown sections

def md_engines(runs):
    rows = []
    for r in runs:
        m = r.get("model") or {}
        params = m.get("params")
        model = f"{m.get('name', '?')}, {m.get('layers', '?')} layers" + (
            f", {fmt_count(params)} params" if isinstance(params, (int, float)) else "")
        rows.append([r["engine"], r.get("device", DASH), model, r.get("version", DASH).replace("|", "/"),
                     os.path.basename(r["_file"])])
    return md_table(["engine", "device", "model", "version", "file"], rows)


def md_series(subject, peers, to_map, key, unit, tokens_of):
    """One row per key (length or context): each engine's ms, the subject's tokens/s, the ratios."""
    own, theirs = to_map(subject), [to_map(p) for p in peers]
    header = [key] + [f"{p['engine']} {unit}" for p in peers] + [f"{subject['engine']} {unit}",
                                                                  f"{subject['engine']} tok/s"]
    rows = []
    for k in sorted(set(own).union(*theirs)):
        vals = [t.get(k) for t in theirs]
        rows.append([k] + [fmt_ms(v) for v in vals] + [fmt_ms(own.get(k)), fmt_rate(tokens_of(k), own.get(k))]
                    + ratio_cells(vals, own.get(k)))
    return md_table(header + ratio_columns(peers), rows)


def md_prefill(subject, peers):
    return md_series(subject, peers, prefill_map, "seq len", "ms", lambda n: n)


def md_decode(subject, peers):
    return md_series(subject, peers, decode_map, "context", "ms/token", lambda c: 1)


def op_keys(subject, peers):
    """Rows of the ops table: the subject's keys in its order, then peers' keys it lacks."""
    keys, seen = [], set()
    own = ops_map(subject)
    for k in own:
        keys.append(k)
        seen.add(k[:2])
    for p in peers:
        for k in ops_map(p):
            if k not in keys and (k[:2] not in seen or op_lookup(own, k) is None):
                keys.append(k)
    return keys


def md_ops(subject, peers):
    peers = [p for p in peers if p.get("ops")]
    own, theirs = ops_map(subject), [ops_map(p) for p in peers]
    keys = op_keys(subject, peers)
    if not keys:
        return "No per-op times in these files."
    header = ["op", "tokens", "context"] + [f"{p['engine']} ms" for p in peers] + [f"{subject['engine']} ms"]
    header += [f"ratio {p['engine']} / {subject['engine']}" for p in peers]
    rows = []
    for k in keys:
        mine = op_lookup(own, k)
        vals = [op_lookup(t, k) for t in theirs]
        rows.append(list(k) + [fmt_ms(v) for v in vals] + [fmt_ms(mine)] + [fmt_ratio(v, mine) for v in vals])
    return md_table(header, rows)


def scalar(x):
    return x is None or isinstance(x, (str, int, float, bool))


def fmt_value(x):
    if isinstance(x, float):
        return f"{x:.6g}"
    return DASH if x is None else str(x).replace("|", "/")


def md_extras(subject):
    """Any non-schema top-level key: scalars and flat dicts as rows, lists of flat dicts as tables."""
    rows, tables = [], []
    for key, val in subject.items():
        if key in SCHEMA_KEYS or key.startswith("_"):
            continue
        if scalar(val):
            rows.append([key, fmt_value(val)])
        elif isinstance(val, dict) and all(scalar(v) for v in val.values()):
            rows += [[f"{key}.{k}", fmt_value(v)] for k, v in val.items()]
        elif isinstance(val, list) and all(scalar(v) for v in val):
            rows.append([key, ", ".join(fmt_value(v) for v in val)])
        elif isinstance(val, list) and all(isinstance(v, dict) and all(map(scalar, v.values())) for v in val):
            cols = list(dict.fromkeys(c for v in val for c in v))
            tables.append(f"**{key}**\n\n" + md_table(cols, [[fmt_value(v.get(c)) for c in cols] for v in val]))
        else:
            text = json.dumps(val, separators=(",", ":"))
            rows.append([key, "`" + (text if len(text) <= 200 else text[:197] + "...") + "`"])
    parts = ([md_table(["key", "value"], rows)] if rows else []) + tables
    return "\n\n".join(parts) if parts else "None."


def cliffs(run):
    """Lengths whose prefill ms exceeds CLIFF_FACTOR × the next longer length's ms."""
    pts = sorted((n, ms) for n, ms in prefill_map(run).items() if ms is not None)
    return [(a, ta, b, tb) for (a, ta), (b, tb) in zip(pts, pts[1:]) if ta > CLIFF_FACTOR * tb]


def md_cliffs(runs):
    lines = []
    for r in runs:
        found = cliffs(r)
        if not found:
            lines.append(f"- {r['engine']}: none")
            continue
        lines.append(f"- {r['engine']}: {len(found)} length(s)")
        lines += [f"  - {a} tokens: {fmt_ms(ta)} ms > {CLIFF_FACTOR:.2f} × {b} tokens ({fmt_ms(tb)} ms), "
                  f"+{(ta / tb - 1) * 100:.0f}%" for a, ta, b, tb in found]
    return "\n".join(lines)


def md_notes(runs):
    """One line per engine, section and reason, listing the entries it hit."""
    groups = {}
    for r in runs:
        for section, key in (("prefill", "tokens"), ("decode", "context"), ("ops", "op")):
            for e in r.get(section) or []:
                kind = "error" if e.get("error") else "skipped" if e.get("skipped") else None
                if kind:
                    what = f"{e.get(key)}" + (f" T={e.get('tokens')} ctx={e.get('context')}" if section == "ops" else "")
                    why = str(e[kind]).replace("|", "/")
                    groups.setdefault((r["engine"], section, kind, why), []).append(what)
    lines = [f"- {engine} {section}, {kind} ({why}): {', '.join(whats)}"
             for (engine, section, kind, why), whats in groups.items()]
    return "\n".join(lines) if lines else "None."


def markdown(subject, peers, svg_name):
    runs = [subject] + peers
    out = [f"# {subject['engine']} vs {', '.join(p['engine'] for p in peers) or 'no peers'}", "",
           "Ratios are peer ms / glmoe ms: above 1 means glmoe is faster. All times are medians.", "",
           "## Engines", "", md_engines(runs), "",
           "## Prefill (prompt from an empty cache)", "", md_prefill(subject, peers), ""]
    if svg_name:
        out += [f"![prefill]({svg_name})", ""]
    out += [f"### Prefill cliffs (ms > {CLIFF_FACTOR:.2f} × the next longer length)", "", md_cliffs(runs), "",
            "## Decode (one token, C tokens in the KV cache)", "", md_decode(subject, peers), "",
            "## Ops", "", md_ops(subject, peers), "",
            f"## {subject['engine']} extras", "", md_extras(subject), "",
            "## Notes (errors, skipped entries)", "", md_notes(runs), ""]
    return "\n".join(out)


# ---------------------------------------------------------------- SVG

def engine_color(name, used):
    if name in COLORS and COLORS[name] not in used:
        return COLORS[name]
    return next(c for c in SPARE_COLORS + list(COLORS.values()) if c not in used)


def log_ticks(lo, hi):
    """1-2-5 ticks covering [lo, hi] (positive)."""
    ticks, k = [], math.floor(math.log10(lo))
    while 10 ** k <= hi * 1.0001:
        ticks += [m * 10 ** k for m in (1, 2, 5) if lo / 1.0001 <= m * 10 ** k <= hi * 1.0001]
        k += 1
    return ticks


def linear_ticks(lo, hi, count=6):
    """About `count` round ticks (steps of 1, 2 or 5 × 10^k) in [lo, hi]."""
    raw = (hi - lo) / count
    step = min(m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)
               if m * 10 ** math.floor(math.log10(raw)) >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def tick_label(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


class Axis:
    """A data range mapped onto [0, 1], log or linear, with its tick values and labels."""

    def __init__(self, lo, hi, log, ticks, label=tick_label):
        self.lo, self.hi, self.log, self.ticks, self.label = lo, hi, log, ticks, label

    def unit(self, v):
        if self.log:
            return (math.log(v) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        return (v - self.lo) / (self.hi - self.lo)


def log2_axis(values):
    """Log axis over whole powers of two, ticked at each power (prompt lengths)."""
    lo, hi = 2 ** math.floor(math.log2(min(values))), 2 ** math.ceil(math.log2(max(values)))
    hi = hi if hi > lo else lo * 2
    return Axis(lo, hi, True, [2 ** k for k in range(0, 40) if lo <= 2 ** k <= hi], label=str)


def log10_axis(values):
    """Log axis over whole decades, ticked at 1-2-5 (times, rates)."""
    lo, hi = 10 ** math.floor(math.log10(min(values))), 10 ** math.ceil(math.log10(max(values)))
    hi = hi if hi > lo else lo * 10
    return Axis(lo, hi, True, log_ticks(lo, hi))


def linear_axis(lo, hi, label=tick_label):
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return Axis(lo, hi, False, linear_ticks(lo, hi), label)


class Panel:
    """One plot area: maps data to pixels and draws axes, lines and a legend."""

    def __init__(self, x0, y0, w, h, xaxis, yaxis):
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.xa, self.ya = xaxis, yaxis

    def px(self, x):
        return self.x0 + self.xa.unit(x) * self.w

    def py(self, y):
        """Pixel row of y; values past the axis are drawn on its edge (the zoom panel caps outliers)."""
        return self.y0 + self.h - min(1.0, max(0.0, self.ya.unit(y))) * self.h

    def axes(self, title, xlabel, ylabel):
        x0, y0, w, h = self.x0, self.y0, self.w, self.h
        el = [f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="#fff" stroke="#333"/>']
        for v in self.xa.ticks:
            x = self.px(v)
            el.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + h}" stroke="#e3e3e3"/>')
            el.append(f'<text x="{x:.1f}" y="{y0 + h + 16}" text-anchor="middle">{self.xa.label(v)}</text>')
        for v in self.ya.ticks:
            y = self.py(v)
            el.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + w}" y2="{y:.1f}" stroke="#e3e3e3"/>')
            el.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{self.ya.label(v)}</text>')
        el.append(f'<text x="{x0 + w / 2}" y="{y0 - 10}" text-anchor="middle" font-weight="bold">{escape(title)}</text>')
        el.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 36}" text-anchor="middle">{escape(xlabel)}</text>')
        yc = y0 + h / 2
        el.append(f'<text x="{x0 - 52}" y="{yc}" text-anchor="middle" transform="rotate(-90 {x0 - 52} {yc})">'
                  f'{escape(ylabel)}</text>')
        return el

    def line(self, points, color):
        """Polyline through (x, y) points, broken where y is None, with a dot per point."""
        el, seg = [], []
        for x, y in points + [(None, None)]:
            if y is not None:
                seg.append(f"{self.px(x):.1f},{self.py(y):.1f}")
                el.append(f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="2.2" fill="{color}"/>')
            elif seg:
                el.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="{color}" stroke-width="1.8"/>')
                seg = []
        return el

    def legend(self, entries):
        x, y = self.x0 + 10, self.y0 + 10
        width = 24 + 8 * max(len(name) for name, _ in entries) + 12
        el = [f'<rect x="{x}" y="{y}" width="{width}" height="{8 + 18 * len(entries)}" fill="#fff" '
              f'fill-opacity="0.9" stroke="#999"/>']
        for i, (name, color) in enumerate(entries):
            yy = y + 16 + 18 * i
            el.append(f'<line x1="{x + 6}" y1="{yy - 4}" x2="{x + 24}" y2="{yy - 4}" stroke="{color}" stroke-width="2.5"/>')
            el.append(f'<text x="{x + 30}" y="{yy}">{escape(name)}</text>')
        return el

    def plot(self, data, title, xlabel, ylabel):
        """Axes, one line per (name, color, points) series, and the legend."""
        el = self.axes(title, xlabel, ylabel)
        for _, color, pts in data:
            el += self.line(pts, color)
        return el + self.legend([(name, color) for name, color, _ in data])


ZOOM = (96, 192)  # the window of the schema's dense 112..144 lengths, where shape cliffs show
ZOOM_Y_CAP = 2.0  # relative times above this are drawn at the top edge


def relative_series(series):
    """Each engine's prefill ms inside ZOOM divided by its own median there; engines with < 5 points drop out."""
    out = []
    for name, color, pts in series:
        inside = [(n, ms) for n, ms in pts if ZOOM[0] <= n <= ZOOM[1]]
        vals = sorted(ms for _, ms in inside if ms is not None)
        if len(vals) >= 5:
            mid = vals[len(vals) // 2]
            out.append((name, color, [(n, None if ms is None else ms / mid) for n, ms in inside]))
    return out


def svg_panels(series):
    """(data, axes, title, y label) of each panel, top to bottom."""
    xs = [n for _, _, pts in series for n, ms in pts if ms is not None]
    ms = [(name, color, [(n, v) for n, v in pts if n > 0]) for name, color, pts in series]
    rate = [(name, color, [(n, None if v is None else n / v * 1e3) for n, v in pts]) for name, color, pts in ms]
    yvals = lambda data: [y for _, _, pts in data for _, y in pts if y is not None]
    panels = [(ms, log2_axis(xs), log10_axis(yvals(ms)), "Prefill time (log-log)", "ms (lower is better)"),
              (rate, log2_axis(xs), log10_axis(yvals(rate)), "Prefill throughput (log-log)",
               "tokens/s (higher is better)")]
    rel = relative_series(series)
    if rel:
        ys = yvals(rel)
        panels.append((rel, linear_axis(*ZOOM, label=lambda v: f"{v:g}"),
                       linear_axis(max(0.5, min(0.8, min(ys))), min(ZOOM_Y_CAP, max(1.3, 1.05 * max(ys))),
                                   label=lambda v: f"{v:g}"),
                       f"Prefill {ZOOM[0]}-{ZOOM[1]} tokens: ms / the engine's own median there "
                       f"(linear; capped at {ZOOM_Y_CAP:g})",
                       "relative time (cliffs > 1)"))
    return panels


def svg_plot(runs):
    series, used = [], []
    for r in runs:
        pts = sorted(prefill_map(r).items())
        if any(ms is not None and n > 0 for n, ms in pts):
            used.append(engine_color(r["engine"], used))
            series.append((r["engine"], used[-1], [(n, ms) for n, ms in pts if n > 0]))
    if not series:
        return None
    panels = svg_panels(series)
    W, left, w, h, gap, top = 900, 90, 780, 320, 90, 70
    H = top + len(panels) * (h + gap) - 20
    subject = runs[0]
    title = f"Prefill: {' vs '.join(s[0] for s in series)} ({subject.get('device', '?')}, " \
            f"{(subject.get('model') or {}).get('name', '?')})"
    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
          f'font-family="Helvetica, Arial, sans-serif" font-size="12">',
          f'<rect width="{W}" height="{H}" fill="#fafafa"/>',
          f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{escape(title)}</text>']
    for i, (data, xa, ya, name, ylabel) in enumerate(panels):
        el += Panel(left, top + i * (h + gap), w, h, xa, ya).plot(data, name, "prompt length (tokens)", ylabel)
    el.append("</svg>")
    return "\n".join(el) + "\n"


# ---------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="+", help="glmoe JSON, then up to two peer JSONs")
    ap.add_argument("--md", required=True)
    ap.add_argument("--svg", default=None)
    a = ap.parse_args(argv)
    if len(a.json) > 3:
        ap.error("at most three JSON files (glmoe and two peers)")
    try:
        runs = [load_run(p) for p in a.json]
    except (OSError, ValueError) as e:
        print(f"compare: {e}", file=sys.stderr)
        return 1
    subject, peers = split_runs(runs)
    svg = svg_plot([subject] + peers) if a.svg else None
    for path in (a.md, a.svg if svg else None):
        if path and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
    if svg:
        with open(a.svg, "w") as f:
            f.write(svg)
    svg_name = os.path.relpath(a.svg, os.path.dirname(os.path.abspath(a.md))) if svg else None
    with open(a.md, "w") as f:
        f.write(markdown(subject, peers, svg_name))
    print(f"compare: wrote {a.md}" + (f" and {a.svg}" if svg else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
