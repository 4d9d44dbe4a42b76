"""What the benchmarks' tables share: call numbering across runs, how a server is named, and how
a ratio of costs is set against its goal."""

from __future__ import annotations

from collections.abc import Iterator

from benchmarks.servers import Spec

# A server busier than this over a real-time round was not keeping up with the calls.
SATURATED = 0.9


def numbers(step: int) -> Iterator[int]:
    """Call numbers for successive runs, so no two calls to one server share a callSid."""
    n = 1
    while True:
        yield n
        n += step


def server_name(spec: Spec) -> str:
    return f"{spec.key}. {spec.title}"


def cost_line(name: str, ratio: float, goal: float | None, note: str) -> str:
    """A ratio of costs, met when at most `goal`."""
    line = f"{name:8}{ratio:>10.2f}x"
    if goal is not None:
        line += f"   goal <= {goal}x: {'met' if ratio <= goal else 'NOT met'}"
    return f"{line}   {note}"


def lost_frames(
    title: str, sent: dict[str, int], ended: dict[str, tuple[float, int]]
) -> str | None:
    """What is wrong when a server handled fewer media frames than a call sent (`ended`: each
    call's end line, its arrival and frame count), or None when none was lost."""
    lost = [(sid, n, ended[sid][1]) for sid, n in sent.items() if ended[sid][1] != n]
    if not lost:
        return None
    sid, n, got = lost[0]
    return f"{title}: {len(lost)} calls lost frames, e.g. {sid}: sent {n}, got {got}"
