"""The multi-node store: chat state in Redis, shared by several servers.

Layout (every key starts with ``chatrpc:``):

* ``conv:{key}``: one stream per conversation. Message ``seq`` is the entry id
  ``{seq}-0``, so a seq range is an XRANGE. Fields: ``s`` sender, ``x`` text,
  ``t`` sent_at_ms, ``c`` client_msg_id, ``ct`` Redis time of the commit (ms).
* ``seq:{key}``: the conversation's counter (INCR gives the next seq).
* ``dedup:{sender}:{client_msg_id}``: ``"{seq} {conv}"`` for the idempotency
  window (SET PX), written by the same Lua script as the INCR and the XADD, so
  a retry is never stored twice.
* ``inbox:{user}``: a stream of pointers (``k`` conversation, ``q`` seq), one
  per DM the user takes part in, so a server watches one key per local user
  rather than one per DM conversation.
* ``rooms`` (set of ``#room``), ``directs:{user}`` (set of DM keys),
  ``members:{room}``, ``account:{user}`` (fields ``user``, ``pw``, and ``gen``,
  how many times every token of the user was revoked), ``token:{hash}``,
  ``tokens:{user}``.

Fan-out across servers: each store runs one reader task doing XREAD BLOCK over
the streams of the watched rooms (from the last seq notified) and the inboxes
of watched users. Local appends are notified by the writer task as soon as the
script returns; both paths go through :meth:`RedisStore._deliver`, which keeps
the newest seq notified per conversation and fetches what is missing, so the
listener gets every message of a watched conversation once and in seq order.

A newly watched conversation starts at the Redis time of :meth:`watch` less a
safety margin, found through each entry's commit time, so a message committed
after the watch is never missed even though ``watch`` does not wait for Redis;
the few messages of the margin may be notified again (sessions and clients drop
seqs they already have).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import StoreUnavailable
from ..model import (
    Conversation,
    Draft,
    StoredMessage,
    dm_users,
    is_room_key,
    message_in,
    room_key,
)
from . import redis_rooms as rr
from .base import (
    QUOTA_WINDOW_MS,
    Account,
    RegistrationToken,
    RoomClaim,
    RoomEntry,
    Store,
    StoreOptions,
    next_prune_start,
    token_id,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

P = "chatrpc:"
#: Slack for millisecond rounding when a watch's Redis time is worked out.
WATCH_MARGIN_MS = 2
#: How long one XREAD blocks; a watch wakes it sooner through the wake stream.
BLOCK_MS = 5000
#: Most appends one pipeline takes from the queue.
MAX_BATCH = 1000
#: Pointers kept per user inbox (they only wake readers; history is elsewhere).
INBOX_MAXLEN = 10_000
#: Most messages one fetch reads.
FETCH_PAGE = 1000
#: The reader's backoff while Redis is unreachable, in seconds.
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.05, 2.0

#: KEYS: counter, stream, dedup, index a, index b, inbox a, inbox b (for a room:
#: the rooms set, its activity and names indexes, the rooms set).
#: ARGV: conv, sender, text, sent_at_ms, client_msg_id, window_ms, cap,
#: age cutoff ms (0: none), is_dm, inbox maxlen.
#: Returns {1, seq, commit_ms} or {0, "seq conv"} for a duplicate.
APPEND_LUA = """
local cid = ARGV[5]
if cid ~= '' then
  local hit = redis.call('GET', KEYS[3])
  if hit then return {0, hit} end
end
local seq = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = seq .. '-0'
local cap = tonumber(ARGV[7])
if cap > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', cap, id,
    's', ARGV[2], 'x', ARGV[3], 't', ARGV[4], 'c', cid, 'ct', now)
else
  redis.call('XADD', KEYS[2], id,
    's', ARGV[2], 'x', ARGV[3], 't', ARGV[4], 'c', cid, 'ct', now)
