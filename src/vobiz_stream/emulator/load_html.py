"""A load's report as one self-contained HTML file: the summary, the gates, and two plots in
inline SVG (calls up over time; first audio and response latency over time). No dependency,
no script, nothing fetched: it opens anywhere, and CI can keep it as an artifact. No I/O.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from vobiz_stream.emulator.load_figures import CallOutcome, LoadSummary
from vobiz_stream.emulator.load_gates import GateResult

__all__ = ["MAX_POINTS", "calls_up", "load_report_html"]

MAX_POINTS = 5000
"""Points per plotted series at most (every n-th beyond): the file stays a few hundred KiB."""

_WIDTH, _HEIGHT, _LEFT, _BOTTOM, _TOP, _RIGHT = 760, 260, 60, 36, 24, 16


@dataclass(frozen=True, slots=True)
class _Series:
    label: str
    color: str
    points: Sequence[tuple[float, float]]
    line: bool
    """A step line (True) or dots."""


def calls_up(outcomes: Sequence[CallOutcome]) -> list[tuple[float, float]]:
    """How many calls were up over time: (seconds, calls) at each start and end."""
    changes = sorted(
        [(o.started_at, 1) for o in outcomes] + [(o.ended_at, -1) for o in outcomes],
        key=lambda change: (change[0], change[1]),
    )
    points: list[tuple[float, float]] = [(0.0, 0.0)]
    up = 0
    for at, step in changes:
        points.append((at, float(up)))
        up += step
        points.append((at, float(up)))
    return points


def _thin(points: Sequence[tuple[float, float]]) -> Sequence[tuple[float, float]]:
    step = -(-len(points) // MAX_POINTS)
    return points[::step] if step > 1 else points


def _ticks(top: float) -> list[float]:
    """About five round ticks from 0 to ``top``."""
    if top <= 0:
        return [0.0]
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return [round(i * step, 9) for i in range(math.ceil(top / step) + 1)]


def _chart(title: str, y_label: str, series: list[_Series], x_top: float) -> str:
    points = [point for s in series for point in s.points]
    x_label = "seconds into the load"
    y_top = max((y for _, y in points), default=1.0) or 1.0
    x_ticks, y_ticks = _ticks(x_top), _ticks(y_top)
    x_top, y_top = max(x_top, x_ticks[-1]), max(y_top, y_ticks[-1])
    inner_w, inner_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def x(value: float) -> float:
        return _LEFT + value / x_top * inner_w

    def y(value: float) -> float:
        return _TOP + inner_h - value / y_top * inner_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{_LEFT}" y="16" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{_LEFT}" y1="{y(0):.1f}" x2="{_WIDTH - _RIGHT}" y2="{y(0):.1f}" '
        'stroke="#444"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{y(0):.1f}" stroke="#444"/>',
    ]
    for tick in x_ticks:
        if tick <= x_top:
            parts.append(
                f'<text x="{x(tick):.1f}" y="{_HEIGHT - 20}" text-anchor="middle" '
                f'font-size="11">{tick:g}</text>'
            )
    for tick in y_ticks:
        if tick <= y_top:
            parts.append(
                f'<line x1="{_LEFT}" y1="{y(tick):.1f}" x2="{_WIDTH - _RIGHT}" '
                f'y2="{y(tick):.1f}" stroke="#ddd"/>'
                f'<text x="{_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                f'font-size="11">{tick:g}</text>'
            )
    parts.append(
        f'<text x="{_LEFT + inner_w / 2:.0f}" y="{_HEIGHT - 4}" text-anchor="middle" '
        f'font-size="12">{html.escape(x_label)}</text>'
        f'<text x="14" y="{_TOP + inner_h / 2:.0f}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {_TOP + inner_h / 2:.0f})">{html.escape(y_label)}</text>'
    )
    for index, s in enumerate(series):
        shown = _thin(s.points)
        if s.line:
            path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in shown)
            parts.append(f'<polyline fill="none" stroke="{s.color}" points="{path}"/>')
        else:
            parts.extend(
                f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="2" fill="{s.color}"/>'
                for px, py in shown
            )
        parts.append(
            f'<text x="{_WIDTH - _RIGHT - 4}" y="{_TOP + 14 * index + 10}" text-anchor="end" '
            f'font-size="12" fill="{s.color}">{html.escape(s.label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def load_report_html(summary: LoadSummary, gates: Sequence[GateResult] = ()) -> str:
    """The whole report: headline, gates, both plots, the summary's lines."""
    outcomes = summary.outcomes
    first_audio = [
        (o.started_at, o.first_audio * 1000) for o in outcomes if o.first_audio is not None
    ]
    responses = [(o.started_at, value * 1000) for o in outcomes for value in o.responses]
    latency = [_Series("first audio", "#1f77b4", first_audio, line=False)]
    if responses:
        latency.append(_Series("response", "#ff7f0e", responses, line=False))
    x_top = max((o.ended_at for o in outcomes), default=0.0) or 1.0
    failed_gates = [gate for gate in gates if not gate.passed]
    verdict = "FAIL" if failed_gates or summary.failed else "PASS"
    title = (
        f"vobiz-stream load: {summary.calls} calls, profile {summary.profile}, "
        f"{summary.completed} completed, {summary.failed} failed"
    )
    gate_rows = "".join(
        f"<tr><td>{'ok' if g.passed else '<b>FAIL</b>'}</td><td>{html.escape(g.name)}</td>"
        f"<td>{html.escape(g.measured)}</td><td>{html.escape(g.limit)}</td></tr>"
        for g in gates
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            "<style>body{font-family:sans-serif;margin:24px;max-width:800px}"
            "td,th{padding:2px 10px;text-align:left}pre{background:#f4f4f4;padding:8px;"
            "white-space:pre-wrap}</style></head><body>",
            f"<h1>{verdict}: {html.escape(title)}</h1>",
            "<h2>Gates</h2>",
            "<table><tr><th></th><th>gate</th><th>measured</th><th>limit</th></tr>"
            f"{gate_rows}</table>"
            if gates
            else "<p>No gates were set.</p>",
            _chart(
                "Calls up over time",
                "calls",
                [_Series("calls up", "#2ca02c", calls_up(outcomes), line=True)],
                x_top,
            ),
            _chart("Latency of the calls started over time", "milliseconds", latency, x_top),
            "<h2>Summary</h2>",
            f"<pre>{html.escape(chr(10).join(summary.lines()))}</pre>",
            "</body></html>",
        ]
    )
