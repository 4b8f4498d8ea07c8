#!/usr/bin/env python3
"""Draw `make bench`'s table as an SVG: req/s and p99 per scenario and server, side by side.

    usage: bench/chart.py TABLE.tsv OUT.svg [TITLE]

TABLE.tsv has a header line, then one row per run: scenario, server, req/s, p50 ms, p99 ms
(bench/run.sh writes it). Standard library only: no plotting package to install on CI or a
newcomer's machine.
"""
import html
import sys

COLORS = {"ceiling": "#9aa5b1", "FlashFlow": "#1f6feb", "seed design": "#d1793b"}
W, PANEL_H, TOP, LEFT, GAP = 860, 260, 90, 70, 60


def read(path):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            scenario, server, rps, p50, p99 = line.rstrip("\n").split("\t")
            rows.append((scenario, server, float(rps), float(p50), float(p99)))
    return rows


def nice_max(v):
    """A round axis end at or above v."""
    if v <= 0:
        return 1
    step = 10 ** (len(str(int(v))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * step:
            return m * step
    return 10 * step


def panel(out, rows, scenarios, servers, y0, value, label, fmt, log=False):
    """One bar panel at y0: groups per scenario, a bar per server."""
    import math

    inner_w = W - LEFT - 30
    vals = [value(r) for r in rows]
    top = nice_max(max(vals))
    if log:
        lo = 10 ** math.floor(math.log10(max(min(vals), 0.01)))
        scale = lambda v: (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(top) - math.log10(lo))
        ticks = []
        t = lo
        while t <= top * 1.0001:
            ticks.append(t)
            t *= 10
    else:
        scale = lambda v: v / top
        ticks = [top * i / 4 for i in range(5)]
    out.append(f'<text x="{LEFT}" y="{y0 - 12}" font-size="14" font-weight="600">{html.escape(label)}</text>')
    for t in ticks:
        y = y0 + PANEL_H - scale(t) * PANEL_H
        out.append(f'<line x1="{LEFT}" x2="{LEFT + inner_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#555">{fmt(t)}</text>')
    group_w = inner_w / len(scenarios)
    bar_w = group_w * 0.8 / len(servers)
    for gi, scenario in enumerate(scenarios):
        gx = LEFT + gi * group_w + group_w * 0.1
        for si, server in enumerate(servers):
            match = [r for r in rows if r[0] == scenario and r[1] == server]
            if not match:
                continue
            v = value(match[0])
            h = max(scale(v) * PANEL_H, 1)
            x = gx + si * bar_w
            out.append(
                f'<rect x="{x:.1f}" y="{y0 + PANEL_H - h:.1f}" width="{bar_w - 4:.1f}" height="{h:.1f}" '
                f'fill="{COLORS.get(server, "#666")}"><title>{html.escape(server)}: {fmt(v)}</title></rect>'
            )
            out.append(
                f'<text x="{x + (bar_w - 4) / 2:.1f}" y="{y0 + PANEL_H - h - 4:.1f}" font-size="11" '
                f'text-anchor="middle">{fmt(v)}</text>'
            )
        out.append(
            f'<text x="{gx + group_w * 0.4:.1f}" y="{y0 + PANEL_H + 16}" font-size="12" '
            f'text-anchor="middle">{html.escape(scenario)}</text>'
        )


def main():
    rows = read(sys.argv[1])
    title = sys.argv[3] if len(sys.argv) > 3 else "make bench"
    scenarios = list(dict.fromkeys(r[0] for r in rows))
    servers = list(dict.fromkeys(r[1] for r in rows))
    h = TOP + 2 * PANEL_H + GAP + 70
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" '
        'font-family="system-ui, -apple-system, Segoe UI, sans-serif">',
        f'<rect width="{W}" height="{h}" fill="white"/>',
        f'<text x="{LEFT}" y="24" font-size="16" font-weight="700">{html.escape(title)}</text>',
    ]
    for i, server in enumerate(servers):
        x = LEFT + i * 170
        out.append(f'<rect x="{x}" y="34" width="12" height="12" fill="{COLORS.get(server, "#666")}"/>')
        out.append(f'<text x="{x + 18}" y="45" font-size="12">{html.escape(server)}</text>')
    panel(out, rows, scenarios, servers, TOP, lambda r: r[2], "requests per second (higher is better)",
          lambda v: f"{v:,.0f}")
    panel(out, rows, scenarios, servers, TOP + PANEL_H + GAP, lambda r: r[4],
          "p99 latency, ms, log scale (lower is better)",
          lambda v: f"{v:,.2f}" if v < 10 else f"{v:,.1f}" if v < 100 else f"{v:,.0f}",
          log=True)
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
