"""The Lua scripts of the Redis store's operations role (key names: keys.py).

Each check-and-change is one script, so an operator's change and the servers'
own work never interleave halfway. Scripts that derive key names from a
prefix (ARGV) touch keys of one user or one room, as the other scripts do.
"""

from __future__ import annotations

#: KEYS: account, the presence stream. ARGV: '1' disable / '0' enable, node,
#: user, stream maxlen. A disable is announced, so every server ends the
#: user's sessions (field ``k`` "disable").
SET_DISABLED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'off', '1')
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'n', ARGV[2], 'k', 'disable',
    'u', ARGV[3])
else
  redis.call('HDEL', KEYS[1], 'off')
end
return 1
"""

#: KEYS: the token. ARGV: the account key prefix. What authenticating a call
#: needs in one round trip: {user, password hash or false, disabled or false},
#: or nil for an unknown token.
ACCOUNT_FOR_TOKEN_LUA = """
local user = redis.call('GET', KEYS[1])
if not user then return nil end
local f = redis.call('HMGET', ARGV[1] .. user, 'user', 'pw', 'off')
if not f[1] then return nil end
return {user, f[2], f[3]}
"""

#: KEYS: account. Removes the password of an existing account.
CLEAR_PASSWORD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], 'pw')
return 1
"""

#: KEYS: rooms set, activity, names, owners hash, the room's stream, its
#: members, the presence stream. ARGV: #room, key prefix, node, stream maxlen.
#: Keeps the seq counter (never reused); announces the delete, so every server
#: takes its sessions out of the room (field ``k`` "drop-room", ``u`` the room).
#: Returns {-1} for no such room, else {items deleted, member, ...}.
DELETE_ROOM_LUA = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return {-1} end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local owner = redis.call('HGET', KEYS[4], ARGV[1])
if owner then
  redis.call('SREM', ARGV[2] .. 'owned:' .. owner, ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
end
local n = redis.call('XLEN', KEYS[5])
redis.call('DEL', KEYS[5], ARGV[2] .. 'body:' .. ARGV[1], ARGV[2] .. 'state:' .. ARGV[1])
local members = redis.call('SMEMBERS', KEYS[6])
redis.call('DEL', KEYS[6])
local name = string.sub(ARGV[1], 2)
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[4], '*', 'n', ARGV[3], 'k', 'drop-room',
  'u', name)
for _, user in ipairs(members) do redis.call('SREM', ARGV[2] .. 'memberof:' .. user, name) end
local out = {n}
for _, user in ipairs(members) do out[#out + 1] = user end
return out
"""

#: KEYS: last-seen index, names index. ARGV: rank to start at, seen-before ms,
#: limit, key prefix. Looks at up to ``limit`` accounts from that rank of the
#: last-seen index, last seen before the cutoff, and removes those with no
#: password, not disabled, in no direct conversation and owning no room, with
#: their tokens and memberships. Returns {removed users, 1 if there may be
#: more, the rank the next step starts at}.
EXPIRE_ACCOUNTS_LUA = """
local first = tonumber(ARGV[1])
local limit = tonumber(ARGV[3])
local idle = redis.call('ZRANGE', KEYS[1], first, first + limit - 1, 'WITHSCORES')
local p = ARGV[4]
local gone = {}
local looked = 0
for i = 1, #idle, 2 do
  local user = idle[i]
  if tonumber(idle[i + 1]) >= tonumber(ARGV[2]) then break end
  looked = looked + 1
  local acct = p .. 'account:' .. user
  local f = redis.call('HMGET', acct, 'pw', 'off')
  if not f[1] and not f[2]
    and redis.call('SCARD', p .. 'directs:' .. user) == 0
    and redis.call('SCARD', p .. 'owned:' .. user) == 0 then
    for _, h in ipairs(redis.call('SMEMBERS', p .. 'tokens:' .. user)) do
      redis.call('DEL', p .. 'token:' .. h)
    end
    for _, room in ipairs(redis.call('SMEMBERS', p .. 'memberof:' .. user)) do
      redis.call('SREM', p .. 'members:' .. room, user)
    end
    redis.call('DEL', acct, p .. 'tokens:' .. user, p .. 'memberof:' .. user)
    redis.call('ZREM', KEYS[1], user)
    redis.call('ZREM', KEYS[2], user)
    gone[#gone + 1] = user
  end
end
local more = 0
if looked == limit then more = 1 end
return {gone, more, first + looked - #gone}
"""

#: The operations role's scripts, by the name they are called with.
ADMIN_SCRIPTS = {
    "set_disabled": SET_DISABLED_LUA,
    "clear_password": CLEAR_PASSWORD_LUA,
    "account_for_token": ACCOUNT_FOR_TOKEN_LUA,
    "delete_room": DELETE_ROOM_LUA,
    "expire_accounts": EXPIRE_ACCOUNTS_LUA,
}
