"""The SQLite store keeps who was online when the server stopped, for the restart.

One ``meta`` row, JSON, written as the server stops and forgotten as the next
start reads it (see chatrpc.presence: they linger for the presence grace).
"""

from __future__ import annotations

import json
import logging
import sqlite3

from .engine import SQLiteBase

log = logging.getLogger(__name__)

#: The ``meta`` key of who was online in each room when the server last stopped.
ONLINE_AT_STOP = "online_at_stop"


class SQLiteOnline(SQLiteBase):
    """:meth:`keep_online` and :meth:`take_online` on the ``meta`` table."""

    async def keep_online(self, rooms: dict[str, list[str]]) -> None:
        value = json.dumps(rooms, separators=(",", ":"))

        def do(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (ONLINE_AT_STOP, value)
            )

        await self._write(do)

    async def take_online(self) -> dict[str, list[str]]:
        def do(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (ONLINE_AT_STOP,)).fetchone()
            conn.execute("DELETE FROM meta WHERE key = ?", (ONLINE_AT_STOP,))
            return None if row is None else str(row[0])

        value = await self._write(do)
        if value is None:
            return {}
        try:
            rooms = json.loads(value)
        except ValueError:
            log.warning("who was online at the last stop is unreadable; starting without it")
            return {}
        if not isinstance(rooms, dict):
            return {}
        return {
            str(room): [str(user) for user in users]
            for room, users in rooms.items()
            if isinstance(users, list)
        }
