"""The Lua scripts of the Redis store: each check-and-change is one script, so
servers and the admin tool may run them at the same time (key names: keys.py)."""

from __future__ import annotations

#: KEYS: counter, stream, dedup, index a, index b, inbox a, inbox b (for a room:
#: the rooms set, its activity and names indexes, the rooms set), body, state.
#: ARGV: conv, sender, text, sent_at_ms, client_msg_id, window_ms, cap,
#: age cutoff ms (0: none), is_dm, inbox maxlen, kind, target_seq, reply_to,
#: emoji, remove ('1' or '0').
#: Returns {1, seq, commit_ms, applied} or {0, "seq conv"} for a duplicate;
#: applied is 0 for a change that changed nothing (its text is not kept).
#:
#: Texts live in the body hash (seq -> text), not in the stream, so that a
#: delete can erase them: a stream entry cannot be rewritten. A message's
#: state (edited, deleted, its edits' seqs, reactions) is JSON in the state
#: hash; see chatrpc.store.changes for what each change does.
APPEND_LUA = """
local function field(f, name)
  for i = 1, #f, 2 do if f[i] == name then return f[i + 1] end end
  return nil
end
local cid = ARGV[5]
if cid ~= '' then
  local hit = redis.call('GET', KEYS[3])
  if hit then return {0, hit} end
end
local kind = tonumber(ARGV[11])
local target = ARGV[12]
local text = ARGV[3]
local st = nil
if kind >= 1 and kind <= 3 then
  local found = redis.call('XRANGE', KEYS[2], target .. '-0', target .. '-0')
  if #found == 1 then
    if field(found[1][2], 'k') == nil then
      local raw = redis.call('HGET', KEYS[9], target)
      if raw then st = cjson.decode(raw) else st = {} end
      if st.d then st = nil end
    end
  end
  if st == nil then text = '' end
end
local seq = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = {'s', ARGV[2], 't', ARGV[4], 'c', cid, 'ct', now}
if kind ~= 0 then
  for _, v in ipairs({'k', ARGV[11], 'g', target, 'e', ARGV[14], 'm', ARGV[15]}) do
    fields[#fields + 1] = v
  end
end
if ARGV[13] ~= '0' then fields[#fields + 1] = 'r'; fields[#fields + 1] = ARGV[13] end
local cap = tonumber(ARGV[7])
if cap > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', cap, seq .. '-0', unpack(fields))
else
  redis.call('XADD', KEYS[2], seq .. '-0', unpack(fields))
end
if text ~= '' then redis.call('HSET', KEYS[8], seq, text) end
if st ~= nil then
  if kind == 1 then
    redis.call('HSET', KEYS[8], target, text)
    st.e = 1
    st.x = st.x or {}
    st.x[#st.x + 1] = tostring(seq)
  elseif kind == 2 then
    redis.call('HDEL', KEYS[8], target)
    for _, s in ipairs(st.x or {}) do redis.call('HDEL', KEYS[8], s) end
    st = {d = 1, e = st.e}
  elseif kind == 3 then
    st.r = st.r or {}
    local users = st.r[ARGV[14]] or {}
    local kept = {}
    for _, u in ipairs(users) do if u ~= ARGV[2] then kept[#kept + 1] = u end end
    if ARGV[15] ~= '1' then kept[#kept + 1] = ARGV[2] end
    if #kept > 0 then st.r[ARGV[14]] = kept else st.r[ARGV[14]] = nil end
    if next(st.r) == nil then st.r = nil end
  end
  redis.call('HSET', KEYS[9], target, cjson.encode(st))
end
local cutoff = tonumber(ARGV[8])
if cutoff > 0 then
  for _ = 1, 100 do
    local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
    if #first == 0 or tonumber(field(first[1][2], 't')) >= cutoff then break end
    redis.call('XDEL', KEYS[2], first[1][1])
  end
end
if cap > 0 or cutoff > 0 then
  -- The texts and states of the entries retention dropped go with them.
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  local top = seq + 1
  if #first > 0 then top = tonumber(string.match(first[1][1], '^(%d+)')) end
  local lo = tonumber(redis.call('HGET', KEYS[9], 'lo') or '1')
  if top > lo then
    local upto = math.min(top - 1, lo + 999)
    for s = lo, upto do
      redis.call('HDEL', KEYS[8], s)
      redis.call('HDEL', KEYS[9], s)
    end
    redis.call('HSET', KEYS[9], 'lo', upto + 1)
  end
end
if cid ~= '' then
  redis.call('SET', KEYS[3], seq .. ' ' .. ARGV[1], 'PX', ARGV[6])
end
redis.call('SADD', KEYS[4], ARGV[1])
if ARGV[9] ~= '1' then
  local act = now
  local top = redis.call('ZREVRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  if #top > 0 and tonumber(top[2]) >= act then act = tonumber(top[2]) + 1 end
  redis.call('ZADD', KEYS[5], act, ARGV[1])
  redis.call('ZADD', KEYS[6], 0, ARGV[1])
else
  redis.call('SADD', KEYS[5], ARGV[1])
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[10], '*', 'k', ARGV[1], 'q', seq)
  if KEYS[7] ~= KEYS[6] then
    redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[10], '*', 'k', ARGV[1], 'q', seq)
  end
end
local applied = 1
if kind >= 1 and kind <= 3 and st == nil then applied = 0 end
return {1, seq, now, applied}
"""

