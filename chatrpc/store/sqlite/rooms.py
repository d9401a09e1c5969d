"""The SQLite store's rooms, memberships, creation quota, paging and pruning."""

from __future__ import annotations

import sqlite3

from ...model import Conversation, room_key
from ..moderation import KEPT
from ..rooms import QUOTA_WINDOW_MS, RoomClaim, RoomEntry, next_prune_start
from .engine import SQLiteBase, now_ms


class SQLiteRooms(SQLiteBase):
    """The rooms and memberships of the SQLite store."""

    async def ensure_room(self, room: str) -> None:
        key = room_key(room)

        def do(conn: sqlite3.Connection) -> None:
            self._conv_id(conn, key)
            if conn.execute("SELECT 1 FROM rooms WHERE name = ?", (key,)).fetchone() is None:
                self._touch_room(conn, key, now_ms())

        await self._write(do)

    async def list_rooms(self) -> list[Conversation]:
        def do(conn: sqlite3.Connection) -> list[Conversation]:
            rows = conn.execute(
                "SELECT r.name, c.last_seq FROM rooms r JOIN conversations c ON c.key = r.name"
                " ORDER BY r.name"
            ).fetchall()
            return [Conversation(k, s) for k, s in rows]

        return await self._read(do)

    async def claim_room(self, room: str, user: str, *, per_day: int = 0) -> RoomClaim:
        key = room_key(room)

        def do(conn: sqlite3.Connection) -> RoomClaim:
            now = now_ms()
            listed = conn.execute("SELECT 1 FROM rooms WHERE name = ?", (key,)).fetchone()
            if listed is not None:
                self._touch_room(conn, key, now)
                return RoomClaim()
            if per_day:
                since = now - QUOTA_WINDOW_MS
                count, oldest = conn.execute(
                    "SELECT COUNT(*), MIN(created_ms) FROM room_creations"
                    " WHERE user = ? AND created_ms > ?",
                    (user, since),
                ).fetchone()
                if count >= per_day:
                    return RoomClaim(retry_after_s=(oldest + QUOTA_WINDOW_MS - now) / 1000)
                conn.execute(
                    "INSERT INTO room_creations (user, created_ms, room) VALUES (?, ?, ?)",
                    (user, now, key),
                )
            self._conv_id(conn, key)
            self._touch_room(conn, key, now)
            conn.execute("UPDATE rooms SET owner = ? WHERE name = ?", (user, key))
            return RoomClaim(created=True)

        return await self._write(do)

    _ROOM_COLUMNS = "SELECT r.name, c.last_seq, r.active_ms FROM rooms r JOIN conversations c"

    async def rooms_page(
        self, *, limit: int, after: tuple[int, str] | None = None
    ) -> list[RoomEntry]:
        def do(conn: sqlite3.Connection) -> list[RoomEntry]:
            if after is None:
                where, args = "", []
            else:
                where, args = "WHERE (r.active_ms, r.name) < (?, ?)", [after[0], "#" + after[1]]
            rows = conn.execute(
                f"{self._ROOM_COLUMNS} ON c.key = r.name {where}"
                " ORDER BY r.active_ms DESC, r.name DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
            return [RoomEntry(n[1:], s, t) for n, s, t in rows]

        return await self._read(do)

    async def rooms_by_name(self, prefix: str, *, limit: int, after: str = "") -> list[RoomEntry]:
        low = "#" + max(prefix, after)
        # Room names are ASCII: every name with the prefix sorts below prefix + DEL.
        high = "#" + prefix + "\x7f"

        def do(conn: sqlite3.Connection) -> list[RoomEntry]:
            op = ">" if after and after >= prefix else ">="
            rows = conn.execute(
                f"{self._ROOM_COLUMNS} ON c.key = r.name WHERE r.name {op} ? AND r.name < ?"
                " ORDER BY r.name LIMIT ?",
                (low, high, limit),
            ).fetchall()
            return [RoomEntry(n[1:], s, t) for n, s, t in rows]

        return await self._read(do)

    async def prune_rooms(
        self, idle_before_ms: int, *, limit: int, from_ms: int = 0
    ) -> tuple[list[str], int | None]:
        def do(conn: sqlite3.Connection) -> tuple[list[str], int | None]:
            rows = conn.execute(
                "SELECT r.name, r.active_ms, c.id, c.last_seq FROM rooms r"
                " JOIN conversations c ON c.key = r.name"
                " WHERE r.active_ms >= ? AND r.active_ms < ? ORDER BY r.active_ms LIMIT ?",
                (from_ms, idle_before_ms, limit),
            ).fetchall()
            gone: list[str] = []
            for name, _, conv_id, last_seq in rows:
                busy = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM members WHERE room = ?)"
                    " OR EXISTS (SELECT 1 FROM messages WHERE conv_id = ?)"
                    " OR EXISTS (SELECT 1 FROM marks WHERE scope = ? AND user = '' AND what = ?)",
                    (name[1:], conv_id, name[1:], KEPT),
                ).fetchone()[0]
                if busy:
                    continue
                conn.execute("DELETE FROM rooms WHERE name = ?", (name,))
                if not last_seq:
                    conn.execute("DELETE FROM conversations WHERE id = ?", (conv_id,))
                gone.append(name[1:])
            conn.execute(
                "DELETE FROM room_creations WHERE created_ms < ?", (now_ms() - QUOTA_WINDOW_MS,)
            )
            return gone, next_prune_start([r[1] for r in rows], limit)

        return await self._write(do)

    async def room_owner(self, room: str) -> str | None:
        def do(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT owner FROM rooms WHERE name = ?", (room_key(room),)
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._read_now(do)

    async def set_room_owner(self, room: str, owner: str) -> str | None:
        def do(conn: sqlite3.Connection) -> str | None:
            key = room_key(room)
            row = conn.execute("SELECT owner FROM rooms WHERE name = ?", (key,)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE rooms SET owner = ? WHERE name = ?", (owner, key))
            return str(row[0])

        return await self._write(do)

    async def list_directs(self, user: str) -> list[Conversation]:
        def do(conn: sqlite3.Connection) -> list[Conversation]:
            rows = conn.execute(
                "SELECT c.key, c.last_seq FROM directs d JOIN conversations c ON c.id = d.conv_id"
                " WHERE d.user = ? ORDER BY c.key",
                (user,),
            ).fetchall()
            return [Conversation(k, s) for k, s in rows]

        return await self._read_now(do)

    async def add_member(self, room: str, user: str) -> None:
        def do(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO members (room, user, joined_ms) VALUES (?, ?, ?)",
                (room, user, now_ms()),
            )

        await self._write(do)

    async def remove_member(self, room: str, user: str) -> None:
        def do(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM members WHERE room = ? AND user = ?", (room, user))

        await self._write(do)

    async def member_rooms(self, user: str) -> list[str]:
        def do(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT room FROM members WHERE user = ? ORDER BY room", (user,)
            ).fetchall()
            return [r[0] for r in rows]

        return await self._read(do)

    async def is_member(self, room: str, user: str) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM members WHERE room = ? AND user = ?", (room, user)
            ).fetchone()
            return row is not None

        return await self._read_now(do)
