"""Small inline-SVG charts for the evaluation page: no JavaScript, no network, a few KB each.

Each chart is one ``<svg role="img">`` whose ``<title>`` and ``<desc>`` are what a screen reader
announces, with labelled axes and ticks. Colour is never the only signal: lines also differ by
dash pattern and have a legend, heat-map cells carry their counts as text, bars their values.
(The drift report draws with Plotly from a Jinja template: nothing there to share.)
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Line", "hbars", "heatmap", "line_chart", "scatter"]

WIDTH = 640
_INK, _GRID, _MUTED = "#222", "#e3e3e3", "#666"
_COLOURS = ("#1f5fa8", "#b35806", "#4d4d4d")
_DASHES = ("", "7 4", "2 3")


@dataclass(frozen=True)
class Line:
    """One series of a line chart; points with a missing coordinate are skipped."""

    label: str
    x: Sequence[float | None]
    y: Sequence[float | None]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _c(value: float) -> str:
    """A pixel coordinate, one decimal (enough on screen, and keeps the page small)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _label(value: float) -> str:
    text = f"{value:.4g}"
    return "0" if text == "-0" else text


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]; the first and last are the axis ends."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi - lo < 1e-12:
        half = max(abs(lo) * 0.1, 0.5)
        lo, hi = lo - half, hi + half
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    # a value past a tick by under 2% of a step (a whisker at -3e-5) does not add a whole step
    first, last = math.floor(lo / step + 0.02), math.ceil(hi / step - 0.02)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _pairs(x: Sequence[float | None], y: Sequence[float | None]) -> list[tuple[float, float]]:
    """The (x, y) points with both coordinates present and finite."""
    return [
        (float(a), float(b))
        for a, b in zip(x, y, strict=False)
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    ]


def _rotated(label: str, mid: float) -> str:
    """A y-axis title, written upwards at the left edge."""
    return (
        f'<text transform="translate(16 {_c(mid)}) rotate(-90)" text-anchor="middle" '
        f'font-weight="bold">{_e(label)}</text>'
    )


def _open(ident: str, title: str, desc: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="{ident}-t {ident}-d" '
        f'font-family="sans-serif" font-size="12" fill="{_INK}" '
        'style="max-width:100%;height:auto">',
        f'<title id="{ident}-t">{_e(title)}</title><desc id="{ident}-d">{_e(desc)}</desc>',
    ]


@dataclass(frozen=True)
class _Frame:
    """The plot area (pixels) and the data ranges it shows."""

    left: float
    top: float
    right: float
    bottom: float
    xt: list[float]
    yt: list[float]

    def x(self, v: float) -> float:
        lo, hi = self.xt[0], self.xt[-1]
        return self.left + (v - lo) / (hi - lo) * (self.right - self.left)

    def y(self, v: float) -> float:
        lo, hi = self.yt[0], self.yt[-1]
        return self.bottom - (v - lo) / (hi - lo) * (self.bottom - self.top)

    def axes(self, x_label: str, y_label: str, *, y_ticks: bool = True) -> list[str]:
        grid = "".join(f"M{_c(self.x(t))} {_c(self.top)}V{_c(self.bottom)}" for t in self.xt)
        for t in self.yt if y_ticks else []:
            grid += f"M{_c(self.left)} {_c(self.y(t))}H{_c(self.right)}"
        out = [f'<path d="{grid}" stroke="{_GRID}"/>']
        out.append(
            f'<rect x="{_c(self.left)}" y="{_c(self.top)}" width="{_c(self.right - self.left)}" '
            f'height="{_c(self.bottom - self.top)}" fill="none" stroke="{_MUTED}"/>'
        )
        out.append('<g text-anchor="middle">')
        for t in self.xt:
            out.append(f'<text x="{_c(self.x(t))}" y="{_c(self.bottom + 16)}">{_label(t)}</text>')
        out.append(
            f'<text x="{_c((self.left + self.right) / 2)}" y="{_c(self.bottom + 38)}" '
            f'font-weight="bold">{_e(x_label)}</text></g>'
        )
        if y_ticks:
            out.append('<g text-anchor="end">')
            for t in self.yt:
                out.append(
                    f'<text x="{_c(self.left - 6)}" y="{_c(self.y(t) + 4)}">{_label(t)}</text>'
                )
            out.append("</g>")
        if y_label:
            out.append(_rotated(y_label, (self.top + self.bottom) / 2))
        return out


