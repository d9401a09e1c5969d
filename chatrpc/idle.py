"""Last-seen times of accounts, written cheaply, and idle accounts' expiry.

An account is seen when it logs in, when one of its tokens authenticates a
call, and while it has a live session. Each is only noted in memory
(:meth:`LastSeen.seen`); a background task writes what was noted in one store
operation, at most once per :func:`touch_interval` per account, and with
``--idle-account-ttl`` removes idle accounts in bounded steps (see
:meth:`chatrpc.store.AdminStore.expire_idle_accounts` for which may go).

Each round writes what was noted before it sweeps, so only a login made while
the sweep runs can meet its account expiring under it: that token then stops
working, and the next Login claims the (password-less) name afresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from .errors import ChatError
from .store import Store

log = logging.getLogger(__name__)

#: The longest time between two writes of one account's last-seen time (seconds).
MAX_TOUCH_S = 300.0
#: Accounts written, or looked at for expiry, per store operation.
STEP = 500


def touch_interval(ttl_s: float) -> float:
    """How often last-seen times are written, and idle accounts swept: five
    minutes, or a quarter of the TTL if shorter (at least 50 ms), so an account
    in use is never as old as the TTL in the store."""
    return MAX_TOUCH_S if not ttl_s else min(max(ttl_s / 4, 0.05), MAX_TOUCH_S)


class LastSeen:
    """Which accounts were seen since their last-seen time was last written.

    :meth:`seen` costs a dictionary lookup: an account is noted again only once
    its previous note is ``interval_s`` old.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._noted: dict[str, float] = {}
        self._pending: set[str] = set()

    def seen(self, user: str) -> None:
        now = time.monotonic()
        if now - self._noted.get(user, -self.interval_s) >= self.interval_s:
            self._noted[user] = now
            self._pending.add(user)

    def take(self) -> list[str]:
        """The accounts noted since the last call (and forgets old notes)."""
        pending, self._pending = sorted(self._pending), set()
        cutoff = time.monotonic() - self.interval_s
        self._noted = {u: t for u, t in self._noted.items() if t > cutoff}
        return pending


async def write_seen(store: Store, last_seen: LastSeen, live: Iterable[str]) -> None:
    """Notes the users with live sessions, then writes every note, in steps."""
    for user in live:
        last_seen.seen(user)
    pending = last_seen.take()
    now_ms = int(time.time() * 1000)
    for i in range(0, len(pending), STEP):
        await store.touch_accounts(pending[i : i + STEP], now_ms)


async def expire_once(store: Store, ttl_s: float, *, step: int = STEP) -> list[str]:
    """One sweep over every account idle for ``ttl_s``; returns the names freed."""
    seen_before = int((time.time() - ttl_s) * 1000)
    after: str | None = ""
    removed: list[str] = []
    while after is not None:
        gone, after = await store.expire_idle_accounts(seen_before, limit=step, after=after)
        removed.extend(gone)
        await asyncio.sleep(0)  # sessions go first between steps
    return removed


async def keep_forever(
    store: Store,
    last_seen: LastSeen,
    live: Callable[[], Iterable[str]],
    ttl_s: float,
    on_sweep: Callable[[list[str]], None] | None = None,
) -> None:
    """Every :func:`touch_interval`: writes last-seen times (``live()`` gives the
    users with sessions here) and, with a TTL, expires idle accounts. A failure
    is logged and the next round tries again. ``on_sweep`` gets the names each
    sweep freed."""
    while True:
        await asyncio.sleep(last_seen.interval_s)
        removed: list[str] = []
        try:
            await write_seen(store, last_seen, live())
            if ttl_s:
                removed = await expire_once(store, ttl_s)
        except ChatError as exc:
            log.warning("idle accounts: %s; retrying later", exc.message)
        except Exception:
            log.exception("idle accounts failed")
        else:
            if removed:
                log.info("%d idle accounts expired, their names are free", len(removed))
        if on_sweep is not None:
            on_sweep(removed)
