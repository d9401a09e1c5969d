"""Rooms, memberships, the room creation quota, paging, pruning and registration
tokens in Redis; each check-and-change is one script (scripts.py)."""

from __future__ import annotations

import time
from typing import cast

from ...model import Conversation, room_key
from ..accounts import RegistrationToken, token_id
from ..rooms import QUOTA_WINDOW_MS, RoomClaim, RoomEntry, next_prune_start
from .connection import Connection
from .keys import (
    ACTIVE,
    MEMBEROF_INDEXED,
    NAMES,
    OWNERS,
    REGTOKENS,
    ROOMS,
    P,
    counter_key,
    created_key,
    directs_key,
    memberof_key,
    members_key,
    owned_key,
    regtoken_key,
    strs,
)


class Rooms:
    """Rooms and memberships."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def index_rooms(self) -> None:
        """Lists rooms made before the activity and name indexes existed (once:
        while the rooms set has rooms the indexes lack), as active now."""
        r = self._conn.r()
        if await r.zcard(NAMES) >= await r.scard(ROOMS):
            return
        now = int(time.time() * 1000)
        cursor = 0
        while True:
            cursor, keys = await r.sscan(ROOMS, cursor, count=1000)
            rooms = strs(keys)
            if rooms:
                async with r.pipeline(transaction=False) as pipe:
                    pipe.zadd(ACTIVE, dict.fromkeys(rooms, now), nx=True)
                    pipe.zadd(NAMES, dict.fromkeys(rooms, 0), nx=True)
                    await pipe.execute()
            if int(cursor) == 0:
                return

    async def _with_seqs(self, keys: list[str]) -> list[Conversation]:
        keys = sorted(keys)
        if not keys:
            return []
        seqs = await self._conn.r().mget([counter_key(k) for k in keys])
        return [Conversation(k, int(s or 0)) for k, s in zip(keys, seqs, strict=True)]

    async def claim_room(self, room: str, user: str, *, per_day: int = 0) -> RoomClaim:
        keys = [ROOMS, ACTIVE, NAMES, created_key(user), OWNERS, owned_key(user)]

        async def do() -> RoomClaim:
            args = [room_key(room), per_day, QUOTA_WINDOW_MS, user]
            done, wait_ms = await self._conn.scripts["claim_room"](keys, args)
            if int(done) < 0:
                return RoomClaim(retry_after_s=int(wait_ms) / 1000)
            return RoomClaim(created=int(done) == 1)

        return await self._conn.call(do, retry=False)

    async def _entries_with_seqs(self, pairs: list[tuple[str, int]]) -> list[RoomEntry]:
        if not pairs:
            return []
        seqs = await self._conn.r().mget([counter_key(k) for k, _ in pairs])
        return [RoomEntry(k[1:], int(s or 0), t) for (k, t), s in zip(pairs, seqs, strict=True)]

    async def rooms_page(
        self, *, limit: int, after: tuple[int, str] | None = None
    ) -> list[RoomEntry]:
        async def do() -> list[RoomEntry]:
            args = ["", "", limit] if after is None else [after[0], "#" + after[1], limit]
            flat = strs(await self._conn.scripts["rooms_page"]([ACTIVE], args))
            pairs = [(flat[i], int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]
            return await self._entries_with_seqs(pairs)

        return await self._conn.call(do)

    async def rooms_by_name(self, prefix: str, *, limit: int, after: str = "") -> list[RoomEntry]:
        async def do() -> list[RoomEntry]:
            r = self._conn.r()
            low = f"(#{after}" if after and after >= prefix else f"[#{prefix}"
            keys = strs(await r.zrangebylex(NAMES, low, f"(#{prefix}\x7f", start=0, num=limit))
            if not keys:
                return []
            scores = await r.zmscore(ACTIVE, keys)
            pairs = [(k, int(t or 0)) for k, t in zip(keys, scores, strict=True)]
            return await self._entries_with_seqs(pairs)

        return await self._conn.call(do)

    async def prune_rooms(
        self, idle_before_ms: int, *, limit: int, from_ms: int = 0
    ) -> tuple[list[str], int | None]:
        async def do() -> tuple[list[str], int | None]:
            now = int(time.time() * 1000)
            args = [from_ms, idle_before_ms, limit, P, now]
            result = await self._conn.scripts["prune_rooms"]([ACTIVE, NAMES, ROOMS], args)
            examined = [int(float(t)) for t in strs(result[1])]
            return [k[1:] for k in strs(result[0])], next_prune_start(examined, limit)

        return await self._conn.call(do, retry=False)

    async def room_owner(self, room: str) -> str | None:
        async def do() -> str | None:
            async with self._conn.r().pipeline(transaction=False) as pipe:
                pipe.sismember(ROOMS, room_key(room))
                pipe.hget(OWNERS, room_key(room))
                exists, owner = await pipe.execute()
            return str(owner or "") if exists else None

        return await self._conn.call(do)

    async def set_room_owner(self, room: str, owner: str) -> str | None:
        async def do() -> str | None:
            args = [room_key(room), owner, P]
            done, old = await self._conn.scripts["set_owner"]([ROOMS, OWNERS], args)
            return str(old) if int(done) else None

        return await self._conn.call(do)

    async def list_rooms(self) -> list[Conversation]:
        async def do() -> list[Conversation]:
            return await self._with_seqs(strs(await self._conn.r().smembers(ROOMS)))

        return await self._conn.call(do)

    async def list_directs(self, user: str) -> list[Conversation]:
        async def do() -> list[Conversation]:
            return await self._with_seqs(strs(await self._conn.r().smembers(directs_key(user))))

        return await self._conn.call(do)

    async def add_member(self, room: str, user: str) -> None:
        async def do() -> None:
            async with self._conn.r().pipeline(transaction=True) as pipe:
                pipe.sadd(members_key(room), user)
                pipe.sadd(memberof_key(user), room)
                await pipe.execute()

        await self._conn.call(do)

    async def remove_member(self, room: str, user: str) -> None:
        async def do() -> None:
            async with self._conn.r().pipeline(transaction=True) as pipe:
                pipe.srem(members_key(room), user)
                pipe.srem(memberof_key(user), room)
                await pipe.execute()

        await self._conn.call(do)

    async def member_rooms(self, user: str) -> list[str]:
        async def do() -> list[str]:
            r = self._conn.r()
            rooms = sorted(strs(await r.smembers(memberof_key(user))))
            if not rooms:
                return []
            # The members sets are the truth; the index only says where to look.
            async with r.pipeline(transaction=False) as pipe:
                for room in rooms:
                    pipe.sismember(members_key(room), user)
                found = await pipe.execute()
            return [room for room, yes in zip(rooms, found, strict=True) if yes]

        return await self._conn.call(do)

    async def index_memberships(self) -> None:
        """Builds ``memberof:{user}`` for memberships made before it existed (once)."""
        r = self._conn.r()
        if await r.exists(MEMBEROF_INDEXED):
            return
        cursor = 0
        while True:
            cursor, keys = await r.sscan(ROOMS, cursor, count=500)
            for key in strs(keys):
                room = key[1:]
                users = strs(await r.smembers(members_key(room)))
                if users:
                    async with r.pipeline(transaction=False) as pipe:
                        for user in users:
                            pipe.sadd(memberof_key(user), room)
                        await pipe.execute()
            if int(cursor) == 0:
                break
        await r.set(MEMBEROF_INDEXED, "1")

    async def is_member(self, room: str, user: str) -> bool:
        async def do() -> bool:
            return bool(await self._conn.r().sismember(members_key(room), user))

        return await self._conn.call(do)


class RegistrationTokens:
    """Registration tokens, stored by hash with their uses and expiry."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def create(self, token_hash: str, *, uses: int, expires_ms: int) -> None:
        async def do() -> None:
            key = regtoken_key(token_hash)
            created = int(time.time() * 1000)
            async with self._conn.r().pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"uses": uses, "expires": expires_ms, "created": created})
                pipe.pexpireat(key, expires_ms)
                pipe.sadd(REGTOKENS, token_hash)
                await pipe.execute()

        await self._conn.call(do)

    async def use(self, token_hash: str, now_ms: int) -> bool:
        async def do() -> bool:
            keys = [regtoken_key(token_hash)]
            return bool(await self._conn.scripts["use_regtoken"](keys, [now_ms]))

        return await self._conn.call(do, retry=False)

    async def _hashes(self) -> list[str]:
        """The stored tokens' hashes, forgetting those Redis expired."""
        r = self._conn.r()
        hashes = sorted(strs(await r.smembers(REGTOKENS)))
        if not hashes:
            return []
        async with r.pipeline(transaction=False) as pipe:
            for h in hashes:
                pipe.exists(regtoken_key(h))
            alive = await pipe.execute()
        gone = [h for h, a in zip(hashes, alive, strict=True) if not a]
        if gone:
            await r.srem(REGTOKENS, *gone)
        return [h for h, a in zip(hashes, alive, strict=True) if a]

    async def list(self) -> list[RegistrationToken]:
        async def do() -> list[RegistrationToken]:
            out = []
            for h in await self._hashes():
                f = cast("dict[str, str]", await self._conn.r().hgetall(regtoken_key(h)))
                if f:
                    uses, expires, created = int(f["uses"]), int(f["expires"]), int(f["created"])
                    out.append(RegistrationToken(token_id(h), uses, expires, created))
            return out

        return await self._conn.call(do)

    async def revoke(self, token_id_: str) -> bool:
        async def do() -> bool:
            for h in await self._hashes():
                if token_id(h) == token_id_:
                    await self._conn.r().delete(regtoken_key(h))
                    await self._conn.r().srem(REGTOKENS, h)
                    return True
            return False

        return await self._conn.call(do)
