"""Server-side SVG charts (SVG 1.1 presentation attributes only, no style attributes: the CSP allows no
inline styles and no script)."""
from __future__ import annotations

import datetime as dt
from html import escape

from markupsafe import Markup


def bar_chart(series: list[tuple[dt.date, int]], *, width: int = 640, height: int = 180, title: str = "") -> Markup:
    """Bars per day with the count above each bar and the day below (MM-DD)."""
    top = max((n for _, n in series), default=0) or 1
    pad, label_h = 24, 18
    slot = (width - 2 * pad) / max(len(series), 1)
    inner = height - 2 * label_h
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<line x1="{pad}" y1="{height - label_h}" x2="{width - pad}" y2="{height - label_h}" stroke="#888"/>']
    for i, (day, count) in enumerate(series):
        h = round(inner * count / top)
        x = pad + i * slot + slot * 0.15
        y = height - label_h - h
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{slot * 0.7:.1f}" height="{h}" fill="#b3261e">'
                     f'<title>{day.isoformat()}: {count}</title></rect>')
        parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{y - 4}" font-size="11" text-anchor="middle">{count}</text>')
        parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{height - 4}" font-size="10" text-anchor="middle" '
                     f'fill="#555">{day:%m-%d}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
