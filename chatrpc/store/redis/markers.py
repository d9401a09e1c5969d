"""Read markers in Redis: one hash per user, ``read:{user}``, conversation key to
seq. A marker moves forward in a Lua script that also tells the other servers
on the presence stream (``k`` "read", ``c`` conversation, ``u`` user, ``q``
seq), so a marker never moves without them hearing of it.

Unread counts are worked out in Redis, by a Lua script per conversation that is
behind (pipelined for a page): it reads the window of the newest
:data:`~chatrpc.store.markers.UNREAD_CAP` entries past the marker and returns two
numbers, so a page of 500 rooms far behind moves no message to the server. The
script applies the rule of :mod:`chatrpc.mentions` (ASCII case folding, the same
word boundaries). It reads an entry's text from its ``x`` field or, where stored
changes keep texts beside the stream, from ``body:{key}``, and skips a message
whose state in ``state:{key}`` says it was deleted, and change items (``k``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..markers import UNREAD_CAP, Span, Unread
from .connection import Connection
from .keys import PRESENCE, PRESENCE_MAXLEN, P, conv_stream

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


#: KEYS: the conversation's stream, its texts, its states. ARGV: the first and
#: last seq of the window, the user. Returns {unread, mentions}.
COUNT_UNREAD_LUA = r"""
local user = ARGV[3]
local needle = '@' .. user
local function mentions(text)
  if not string.find(text, '@', 1, true) then return false end
  local lower = string.lower(text)
  local start = 1
  while true do
    local i, j = string.find(lower, needle, start, true)
    if not i then return false end
    local before = string.sub(lower, i - 1, i - 1)
    local after = string.sub(lower, j + 1, j + 1)
    local next2 = string.sub(lower, j + 2, j + 2)
    local free_before = i == 1 or not string.find(before, '^[%w_@%.%-]')
    local free_after = not string.find(after, '^[%w_]')
      and not (string.find(after, '^[%.%-]') and string.find(next2, '^[%w_]'))
    if free_before and free_after then return true end
    start = i + 1
  end
end
local seqs, texts, missing = {}, {}, false
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1] .. '-0', ARGV[2] .. '-0')) do
  local f = entry[2]
  local sender, kind, text = '', '0', false
  for i = 1, #f, 2 do
    local k = f[i]
    if k == 's' then sender = f[i + 1]
    elseif k == 'k' then kind = f[i + 1]
    elseif k == 'x' then text = f[i + 1] end
  end
  if kind == '0' and sender ~= user then
    seqs[#seqs + 1] = string.match(entry[1], '^(%d+)')
    texts[#seqs] = text
    missing = missing or not text
  end
end
if #seqs == 0 then return {0, 0} end
local states, bodies = {}, {}
if redis.call('EXISTS', KEYS[3]) == 1 then states = redis.call('HMGET', KEYS[3], unpack(seqs)) end
if missing and redis.call('EXISTS', KEYS[2]) == 1 then
  bodies = redis.call('HMGET', KEYS[2], unpack(seqs))
end
local unread, mentioned = 0, 0
for n = 1, #seqs do
  local deleted = false
  if states[n] then
    local ok, decoded = pcall(cjson.decode, states[n])
    deleted = ok and type(decoded) == 'table' and decoded['d'] and decoded['d'] ~= 0
  end
  if not deleted then
    unread = unread + 1
    if mentions(texts[n] or bodies[n] or '') then mentioned = mentioned + 1 end
  end
end
return {unread, mentioned}
"""


def markers_key(user: str) -> str:
    return f"{P}read:{user}"


def texts_key(conv: str) -> str:
    """Where stored changes keep a conversation's texts (seq -> text), if they do."""
    return f"{P}body:{conv}"


def states_key(conv: str) -> str:
    """Where stored changes keep the state of changed messages (seq -> JSON)."""
    return f"{P}state:{conv}"


class Markers:
    """Read markers of the Redis store.

    Args:
        node: this server's id on the presence stream (see presence.py).
    """

    def __init__(self, conn: Connection, node: str) -> None:
        self._conn = conn
        self._node = node
        self._scripts: dict[str, Any] = {}

    def _script(self, name: str, lua: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self._conn.r().register_script(lua)
        return script

    async def mark_read(self, user: str, conv: str, seq: int) -> bool:
        script = self._script("mark_read", MARK_READ_LUA)

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
        behind = [span for span in spans if not span.empty]
        if not behind:
            return [Unread() for _ in spans]
        script = self._script("count_unread", COUNT_UNREAD_LUA)

        async def do() -> list[Any]:
            async with self._conn.r().pipeline(transaction=False) as pipe:
                pipe.scripts.add(script)  # loaded first if Redis lost it
                for span in behind:
                    after, upto = span.window()
                    keys = [conv_stream(span.conv), texts_key(span.conv), states_key(span.conv)]
                    pipe.evalsha(script.sha, len(keys), *keys, after + 1, upto, user)
                return list(await pipe.execute())

        found = iter(await self._conn.call(do))
        out: list[Unread] = []
        for span in spans:
            if span.empty:
                out.append(Unread())
            else:
                unread, mentioned = next(found)
                out.append(Unread(min(int(unread), UNREAD_CAP), min(int(mentioned), UNREAD_CAP)))
        return out
