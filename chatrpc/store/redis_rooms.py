"""The Redis store's rooms index, room creation quota and registration tokens.

Keys (besides those of ``redis.py``; every key starts with ``chatrpc:``):

* ``rooms:active``: sorted set of ``#room`` by latest activity (ms, Redis time,
  made unique: one past the newest if the clock has not moved on), which pages
  the listing with no answer growing with the number of rooms.
* ``rooms:names``: the same rooms, all with score 0, for name prefix searches
  (ZRANGEBYLEX).
* ``created:{user}``: sorted set of the user's room creations over the last
  day (score: Redis time in ms), expiring a day after the newest: the quota,
  one for every server sharing the Redis.
* ``regtoken:{hash}``: hash ``uses``, ``expires``, ``created`` of a registration
  token (expiring with it); ``regtokens``: the set of their hashes.

Each check-and-change is one Lua script, so servers and the admin tool may run
them at the same time.
"""

from __future__ import annotations

P = "chatrpc:"
ROOMS = f"{P}rooms"
ACTIVE = f"{P}rooms:active"
NAMES = f"{P}rooms:names"
REGTOKENS = f"{P}regtokens"


def created_key(user: str) -> str:
    return f"{P}created:{user}"


def regtoken_key(token_hash: str) -> str:
    return f"{P}regtoken:{token_hash}"


#: KEYS: rooms set, activity, names, the user's creations. ARGV: #room, quota
#: (0: none), window ms. Returns {1, 0} created, {0, 0} existed (marked active),
#: {-1, ms} refused: retry in ms.
CLAIM_ROOM_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local act = now
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #top > 0 and tonumber(top[2]) >= act then act = tonumber(top[2]) + 1 end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[2], act, ARGV[1])
  return {0, 0}
end
local quota = tonumber(ARGV[2])
if quota > 0 then
  local window = tonumber(ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window)
  if redis.call('ZCARD', KEYS[4]) >= quota then
    local oldest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    return {-1, tonumber(oldest[2]) + window - now}
  end
  redis.call('ZADD', KEYS[4], now, ARGV[1] .. ' ' .. t[1] .. '.' .. t[2])
  redis.call('PEXPIRE', KEYS[4], window)
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], act, ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return {1, 0}
"""

#: KEYS: activity. ARGV: anchor score ('' for the first page), anchor #room, limit.
#: Returns a flat {member, score, ...} list, newest first, ties by name from the
#: last. The anchor's place is found by score (ZCOUNT, O(log N)) and the few
#: rooms that share its millisecond are stepped over, so a page costs
#: O(log N + limit) whether or not the anchor room has moved or gone since.
ROOMS_PAGE_LUA = """
local limit = tonumber(ARGV[3])
local idx = 0
if ARGV[1] ~= '' then
  local score = tonumber(ARGV[1])
  idx = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')
  while true do
    local e = redis.call('ZREVRANGE', KEYS[1], idx, idx, 'WITHSCORES')
    if #e == 0 or tonumber(e[2]) < score or e[1] < ARGV[2] then break end
    idx = idx + 1
  end
end
return redis.call('ZREVRANGE', KEYS[1], idx, idx + limit - 1, 'WITHSCORES')
"""

#: KEYS: activity, names, rooms set. ARGV: from ms, idle-before ms, limit, key
#: prefix, now ms. Looks at up to ``limit`` rooms last active in [from, idle)
#: and removes those with no members, no stored messages and nobody online,
#: keeping the seq counter of a room that had messages. Returns {removed #rooms,
#: the activity times looked at}.
PRUNE_ROOMS_LUA = """
local idle = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '(' .. ARGV[2],
  'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local gone = {}
local times = {}
for i = 1, #idle, 2 do
  local conv = idle[i]
  times[#times + 1] = idle[i + 1]
  local name = string.sub(conv, 2)
  if redis.call('SCARD', ARGV[4] .. 'members:' .. name) == 0
    and redis.call('XLEN', ARGV[4] .. 'conv:' .. conv) == 0
    and redis.call('ZCOUNT', ARGV[4] .. 'online:' .. name, ARGV[5], '+inf') == 0 then
    redis.call('ZREM', KEYS[1], conv)
    redis.call('ZREM', KEYS[2], conv)
    redis.call('SREM', KEYS[3], conv)
    redis.call('DEL', ARGV[4] .. 'conv:' .. conv)
    local seq = redis.call('GET', ARGV[4] .. 'seq:' .. conv)
    if seq == false or tonumber(seq) == 0 then redis.call('DEL', ARGV[4] .. 'seq:' .. conv) end
    gone[#gone + 1] = conv
  end
end
return {gone, times}
"""

#: KEYS: the token, the token set. ARGV: now ms. Returns 1 if a use was spent.
USE_REGTOKEN_LUA = """
local t = redis.call('HMGET', KEYS[1], 'uses', 'expires')
if not t[1] then return 0 end
if tonumber(t[1]) <= 0 or tonumber(t[2]) <= tonumber(ARGV[1]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'uses', -1)
return 1
"""