def _frame(points: list[tuple[float, float]], height: int) -> _Frame:
    xs, ys = [p[0] for p in points] or [0.0, 1.0], [p[1] for p in points] or [0.0, 1.0]
    return _Frame(
        70, 34, WIDTH - 20, height - 52, _ticks(min(xs), max(xs)), _ticks(min(ys), max(ys))
    )


def line_chart(
    ident: str, title: str, desc: str, lines: Sequence[Line], *, x_label: str, y_label: str
) -> str:
    """Lines over a shared x axis (``ident`` must be unique on the page); legend above."""
    frame = _frame([p for line in lines for p in _pairs(line.x, line.y)], 420)
    out = _open(ident, title, desc, WIDTH, 420) + frame.axes(x_label, y_label)
    for i, line in enumerate(lines):
        colour, dash = _COLOURS[i % len(_COLOURS)], _DASHES[i % len(_DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        points = " ".join(f"{_c(frame.x(x))},{_c(frame.y(y))}" for x, y in _pairs(line.x, line.y))
        out.append(
            f'<polyline data-series="{_e(line.label)}" points="{points}" fill="none" '
            f'stroke="{colour}" stroke-width="2"{dash_attr}/>'
        )
        lx = frame.left + i * 200
        out.append(
            f'<line x1="{_c(lx)}" x2="{_c(lx + 28)}" y1="18" y2="18" stroke="{colour}" '
            f'stroke-width="2"{dash_attr}/><text x="{_c(lx + 34)}" y="22">{_e(line.label)}</text>'
        )
    return "".join([*out, "</svg>"])


def scatter(
    ident: str,
    title: str,
    desc: str,
    x: Sequence[float | None],
    y: Sequence[float | None],
    *,
    x_label: str,
    y_label: str,
) -> str:
    """Points, with a dashed reference line at y = 0 when zero is in range."""
    pairs = _pairs(x, y)
    frame = _frame(pairs, 420)
    out = _open(ident, title, desc, WIDTH, 420) + frame.axes(x_label, y_label)
    if frame.yt[0] <= 0 <= frame.yt[-1]:
        out.append(
            f'<line x1="{_c(frame.left)}" x2="{_c(frame.right)}" y1="{_c(frame.y(0))}" '
            f'y2="{_c(frame.y(0))}" stroke="{_MUTED}" stroke-dasharray="7 4"/>'
        )
    out.append(f'<g fill="{_COLOURS[0]}" fill-opacity="0.55">')
    out.extend(f'<circle cx="{_c(frame.x(a))}" cy="{_c(frame.y(b))}" r="2.5"/>' for a, b in pairs)
    return "".join([*out, "</g></svg>"])


def heatmap(
    ident: str,
    title: str,
    desc: str,
    matrix: Sequence[Sequence[int]],
    labels: Sequence[str],
    *,
    x_label: str,
    y_label: str,
) -> str:
    """A square count matrix (rows ``y_label``, columns ``x_label``); each cell shows its count."""
    n = len(labels)
    cell = max(28.0, min(90.0, 420 / max(n, 1)))
    left = 40 + 7 * min(max((len(str(c)) for c in labels), default=1), 24)
    top, size = 20.0, cell * n
    height, width = int(top + size + 60), int(max(left + size + 20, 320))
    peak = max((v for row in matrix for v in row), default=0) or 1
    out = _open(ident, title, desc, width, height)
    out.append('<g text-anchor="middle">')
    for r, row in enumerate(matrix):
        for k, count in enumerate(row):
            share = count / peak
            # white -> dark blue; the count is written in a colour that stays readable on it
            rgb = [round(255 - share * (255 - end)) for end in (8, 69, 148)]
            x, y = left + k * cell, top + r * cell
            out.append(
                f'<rect x="{_c(x)}" y="{_c(y)}" width="{_c(cell)}" height="{_c(cell)}" '
                f'fill="rgb({rgb[0]},{rgb[1]},{rgb[2]})" stroke="#bbb"><title>true '
                f"{_e(labels[r])}, predicted {_e(labels[k])}: {count}</title></rect>"
                f'<text x="{_c(x + cell / 2)}" y="{_c(y + cell / 2 + 5)}" font-size="14" '
                f'fill="{"#fff" if share > 0.5 else _INK}">{count}</text>'
            )
    for k, name in enumerate(str(label) for label in labels):
        # column labels are cut to the cell's width, row labels to the left margin
        out.append(
            f'<text x="{_c(left + (k + 0.5) * cell)}" y="{_c(top + size + 16)}">'
            f'{_e(name[: int(cell // 7)])}</text><text x="{_c(left - 6)}" '
            f'y="{_c(top + (k + 0.5) * cell + 4)}" text-anchor="end">{_e(name[:24])}</text>'
        )
    out.append(
        f'<text x="{_c(left + size / 2)}" y="{_c(top + size + 40)}" font-weight="bold">'
        f"{_e(x_label)}</text>"
    )
    out.append("</g>" + _rotated(y_label, top + size / 2))
    return "".join([*out, "</svg>"])


def hbars(
    ident: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    errors: Sequence[float | None],
    *,
    x_label: str,
) -> str:
    """Horizontal bars from zero, top to bottom in the given order, with ± error whiskers and
    the value written at the right."""
    vals = [float(v) if v is not None and math.isfinite(v) else 0.0 for v in values]
    errs = [abs(float(e)) if e is not None and math.isfinite(e) else 0.0 for e in errors]
    left = 16 + 7 * min(max((len(str(c)) for c in labels), default=1), 30)
    row, top = 24, 20
    height = top + row * len(vals) + 58
    ends = [0.0] + [v - e for v, e in zip(vals, errs, strict=True)]
    ends += [v + e for v, e in zip(vals, errs, strict=True)]
    frame = _Frame(
        left, top - 6, WIDTH - 130, height - 52, _ticks(min(ends), max(ends)), [0.0, 1.0]
    )
    out = _open(ident, title, desc, WIDTH, height) + frame.axes(x_label, "", y_ticks=False)
    zero = frame.x(0.0)
    for i, (name, v, e) in enumerate(zip(labels, vals, errs, strict=True)):
        mid = top + (i + 0.5) * row
        x0, x1 = sorted((zero, frame.x(v)))
        lo, hi = frame.x(v - e), frame.x(v + e)
        out.append(
            f'<text x="{left - 6}" y="{_c(mid + 4)}" text-anchor="end">{_e(str(name)[:30])}</text>'
            f'<rect x="{_c(x0)}" y="{_c(mid - 7)}" width="{_c(max(x1 - x0, 0.5))}" height="14" '
            f'fill="{_COLOURS[0] if v >= 0 else _COLOURS[1]}" fill-opacity="0.8"/>'
            f'<path d="M{_c(lo)} {_c(mid)}H{_c(hi)}M{_c(lo)} {_c(mid - 5)}V{_c(mid + 5)}'
            f'M{_c(hi)} {_c(mid - 5)}V{_c(mid + 5)}" stroke="{_INK}"/>'
            f'<text x="{_c(frame.right + 6)}" y="{_c(mid + 4)}">{_label(v)} ± {_label(e)}</text>'
        )
    out.append(
        f'<line x1="{_c(zero)}" x2="{_c(zero)}" y1="{_c(frame.top)}" y2="{_c(frame.bottom)}" '
        f'stroke="{_INK}"/>'
    )
    return "".join([*out, "</svg>"])
