"""What the server counts while it works, kept as plain numbers.

The session core, the hub and the adapters add to one :class:`Stats`; nothing
here knows Prometheus (chatrpc.metrics exports these at scrape time). Counting
is per batch wherever a batch exists: fan-out never pays per delivery.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field


class Histogram:
    """Counts of observations at or below each bound (and above the last)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or below it), ending with ``+Inf``."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        return out


@dataclass
class Stats:
    """One server's counters (see the module docstring)."""

    #: Client events received, by kind (join, leave, send...).
    received: Counter[str] = field(default_factory=Counter)
    #: Messages stored by this server's sessions (retried sends not counted again).
    committed: int = 0
    #: Messages fanned out to this server's sessions (also those stored elsewhere).
    fanned_out: int = 0
    #: Events written to clients, and the writes that carried them.
    deliveries: int = 0
    writes: int = 0
    #: Frames on the wire (a batch frame carries several events).
    frames: int = 0
    #: Events per write: how deep a session's queue was when its writer drained it.
    write_batch: Histogram = field(
        default_factory=lambda: Histogram((1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
    )
    #: Sessions ended, by reason (done, slow consumer, revoked, shutdown...).
    ended: Counter[str] = field(default_factory=Counter)
    #: Sends and joins refused by the rate limit.
    rate_limited: int = 0
    #: Logins by outcome: created, ok, or the refusal's code.
    logins: Counter[str] = field(default_factory=Counter)
    #: Calls by (method, status code), every transport.
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Seconds a batch of appends took in the store.
    append_seconds: Histogram = field(
        default_factory=lambda: Histogram(
            (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
        )
    )
