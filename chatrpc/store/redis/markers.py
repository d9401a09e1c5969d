"""Read markers in Redis: one hash per user, ``read:{user}``, conversation key to
seq. A marker moves forward in a Lua script that also tells the other servers
on the presence stream (``k`` "read", ``c`` conversation, ``u`` user, ``q``
seq), so a marker never moves without them hearing of it.

Unread counts read each conversation that is behind through the message log's
history (what a message is now), newest :data:`~chatrpc.store.markers.UNREAD_CAP`
items at most (see chatrpc.store.markers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..markers import Span, Unread, count_from_log
from ..messages import MessageLog
from .connection import Connection
from .keys import PRESENCE, PRESENCE_MAXLEN, P

#: KEYS: the user's markers, the presence stream. ARGV: conversation, seq, node,
#: user, stream maxlen. Returns 1 if the marker moved.
MARK_READ_LUA = """
local seq = tonumber(ARGV[2])
local now = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if seq <= now then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'n', ARGV[3], 'k', 'read',
  'c', ARGV[1], 'u', ARGV[4], 'q', ARGV[2])
return 1
"""


def markers_key(user: str) -> str:
    return f"{P}read:{user}"


class Markers:
    """Read markers of the Redis store.

    Args:
        node: this server's id on the presence stream (see presence.py).
        log: the store's message log, which the counts read.
    """

    def __init__(self, conn: Connection, node: str, log: MessageLog) -> None:
        self._conn = conn
        self._node = node
        self._log = log
        self._script: Any = None

    async def mark_read(self, user: str, conv: str, seq: int) -> bool:
        if self._script is None:
            self._script = self._conn.r().register_script(MARK_READ_LUA)
        script = self._script

        async def do() -> bool:
            keys = [markers_key(user), PRESENCE]
            args = [conv, seq, self._node, user, PRESENCE_MAXLEN]
            return bool(await script(keys, args))

        # Moving a marker to the same seq twice is harmless: safe to retry.
        return await self._conn.call(do)

    async def read_markers(self, user: str, convs: Sequence[str]) -> list[int]:
        if not convs:
            return []

        async def do() -> list[int]:
            found = await self._conn.r().hmget(markers_key(user), list(convs))
            return [int(seq) if seq is not None else 0 for seq in found]

        return await self._conn.call(do)

    async def unread_counts(self, user: str, spans: Sequence[Span]) -> list[Unread]:
        return await count_from_log(self._log, user, spans)
