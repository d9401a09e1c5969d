"""The SQLite store's moderation marks (table ``marks``, schema migration 7; see
chatrpc.store.moderation)."""

from __future__ import annotations

import sqlite3

from ..moderation import (
    BLOCK,
    INVITE,
    Standing,
    block_scope,
    invitations_of,
    standing_keys,
    standing_of,
)
from .engine import SQLiteBase


def _some_marks(
    conn: sqlite3.Connection, scope: str, keys: list[tuple[str, str]]
) -> list[str | None]:
    users = sorted({user for user, _ in keys})
    rows = conn.execute(
        "SELECT user, what, value FROM marks WHERE scope = ?"
        f" AND user IN ({', '.join('?' * len(users))})",
        (scope, *users),
    ).fetchall()
    found = {(str(u), str(w)): str(v) for u, w, v in rows}
    return [found.get(key) for key in keys]


def _marks_in(conn: sqlite3.Connection, scope: str, what: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT user, value FROM marks WHERE scope = ? AND what = ?", (scope, what)
    ).fetchall()
    return {str(u): str(v) for u, v in rows}


def _marks_of(conn: sqlite3.Connection, user: str, what: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT scope, value FROM marks WHERE user = ? AND what = ?", (user, what)
    ).fetchall()
    return {str(s): str(v) for s, v in rows}


class SQLiteModeration(SQLiteBase):
    """Marks as rows (scope, user, what, value)."""

    async def _mark(self, scope: str, user: str, what: str) -> str | None:
        def do(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT value FROM marks WHERE scope = ? AND user = ? AND what = ?",
                (scope, user, what),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._read_now(do)

    async def _set_mark(self, scope: str, user: str, what: str, value: str | None) -> str | None:
        def do(conn: sqlite3.Connection) -> str | None:
            key = (scope, user, what)
            row = conn.execute(
                "SELECT value FROM marks WHERE scope = ? AND user = ? AND what = ?", key
            ).fetchone()
            if value is None:
                conn.execute("DELETE FROM marks WHERE scope = ? AND user = ? AND what = ?", key)
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO marks (scope, user, what, value) VALUES (?, ?, ?, ?)",
                    (*key, value),
                )
            return None if row is None else str(row[0])

        return await self._write(do)

    async def _some_marks(self, scope: str, keys: list[tuple[str, str]]) -> list[str | None]:
        return await self._read_now(lambda conn: _some_marks(conn, scope, keys))

    async def join_standing(self, room: str, user: str) -> tuple[Standing, bool]:
        """The standing and the membership in one read (one hop to the reader pool)."""

        def do(conn: sqlite3.Connection) -> tuple[Standing, bool]:
            marks = _some_marks(conn, room, standing_keys(user))
            member = conn.execute(
                "SELECT 1 FROM members WHERE room = ? AND user = ?", (room, user)
            ).fetchone()
            return standing_of(marks), member is not None

        return await self._read_now(do)

    async def _clear_marks(self, scope: str) -> None:
        def do(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM marks WHERE scope = ?", (scope,))

        await self._write(do)

    async def _marks(self, scope: str, what: str) -> dict[str, str]:
        return await self._read(lambda conn: _marks_in(conn, scope, what))

    async def _marks_of(self, user: str, what: str) -> dict[str, str]:
        return await self._read_now(lambda conn: _marks_of(conn, user, what))

    async def greeting(self, user: str) -> tuple[list[str], list[tuple[str, str, str]]]:
        """Both reads in one step on a reader thread."""

        def do(conn: sqlite3.Connection) -> tuple[dict[str, str], dict[str, str]]:
            return _marks_in(conn, block_scope(user), BLOCK), _marks_of(conn, user, INVITE)

        blocks, invites = await self._read_now(do)
        return sorted(blocks), invitations_of(invites)
