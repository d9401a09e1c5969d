"""The Redis store's operations role (see chatrpc.store.admin); each
check-and-change is one script (admin_scripts.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ...model import room_key
from ..admin import AccountInfo, AdminStore, RoomDeleted, RoomInfo
from .connection import Connection
from .keys import (
    ACTIVE,
    NAMES,
    OWNERS,
    PRESENCE,
    PRESENCE_MAXLEN,
    ROOMS,
    SEEN,
    USERS,
    P,
    account_key,
    body_key,
    conv_stream,
    counter_key,
    entries,
    members_key,
    state_key,
    strs,
)
from .presence import Presence

#: Stream entries one step of pruning by age reads.
PRUNE_PAGE = 1000


def _lex_range(prefix: str, after: str, mark: str = "") -> tuple[str, str]:
    low = f"({mark}{after}" if after and after >= prefix else f"[{mark}{prefix}"
    return low, f"({mark}{prefix}\x7f"


class RedisAdmin(AdminStore):
    """The operations role over Redis, a part of :class:`RedisStore` (its
    connection, and its presence, whose stream announces a disable)."""

    _conn: Connection
    _presence: Presence

    async def index_accounts(self) -> None:
        """Indexes accounts made before the account indexes existed (once: while
        the names index is empty), as seen now."""
        r = self._conn.r()
        if await r.zcard(USERS):
            return
        now = int(time.time() * 1000)
        cursor = 0
        while True:
            cursor, keys = await r.scan(cursor, match=f"{P}account:*", count=1000)
            users = [k[len(f"{P}account:") :] for k in strs(keys)]
            if users:
                async with r.pipeline(transaction=False) as pipe:
                    pipe.zadd(USERS, dict.fromkeys(users, 0))
                    pipe.zadd(SEEN, dict.fromkeys(users, now), nx=True)
                    await pipe.execute()
            if int(cursor) == 0:
                return

    async def _infos(self, users: list[str]) -> list[AccountInfo]:
        if not users:
            return []
        async with self._conn.r().pipeline(transaction=False) as pipe:
            for user in users:
                pipe.hmget(account_key(user), "user", "pw", "off", "born")
            pipe.zmscore(SEEN, users)
            *fields, seen = await pipe.execute()
        out = []
        for user, f, t in zip(users, fields, seen, strict=True):
            if f[0] is not None:
                out.append(
                    AccountInfo(
                        user, f[1] is not None, f[2] is not None, int(f[3] or 0), int(t or 0)
                    )
                )
        return out

    async def users_page(self, prefix: str, *, limit: int, after: str = "") -> list[AccountInfo]:
        async def do() -> list[AccountInfo]:
            low, high = _lex_range(prefix, after)
            return await self._infos(
                strs(await self._conn.r().zrangebylex(USERS, low, high, start=0, num=limit))
            )

        return await self._conn.call(do)

    async def account_info(self, user: str) -> AccountInfo | None:
        async def do() -> AccountInfo | None:
            found = await self._infos([user])
            return found[0] if found else None

        return await self._conn.call(do)

    async def count_accounts(self) -> int:
        return int(await self._conn.call(lambda: self._conn.r().zcard(USERS)))

    async def clear_password(self, user: str) -> bool:
        async def do() -> bool:
            return bool(await self._conn.scripts["clear_password"]([account_key(user)], []))

        return await self._conn.call(do)

    async def set_disabled(self, user: str, disabled: bool) -> bool:
        async def do() -> bool:
            keys = [account_key(user), PRESENCE]
            args = ["1" if disabled else "0", self._presence.node, user, PRESENCE_MAXLEN]
            return bool(await self._conn.scripts["set_disabled"](keys, args))

        return await self._conn.call(do, retry=False)

    async def room_infos(self, prefix: str, *, limit: int, after: str = "") -> list[RoomInfo]:
        async def do() -> list[RoomInfo]:
            r = self._conn.r()
            low, high = _lex_range(prefix, after, "#")
            keys = strs(await r.zrangebylex(NAMES, low, high, start=0, num=limit))
            if not keys:
                return []
            async with r.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hget(OWNERS, key)
                    pipe.scard(members_key(key[1:]))
                    pipe.xlen(conv_stream(key))
                    pipe.get(counter_key(key))
                got: list[Any] = await pipe.execute()
            return [
                RoomInfo(k[1:], str(o or ""), int(m), int(n), int(s or 0))
                for k, (o, m, n, s) in zip(keys, _fours(got), strict=True)
            ]

        return await self._conn.call(do)

    async def count_rooms(self) -> int:
        return int(await self._conn.call(lambda: self._conn.r().scard(ROOMS)))

    async def delete_room(self, room: str) -> RoomDeleted | None:
        key = room_key(room)

        async def do() -> RoomDeleted | None:
            keys = [ROOMS, ACTIVE, NAMES, OWNERS, conv_stream(key), members_key(room), PRESENCE]
            args = [key, P, self._presence.node, PRESENCE_MAXLEN]
            out = await self._conn.scripts["delete_room"](keys, args)
            if int(out[0]) < 0:
                return None
            return RoomDeleted(int(out[0]), sorted(strs(out[1:])))

        return await self._conn.call(do, retry=False)

    async def prune_history(self, conv: str, *, before_ms: int = 0, keep_last: int = 0) -> int:
        async def do() -> int:
            r = self._conn.r()
            deleted = 0
            while before_ms:
                found = entries(await r.xrange(conv_stream(conv), "-", "+", count=PRUNE_PAGE))
                old = [i for i, f in found if int(f.get("t", "0")) < before_ms]
                if old:
                    deleted += await self._drop(conv, old)
                if len(old) < len(found) or len(found) < PRUNE_PAGE:
                    break
            if keep_last:
                excess = int(await r.xlen(conv_stream(conv))) - keep_last
                while excess > 0:
                    count = min(excess, PRUNE_PAGE)
                    found = entries(await r.xrange(conv_stream(conv), "-", "+", count=count))
                    if not found:
                        break
                    deleted += await self._drop(conv, [i for i, _ in found])
                    excess -= len(found)
            return deleted

        return await self._conn.call(do, retry=False)

    async def _drop(self, conv: str, ids: list[str]) -> int:
        """Deletes stream entries with the texts and states kept beside them."""
        seqs = [i.split("-", 1)[0] for i in ids]
        async with self._conn.r().pipeline(transaction=True) as pipe:
            pipe.xdel(conv_stream(conv), *ids)
            pipe.hdel(body_key(conv), *seqs)
            pipe.hdel(state_key(conv), *seqs)
            dropped, *_ = await pipe.execute()
        return int(dropped)

    async def touch_accounts(self, users: Sequence[str], now_ms: int) -> None:
        async def do() -> None:
            if users:
                await self._conn.r().zadd(SEEN, dict.fromkeys(users, now_ms), xx=True, gt=True)

        await self._conn.call(do)

    async def expire_idle_accounts(
        self, seen_before_ms: int, *, limit: int, after: str = ""
    ) -> tuple[list[str], str | None]:
        async def do() -> tuple[list[str], str | None]:
            # The cursor is a rank in the last-seen index: what a step removed
            # is subtracted, and an account seen meanwhile (moved past the
            # cutoff) may shift a later one into a step already taken, until
            # the next sweep.
            args = [int(after or 0), seen_before_ms, limit, P]
            gone, more, rank = await self._conn.scripts["expire_accounts"]([SEEN, USERS], args)
            return strs(gone), str(rank) if int(more) else None

        return await self._conn.call(do, retry=False)


def _fours(flat: list[Any]) -> list[tuple[Any, Any, Any, Any]]:
    return [(flat[i], flat[i + 1], flat[i + 2], flat[i + 3]) for i in range(0, len(flat), 4)]
