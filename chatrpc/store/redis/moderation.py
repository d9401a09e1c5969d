"""The Redis store's moderation marks (see chatrpc.store.moderation).

``mark:{scope}`` is a hash ``what:user`` -> value, and ``markof:{user}`` its
index ``what:scope`` -> value (a user's invitations); one script changes both.
"""

from __future__ import annotations

from .connection import Connection
from .keys import P


def _scope_key(scope: str) -> str:
    return f"{P}mark:{scope}"


def _user_key(user: str) -> str:
    return f"{P}markof:{user}"


class RedisModeration:
    """The mark primitives over one connection (a part of RedisStore)."""

    _conn: Connection

    async def _mark(self, scope: str, user: str, what: str) -> str | None:
        async def do() -> str | None:
            value = await self._conn.r().hget(_scope_key(scope), f"{what}:{user}")
            return None if value is None else str(value)

        return await self._conn.call(do)

    async def _set_mark(self, scope: str, user: str, what: str, value: str | None) -> str | None:
        async def do() -> str | None:
            keys = [_scope_key(scope), _user_key(user)]
            args = [f"{what}:{user}", f"{what}:{scope}", value or "", "1" if value is None else "0"]
            before = await self._conn.scripts["set_mark"](keys, args)
            return None if before is None else str(before)

        return await self._conn.call(do)

    async def _some_marks(self, scope: str, keys: list[tuple[str, str]]) -> list[str | None]:
        async def do() -> list[str | None]:
            fields = [f"{what}:{user}" for user, what in keys]
            values = await self._conn.r().hmget(_scope_key(scope), fields)
            return [None if v is None else str(v) for v in values]

        return await self._conn.call(do)

    async def _clear_marks(self, scope: str) -> None:
        async def do() -> None:
            await self._conn.scripts["clear_marks"]([_scope_key(scope)], [f"{P}markof:", scope])

        await self._conn.call(do)

    async def _field_values(self, key: str, what: str) -> dict[str, str]:
        async def do() -> dict[str, str]:
            found = await self._conn.r().hgetall(key)
            prefix = what + ":"
            pairs = {str(k): str(v) for k, v in found.items()}
            return {k[len(prefix) :]: v for k, v in pairs.items() if k.startswith(prefix)}

        return await self._conn.call(do)

    async def _marks(self, scope: str, what: str) -> dict[str, str]:
        return await self._field_values(_scope_key(scope), what)

    async def _marks_of(self, user: str, what: str) -> dict[str, str]:
        return await self._field_values(_user_key(user), what)
