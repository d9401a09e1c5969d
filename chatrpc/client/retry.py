"""When a client tries again: capped exponential backoff with full jitter, and a
pause that ends as soon as a lost connection is back.

Why this shape (a reconnect storm after a server restart is the case it is for):

* **Full jitter** (a delay drawn from ``[0, d]``, not ``d`` +-50%): clients that
  lost the server at the same instant do not come back in waves, and the mean
  wait is half the capped delay.
* **The pause ends when the connection is back.** While a server is down the
  delay grows (``initial`` doubled per failed attempt, up to ``cap``), so a client
  whose server was away for a few seconds would sleep seconds more after the
  server came back. The channel itself reconnects in the background (grpc core,
  with its own backoff of at most 1 s: see
  :data:`~chatrpc.client.connection.CHANNEL_OPTIONS`), which costs a TCP connect
  and no Python; once it is READY the server answers, and the pause ends.
  Clients come back spread by grpc's own reconnect jitter and by the time each
  one's connection takes, not all at once.
* **A healthy connection keeps the full pause**: a server that refuses a session
  on a working connection (too many sessions, a slow consumer cut off) is asked
  again only after the backoff, so refusals do not turn into a busy loop.
* **A busy server's hint replaces the backoff**: a server in a storm refuses new
  sessions with UNAVAILABLE "server busy ... retry in N s" (N: how long it needs
  for the clients waiting); the client waits :func:`busy_delay` (N with jitter,
  uniform in ``[N/2, 3N/2]``: the server's pace on average, spread so the
  refused do not come back together).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import grpc


@dataclass(slots=True)
class Backoff:
    """Capped exponential delays (seconds): ``initial`` doubled per attempt up to ``cap``."""

    initial: float
    cap: float

    def delay(self, attempt: int) -> float:
        """The delay before ``attempt`` (0 first), without jitter."""
        return min(self.cap, self.initial * 2.0 ** min(attempt, 64))

    def jittered(self, attempt: int) -> float:
        """The delay before ``attempt`` with full jitter: uniform in ``[0, delay]``."""
        return random.uniform(0.0, self.delay(attempt))


def busy_delay(hint: float) -> float:
    """The wait after a refusal that named one (``hint`` seconds), with jitter."""
    return random.uniform(0.5 * hint, 1.5 * hint)


async def pause_before_retry(ch: grpc.aio.Channel, delay: float) -> bool:
    """Waits ``delay`` seconds, or less if ``ch``'s connection was lost and is back.

    Returns whether the pause ended early because the connection came back. A
    channel that stays READY throughout waits the whole delay.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + delay
    was_down = False
    while True:
        state = ch.get_state(try_to_connect=True)
        if state is grpc.ChannelConnectivity.READY and was_down:
            return True
        if state is not grpc.ChannelConnectivity.READY:
            was_down = True
        left = deadline - loop.time()
        if left <= 0:
            return False
        try:
            async with asyncio.timeout(left):
                await ch.wait_for_state_change(state)
        except TimeoutError:
            return False
