"""Accounts and tokens in Redis. Revocations are announced on the presence stream,
so every server ends the live sessions of the revoked tokens."""

from __future__ import annotations

from typing import cast

from ..accounts import Account
from .connection import Connection
from .keys import PRESENCE, PRESENCE_MAXLEN, SEEN, USERS, P, account_key, token_key, tokens_key


class Accounts:
    """Accounts, login tokens and passwords.

    Args:
        node: this server's id on the presence stream (see presence.py).
    """

    def __init__(self, conn: Connection, node: str) -> None:
        self._conn = conn
        self._node = node

    async def create_account(self, user: str, password_hash: str | None, token_hash: str) -> bool:
        keys = [account_key(user), token_key(token_hash), tokens_key(user), USERS, SEEN]

        async def do() -> bool:
            args = [password_hash or "", user, token_hash]
            return bool(await self._conn.scripts["create_account"](keys, args))

        return await self._conn.call(do, retry=False)

    async def get_account(self, user: str) -> Account | None:
        async def do() -> Account | None:
            fields = cast("dict[str, str]", await self._conn.r().hgetall(account_key(user)))
            if not fields:
                return None
            return Account(user, fields.get("pw"), "off" in fields)

        return await self._conn.call(do)

    async def account_for_token(self, token_hash: str) -> Account | None:
        async def do() -> Account | None:
            script = self._conn.scripts["account_for_token"]
            found = await script([token_key(token_hash)], [f"{P}account:"])
            return None if not found else Account(str(found[0]), found[1], bool(found[2]))

        return await self._conn.call(do)

    async def add_token(self, user: str, token_hash: str) -> None:
        async def do() -> None:
            async with self._conn.r().pipeline(transaction=True) as pipe:
                pipe.set(token_key(token_hash), user)
                pipe.sadd(tokens_key(user), token_hash)
                await pipe.execute()

        await self._conn.call(do)

    async def mint_token(
        self,
        user: str,
        token_hash: str,
        *,
        proof_hash: str | None = None,
        generation: int | None = None,
    ) -> bool:
        keys = [token_key(token_hash), tokens_key(user), account_key(user)]
        if proof_hash is not None:
            keys.append(token_key(proof_hash))
        args = [user, token_hash, "" if generation is None else str(generation)]

        async def do() -> bool:
            return bool(await self._conn.scripts["mint_token"](keys, args))

        return await self._conn.call(do, retry=False)

    async def token_generation(self, user: str) -> int:
        async def do() -> int:
            gen = await self._conn.r().hget(account_key(user), "gen")
            return int(gen) if gen is not None else 0

        return await self._conn.call(do)

    async def user_for_token(self, token_hash: str) -> str | None:
        async def do() -> str | None:
            user = await self._conn.r().get(token_key(token_hash))
            return None if user is None else str(user)

        return await self._conn.call(do)

    async def revoke_tokens(self, user: str) -> int:
        async def do() -> int:
            keys = [tokens_key(user), PRESENCE, account_key(user)]
            args = [f"{P}token:", self._node, user, PRESENCE_MAXLEN]
            return int(await self._conn.scripts["revoke_tokens"](keys, args))

        return await self._conn.call(do, retry=False)

    async def revoke_token(self, token_hash: str) -> bool:
        async def do() -> bool:
            keys = [token_key(token_hash), PRESENCE]
            args = [f"{P}tokens:", token_hash, self._node, PRESENCE_MAXLEN]
            return bool(await self._conn.scripts["revoke_token"](keys, args))

        return await self._conn.call(do, retry=False)

    async def set_password(self, user: str, password_hash: str) -> bool:
        async def do() -> bool:
            keys = [account_key(user)]
            return bool(await self._conn.scripts["set_password"](keys, [password_hash]))

        # Setting the same hash twice is harmless: safe to retry.
        return await self._conn.call(do)