#: KEYS: stream, body, state. ARGV: 'f' (XRANGE) or 'r' (XREVRANGE), from, to,
#: count. Returns each entry as {id, {field, value, ...}, text, state} ('' for none).
READ_LUA = """
local found
if ARGV[1] == 'r' then
  found = redis.call('XREVRANGE', KEYS[1], ARGV[2], ARGV[3], 'COUNT', ARGV[4])
else
  found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[3], 'COUNT', ARGV[4])
end
local out = {}
for i, e in ipairs(found) do
  local seq = string.match(e[1], '^(%d+)')
  out[i] = {e[1], e[2], redis.call('HGET', KEYS[2], seq) or '',
    redis.call('HGET', KEYS[3], seq) or ''}
end
return out
"""

#: KEYS: account, token, user's token set, the names and last-seen indexes of
#: accounts. ARGV: password hash ('' none), user, token hash.
CREATE_ACCOUNT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == '' then
  redis.call('HSET', KEYS[1], 'user', ARGV[2], 'born', now)
else
  redis.call('HSET', KEYS[1], 'user', ARGV[2], 'pw', ARGV[1], 'born', now)
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], 0, ARGV[2])
redis.call('ZADD', KEYS[5], now, ARGV[2])
return 1
"""

#: KEYS: account. ARGV: password hash. Only an existing account gets one.
SET_PASSWORD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'pw', ARGV[1])
return 1
"""

#: Revocations are announced on the presence stream, so every server ends the
#: live sessions of the revoked tokens (fields: ``n`` node, ``k`` "revoke",
#: ``u`` user, ``t`` token hash or "" for all of the user's).

#: KEYS: the user's token set, the presence stream, the account. ARGV: the token
#: key prefix, node, user, stream maxlen. Bumps the generation in the same step,
#: so a Login that checked a password before it cannot mint a token after it.
REVOKE_TOKENS_LUA = """
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('HINCRBY', KEYS[3], 'gen', 1) end
local hashes = redis.call('SMEMBERS', KEYS[1])
for _, h in ipairs(hashes) do redis.call('DEL', ARGV[1] .. h) end
redis.call('DEL', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'n', ARGV[2], 'k', 'revoke',
  'u', ARGV[3], 't', '')
return #hashes
"""

#: KEYS: token, the presence stream. ARGV: the token-set key prefix, token hash,
#: node, stream maxlen.
REVOKE_TOKEN_LUA = """
local user = redis.call('GET', KEYS[1])
if not user then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', ARGV[1] .. user, ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'n', ARGV[3], 'k', 'revoke',
  'u', user, 't', ARGV[2])
return 1
"""


#: Adds a token only while its proof holds, atomically against REVOKE_TOKENS_LUA
#: on every server. KEYS: the new token, the user's token set, the account, and
#: the proof token (only with a proof token). ARGV: user, new token hash,
#: generation ('' not checked).
MINT_TOKEN_LUA = """
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
if ARGV[3] ~= '' and (redis.call('HGET', KEYS[3], 'gen') or '0') ~= ARGV[3] then return 0 end
if #KEYS >= 4 and redis.call('GET', KEYS[4]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""


#: KEYS: rooms set, activity, names, the user's creations, the owners hash,
#: the user's owned rooms. ARGV: #room, quota (0: none), window ms, user (''
#: nobody: no owner). The creator owns a new room. Returns {1, 0} created,
#: {0, 0} existed (marked active), {-1, ms} refused: retry in ms.
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
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[4])
  redis.call('SADD', KEYS[6], ARGV[1])
end
return {1, 0}
"""

#: KEYS: rooms set, owners hash. ARGV: #room, new owner, key prefix.
#: Returns {1, previous owner} or {0, ''} when there is no such room.
SET_OWNER_LUA = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {0, ''} end
local old = redis.call('HGET', KEYS[2], ARGV[1]) or ''
if old ~= '' then redis.call('SREM', ARGV[3] .. 'owned:' .. old, ARGV[1]) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[2] ~= '' then redis.call('SADD', ARGV[3] .. 'owned:' .. ARGV[2], ARGV[1]) end
return {1, old}
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
#: and removes those with no members, no stored messages, nobody online and no
#: ``kept`` mark (its owners keep it: field ``kept:`` of ``mark:{room}``, see
#: moderation.py), keeping the seq counter of a room that had messages. Returns {removed #rooms,
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
    and redis.call('ZCOUNT', ARGV[4] .. 'online:' .. name, ARGV[5], '+inf') == 0
    and redis.call('HEXISTS', ARGV[4] .. 'mark:' .. name, 'kept:') == 0 then
    redis.call('ZREM', KEYS[1], conv)
    redis.call('ZREM', KEYS[2], conv)
    redis.call('SREM', KEYS[3], conv)
    redis.call('DEL', ARGV[4] .. 'conv:' .. conv)
    local owner = redis.call('HGET', ARGV[4] .. 'rooms:owner', conv)
    if owner then
      redis.call('SREM', ARGV[4] .. 'owned:' .. owner, conv)
      redis.call('HDEL', ARGV[4] .. 'rooms:owner', conv)
    end
    redis.call('DEL', ARGV[4] .. 'body:' .. conv)
    redis.call('DEL', ARGV[4] .. 'state:' .. conv)
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

#: KEYS: mark:{scope}, markof:{user}; ARGV: what:user, what:scope, value, '1' to delete.
#: Returns the value the mark had (false: none).
SET_MARK_LUA = """
local before = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
end
return before
"""

#: KEYS: mark:{scope}; ARGV: the markof: key prefix, scope. Removes every mark of
#: the scope and its entries in each user's index.
CLEAR_MARKS_LUA = """
local fields = redis.call('HKEYS', KEYS[1])
for _, f in ipairs(fields) do
  local what, user = string.match(f, '^([^:]*):(.*)$')
  if what then redis.call('HDEL', ARGV[1] .. user, what .. ':' .. ARGV[2]) end
end
redis.call('DEL', KEYS[1])
return #fields
"""
