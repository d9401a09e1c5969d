"""Cluster presence through Redis: who is online in each room on every server.

Each server adds ``node|user`` to a room's online set, scored by expiry, and
refreshes its own entries every third of the presence TTL, so a server that
died drops out; every change (and every revocation) is also told on the
presence stream, which the feed reads and hands to :meth:`Presence.on_entries`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis.exceptions import RedisError

from ...errors import StoreUnavailable
from ...model import room_key
from ..options import StoreOptions
from .connection import Connection, cancel_task
from .keys import MAX_BATCH, PRESENCE, PRESENCE_MAXLEN, Entry, online_key, strs
from .watches import Watches

log = logging.getLogger(__name__)


class Presence:
    """This server's presence reports, and the users online through the others.

    Args:
        on_change: told ``(room, user, online)`` for users of other servers.
        on_revoke: told ``(user, token_hash or None)`` for revocations elsewhere.
        on_disable: told ``user`` for accounts disabled elsewhere.
        on_drop_room: told ``room`` for rooms deleted elsewhere.
        on_notice: told ``(kind, user, detail)`` announced elsewhere (blocks, invitations).
    """

    def __init__(
        self,
        conn: Connection,
        watches: Watches,
        options: StoreOptions,
        on_change: Callable[[str, str, bool], None],
        on_revoke: Callable[[str, str | None], object],
        on_disable: Callable[[str], object],
        on_drop_room: Callable[[str], object],
        on_notice: Callable[[str, str, str], object] | None = None,
    ) -> None:
        self._conn = conn
        self._watches = watches
        self._options = options
        self._on_change = on_change
        self._on_revoke = on_revoke
        self._on_disable = on_disable
        self._on_drop_room = on_drop_room
        self._on_notice = on_notice
        #: This server among the others: its id, and the (room, user) pairs it
        #: reports online.
        self.node = secrets.token_hex(6)
        self._here: set[tuple[str, str]] = set()
        #: Presence reports not written yet, in order, and the task writing them
        #: (which also refreshes :attr:`_here`: one writer keeps them in order).
        self._reports: deque[tuple[str, str, bool]] = deque()
        self._reported = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        #: Per watched room, the users online through other servers as last told
        #: to the listener; refreshed from Redis and diffed, one at a time.
        self._elsewhere: dict[str, set[str]] = {}
        self._elsewhere_lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="chatrpc-redis-presence")

    def forget(self, room: str) -> None:
        """Drops what is known of ``room`` elsewhere (no longer watched)."""
        self._elsewhere.pop(room, None)

    def _expiry_ms(self) -> int:
        return int((time.time() + self._options.presence_ttl_s) * 1000)

    def set_online(self, room: str, user: str, online: bool) -> None:
        """Queues a presence report for :meth:`_loop`, which adds or removes
        ``node|user`` in the room's online set (scored by expiry) and tells the
        other servers on the presence stream, in the order of the reports."""
        if online:
            self._here.add((room, user))
        else:
            self._here.discard((room, user))
        if not self._stopping:
            self._reports.append((room, user, online))
            self._reported.set()

    def online_elsewhere(self, room: str, user: str) -> bool:
        return user in self._elsewhere.get(room, ())

    def count_elsewhere(self, room: str) -> int:
        return len(self._elsewhere.get(room, ()))

    async def online_users(self, room: str) -> list[str]:
        async def do() -> list[str]:
            now = int(time.time() * 1000)
            everyone, elsewhere = self._split_online(
                await self._conn.r().zrangebyscore(online_key(room), now, "+inf")
            )
            if self._watches.is_watched(room_key(room)):
                # What a joiner is told: later changes are announced relative to it.
                self._elsewhere.setdefault(room, elsewhere)
            return sorted(everyone)

        return await self._conn.call(do)

    async def online_users_many(self, rooms: Sequence[str]) -> list[set[str]]:
        async def do() -> list[set[str]]:
            if not rooms:
                return []
            now = int(time.time() * 1000)
            async with self._conn.r().pipeline(transaction=False) as pipe:
                for room in rooms:
                    pipe.zrangebyscore(online_key(room), now, "+inf")
                found = await pipe.execute()
            return [self._split_online(members)[0] for members in found]

        return await self._conn.call(do)

    async def _loop(self) -> None:
        """Writes the presence reports in order and, every third of the presence
        TTL, refreshes this server's online users, so only a live server keeps
        them. One task does both, so a refresh never revives a user reported gone.
        Reports that fail (Redis down) are dropped: the refresh restores who is
        online and the TTL removes who is not."""
        interval = self._options.presence_ttl_s / 3
        next_beat = time.monotonic() + interval
        while True:
            if not self._reports and not self._stopping:
                with contextlib.suppress(asyncio.TimeoutError):
                    timeout = max(0.0, next_beat - time.monotonic())
                    await asyncio.wait_for(self._reported.wait(), timeout)
            self._reported.clear()
            batch = [self._reports.popleft() for _ in range(min(MAX_BATCH, len(self._reports)))]
            beat = time.monotonic() >= next_beat
            if beat:
                next_beat = time.monotonic() + interval
            try:
                if batch or (beat and self._here):
                    await self._write(batch, beat)
                if beat:
                    # Catches the users of a server that stopped refreshing them.
                    await self._refresh_elsewhere(self._watches.watched_rooms())
            except (RedisError, StoreUnavailable) as exc:
                log.info("presence not shared: %s", exc)
            if self._stopping and not self._reports:
                return

    async def _write(self, batch: list[tuple[str, str, bool]], beat: bool) -> None:
        pipe = self._conn.r().pipeline(transaction=False)
        for room, user, online in batch:
            member = f"{self.node}|{user}"
            if online:
                pipe.zadd(online_key(room), {member: self._expiry_ms()})
            else:
                pipe.zrem(online_key(room), member)
            event: dict[Any, Any] = {"n": self.node, "r": room, "u": user, "o": int(online)}
            pipe.xadd(PRESENCE, event, maxlen=PRESENCE_MAXLEN, approximate=True)
        if beat:
            expiry = self._expiry_ms()
            now = int(time.time() * 1000)
            for room, user in self._here:
                pipe.zadd(online_key(room), {f"{self.node}|{user}": expiry})
            for room in {room for room, _ in self._here}:
                pipe.zremrangebyscore(online_key(room), "-inf", f"({now}")
        await self._conn.call(pipe.execute, retry=False)

    async def withdraw(self) -> None:
        """On close: this server's users are gone from every room, at once."""
        for room, user in list(self._here):
            self.set_online(room, user, False)
        self._stopping = True
        self._reported.set()
        task = self._task
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), self._conn.timeout_s * 2)
        except TimeoutError:
            log.warning("presence reports were not all written in time")
        await cancel_task(task)

    async def on_entries(self, found: list[Entry]) -> None:
        """Handles what other servers told on the presence stream."""
        others = [f for _, f in found if f.get("n") != self.node]
        for f in others:
            if f.get("k") == "revoke":
                self._on_revoke(f["u"], f.get("t") or None)
            elif f.get("k") == "disable":
                self._on_disable(f["u"])
            elif f.get("k") == "drop-room":
                self._on_drop_room(f["u"])
            elif f.get("k") == "notice" and self._on_notice is not None:
                self._on_notice(f.get("w", ""), f.get("u", ""), f.get("d", ""))
        rooms = {f["r"] for f in others if "r" in f}
        await self._refresh_elsewhere(rooms & set(self._watches.watched_rooms()))

    def _split_online(self, members: Any) -> tuple[set[str], set[str]]:
        """Users of a room's live ``node|user`` entries: all, and those elsewhere."""
        everyone: set[str] = set()
        elsewhere: set[str] = set()
        for member in strs(members):
            node, user = member.split("|", 1)
            everyone.add(user)
            if node != self.node:
                elsewhere.add(user)
        return everyone, elsewhere

    async def _refresh_elsewhere(self, rooms: Iterable[str]) -> None:
        """Reads who is online through other servers in ``rooms`` and tells the
        presence listener who came and who went since it was last told. A state
        diff, not a relay of events: reports from several servers in any order,
        and servers that died without a word, come out as one change each."""
        order = sorted(rooms)
        if not order:
            return
        async with self._elsewhere_lock:
            now = int(time.time() * 1000)
            pipe = self._conn.r().pipeline(transaction=False)
            for room in order:
                pipe.zrangebyscore(online_key(room), now, "+inf")
            replies = await self._conn.unavailable_on_error(pipe.execute())
            for room, members in zip(order, replies, strict=True):
                if not self._watches.is_watched(room_key(room)):
                    continue  # unwatched meanwhile
                _, elsewhere = self._split_online(members)
                before = self._elsewhere.get(room)
                self._elsewhere[room] = elsewhere
                if before is None:
                    continue  # the first look: the joiner was told who is online
                for user in sorted(elsewhere - before):
                    self._on_change(room, user, True)
                for user in sorted(before - elsewhere):
                    self._on_change(room, user, False)