end
local cutoff = tonumber(ARGV[8])
if cutoff > 0 then
  for _ = 1, 100 do
    local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
    if #first == 0 or tonumber(first[1][2][6]) >= cutoff then break end
    redis.call('XDEL', KEYS[2], first[1][1])
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
return {1, seq, now}
"""

#: KEYS: account, token, user's token set. ARGV: password hash ('' none), user, token hash.
CREATE_ACCOUNT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[1] == '' then
  redis.call('HSET', KEYS[1], 'user', ARGV[2])
else
  redis.call('HSET', KEYS[1], 'user', ARGV[2], 'pw', ARGV[1])
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
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


#: Presence changes from every server, and how many of them Redis keeps.
PRESENCE = f"{P}presence"
PRESENCE_MAXLEN = 10_000


def _online(room: str) -> str:
    return f"{P}online:{room}"


def _conv_stream(conv: str) -> str:
    return f"{P}conv:{conv}"


def _counter(conv: str) -> str:
    return f"{P}seq:{conv}"


def _inbox(user: str) -> str:
    return f"{P}inbox:{user}"


#: A stream entry as read with decode_responses: its id and fields.
Entry = tuple[str, dict[str, str]]


def _entries(raw: Any) -> list[Entry]:
    return cast("list[Entry]", list(raw or []))


def _strs(raw: Any) -> list[str]:
    return [str(x) for x in raw]


def _watch_keys(conv: str) -> list[str]:
    """The watch keys (see Store.watch) that cover a conversation."""
    if is_room_key(conv):
        return [conv]
    return ["@" + u for u in set(dm_users(conv))]


def _entry_seq(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _message(conv: str, seq: int, fields: dict[str, str]) -> StoredMessage:
    return message_in(
        conv,
        seq,
        fields.get("s", ""),
        fields.get("x", ""),
        int(fields.get("t", "0")),
        fields.get("c", ""),
    )


def _cancellations() -> int:
    """How many cancellations the current task has been asked for."""
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


class _Redis(aioredis.Redis):
    """The redis asyncio client, made to keep cancellations.

    A command can finish although the task running it was cancelled meanwhile,
    and the client then drops the cancellation: about half of the cancels that
    land during a command are lost that way (redis 8.1). A session's task that
    ignores its cancellation never ends, so after each command a cancellation
    asked for during it is raised again.
    """

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        command = super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        return await _keeping_cancellation(command)


async def _keeping_cancellation(work: Awaitable[T]) -> T:
    """Awaits ``work`` (a pipeline, say), then raises a cancellation it dropped."""
    before = _cancellations()
    try:
        return await work
    finally:
        if _cancellations() > before:
            raise asyncio.CancelledError


@dataclass(slots=True)
class _Batch:
    drafts: Sequence[Draft]
    future: asyncio.Future[list[tuple[StoredMessage, bool]]]


class RedisStore(Store):
    """Chat state in Redis, shared by every server using the same URL (see the module doc).

    Args:
        url: ``redis://host:port/db`` (``rediss://`` for TLS, ``unix://`` for a socket).
        options: limits shared by every store.
        timeout_s: how long one Redis command may take before the store reports
            itself unavailable.
    """

    def __init__(
        self, url: str, options: StoreOptions | None = None, timeout_s: float = 5.0
    ) -> None:
        super().__init__(options)
        self.url = url
        self._timeout_s = timeout_s
        self._redis: aioredis.Redis | None = None
        self._reader_redis: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._queue: asyncio.Queue[_Batch | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        #: Watched keys (``#room``, ``@user``) and the Redis time each starts from,
        #: None until worked out from :attr:`_watched_at` (local monotonic time).
        self._watch_start: dict[str, int | None] = {}
        self._watched_at: dict[str, float] = {}
        #: The newest seq notified per conversation of interest (absent: not yet known).
        self._notified: dict[str, int] = {}
        #: Where the reader goes on in each watched user's inbox stream.
        self._inbox_cursor: dict[str, str] = {}
        self._deliver_lock = asyncio.Lock()
        self._wake_key = f"{P}wake:{secrets.token_hex(8)}"
        self._wake_id = "0-0"
        self._poke_task: asyncio.Task[None] | None = None
        #: This server among the others, for presence: its id, the (room, user)
        #: pairs it reports online, where the reader is in the presence stream.
        self._node = secrets.token_hex(6)
        self._here: set[tuple[str, str]] = set()
        self._presence_id = "0-0"
        #: Presence reports not written yet, in order, and the task writing them
        #: (which also refreshes :attr:`_here`: one writer keeps them in order).
        self._reports: deque[tuple[str, str, bool]] = deque()
        self._reported = asyncio.Event()
        self._presence_stopping = False
        self._presence_task: asyncio.Task[None] | None = None
        #: Per watched room, the users online through other servers as last told
        #: to the presence listener; refreshed from Redis and diffed, one at a time.
        self._elsewhere: dict[str, set[str]] = {}
        self._elsewhere_lock = asyncio.Lock()
        #: Redis calls under way, waited for before the clients are closed.
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle -------------------------------------------------------------------

    def _client(self, timeout: float | None) -> aioredis.Redis:
        return _Redis.from_url(
            self.url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=self._timeout_s,
            retry=Retry(NoBackoff(), 0),
        )

    async def open(self) -> None:
        self._redis = self._client(self._timeout_s)
        self._reader_redis = self._client(BLOCK_MS / 1000 + self._timeout_s)
        self._scripts = {
            "append": self._redis.register_script(APPEND_LUA),
            "create_account": self._redis.register_script(CREATE_ACCOUNT_LUA),
            "set_password": self._redis.register_script(SET_PASSWORD_LUA),
            "revoke_tokens": self._redis.register_script(REVOKE_TOKENS_LUA),
            "revoke_token": self._redis.register_script(REVOKE_TOKEN_LUA),
            "mint_token": self._redis.register_script(MINT_TOKEN_LUA),
            "claim_room": self._redis.register_script(rr.CLAIM_ROOM_LUA),
            "rooms_page": self._redis.register_script(rr.ROOMS_PAGE_LUA),
            "prune_rooms": self._redis.register_script(rr.PRUNE_ROOMS_LUA),
            "use_regtoken": self._redis.register_script(rr.USE_REGTOKEN_LUA),
        }
        try:
            self.epoch = await self._call(self._load_epoch)
        except BaseException:
            await self._release_clients()
            raise
        try:
            self._presence_id = await self._call(self._last_presence_id)
            await self._call(self._index_rooms)
        except BaseException:
            await self._release_clients()
            raise
        self._writer = asyncio.create_task(self._write_loop(), name="chatrpc-redis-writer")
        self._reader = asyncio.create_task(self._read_loop(), name="chatrpc-redis-reader")
        self._presence_task = asyncio.create_task(
            self._presence_loop(), name="chatrpc-redis-presence"
        )
        log.info("Redis store at %s (epoch %s)", self.url, self.epoch)

    async def _index_rooms(self) -> None:
        """Lists rooms made before the activity and name indexes existed (once:
        while the rooms set has rooms the indexes lack), as active now."""
        r = self._r()
        if await r.zcard(rr.NAMES) >= await r.scard(rr.ROOMS):
            return
        now = int(time.time() * 1000)
        cursor = 0
        while True:
            cursor, keys = await r.sscan(rr.ROOMS, cursor, count=1000)
            rooms = _strs(keys)
            if rooms:
                async with r.pipeline(transaction=False) as pipe:
                    pipe.zadd(rr.ACTIVE, dict.fromkeys(rooms, now), nx=True)
                    pipe.zadd(rr.NAMES, dict.fromkeys(rooms, 0), nx=True)
                    await pipe.execute()
            if int(cursor) == 0:
                return

    async def _load_epoch(self) -> str:
        r = self._r()
        await r.set(f"{P}epoch", secrets.token_hex(8), nx=True)
        epoch = await r.get(f"{P}epoch")
        return str(epoch)

    async def close(self) -> None:
        if self._closed:
            return
        await self._withdraw_presence()
        self._closed = True
        if self._writer is not None:
            self._queue.put_nowait(None)  # finishes what is queued, then stops
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), self._timeout_s * 2)
            except TimeoutError:
                log.warning("Redis writer did not finish in time; refusing what is left")
            await _cancel(self._writer)
        while not self._queue.empty():
            batch = self._queue.get_nowait()
            if batch is not None and not batch.future.done():
                batch.future.set_exception(StoreUnavailable("the store is closed"))
        if self._redis is not None:
            # Wakes the reader from its XREAD: it sees the store closed and stops.
            with contextlib.suppress(RedisError, OSError):
                await self._redis.xadd(self._wake_key, {"w": "1"}, maxlen=1)
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), self._timeout_s)
            except TimeoutError:
                log.warning("Redis reader did not stop in time")
        for task in (self._reader, self._poke_task):
            if task is not None:
                await _cancel(task)
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.delete(self._wake_key)
        # Calls still under way (a handler's read, say) end before their client closes.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self._timeout_s)
        await self._release_clients()

    async def _release_clients(self) -> None:
        for client in (self._redis, self._reader_redis):
            if client is not None:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()

    def _r(self) -> aioredis.Redis:
        if self._closed or self._redis is None:
            raise StoreUnavailable("the store is closed")
        return self._redis

    async def _call(self, fn: Callable[[], Awaitable[T]], *, retry: bool = True) -> T:
        """Runs ``fn``; Redis being unreachable becomes StoreUnavailable.

        Connections left over from before a Redis restart fail once: the pool is
        then reset, and ``fn`` is tried again when running it twice is harmless.
        """
        self._inflight += 1
        self._idle.clear()
        try:
            for attempt in (1, 2):
                try:
                    return await _keeping_cancellation(fn())
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    await self._reset_pool()
                    if attempt == 2 or not retry:
                        raise StoreUnavailable(
                            f"Redis at {self.url} is unavailable: {exc}"
                        ) from exc
            raise AssertionError("unreachable")
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()

    async def _unavailable_on_error(self, work: Awaitable[T]) -> T:
        try:
            return await _keeping_cancellation(work)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await self._reset_pool()
            raise StoreUnavailable(f"Redis at {self.url} is unavailable: {exc}") from exc

    async def _reset_pool(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.connection_pool.disconnect()

    # -- watching ----------------------------------------------------------------------

    def watch(self, key: str) -> None:
        if key in self._watch_start:
            return
        self._watch_start[key] = None
        self._watched_at[key] = time.monotonic()
        if is_room_key(key):
            self._notified.pop(key, None)
        self._poke()

    def unwatch(self, key: str) -> None:
        if key not in self._watch_start:
            return
        del self._watch_start[key]
        self._watched_at.pop(key, None)
        if key.startswith("@"):
            user = key[1:]
            self._inbox_cursor.pop(user, None)
            for conv in [c for c in self._notified if not is_room_key(c) and user in dm_users(c)]:
                if not self._interesting(conv):
                    del self._notified[conv]
        else:
            self._notified.pop(key, None)
            self._elsewhere.pop(key[1:], None)

    def _interesting(self, conv: str) -> bool:
        """Whether the listener must see this conversation's messages from other servers."""
        return any(k in self._watch_start for k in _watch_keys(conv))

    async def _start_of(self, conv: str) -> int | None:
        """The Redis time from which ``conv`` is watched; None if it is not."""
        keys = [k for k in _watch_keys(conv) if k in self._watch_start]
        if any(self._watch_start[k] is None for k in keys):
            await self._resolve_starts()
        starts = [s for k in keys if (s := self._watch_start.get(k)) is not None]
        return min(starts) if starts else None

    async def _resolve_starts(self) -> None:
        """Works out the Redis time of the watches that do not know it yet.

        TIME answers at most the time elapsed here since the watch after it
        happened in Redis, so every message committed after a watch has a
        commit time at or after ``TIME - elapsed``.
        """
        if all(start is not None for start in self._watch_start.values()):
            return
        secs, micros = await self._r().time()
        now = time.monotonic()
        redis_ms = int(secs) * 1000 + int(micros) // 1000
        for key, start in list(self._watch_start.items()):
            if start is None:
                elapsed_ms = math.ceil((now - self._watched_at[key]) * 1000)
                begin = redis_ms - elapsed_ms - WATCH_MARGIN_MS
                self._watch_start[key] = begin
                if key.startswith("@"):
                    self._inbox_cursor[key[1:]] = f"{begin}-0"

    def _poke(self) -> None:
        """Wakes the reader so that it reads the streams watched from now on."""
        if self._redis is None or self._closed:
            return
        if self._poke_task is not None and not self._poke_task.done():
            return

        async def poke() -> None:
            with contextlib.suppress(RedisError, OSError, StoreUnavailable):
                await self._r().xadd(self._wake_key, {"w": "1"}, maxlen=1)

        self._poke_task = asyncio.get_running_loop().create_task(poke())

    # -- notification --------------------------------------------------------------------

    async def _fetch(self, conv: str, after: int, upto: int) -> list[StoredMessage]:
        """Stored messages with ``after < seq <= upto``, oldest first."""
        out: list[StoredMessage] = []
        while after < upto:
            entries = _entries(
                await self._r().xrange(
                    _conv_stream(conv), f"{after + 1}-0", f"{upto}-0", count=FETCH_PAGE
                )
            )
            if not entries:
                break
            out.extend(_message(conv, _entry_seq(i), f) for i, f in entries)
            after = out[-1].seq
        return out

    async def _since(self, conv: str, upto: int, start_ms: int) -> list[StoredMessage]:
        """Messages up to ``upto`` committed at ``start_ms`` (Redis time) or later."""
        out: list[StoredMessage] = []
        top = f"{upto}-0"
        while len(out) < FETCH_PAGE:
            entries = _entries(await self._r().xrevrange(_conv_stream(conv), top, "-", count=100))
            for entry_id, fields in entries:
                if int(fields.get("ct", "0")) < start_ms:
                    out.reverse()
                    return out
                out.append(_message(conv, _entry_seq(entry_id), fields))
            if len(entries) < 100:
                break
            top = f"({entries[-1][0]}"
        out.reverse()
        return out

    def _notify(self, messages: Sequence[StoredMessage]) -> None:
        if not messages:
            return
        try:
            self._listener(messages)
        except Exception:
            log.exception("store listener failed")

    async def _deliver(self, conv: str, upto: int, known: StoredMessage | None = None) -> None:
        """Notifies every message of ``conv`` up to seq ``upto`` not notified yet, in order.

        ``known`` is the message ``upto`` itself when the caller has it (a local append).
        Callers hold :attr:`_deliver_lock`.
        """
        start = await self._start_of(conv)
        if start is None:
            # Nobody here watches it: only local appends are notified, as they come.
            if known is not None:
                self._notify([known])
            return
        last = self._notified.get(conv)
        if last is not None and last >= upto:
            return
        top = upto - 1 if known is not None else upto
        if last is None:
            missing = await self._since(conv, top, start) if top > 0 else []
        else:
            missing = await self._fetch(conv, last, top)
        if known is not None:
            missing.append(known)
        self._notify(missing)
        # A watch may have ended or begun while fetching: record only if still wanted.
        if self._interesting(conv):
            self._notified[conv] = max(upto, self._notified.get(conv, 0))

    # -- the writer task -------------------------------------------------------------------

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batches = [first]
            count = len(first.drafts)
            while count < MAX_BATCH and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                batches.append(nxt)
                count += len(nxt.drafts)
            try:
                await self._write_batches(batches)
            except asyncio.CancelledError:
                for b in batches:
                    if not b.future.done():
                        b.future.set_exception(StoreUnavailable("the store is closed"))
                raise
            except Exception as exc:
                failure: BaseException = exc
                if not isinstance(exc, StoreUnavailable):
                    log.exception("Redis append failed")
                for b in batches:
                    if not b.future.done():
                        b.future.set_exception(failure)

    def _append_args(self, draft: Draft) -> tuple[list[str], list[Any]]:
        dm = not is_room_key(draft.conv)
        cid = draft.client_msg_id
        dedup = f"{P}dedup:{draft.sender}:{cid}" if cid else f"{P}dedup:-"
        if dm:
            a, b = dm_users(draft.conv)
            index = [f"{P}directs:{a}", f"{P}directs:{b}", _inbox(a), _inbox(b)]
        else:
            index = [rr.ROOMS, rr.ACTIVE, rr.NAMES, rr.ROOMS]
        keys = [_counter(draft.conv), _conv_stream(draft.conv), dedup, *index]
        age = self.options.retention_max_age_s
        cutoff = int(time.time() * 1000 - age * 1000) if age else 0
        args: list[Any] = [
            draft.conv,
            draft.sender,
            draft.text,
            draft.sent_at_ms,
            cid,
            max(1, int(self.options.idempotency_window_s * 1000)),
            self.options.retention_max_messages,
            cutoff,
            "1" if dm else "0",
            INBOX_MAXLEN,
        ]
        return keys, args

    async def _write_batches(self, batches: list[_Batch]) -> None:
        drafts = [d for b in batches for d in b.drafts]
        script = self._scripts["append"]

        async def run() -> list[Any]:
            async with self._r().pipeline(transaction=False) as pipe:
                pipe.scripts.add(script)
                for draft in drafts:
                    keys, args = self._append_args(draft)
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                return await pipe.execute()

        # Running the script again is harmless when every append carries a
        # client_msg_id (the second run finds the first), so a connection left
        # over from before a Redis restart costs no error then.
        raw = await self._call(run, retry=all(d.client_msg_id for d in drafts))
        results: list[tuple[StoredMessage, bool]] = []
        async with self._deliver_lock:
            for draft, res in zip(drafts, raw, strict=True):
                if int(res[0]) == 1:
                    msg = draft.stored(int(res[1]))
                    await self._unavailable_on_error(self._deliver(msg.conv, msg.seq, msg))
                    results.append((msg, False))
                else:
                    seq_s, conv = str(res[1]).split(" ", 1)
                    original = self._original(conv, int(seq_s), draft)
                    results.append((await self._unavailable_on_error(original), True))
        i = 0
        for b in batches:
            n = len(b.drafts)
            if not b.future.done():
                b.future.set_result(results[i : i + n])
            i += n

    async def _original(self, conv: str, seq: int, draft: Draft) -> StoredMessage:
        entries = _entries(await self._r().xrange(_conv_stream(conv), f"{seq}-0", f"{seq}-0"))
        if entries:
            return _message(conv, seq, entries[0][1])
        # Retention dropped the original: still stored once, under its seq.
        fields = {"s": draft.sender, "x": draft.text, "t": str(draft.sent_at_ms)}
        fields["c"] = draft.client_msg_id
        return _message(conv, seq, fields)

    # -- the reader task ---------------------------------------------------------------------

    async def _read_loop(self) -> None:
        backoff = BACKOFF_MIN_S
        failing = False
        while not self._closed:
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
                    log.warning("Redis reader lost %s: %s; retrying", self.url, exc)
                failing = True
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            except Exception:
                log.exception("Redis reader failed; retrying")
                await asyncio.sleep(BACKOFF_MAX_S)

    async def _recover(self) -> None:
        await self._reset_pool()
        epoch = await self._load_epoch()
        if epoch != self.epoch:
            # Everything in the new history is new: watch it all from its start.
            log.warning("Redis lost its data (epoch %s is now %s)", self.epoch, epoch)
            self.epoch = epoch
            self._notified.clear()
            self._presence_id = "0-0"
            for key in self._watch_start:
                self._watch_start[key] = 0
                if key.startswith("@"):
                    self._inbox_cursor[key[1:]] = "0-0"
        log.info("Redis reader reconnected to %s", self.url)

    async def _read_once(self) -> None:
        await self._resolve_starts()
        # Rooms watched but not started yet: catch up by commit time first.
        for key in list(self._watch_start):
            if is_room_key(key) and key not in self._notified:
                top = int(await self._r().get(_counter(key)) or 0)
                async with self._deliver_lock:
                    await self._deliver(key, top)
                    self._notified.setdefault(key, top)
        streams: dict[str, str] = {self._wake_key: self._wake_id}
        rooms: dict[str, str] = {}
        for key in self._watch_start:
            if is_room_key(key) and key in self._notified:
                streams[_conv_stream(key)] = f"{self._notified[key]}-0"
                rooms[_conv_stream(key)] = key
        streams[PRESENCE] = self._presence_id
        inboxes: dict[str, str] = {}
        for user, cursor in self._inbox_cursor.items():
            streams[_inbox(user)] = cursor
            inboxes[_inbox(user)] = user
        assert self._reader_redis is not None
        response = await self._reader_redis.xread(
            dict(streams.items()), count=FETCH_PAGE, block=BLOCK_MS
        )
        for stream, entries in cast("list[tuple[str, list[Entry]]]", response or []):
            if not entries:
                continue
            if stream == self._wake_key:
                self._wake_id = entries[-1][0]
            elif stream in rooms:
                await self._on_room_entries(rooms[stream], entries)
            elif stream in inboxes:
                await self._on_inbox_entries(inboxes[stream], entries)
            elif stream == PRESENCE:
                await self._on_presence_entries(entries)

    async def _on_room_entries(self, conv: str, entries: list[Entry]) -> None:
        async with self._deliver_lock:
            last = self._notified.get(conv)
            if last is None or not self._interesting(conv):
                return  # unwatched (or restarted) while reading
            fresh = [_message(conv, _entry_seq(i), f) for i, f in entries if _entry_seq(i) > last]
            if fresh and fresh[0].seq != last + 1:
                fresh = await self._fetch(conv, last, fresh[-1].seq)
            self._notify(fresh)
            if fresh:
                self._notified[conv] = fresh[-1].seq

    async def _on_inbox_entries(self, user: str, entries: list[Entry]) -> None:
        newest: dict[str, int] = {}
        for _, fields in entries:
            conv, seq = fields["k"], int(fields["q"])
            newest[conv] = max(seq, newest.get(conv, 0))
        async with self._deliver_lock:
            for conv, seq in newest.items():
                await self._deliver(conv, seq)
        # Moved on only once delivered: a failure reads the same pointers again.
        if user in self._inbox_cursor:
            self._inbox_cursor[user] = entries[-1][0]

    # -- presence between servers -------------------------------------------------------

    async def _last_presence_id(self) -> str:
        newest = _entries(await self._r().xrevrange(PRESENCE, count=1))
        return newest[0][0] if newest else "0-0"

    def _expiry_ms(self) -> int:
        return int((time.time() + self.options.presence_ttl_s) * 1000)

    def set_online(self, room: str, user: str, online: bool) -> None:
        """Queues a presence report for :meth:`_presence_loop`, which adds or removes
        ``node|user`` in the room's online set (scored by expiry) and tells the
        other servers on the presence stream, in the order of the reports."""
        if online:
            self._here.add((room, user))
        else:
            self._here.discard((room, user))
        if not self._presence_stopping:
            self._reports.append((room, user, online))
            self._reported.set()

    async def online_users(self, room: str) -> list[str]:
        async def do() -> list[str]:
            now = int(time.time() * 1000)
            everyone, elsewhere = self._split_online(
                await self._r().zrangebyscore(_online(room), now, "+inf")
            )
            if room_key(room) in self._watch_start:
                # What a joiner is told: later changes are announced relative to it.
                self._elsewhere.setdefault(room, elsewhere)
            return sorted(everyone)

        return await self._call(do)

    async def online_users_many(self, rooms: Sequence[str]) -> list[set[str]]:
        async def do() -> list[set[str]]:
            if not rooms:
                return []
            now = int(time.time() * 1000)
            async with self._r().pipeline(transaction=False) as pipe:
                for room in rooms:
                    pipe.zrangebyscore(_online(room), now, "+inf")
                found = await pipe.execute()
            return [self._split_online(members)[0] for members in found]

        return await self._call(do)

    async def _presence_loop(self) -> None:
        """Writes the presence reports in order and, every third of the presence
        TTL, refreshes this server's online users, so only a live server keeps
        them. One task does both, so a refresh never revives a user reported gone.
        Reports that fail (Redis down) are dropped: the refresh restores who is
        online and the TTL removes who is not."""
        interval = self.options.presence_ttl_s / 3
        next_beat = time.monotonic() + interval
        while True:
            if not self._reports and not self._presence_stopping:
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
                    await self._write_presence(batch, beat)
                if beat:
                    # Catches the users of a server that stopped refreshing them.
                    await self._refresh_elsewhere(self._watched_rooms())
            except (RedisError, StoreUnavailable) as exc:
                log.info("presence not shared: %s", exc)
            if self._presence_stopping and not self._reports:
                return

    async def _write_presence(self, batch: list[tuple[str, str, bool]], beat: bool) -> None:
        pipe = self._r().pipeline(transaction=False)
        for room, user, online in batch:
            member = f"{self._node}|{user}"
            if online:
                pipe.zadd(_online(room), {member: self._expiry_ms()})
            else:
                pipe.zrem(_online(room), member)
            event: dict[Any, Any] = {"n": self._node, "r": room, "u": user, "o": int(online)}
            pipe.xadd(PRESENCE, event, maxlen=PRESENCE_MAXLEN, approximate=True)
        if beat:
            expiry = self._expiry_ms()
            now = int(time.time() * 1000)
            for room, user in self._here:
                pipe.zadd(_online(room), {f"{self._node}|{user}": expiry})
            for room in {room for room, _ in self._here}:
                pipe.zremrangebyscore(_online(room), "-inf", f"({now}")
        await self._call(pipe.execute, retry=False)

    async def _withdraw_presence(self) -> None:
        """On close: this server's users are gone from every room, at once."""
        for room, user in list(self._here):
            self.set_online(room, user, False)
        self._presence_stopping = True
        self._reported.set()
        task = self._presence_task
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), self._timeout_s * 2)
        except TimeoutError:
            log.warning("presence reports were not all written in time")
        await _cancel(task)

    async def _on_presence_entries(self, entries: list[Entry]) -> None:
        others = [f for _, f in entries if f.get("n") != self._node]
        for f in others:
            if f.get("k") == "revoke":
                self._revoke_listener(f["u"], f.get("t") or None)
        rooms = {f["r"] for f in others if "r" in f}
        await self._refresh_elsewhere(rooms & set(self._watched_rooms()))
        self._presence_id = entries[-1][0]

    def _watched_rooms(self) -> list[str]:
        return [k[1:] for k in self._watch_start if is_room_key(k)]

    def _split_online(self, members: Any) -> tuple[set[str], set[str]]:
        """Users of a room's live ``node|user`` entries: all, and those elsewhere."""
        everyone: set[str] = set()
        elsewhere: set[str] = set()
        for member in _strs(members):
            node, user = member.split("|", 1)
            everyone.add(user)
            if node != self._node:
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
            pipe = self._r().pipeline(transaction=False)
            for room in order:
                pipe.zrangebyscore(_online(room), now, "+inf")
            replies = await self._unavailable_on_error(pipe.execute())
            for room, members in zip(order, replies, strict=True):
                if room_key(room) not in self._watch_start:
                    continue  # unwatched meanwhile
                _, elsewhere = self._split_online(members)
                before = self._elsewhere.get(room)
                self._elsewhere[room] = elsewhere
                if before is None:
                    continue  # the first look: the joiner was told who is online
                for user in sorted(elsewhere - before):
                    self._presence_listener(room, user, True)
                for user in sorted(before - elsewhere):
                    self._presence_listener(room, user, False)

    def online_elsewhere(self, room: str, user: str) -> bool:
        return user in self._elsewhere.get(room, ())

    def count_elsewhere(self, room: str) -> int:
        return len(self._elsewhere.get(room, ()))

    # -- messages --------------------------------------------------------------------

    async def append(self, draft: Draft) -> tuple[StoredMessage, bool]:
        (result,) = await self.append_many([draft])
        return result

    async def append_many(self, drafts: Sequence[Draft]) -> list[tuple[StoredMessage, bool]]:
        """Queued for the writer task, which sends queued appends in one pipeline, in order."""
        self._r()
        if not drafts:
            return []
        future: asyncio.Future[list[tuple[StoredMessage, bool]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.put_nowait(_Batch(list(drafts), future))
        return await future

    async def history(
        self,
        conv: str,
        *,
        after_seq: int = 0,
        before_seq: int = 0,
        limit: int = 100,
        descending: bool = False,
    ) -> list[StoredMessage]:
        if limit <= 0:
            return []
        low = f"{after_seq + 1}-0"
        high = f"{before_seq - 1}-0" if before_seq > 0 else "+"
        if before_seq > 0 and before_seq - 1 < after_seq + 1:
            return []
        key = _conv_stream(conv)

        async def do() -> list[Entry]:
            if descending:
                return _entries(await self._r().xrevrange(key, high, low, count=limit))
            return _entries(await self._r().xrange(key, low, high, count=limit))

        entries = await self._call(do)
        messages = [_message(conv, _entry_seq(i), f) for i, f in entries]
        age = self.options.retention_max_age_s
        if age:
            cutoff = time.time() * 1000 - age * 1000
            messages = [m for m in messages if m.sent_at_ms >= cutoff]
        return messages

    async def last_seq(self, conv: str) -> int:
        async def do() -> int:
            return int(await self._r().get(_counter(conv)) or 0)

        return await self._call(do)

    async def _with_seqs(self, keys: list[str]) -> list[Conversation]:
        keys = sorted(keys)
        if not keys:
            return []
        seqs = await self._r().mget([_counter(k) for k in keys])
        return [Conversation(k, int(s or 0)) for k, s in zip(keys, seqs, strict=True)]

    # -- rooms and memberships --------------------------------------------------------

    async def ensure_room(self, room: str) -> None:
        await self.claim_room(room, "")

    async def claim_room(self, room: str, user: str, *, per_day: int = 0) -> RoomClaim:
        keys = [rr.ROOMS, rr.ACTIVE, rr.NAMES, rr.created_key(user)]

        async def do() -> RoomClaim:
            args = [room_key(room), per_day, QUOTA_WINDOW_MS]
            done, wait_ms = await self._scripts["claim_room"](keys, args)
            if int(done) < 0:
                return RoomClaim(retry_after_s=int(wait_ms) / 1000)
            return RoomClaim(created=int(done) == 1)

        return await self._call(do, retry=False)

    async def _entries_with_seqs(self, pairs: list[tuple[str, int]]) -> list[RoomEntry]:
        if not pairs:
            return []
        seqs = await self._r().mget([_counter(k) for k, _ in pairs])
        return [RoomEntry(k[1:], int(s or 0), t) for (k, t), s in zip(pairs, seqs, strict=True)]

    async def rooms_page(
        self, *, limit: int, after: tuple[int, str] | None = None
    ) -> list[RoomEntry]:
        async def do() -> list[RoomEntry]:
            args = ["", "", limit] if after is None else [after[0], "#" + after[1], limit]
            flat = _strs(await self._scripts["rooms_page"]([rr.ACTIVE], args))
            pairs = [(flat[i], int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]
            return await self._entries_with_seqs(pairs)

        return await self._call(do)

    async def rooms_by_name(self, prefix: str, *, limit: int, after: str = "") -> list[RoomEntry]:
        async def do() -> list[RoomEntry]:
            low = f"(#{after}" if after and after >= prefix else f"[#{prefix}"
            keys = _strs(
                await self._r().zrangebylex(rr.NAMES, low, f"(#{prefix}\x7f", start=0, num=limit)
            )
            if not keys:
                return []
            scores = await self._r().zmscore(rr.ACTIVE, keys)
            pairs = [(k, int(t or 0)) for k, t in zip(keys, scores, strict=True)]
            return await self._entries_with_seqs(pairs)

        return await self._call(do)

    async def prune_rooms(
        self, idle_before_ms: int, *, limit: int, from_ms: int = 0
    ) -> tuple[list[str], int | None]:
        async def do() -> tuple[list[str], int | None]:
            now = int(time.time() * 1000)
            args = [from_ms, idle_before_ms, limit, P, now]
            result = await self._scripts["prune_rooms"]([rr.ACTIVE, rr.NAMES, rr.ROOMS], args)
            examined = [int(float(t)) for t in _strs(result[1])]
            return [k[1:] for k in _strs(result[0])], next_prune_start(examined, limit)

        return await self._call(do, retry=False)

    async def list_rooms(self) -> list[Conversation]:
        async def do() -> list[Conversation]:
            return await self._with_seqs(_strs(await self._r().smembers(rr.ROOMS)))

        return await self._call(do)

    async def list_directs(self, user: str) -> list[Conversation]:
        async def do() -> list[Conversation]:
            return await self._with_seqs(_strs(await self._r().smembers(f"{P}directs:{user}")))

        return await self._call(do)

    async def add_member(self, room: str, user: str) -> None:
        async def do() -> None:
            await self._r().sadd(f"{P}members:{room}", user)

        await self._call(do)

    async def remove_member(self, room: str, user: str) -> None:
        async def do() -> None:
            await self._r().srem(f"{P}members:{room}", user)

        await self._call(do)

    async def is_member(self, room: str, user: str) -> bool:
        async def do() -> bool:
            return bool(await self._r().sismember(f"{P}members:{room}", user))

        return await self._call(do)

    # -- accounts --------------------------------------------------------------------

    async def create_account(self, user: str, password_hash: str | None, token_hash: str) -> bool:
        keys = [f"{P}account:{user}", f"{P}token:{token_hash}", f"{P}tokens:{user}"]

        async def do() -> bool:
            args = [password_hash or "", user, token_hash]
            return bool(await self._scripts["create_account"](keys, args))

        return await self._call(do, retry=False)

    async def get_account(self, user: str) -> Account | None:
        async def do() -> Account | None:
            fields = cast("dict[str, str]", await self._r().hgetall(f"{P}account:{user}"))
            if not fields:
                return None
            return Account(user, fields.get("pw"))

        return await self._call(do)

    async def add_token(self, user: str, token_hash: str) -> None:
        async def do() -> None:
            async with self._r().pipeline(transaction=True) as pipe:
                pipe.set(f"{P}token:{token_hash}", user)
                pipe.sadd(f"{P}tokens:{user}", token_hash)
                await pipe.execute()

        await self._call(do)

    async def mint_token(
        self,
        user: str,
        token_hash: str,
        *,
        proof_hash: str | None = None,
        generation: int | None = None,
    ) -> bool:
        keys = [f"{P}token:{token_hash}", f"{P}tokens:{user}", f"{P}account:{user}"]
        if proof_hash is not None:
            keys.append(f"{P}token:{proof_hash}")
        args = [user, token_hash, "" if generation is None else str(generation)]

        async def do() -> bool:
            return bool(await self._scripts["mint_token"](keys, args))

        return await self._call(do, retry=False)

    async def token_generation(self, user: str) -> int:
        async def do() -> int:
            gen = await self._r().hget(f"{P}account:{user}", "gen")
            return int(gen) if gen is not None else 0

        return await self._call(do)

    async def user_for_token(self, token_hash: str) -> str | None:
        async def do() -> str | None:
            user = await self._r().get(f"{P}token:{token_hash}")
            return None if user is None else str(user)

        return await self._call(do)

    async def revoke_tokens(self, user: str) -> int:
        async def do() -> int:
            keys = [f"{P}tokens:{user}", PRESENCE, f"{P}account:{user}"]
            args = [f"{P}token:", self._node, user, PRESENCE_MAXLEN]
            return int(await self._scripts["revoke_tokens"](keys, args))

        return await self._call(do, retry=False)

    async def revoke_token(self, token_hash: str) -> bool:
        async def do() -> bool:
            keys = [f"{P}token:{token_hash}", PRESENCE]
            args = [f"{P}tokens:", token_hash, self._node, PRESENCE_MAXLEN]
            return bool(await self._scripts["revoke_token"](keys, args))

        return await self._call(do, retry=False)

    async def set_password(self, user: str, password_hash: str) -> bool:
        async def do() -> bool:
            keys = [f"{P}account:{user}"]
            return bool(await self._scripts["set_password"](keys, [password_hash]))

        # Setting the same hash twice is harmless: safe to retry.
        return await self._call(do)

    # -- registration tokens --------------------------------------------------------

    async def create_registration_token(
        self, token_hash: str, *, uses: int, expires_ms: int
    ) -> None:
        async def do() -> None:
            key = rr.regtoken_key(token_hash)
            created = int(time.time() * 1000)
            async with self._r().pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"uses": uses, "expires": expires_ms, "created": created})
                pipe.pexpireat(key, expires_ms)
                pipe.sadd(rr.REGTOKENS, token_hash)
                await pipe.execute()

        await self._call(do)

    async def use_registration_token(self, token_hash: str, now_ms: int) -> bool:
        async def do() -> bool:
            keys = [rr.regtoken_key(token_hash)]
            return bool(await self._scripts["use_regtoken"](keys, [now_ms]))

        return await self._call(do, retry=False)

    async def _registration_hashes(self) -> list[str]:
        """The stored tokens' hashes, forgetting those Redis expired."""
        hashes = sorted(_strs(await self._r().smembers(rr.REGTOKENS)))
        if not hashes:
            return []
        async with self._r().pipeline(transaction=False) as pipe:
            for h in hashes:
                pipe.exists(rr.regtoken_key(h))
            alive = await pipe.execute()
        gone = [h for h, a in zip(hashes, alive, strict=True) if not a]
        if gone:
            await self._r().srem(rr.REGTOKENS, *gone)
        return [h for h, a in zip(hashes, alive, strict=True) if a]

    async def list_registration_tokens(self) -> list[RegistrationToken]:
        async def do() -> list[RegistrationToken]:
            out = []
            for h in await self._registration_hashes():
                f = cast("dict[str, str]", await self._r().hgetall(rr.regtoken_key(h)))
                if f:
                    uses, expires, created = int(f["uses"]), int(f["expires"]), int(f["created"])
                    out.append(RegistrationToken(token_id(h), uses, expires, created))
            return out

        return await self._call(do)

    async def revoke_registration_token(self, token_id_: str) -> bool:
        async def do() -> bool:
            for h in await self._registration_hashes():
                if token_id(h) == token_id_:
                    await self._r().delete(rr.regtoken_key(h))
                    await self._r().srem(rr.REGTOKENS, h)
                    return True
            return False

        return await self._call(do)


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancels ``task`` and waits for it; its own failure is logged, not raised."""
    if task.done():
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
