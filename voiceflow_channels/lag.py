"""Inbound lag of one call: how late each media frame arrived, in constant memory.

Framework-free. Twilio stamps each media frame with `media.timestamp` (ms since the stream
started); a frame that arrives exactly on time has the smallest arrival - timestamp of the call
(its best frame). A frame's lag is how much later than that it arrived: network jitter, and the
server falling behind. Kept as counts in fixed buckets, so a p99 costs no memory per frame.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds (ms) of the buckets; a p99 is reported as the bound of its bucket.
BOUNDS_MS = (1, 2, 5, 10, 20, 30, 40, 60, 80, 100, 150, 200, 300, 500, 1000, 2000, 5000)


class InboundLag:
    """Feed it each media frame's timestamp and arrival time (both ms); ask for a quantile."""

    __slots__ = ("best", "counts", "frames")

    def __init__(self) -> None:
        self.best: float | None = None
        self.counts = [0] * (len(BOUNDS_MS) + 1)
        self.frames = 0

    def record(self, timestamp_ms: int, arrival_ms: float) -> None:
        offset = arrival_ms - timestamp_ms
        best = self.best
        if best is None or offset < best:
            self.best = best = offset
        self.counts[bisect_left(BOUNDS_MS, offset - best)] += 1
        self.frames += 1

    def quantile(self, q: float) -> int | None:
        """The bucket bound under which a share `q` of the frames' lag falls (ms); None with no
        frames; past the last bound, that bound doubled."""
        if not self.frames:
            return None
        rank = q * self.frames
        seen = 0
        for i, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return BOUNDS_MS[i] if i < len(BOUNDS_MS) else 2 * BOUNDS_MS[-1]
        return 2 * BOUNDS_MS[-1]
