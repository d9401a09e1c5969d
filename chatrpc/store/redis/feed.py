"""The watch feed: messages other servers commit, read with XREAD, notified in order.

Each store runs one reader task doing XREAD BLOCK over the streams of the
watched rooms (from the last seq notified), the inboxes of watched users and
the presence stream. Local appends are notified by the writer as soon as their
script returns; both paths go through :meth:`Feed.deliver`, which keeps the
newest seq notified per conversation and fetches what is missing, so the
listener gets every message of a watched conversation once and in seq order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from redis.exceptions import RedisError

from ...errors import StoreUnavailable
from ...model import StoredMessage, is_room_key
from ...stats import Histogram
from .connection import Connection, cancel_task
from .history import History
from .keys import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    BLOCK_MS,
    FETCH_PAGE,
    PRESENCE,
    Entry,
    P,
    conv_stream,
    counter_key,
    entries,
    entry_seq,
    inbox_key,
)
from .watches import Watches

log = logging.getLogger(__name__)


class Feed:
    """The reader task and the in-order delivery to the listener.

    Args:
        notify: passes messages to the store's listener (never raises).
        on_presence: handles new entries of the presence stream.
        on_epoch: told the new epoch when Redis lost its data.
    """

    def __init__(
        self,
        conn: Connection,
        history: History,
        watches: Watches,
        notify: Callable[[Sequence[StoredMessage]], None],
        on_presence: Callable[[list[Entry]], Awaitable[None]],
        on_epoch: Callable[[str], None],
    ) -> None:
        self._conn = conn
        self._history = history
        self._watches = watches
        self._notify = notify
        self._on_presence = on_presence
        self._on_epoch = on_epoch
        self.epoch = ""
        #: Held while notifying, so that the writer and the reader keep seq order.
        self.deliver_lock = asyncio.Lock()
        self._wake_key = f"{P}wake:{secrets.token_hex(8)}"
        self._wake_id = "0-0"
        self._poke_task: asyncio.Task[None] | None = None
        #: Where the reader is in the presence stream.
        self.presence_cursor = "0-0"
        self._reader: asyncio.Task[None] | None = None
        #: Seconds from the commit of the oldest message of each batch read to now.
        self.lag = Histogram((0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    def start(self, epoch: str, presence_cursor: str) -> None:
        self.epoch = epoch
        self.presence_cursor = presence_cursor
        self._reader = asyncio.create_task(self._read_loop(), name="chatrpc-redis-reader")

    async def stop(self) -> None:
        """Wakes the reader from its XREAD (the store is closed: it stops) and waits."""
        redis = self._conn.redis
        if redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await redis.xadd(self._wake_key, {"w": "1"}, maxlen=1)
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), self._conn.timeout_s)
            except TimeoutError:
                log.warning("Redis reader did not stop in time")
        for task in (self._reader, self._poke_task):
            if task is not None:
                await cancel_task(task)
        if redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await redis.delete(self._wake_key)

    def poke(self) -> None:
        """Wakes the reader so that it reads the streams watched from now on."""
        if self._conn.redis is None or self._conn.closed:
            return
        if self._poke_task is not None and not self._poke_task.done():
            return

        async def poke() -> None:
            with contextlib.suppress(RedisError, OSError, StoreUnavailable):
                await self._conn.r().xadd(self._wake_key, {"w": "1"}, maxlen=1)

        self._poke_task = asyncio.get_running_loop().create_task(poke())

    async def deliver(self, conv: str, upto: int, known: StoredMessage | None = None) -> None:
        """Notifies every message of ``conv`` up to seq ``upto`` not notified yet, in order.

        ``known`` is the message ``upto`` itself when the caller has it (a local append).
        Callers hold :attr:`deliver_lock`.
        """
        watches = self._watches
        start = await watches.start_of(conv)
        if start is None:
            # Nobody here watches it: only local appends are notified, as they come.
            if known is not None:
                self._notify([known])
            return
        last = watches.notified.get(conv)
        if last is not None and last >= upto:
            return
        top = upto - 1 if known is not None else upto
        if last is None:
            missing = await self._history.since(conv, top, start) if top > 0 else []
        else:
            missing = await self._history.fetch(conv, last, top)
        if known is not None:
            missing.append(known)
        self._notify(missing)
        # A watch may have ended or begun while fetching: record only if still wanted.
        if watches.interesting(conv):
            watches.notified[conv] = max(upto, watches.notified.get(conv, 0))

    async def _read_loop(self) -> None:
        backoff = BACKOFF_MIN_S
        failing = False
        while not self._conn.closed:
            try:
                if failing:
                    await self._recover()
                    failing = False
                    backoff = BACKOFF_MIN_S
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, StoreUnavailable) as exc:
                if not failing:
                    log.warning("Redis reader lost %s: %s; retrying", self._conn.url, exc)
                failing = True
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            except Exception:
                log.exception("Redis reader failed; retrying")
                await asyncio.sleep(BACKOFF_MAX_S)

    async def _recover(self) -> None:
        await self._conn.reset_pool()
        epoch = await self._conn.load_epoch()
        if epoch != self.epoch:
            # Everything in the new history is new: watch it all from its start.
            log.warning("Redis lost its data (epoch %s is now %s)", self.epoch, epoch)
            self.epoch = epoch
            self._on_epoch(epoch)
            self.presence_cursor = "0-0"
            self._watches.restart()
        log.info("Redis reader reconnected to %s", self._conn.url)

    async def _catch_up_rooms(self) -> None:
        """Rooms watched but not started yet: catch up by commit time first."""
        watches = self._watches
        for key in list(watches.start):
            if is_room_key(key) and key not in watches.notified:
                top = int(await self._conn.r().get(counter_key(key)) or 0)
                async with self.deliver_lock:
                    await self.deliver(key, top)
                    watches.notified.setdefault(key, top)

    async def _read_once(self) -> None:
        watches = self._watches
        await watches.resolve_starts()
        await self._catch_up_rooms()
        streams: dict[str, str] = {self._wake_key: self._wake_id}
        rooms: dict[str, str] = {}
        for key in watches.start:
            if is_room_key(key) and key in watches.notified:
                streams[conv_stream(key)] = f"{watches.notified[key]}-0"
                rooms[conv_stream(key)] = key
        streams[PRESENCE] = self.presence_cursor
        inboxes: dict[str, str] = {}
        for user, cursor in watches.inbox_cursor.items():
            streams[inbox_key(user)] = cursor
            inboxes[inbox_key(user)] = user
        assert self._conn.reader_redis is not None
        response = await self._conn.reader_redis.xread(
            dict(streams.items()), count=FETCH_PAGE, block=BLOCK_MS
        )
        for stream, found in cast("list[tuple[str, list[Entry]]]", response or []):
            if not found:
                continue
            if stream == self._wake_key:
                self._wake_id = found[-1][0]
            elif stream in rooms:
                self._observe_lag(int(found[0][1].get("ct", 0)))
                await self._on_room_entries(rooms[stream], found)
            elif stream in inboxes:
                self._observe_lag(entry_seq(found[0][0]))  # an inbox entry's id is its time
                await self._on_inbox_entries(inboxes[stream], found)
            elif stream == PRESENCE:
                await self._on_presence(found)
                self.presence_cursor = found[-1][0]

    def _observe_lag(self, commit_ms: int) -> None:
        """One lag observation per batch: the fan-out path pays nothing per message.
        Commit times are Redis's clock; a clock behind this server's counts as 0."""
        if commit_ms:
            self.lag.observe(max(0.0, time.time() - commit_ms / 1000))

    async def _on_room_entries(self, conv: str, found: list[Entry]) -> None:
        async with self.deliver_lock:
            last = self._watches.notified.get(conv)
            if last is None or not self._watches.interesting(conv):
                return  # unwatched (or restarted) while reading
            newer = [(i, f) for i, f in found if entry_seq(i) > last]
            fresh = await self._history.entries(conv, newer)
            if fresh and fresh[0].seq != last + 1:
                fresh = await self._history.fetch(conv, last, fresh[-1].seq)
            self._notify(fresh)
            if fresh:
                self._watches.notified[conv] = fresh[-1].seq

    async def _on_inbox_entries(self, user: str, found: list[Entry]) -> None:
        newest: dict[str, int] = {}
        for _, fields in found:
            conv, seq = fields["k"], int(fields["q"])
            newest[conv] = max(seq, newest.get(conv, 0))
        async with self.deliver_lock:
            for conv, seq in newest.items():
                await self.deliver(conv, seq)
        # Moved on only once delivered: a failure reads the same pointers again.
        if user in self._watches.inbox_cursor:
            self._watches.inbox_cursor[user] = found[-1][0]

    async def last_presence_id(self) -> str:
        newest = entries(await self._conn.r().xrevrange(PRESENCE, count=1))
        return newest[0][0] if newest else "0-0"
