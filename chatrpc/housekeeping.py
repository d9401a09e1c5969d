"""The server's background work: pruning empty rooms, and accounts' last-seen
times with the expiry of idle ones (chatrpc.pruning, chatrpc.idle).

Each runs as its own task in bounded steps; :meth:`Housekeeping.stop` cancels
and awaits them. Tests wait on a sweep with :meth:`Housekeeping.next_sweep`
and :meth:`Housekeeping.next_account_sweep` rather than sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from .idle import LastSeen, keep_forever
from .pruning import prune_forever
from .store import Store


class Housekeeping:
    """The background tasks of one server.

    Args:
        empty_room_ttl_s: ``--empty-room-ttl`` (0: rooms are never pruned).
        idle_account_ttl_s: ``--idle-account-ttl`` (0: accounts never expire;
            last-seen times are written all the same).
        live: the users with a session on this server now.
    """

    def __init__(
        self,
        store: Store,
        last_seen: LastSeen,
        live: Callable[[], Iterable[str]],
        *,
        empty_room_ttl_s: float,
        idle_account_ttl_s: float,
    ) -> None:
        self.store = store
        self.last_seen = last_seen
        self._live = live
        self._room_ttl = empty_room_ttl_s
        self._account_ttl = idle_account_ttl_s
        self._tasks: list[asyncio.Task[None]] = []
        #: Rooms pruned and accounts expired so far; events set after each sweep.
        self.rooms_pruned = 0
        self.accounts_expired = 0
        self._swept = asyncio.Event()
        self._accounts_swept = asyncio.Event()

    def start(self) -> None:
        if self._room_ttl:
            pruner = prune_forever(self.store, self._room_ttl, self._on_sweep)
            self._tasks.append(asyncio.create_task(pruner, name="chatrpc-pruner"))
        keeper = keep_forever(
            self.store, self.last_seen, self._live, self._account_ttl, self._on_account_sweep
        )
        self._tasks.append(asyncio.create_task(keeper, name="chatrpc-idle-accounts"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_sweep(self, removed: list[str]) -> None:
        self.rooms_pruned += len(removed)
        self._swept.set()

    def _on_account_sweep(self, removed: list[str]) -> None:
        self.accounts_expired += len(removed)
        self._accounts_swept.set()

    async def next_sweep(self) -> None:
        """Waits until the pruning of empty rooms completes its next sweep."""
        self._swept.clear()
        await self._swept.wait()

    async def next_account_sweep(self) -> None:
        """Waits until last-seen times are next written (and idle accounts swept)."""
        self._accounts_swept.clear()
        await self._accounts_swept.wait()
