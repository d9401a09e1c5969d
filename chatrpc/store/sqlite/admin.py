"""The SQLite store's operations role: listings, disabled accounts, room owners,
deletes, pruning and idle accounts (see chatrpc.store.admin)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ...model import room_key
from ..admin import AccountInfo, RoomDeleted, RoomInfo
from .engine import SQLiteBase

_ACCOUNT = (
    "SELECT user, password_hash IS NOT NULL, disabled, created_ms, last_seen_ms FROM accounts"
)
_ROOM = (
    "SELECT r.name, r.owner, (SELECT COUNT(*) FROM members m WHERE m.room = substr(r.name, 2)),"
    " (SELECT COUNT(*) FROM messages g WHERE g.conv_id = c.id), c.last_seq"
    " FROM rooms r JOIN conversations c ON c.key = r.name"
)


def _account(row: Any) -> AccountInfo:
    user, has_password, disabled, created, seen = row
    return AccountInfo(user, bool(has_password), bool(disabled), created, seen)


def _room(row: Any) -> RoomInfo:
    name, owner, members, stored, last_seq = row
    return RoomInfo(name[1:], owner, members, stored, last_seq)


def _prefix_range(prefix: str, after: str, mark: str = "") -> tuple[str, str, str]:
    """The comparison and bounds of names starting with ``prefix`` past ``after``
    (names are ASCII: each with the prefix sorts below prefix + DEL)."""
    op = ">" if after and after >= prefix else ">="
    return op, mark + max(prefix, after), mark + prefix + "\x7f"


class SQLiteAdmin(SQLiteBase):
    """The operations role of the SQLite store."""

    async def users_page(self, prefix: str, *, limit: int, after: str = "") -> list[AccountInfo]:
        op, low, high = _prefix_range(prefix, after)

        def do(conn: sqlite3.Connection) -> list[AccountInfo]:
            rows = conn.execute(
                f"{_ACCOUNT} WHERE user {op} ? AND user < ? ORDER BY user LIMIT ?",
                (low, high, limit),
            ).fetchall()
            return [_account(r) for r in rows]

        return await self._read(do)

    async def account_info(self, user: str) -> AccountInfo | None:
        def do(conn: sqlite3.Connection) -> AccountInfo | None:
            row = conn.execute(f"{_ACCOUNT} WHERE user = ?", (user,)).fetchone()
            return None if row is None else _account(row)

        return await self._read_now(do)

    async def count_accounts(self) -> int:
        return await self._read(
            lambda c: int(c.execute("SELECT COUNT(*) FROM accounts").fetchone()[0])
        )

    async def clear_password(self, user: str) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            sql = "UPDATE accounts SET password_hash = NULL WHERE user = ?"
            return conn.execute(sql, (user,)).rowcount > 0

        return await self._write(do)

    async def set_disabled(self, user: str, disabled: bool) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            sql = "UPDATE accounts SET disabled = ? WHERE user = ?"
            return conn.execute(sql, (int(disabled), user)).rowcount > 0

        return await self._write(do)

    async def room_infos(self, prefix: str, *, limit: int, after: str = "") -> list[RoomInfo]:
        op, low, high = _prefix_range(prefix, after, "#")

        def do(conn: sqlite3.Connection) -> list[RoomInfo]:
            rows = conn.execute(
                f"{_ROOM} WHERE r.name {op} ? AND r.name < ? ORDER BY r.name LIMIT ?",
                (low, high, limit),
            ).fetchall()
            return [_room(r) for r in rows]

        return await self._read(do)

    async def count_rooms(self) -> int:
        return await self._read(
            lambda c: int(c.execute("SELECT COUNT(*) FROM rooms").fetchone()[0])
        )

    async def delete_room(self, room: str) -> RoomDeleted | None:
        def do(conn: sqlite3.Connection) -> RoomDeleted | None:
            key = room_key(room)
            if conn.execute("DELETE FROM rooms WHERE name = ?", (key,)).rowcount == 0:
                return None
            members = [
                r[0] for r in conn.execute("SELECT user FROM members WHERE room = ?", (room,))
            ]
            conn.execute("DELETE FROM members WHERE room = ?", (room,))
            row = conn.execute("SELECT id FROM conversations WHERE key = ?", (key,)).fetchone()
            if row is None:
                return RoomDeleted(0, sorted(members))
            # The conversation's row stays: it holds the seq counter (never reused).
            deleted = conn.execute("DELETE FROM messages WHERE conv_id = ?", row).rowcount
            for table in ("reactions", "read_markers"):
                conn.execute(f"DELETE FROM {table} WHERE conv_id = ?", row)
            return RoomDeleted(deleted, sorted(members))

        return await self._write(do)

    async def prune_history(self, conv: str, *, before_ms: int = 0, keep_last: int = 0) -> int:
        def do(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT id FROM conversations WHERE key = ?", (conv,)).fetchone()
            if row is None:
                return 0
            deleted = 0
            if before_ms:
                sql = "DELETE FROM messages WHERE conv_id = ? AND sent_at_ms < ?"
                deleted += conn.execute(sql, (row[0], before_ms)).rowcount
            if keep_last:
                deleted += conn.execute(
                    "DELETE FROM messages WHERE conv_id = ? AND seq NOT IN (SELECT seq FROM"
                    " messages WHERE conv_id = ? ORDER BY seq DESC LIMIT ?)",
                    (row[0], row[0], keep_last),
                ).rowcount
            return deleted

        return await self._write(do)

    async def touch_accounts(self, users: Sequence[str], now_ms: int) -> None:
        def do(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE accounts SET last_seen_ms = ? WHERE user = ? AND last_seen_ms < ?",
                [(now_ms, u, now_ms) for u in users],
            )

        await self._write(do)

    async def expire_idle_accounts(
        self, seen_before_ms: int, *, limit: int, after: str = ""
    ) -> tuple[list[str], str | None]:
        t, _, u = after.partition(" ")
        start = (int(t) if t else -1, u)

        def do(conn: sqlite3.Connection) -> tuple[list[str], str | None]:
            rows = conn.execute(
                "SELECT user, last_seen_ms FROM accounts WHERE (last_seen_ms, user) > (?, ?)"
                " AND last_seen_ms < ? ORDER BY last_seen_ms, user LIMIT ?",
                (*start, seen_before_ms, limit),
            ).fetchall()
            gone: list[str] = []
            for user, _ in rows:
                if self._may_expire(conn, user):
                    for table in ("accounts", "tokens", "members", "read_markers"):
                        conn.execute(f"DELETE FROM {table} WHERE user = ?", (user,))
                    gone.append(user)
            return gone, f"{rows[-1][1]} {rows[-1][0]}" if len(rows) == limit else None

        return await self._write(do)

    @staticmethod
    def _may_expire(conn: sqlite3.Connection, user: str) -> bool:
        row = conn.execute(
            "SELECT password_hash IS NULL AND disabled = 0"
            " AND NOT EXISTS (SELECT 1 FROM directs WHERE user = ?)"
            " AND NOT EXISTS (SELECT 1 FROM rooms WHERE owner = ?)"
            " FROM accounts WHERE user = ?",
            (user, user, user),
        ).fetchone()
        return bool(row and row[0])
