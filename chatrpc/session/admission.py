"""Admission control: a bound on sessions being opened at once.

A reconnect storm (every client of a restarted server back within seconds)
asks for more work than the server can do. Taken all at once, the calls queue
in grpc core past the clients' and grpc's own deadlines, are cancelled after
the server spent work on them, come back, and the storm collapses (see
docs/BENCHMARKS.md). So past ``--max-opening`` sessions being opened, a new
session is refused before anything is read for it (no token lookup, no store)
with UNAVAILABLE "server busy ... retry in N s". The client library waits
about N seconds (with jitter) instead of its own backoff.

A session is *opening* from its call until it has handled the events that
came with it (a reconnect's joins and resumes: its processor found its inbox
empty after them). One that sends nothing is opening for
:data:`OPENING_HOLD_S`; one whose events wait (the server is behind) for up
to :data:`BUSY_HOLD_S`: those are what a storm queues, and what the bound
counts.

N is how long the server needs for who is waiting: the sessions opening plus
the callers refused and not admitted since (each a client that will come
back, counted once however often it was refused), over the rate sessions
finished opening in the last :data:`WINDOW_S` seconds; between 1 and
:data:`MAX_RETRY_S` seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

from ..errors import ChatError, Code

#: How long a session that sent no event counts as opening.
OPENING_HOLD_S = 1.0
#: The longest a session whose events are being handled counts as opening.
BUSY_HOLD_S = 30.0
#: The window over which the open rate and the refusals are counted, in seconds.
WINDOW_S = 5.0
#: The longest wait a refusal names.
MAX_RETRY_S = 30
#: How long a refused caller counts as waiting, unless it is admitted before (the
#: longest a client waits after a hint, and some).
WAITING_S = 1.5 * MAX_RETRY_S + 5


class Admission:
    """Counts sessions being opened; refuses past ``limit`` (0: no limit)."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.opening = 0
        self.refused = 0
        self._clock = clock
        self._opened: deque[float] = deque()
        #: Who was refused and not admitted since, by their last refusal (oldest first).
        self._waiting: dict[str, float] = {}

    def enter(self, who: str = "") -> Slot:
        """A slot for a session to open, or ChatError(UNAVAILABLE, "... retry in N s").
        ``who`` names the caller (its connection), so that a client refused again
        is counted once among those waiting."""
        if self.limit and self.opening >= self.limit:
            now = self._clock()
            self.refused += 1
            key = who or f"#{self.refused}"
            self._waiting.pop(key, None)
            self._waiting[key] = now
            raise ChatError(
                Code.UNAVAILABLE,
                f"server busy: {self.opening} sessions are being opened;"
                f" retry in {self.retry_after(now)} s",
            )
        self._waiting.pop(who, None)
        self.opening += 1
        return Slot(self)

    def _released(self) -> None:
        self.opening -= 1
        self._opened.append(self._clock())

    def retry_after(self, now: float) -> int:
        """Seconds until the server has opened the sessions waiting now (see the
        module docstring)."""
        while self._opened and self._opened[0] < now - WINDOW_S:
            self._opened.popleft()
        for key, when in list(self._waiting.items()):
            if when >= now - WAITING_S:
                break
            del self._waiting[key]
        rate = max(len(self._opened) / WINDOW_S, 1.0)
        waiting = self.opening + len(self._waiting)
        return max(1, min(MAX_RETRY_S, math.ceil(waiting / rate)))


class Slot:
    """One session's place among those opening: call it once the session has
    opened or ended (again: nothing); :meth:`busy` when its first event arrives."""

    __slots__ = ("_admission", "_timer", "released")

    def __init__(self, admission: Admission | None) -> None:
        self._admission = admission
        self.released = admission is None
        self._timer: asyncio.TimerHandle | None = None
        if admission is not None:
            self._timer = asyncio.get_running_loop().call_later(OPENING_HOLD_S, self)

    def busy(self) -> None:
        """The session has events to handle: it stays opening until they are (or
        :data:`BUSY_HOLD_S`)."""
        if self._timer is not None and not self.released:
            self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(BUSY_HOLD_S, self)

    def __call__(self) -> None:
        if self.released:
            return
        self.released = True
        if self._timer is not None:
            self._timer.cancel()
        assert self._admission is not None
        self._admission._released()


def no_slot() -> Slot:
    """The slot of a session that was never counted."""
    return Slot(None)
