"""Background pruning of empty rooms, in bounded steps.

A room with no members and no stored messages left (retention may have dropped
them) disappears once it has seen no activity for the server's
``--empty-room-ttl``. Each step looks at a bounded number of rooms in one store
operation, and the event loop serves sessions between steps, so pruning a
million abandoned rooms never stalls the chat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .errors import ChatError
from .store import Store

log = logging.getLogger(__name__)

#: Rooms looked at per step (one store operation).
PRUNE_STEP = 500
#: The longest pause between two sweeps, in seconds.
MAX_PERIOD_S = 300.0


def sweep_period(ttl_s: float) -> float:
    """How often rooms are swept: a quarter of the TTL, between 50 ms and 5 minutes,
    so a room goes at most a quarter of its TTL late."""
    return min(max(ttl_s / 4, 0.05), MAX_PERIOD_S)


async def prune_once(store: Store, ttl_s: float, *, step: int = PRUNE_STEP) -> list[str]:
    """One sweep over every room idle for ``ttl_s``; returns the names removed."""
    idle_before = int((time.time() - ttl_s) * 1000)
    start: int | None = 0
    removed: list[str] = []
    while start is not None:
        gone, start = await store.prune_rooms(idle_before, limit=step, from_ms=start)
        for room in gone:  # a room made again under its name starts afresh
            await store.forget_room(room)
        removed.extend(gone)
        await asyncio.sleep(0)  # sessions go first between steps
    return removed


async def prune_forever(
    store: Store, ttl_s: float, on_sweep: Callable[[list[str]], None] | None = None
) -> None:
    """Sweeps every :func:`sweep_period` until cancelled; a failed sweep is logged
    and the next one tries again. ``on_sweep`` gets the names each sweep removed."""
    while True:
        removed: list[str] = []
        await asyncio.sleep(sweep_period(ttl_s))
        try:
            removed = await prune_once(store, ttl_s)
        except ChatError as exc:
            log.warning("pruning empty rooms failed, retrying later: %s", exc.message)
        except Exception:
            log.exception("pruning empty rooms failed")
        else:
            if removed:
                log.info("pruned %d empty rooms", len(removed))
        if on_sweep is not None:
            on_sweep(removed)
