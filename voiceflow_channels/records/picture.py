"""The picture of a call: its timeline drawn as one inline SVG (no script, no external
resource). Lanes for the caller (when they spoke), the assistant (each utterance played, the part
a clear cut drawn apart, the chime in its own colour) and the tools (each run, a failed one in
red); barge-ins, resumes and the end as lines across the lanes; a time axis in seconds.

Framework-free: legs (each its offset from the call's start and its events) in, SVG text out.
Every element carries a class (`speech`, `played`, `cut`, `chime`, `tool`, `barge-in`,
`resume`, `transfer`, `failure`, `end`, `tick`) and a `<title>` a browser shows on hover."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from .timeline import Event

WIDTH = 960
LEFT = 90  # the lanes' names
RIGHT = 20
LANE_H = 34
TOP = 10
LANES = (("caller", "Caller"), ("assistant", "Assistant"), ("tools", "Tools"))
LANE_OF = {"speech": "caller", "utterance": "assistant", "chime": "assistant", "tool": "tools"}
MARKS = {
    "barge_in": "barge-in",
    "resume": "resume",
    "transfer": "transfer",
    "failure": "failure",
    "end": "end",
}
# Tick spacings, seconds: the first that gives at most MAX_TICKS ticks.
STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)
MAX_TICKS = 12
STYLE = (
    ".lane-bg{fill:#f6f7f9}.lane-name{font:12px sans-serif;fill:#333}"
    ".speech{fill:#3b82f6}.played{fill:#16a34a}.cut{fill:#fca5a5;stroke:#dc2626;"
    "stroke-dasharray:3 2}.chime{fill:#f59e0b}.tool{fill:#8b5cf6}.tool.failed{fill:#dc2626}"
    ".barge-in{stroke:#dc2626;stroke-width:2}.resume{stroke:#0891b2;stroke-dasharray:4 3}"
    ".end{stroke:#111;stroke-width:2}.transfer{stroke:#4b5563;stroke-dasharray:6 2}"
    ".failure{stroke:#b91c1c;stroke-dasharray:2 2}"
    ".axis{stroke:#999}.tick{font:11px sans-serif;fill:#555;text-anchor:middle}"
)


def draw(legs: Sequence[tuple[int, Sequence[Event]]], total_ms: int | None = None) -> str:
    """The SVG of a call whose legs are (offset ms from the call's start, events); `total_ms`
    (default: the last event's end) is the time axis' length."""
    placed = [(offset + e.at_ms, e) for offset, events in legs for e in events]
    end_ms = max([at + e.ms + e.cut_ms for at, e in placed] + [total_ms or 0, 1000])
    scale = (WIDTH - LEFT - RIGHT) / end_ms
    axis_y = TOP + LANE_H * len(LANES) + 6
    height = axis_y + 24

    def x(ms: int) -> float:
        return round(LEFT + ms * scale, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="voiceflow-timeline" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="Timeline of the call">',
        f"<style>{STYLE}</style>",
    ]
    lane_y = {}
    for i, (lane, name) in enumerate(LANES):
        y = TOP + i * LANE_H
        lane_y[lane] = y
        parts.append(
            f'<g class="lane" data-lane="{lane}"><rect class="lane-bg" x="{LEFT}" y="{y}" '
            f'width="{WIDTH - LEFT - RIGHT}" height="{LANE_H - 4}"/>'
            f'<text class="lane-name" x="6" y="{y + LANE_H // 2 + 2}">{name}</text></g>'
        )
    for at, event in placed:
        bar_lane = LANE_OF.get(event.kind)
        if bar_lane is not None:
            parts.extend(_bar(event, x(at), x(at + event.ms), lane_y[bar_lane], scale))
        elif event.kind in MARKS:
            what = MARKS[event.kind]
            title = escape(f"{what} {event.label}".strip() + f" at {at / 1000:.1f} s")
            parts.append(
                f'<line class="{what}" x1="{x(at)}" y1="{TOP - 4}" x2="{x(at)}" '
                f'y2="{axis_y}"><title>{title}</title></line>'
            )
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{axis_y}" x2="{x(end_ms)}" y2="{axis_y}"/>')
    step = next((s for s in STEPS_S if end_ms / 1000 / s <= MAX_TICKS), STEPS_S[-1])
    for second in range(0, end_ms // 1000 + 1, step):
        parts.append(
            f'<text class="tick" x="{x(second * 1000)}" y="{axis_y + 16}">{second} s</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bar(event: Event, x0: float, x1: float, y: int, scale: float) -> list[str]:
    h = LANE_H - 12
    top = y + 4
    label = f" {event.label}" if event.label else ""
    if event.kind == "speech":
        classes, what = "speech", "caller speaking"
    elif event.kind == "chime":
        classes, what = "chime", "chime"
    elif event.kind == "tool":
        classes = "tool failed" if event.failed else "tool"
        what = "tool failed:" if event.failed else "tool:"
    else:
        classes, what = "played", "played"
    title = escape(f"{what}{label} {event.ms} ms")
    width = max(x1 - x0, 1.0)
    bars = [
        f'<rect class="{classes}" x="{x0}" y="{top}" width="{width:.1f}" height="{h}">'
        f"<title>{title}</title></rect>"
    ]
    if event.cut_ms:
        cut = max(round(event.cut_ms * scale, 1), 1.0)
        bars.append(
            f'<rect class="cut" x="{x0 + width:.1f}" y="{top}" width="{cut:.1f}" height="{h}">'
            f"<title>{escape(f'cut by a clear{label} {event.cut_ms} ms')}</title></rect>"
        )
    return bars
