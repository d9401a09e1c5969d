"""What this server watches (see MessageLog.watch), from which Redis time, and how far
each watched conversation was notified."""

from __future__ import annotations

import math
import time

from ...model import dm_users, is_room_key
from .connection import Connection
from .keys import WATCH_MARGIN_MS, watch_keys


class Watches:
    """The watched keys (``#room``, ``@user``) and the feed's place in each.

    A newly watched conversation starts at the Redis time of :meth:`watch` less
    a safety margin, found through each entry's commit time, so a message
    committed after the watch is never missed even though ``watch`` does not
    wait for Redis; the few messages of the margin may be notified again
    (sessions and clients drop seqs they already have).
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        #: Watched keys and the Redis time each starts from, None until worked
        #: out from :attr:`_watched_at` (local monotonic time).
        self.start: dict[str, int | None] = {}
        self._watched_at: dict[str, float] = {}
        #: The newest seq notified per conversation of interest (absent: not yet known).
        self.notified: dict[str, int] = {}
        #: Where the reader goes on in each watched user's inbox stream.
        self.inbox_cursor: dict[str, str] = {}

    def is_watched(self, key: str) -> bool:
        return key in self.start

    def watched_rooms(self) -> list[str]:
        """The names (no ``#``) of the watched rooms."""
        return [k[1:] for k in self.start if is_room_key(k)]

    def watch(self, key: str) -> bool:
        """Starts watching ``key``; False if it already was."""
        if key in self.start:
            return False
        self.start[key] = None
        self._watched_at[key] = time.monotonic()
        if is_room_key(key):
            self.notified.pop(key, None)
        return True

    def unwatch(self, key: str) -> bool:
        """Stops watching ``key``; False if it was not."""
        if key not in self.start:
            return False
        del self.start[key]
        self._watched_at.pop(key, None)
        if key.startswith("@"):
            user = key[1:]
            self.inbox_cursor.pop(user, None)
            for conv in [c for c in self.notified if not is_room_key(c) and user in dm_users(c)]:
                if not self.interesting(conv):
                    del self.notified[conv]
        else:
            self.notified.pop(key, None)
        return True

    def interesting(self, conv: str) -> bool:
        """Whether the listener must see this conversation's messages from other servers."""
        return any(k in self.start for k in watch_keys(conv))

    async def start_of(self, conv: str) -> int | None:
        """The Redis time from which ``conv`` is watched; None if it is not."""
        keys = [k for k in watch_keys(conv) if k in self.start]
        if any(self.start[k] is None for k in keys):
            await self.resolve_starts()
        starts = [s for k in keys if (s := self.start.get(k)) is not None]
        return min(starts) if starts else None

    async def resolve_starts(self) -> None:
        """Works out the Redis time of the watches that do not know it yet.

        TIME answers at most the time elapsed here since the watch after it
        happened in Redis, so every message committed after a watch has a
        commit time at or after ``TIME - elapsed``.
        """
        if all(start is not None for start in self.start.values()):
            return
        secs, micros = await self._conn.r().time()
        now = time.monotonic()
        redis_ms = int(secs) * 1000 + int(micros) // 1000
        for key, start in list(self.start.items()):
            if start is None:
                elapsed_ms = math.ceil((now - self._watched_at[key]) * 1000)
                begin = redis_ms - elapsed_ms - WATCH_MARGIN_MS
                self.start[key] = begin
                if key.startswith("@"):
                    self.inbox_cursor[key[1:]] = f"{begin}-0"

    def restart(self) -> None:
        """After Redis lost its data: everything in the new history is new, so
        every watch starts again from its beginning."""
        self.notified.clear()
        for key in self.start:
            self.start[key] = 0
            if key.startswith("@"):
                self.inbox_cursor[key[1:]] = "0-0"
