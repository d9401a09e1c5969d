"""Presence waits a moment so that a burst of it leaves in one write.

When a room's members all come back at once (a server restart, a network blip),
each join is announced to every member online: N joins cost N^2/2 presence
events, and a writer that woke for each wrote each alone. Measured in a
reconnect storm of library clients in three rooms of 100, those writes were
most of the server's CPU per reconnect. A writer holding only presence events
now waits up to :data:`PRESENCE_LINGER_S` for more (or a batch frame's worth),
so they go out together. Presence is live-only and never ordered against
messages; anything else queued ends the wait at once.
"""

from __future__ import annotations

import asyncio
import contextlib

from ..subscriber import Outgoing, Presence, Session

#: The longest a writer holding only presence events waits for more (seconds).
PRESENCE_LINGER_S = 0.05

#: Events past which a writer stops waiting (a batch frame's worth).
LINGER_EVENTS = 64


def _only_presence(items: list[Outgoing]) -> bool:
    return all(isinstance(item, Presence) for item in items)


async def next_write(session: Session) -> list[Outgoing]:
    """The session's next batch (see :meth:`Session.next_batch`), gathered for a
    moment when it is presence alone."""
    items = await session.next_batch()
    if not _only_presence(items):
        return items
    # next_batch takes items off the queue only after its wait: a timeout that
    # cancels the wait loses nothing.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(PRESENCE_LINGER_S):
            while len(items) < LINGER_EVENTS and _only_presence(items):
                items.extend(await session.next_batch())
    return items
