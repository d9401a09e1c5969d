"""The SQLite store's accounts, login tokens, passwords and registration tokens."""

from __future__ import annotations

import sqlite3

from ..accounts import Account, RegistrationToken, token_id
from .engine import SQLiteBase, now_ms


class SQLiteAccounts(SQLiteBase):
    """The accounts and tokens of the SQLite store."""

    async def create_account(self, user: str, password_hash: str | None, token_hash: str) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            now = now_ms()
            cur = conn.execute(
                "INSERT OR IGNORE INTO accounts (user, password_hash, created_ms, last_seen_ms)"
                " VALUES (?, ?, ?, ?)",
                (user, password_hash, now, now),
            )
            if cur.rowcount == 0:
                return False
            conn.execute(
                "INSERT INTO tokens (token_hash, user, created_ms) VALUES (?, ?, ?)",
                (token_hash, user, now),
            )
            return True

        return await self._write(do)

    async def get_account(self, user: str) -> Account | None:
        def do(conn: sqlite3.Connection) -> Account | None:
            row = conn.execute(
                "SELECT user, password_hash, disabled FROM accounts WHERE user = ?", (user,)
            ).fetchone()
            return Account(row[0], row[1], bool(row[2])) if row else None

        return await self._read_now(do)

    async def account_for_token(self, token_hash: str) -> Account | None:
        def do(conn: sqlite3.Connection) -> Account | None:
            row = conn.execute(
                "SELECT a.user, a.password_hash, a.disabled FROM tokens t"
                " JOIN accounts a ON a.user = t.user WHERE t.token_hash = ?",
                (token_hash,),
            ).fetchone()
            return Account(row[0], row[1], bool(row[2])) if row else None

        return await self._read_now(do)

    async def add_token(self, user: str, token_hash: str) -> None:
        def do(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO tokens (token_hash, user, created_ms) VALUES (?, ?, ?)",
                (token_hash, user, now_ms()),
            )

        await self._write(do)

    async def mint_token(
        self,
        user: str,
        token_hash: str,
        *,
        proof_hash: str | None = None,
        generation: int | None = None,
    ) -> bool:
        # On the writer thread, in its transaction: serialized with revoke_tokens.
        def do(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT token_generation FROM accounts WHERE user = ?", (user,)
            ).fetchone()
            if row is None or (generation is not None and row[0] != generation):
                return False
            if proof_hash is not None:
                owner = conn.execute(
                    "SELECT user FROM tokens WHERE token_hash = ?", (proof_hash,)
                ).fetchone()
                if owner is None or owner[0] != user:
                    return False
            conn.execute(
                "INSERT INTO tokens (token_hash, user, created_ms) VALUES (?, ?, ?)",
                (token_hash, user, now_ms()),
            )
            return True

        return await self._write(do)

    async def token_generation(self, user: str) -> int:
        def do(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT token_generation FROM accounts WHERE user = ?", (user,)
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._read_now(do)

    async def user_for_token(self, token_hash: str) -> str | None:
        def do(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT user FROM tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            return str(row[0]) if row else None

        return await self._read_now(do)

    async def revoke_tokens(self, user: str) -> int:
        def do(conn: sqlite3.Connection) -> int:
            conn.execute(
                "UPDATE accounts SET token_generation = token_generation + 1 WHERE user = ?",
                (user,),
            )
            return conn.execute("DELETE FROM tokens WHERE user = ?", (user,)).rowcount

        return await self._write(do)

    async def revoke_token(self, token_hash: str) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM tokens WHERE token_hash = ?", (token_hash,))
            return cur.rowcount > 0

        return await self._write(do)

    async def set_password(self, user: str, password_hash: str) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE accounts SET password_hash = ? WHERE user = ?", (password_hash, user)
            )
            return cur.rowcount > 0

        return await self._write(do)

    # -- registration tokens --------------------------------------------------------

    async def create_registration_token(
        self, token_hash: str, *, uses: int, expires_ms: int
    ) -> None:
        def do(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO registration_tokens (token_hash, uses_left, expires_ms, created_ms)"
                " VALUES (?, ?, ?, ?)",
                (token_hash, uses, expires_ms, now_ms()),
            )

        await self._write(do)

    async def use_registration_token(self, token_hash: str, now_ms: int) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE registration_tokens SET uses_left = uses_left - 1"
                " WHERE token_hash = ? AND uses_left > 0 AND expires_ms > ?",
                (token_hash, now_ms),
            )
            return cur.rowcount > 0

        return await self._write(do)

    async def list_registration_tokens(self) -> list[RegistrationToken]:
        def do(conn: sqlite3.Connection) -> list[RegistrationToken]:
            rows = conn.execute(
                "SELECT token_hash, uses_left, expires_ms, created_ms FROM registration_tokens"
            ).fetchall()
            return sorted(
                (RegistrationToken(token_id(h), u, e, c) for h, u, e, c in rows),
                key=lambda t: t.id,
            )

        return await self._read(do)

    async def revoke_registration_token(self, token_id_: str) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM registration_tokens WHERE substr(token_hash, 1, 12) = ?",
                (token_id_,),
            )
            return cur.rowcount > 0

        return await self._write(do)
