"""Token buckets: how often a user may send, how often an address may try to log in.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second;
an action that costs more tokens than the bucket holds is refused with how long
to wait. :class:`Buckets` keeps one bucket per key (a user, an IP address) and
stays bounded: a bucket that refilled completely is the same as a new one, so it
is dropped, and past ``max_keys`` the least recently used are dropped too.

No gRPC here: callers turn a refusal into a :class:`chatrpc.errors.ChatError`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


def retry_hint(seconds: float) -> str:
    """``"0.3 s"``: a wait rounded up to a tenth of a second, never ``0.0``."""
    return f"{max(0.1, math.ceil(seconds * 10) / 10):.1f} s"


class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate`` a second (see the module docstring)."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, cost: float, now: float) -> float:
        """Takes ``cost`` tokens and returns 0, or takes none and returns the wait in seconds."""
        self._refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate

    def charge(self, cost: float, now: float) -> None:
        """Takes ``cost`` tokens even if that leaves the bucket in debt (at most one burst)."""
        self._refill(now)
        self.tokens = max(-self.burst, self.tokens - cost)

    def debt(self, now: float) -> float:
        """Seconds until the bucket is out of debt (0 if it is not in debt)."""
        self._refill(now)
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


class Buckets:
    """One :class:`TokenBucket` per key, bounded in number; ``rate <= 0`` allows everything."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.max_keys = max(1, max_keys)
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def _prune(self, now: float) -> None:
        """Drops full buckets (nothing lost), then the least recently used past the bound."""
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
        while len(self._buckets) >= self.max_keys:
            self._buckets.popitem(last=False)

    def take(self, key: str, cost: float = 1.0) -> float:
        """Takes ``cost`` from ``key``'s bucket: 0 if allowed, else the seconds to wait."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        return self._bucket(key, now).take(cost, now)

    def charge(self, key: str, cost: float) -> None:
        """Takes ``cost`` from ``key``'s bucket, going into debt if needed."""
        if self.enabled:
            now = self.clock()
            self._bucket(key, now).charge(cost, now)

    def debt(self, key: str) -> float:
        """Seconds until ``key``'s bucket is out of the debt :meth:`charge` left (0: none)."""
        if not self.enabled:
            return 0.0
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.debt(self.clock())
