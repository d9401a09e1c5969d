"""Presence waits a moment so that a burst of it leaves in one write; so do join answers.

When a room's members all come back at once (a server restart, a network blip),
each join is announced to every member online: N joins cost N^2/2 presence
events, and a writer that woke for each wrote each alone. Measured in a
reconnect storm of library clients in three rooms of 100, those writes were
most of the server's CPU per reconnect. A writer holding only presence events
now waits up to :data:`PRESENCE_LINGER_S` for more (or a batch frame's worth),
so they go out together. Presence is live-only and never ordered against
messages; anything else queued ends the wait at once.

While rooms refill after a restart, presence keeps coming for as long as the
storm lasts: a writer that waited 50 ms each time still wrote ~20 times a
second per session. So presence-only writes of a session are also paced
(:class:`PresencePace`): after one, the next waits until the session's
interval has passed. The interval starts at :data:`PRESENCE_INTERVAL_S` and
doubles (up to :data:`PRESENCE_MAX_INTERVAL_S`) while presence comes in
bursts: when the last presence-only write carried several events and more
arrived before its interval ran out. Otherwise it falls back, so a user
coming and going is announced within half a second each time. A lone arrival
is still seen within 50 ms; a storm costs each session a write every four
seconds.

A reconnecting client sends the joins of all its rooms at once, and they arrive
within about half a millisecond of each other; answered one by one, each was a
write of its own, most of what a reconnect cost the server beyond grpcio's own
work. A write that ends with a join's answer waits :data:`JOIN_LINGER_S` for
what comes next, so the answers leave together (one write instead of three in
bench/reconnect_cost.py).
"""

from __future__ import annotations

import asyncio
import contextlib

from ..subscriber import Joined, Outgoing, Presence, Session

#: The longest a writer holding only presence events waits for more (seconds).
PRESENCE_LINGER_S = 0.05

#: The shortest time between two presence-only writes of a session (seconds).
PRESENCE_INTERVAL_S = 0.5
#: How far that grows while presence keeps coming (seconds).
PRESENCE_MAX_INTERVAL_S = 4.0

#: Events past which a writer stops waiting (a batch frame's worth).
LINGER_EVENTS = 64

#: How long a join's answer waits for those of the joins sent with it (seconds).
JOIN_LINGER_S = 0.001


class PresencePace:
    """When a session's writer last wrote presence alone (its loop's clock), and
    how long it waits after that for the next (see the module docstring)."""

    __slots__ = ("interval", "last", "size")

    def __init__(self) -> None:
        self.last = -PRESENCE_MAX_INTERVAL_S
        self.interval = PRESENCE_INTERVAL_S
        #: How many events the last presence-only write carried.
        self.size = 0

    def wait(self, now: float) -> float:
        """How long presence that arrived at ``now`` waits for more."""
        if self.size > 1 and now - self.last < self.interval:  # a burst: pace it further
            self.interval = min(self.interval * 2, PRESENCE_MAX_INTERVAL_S)
        else:
            self.interval = PRESENCE_INTERVAL_S
        return max(PRESENCE_LINGER_S, self.last + self.interval - now)

    def wrote(self, now: float, size: int) -> None:
        """A presence-only write of ``size`` events went out at ``now``."""
        self.last, self.size = now, size


def _only_presence(items: list[Outgoing]) -> bool:
    return all(isinstance(item, Presence) for item in items)


async def next_write(session: Session, pace: PresencePace | None = None) -> list[Outgoing]:
    """The session's next batch (see :meth:`Session.next_batch`), gathered for a
    moment when it is presence alone: :data:`PRESENCE_LINGER_S`, or with ``pace``
    until its interval after its last presence-only write has passed; and for
    :data:`JOIN_LINGER_S` when it ends with a join's answer."""
    items = await session.next_batch()
    if isinstance(items[-1], Joined):
        await asyncio.sleep(JOIN_LINGER_S)
        items.extend(session.ready())
    if not _only_presence(items):
        return items
    loop = asyncio.get_running_loop()
    wait = PRESENCE_LINGER_S if pace is None else pace.wait(loop.time())
    # next_batch takes items off the queue only after its wait: a timeout that
    # cancels the wait loses nothing.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            while len(items) < LINGER_EVENTS and _only_presence(items):
                items.extend(await session.next_batch())
    if pace is not None and _only_presence(items):
        pace.wrote(loop.time(), len(items))
    return items
