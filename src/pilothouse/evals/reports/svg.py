"""Tiny inline SVG charts (no JavaScript, no external assets): bars with CI whiskers,
and a forest plot of paired differences."""

from __future__ import annotations

from html import escape

ROW = 26
LABEL_W = 260
PLOT_W = 380
PAD = 12


def _frame(height: int, body: list[str], title: str) -> str:
    width = LABEL_W + PLOT_W + 2 * PAD + 60
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" class="chart"><title>{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _x(value: float, lo: float, hi: float) -> float:
    span = hi - lo or 1.0
    return LABEL_W + PAD + (min(max(value, lo), hi) - lo) / span * PLOT_W


def bars(rows: list[tuple[str, float, float, float]], title: str) -> str:
    """Horizontal bars on [0, 1]: (label, mean, ci low, ci high) per row."""
    height = ROW * len(rows) + 2 * PAD + 16
    body = [_axis(0.0, 1.0, height, ticks=(0.0, 0.25, 0.5, 0.75, 1.0))]
    for i, (label, mean, low, high) in enumerate(rows):
        y = PAD + i * ROW
        mid = y + ROW / 2
        x0, xm = _x(0, 0, 1), _x(mean, 0, 1)
        body += [
            _label(mid, label),
            f'<rect x="{x0:.1f}" y="{y + 5}" width="{max(xm - x0, 0.5):.1f}" height="{ROW - 10}" '
            f'class="bar"><title>{escape(label)}: {mean:.3f} [{low:.3f}, {high:.3f}]</title>'
            "</rect>",
            _whisker(_x(low, 0, 1), _x(high, 0, 1), mid),
            _value(mid, f"{mean:.2f}"),
        ]
    return _frame(height, body, title)


def forest(rows: list[tuple[str, float, float, float, bool]], title: str) -> str:
    """Paired differences with CIs around zero: (label, diff, low, high, significant)."""
    extent = max([0.1, *(abs(v) for _, d, lo, hi, _s in rows for v in (d, lo, hi))])
    lo, hi = -extent, extent
    height = ROW * len(rows) + 2 * PAD + 16
    body = [_axis(lo, hi, height, ticks=(lo, lo / 2, 0.0, hi / 2, hi))]
    zero = _x(0.0, lo, hi)
    body.append(
        f'<line x1="{zero:.1f}" y1="{PAD}" x2="{zero:.1f}" y2="{height - 20}" class="zero"/>'
    )
    for i, (label, diff, low, high, significant) in enumerate(rows):
        mid = PAD + i * ROW + ROW / 2
        cls = "sig" if significant else "ns"
        body += [
            _label(mid, label),
            _whisker(_x(low, lo, hi), _x(high, lo, hi), mid),
            f'<circle cx="{_x(diff, lo, hi):.1f}" cy="{mid:.1f}" r="5" class="{cls}">'
            f"<title>{escape(label)}: {diff:+.3f} [{low:+.3f}, {high:+.3f}]</title></circle>",
            _value(mid, f"{diff:+.2f}"),
        ]
    return _frame(height, body, title)


def _label(y: float, text: str) -> str:
    return (
        f'<text x="{LABEL_W}" y="{y + 4:.1f}" text-anchor="end" class="lbl">{escape(text)}</text>'
    )


def _value(y: float, text: str) -> str:
    x = LABEL_W + PLOT_W + 2 * PAD
    return f'<text x="{x}" y="{y + 4:.1f}" class="val">{escape(text)}</text>'


def _whisker(x1: float, x2: float, y: float) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" class="ci"/>'
        f'<line x1="{x1:.1f}" y1="{y - 5:.1f}" x2="{x1:.1f}" y2="{y + 5:.1f}" class="ci"/>'
        f'<line x1="{x2:.1f}" y1="{y - 5:.1f}" x2="{x2:.1f}" y2="{y + 5:.1f}" class="ci"/>'
    )


def _axis(lo: float, hi: float, height: int, ticks: tuple[float, ...]) -> str:
    base = height - 20
    x1, x2 = _x(lo, lo, hi), _x(hi, lo, hi)
    parts = [f'<line x1="{x1:.1f}" y1="{base}" x2="{x2:.1f}" y2="{base}" class="axis"/>']
    for tick in ticks:
        x = _x(tick, lo, hi)
        parts.append(f'<line x1="{x:.1f}" y1="{PAD}" x2="{x:.1f}" y2="{base}" class="grid"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{base + 14}" text-anchor="middle" class="tick">{tick:g}</text>'
        )
    return "".join(parts)
