"""The SQLite store's message log: appends (deduplicated) and reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ...model import Draft, StoredMessage, is_room_key
from ..rules import dropped_original
from .engine import SQLiteBase, now_ms, row_to_message


class SQLiteMessages(SQLiteBase):
    """The message log of the SQLite store."""

    def _append_one(
        self, conn: sqlite3.Connection, draft: Draft, touched: list[int]
    ) -> tuple[StoredMessage, bool]:
        now = now_ms()
        if draft.client_msg_id:
            row = conn.execute(
                "SELECT c.key, d.seq, d.created_ms FROM dedup d "
                "JOIN conversations c ON c.id = d.conv_id "
                "WHERE d.sender = ? AND d.client_msg_id = ?",
                (draft.sender, draft.client_msg_id),
            ).fetchone()
            if row is not None and now - row[2] < self.options.idempotency_window_s * 1000:
                key, seq, _ = row
                original = conn.execute(
                    "SELECT seq, sender, text, sent_at_ms, client_msg_id FROM messages "
                    "WHERE conv_id = (SELECT id FROM conversations WHERE key = ?) AND seq = ?",
                    (key, seq),
                ).fetchone()
                if original is not None:
                    return row_to_message(key, original), True
                return dropped_original(key, seq, draft), True
        conv_id = self._conv_id(conn, draft.conv)
        touched.append(conv_id)
        if is_room_key(draft.conv):
            self._touch_room(conn, draft.conv, now)
        conn.execute("UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ?", (conv_id,))
        (seq,) = conn.execute(
            "SELECT last_seq FROM conversations WHERE id = ?", (conv_id,)
        ).fetchone()
        conn.execute(
            "INSERT INTO messages (conv_id, seq, sender, text, sent_at_ms, client_msg_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (conv_id, seq, draft.sender, draft.text, draft.sent_at_ms, draft.client_msg_id),
        )
        if draft.client_msg_id:
            conn.execute(
                "INSERT OR REPLACE INTO dedup (sender, client_msg_id, conv_id, seq, created_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (draft.sender, draft.client_msg_id, conv_id, seq, now),
            )
        return draft.stored(seq), False

    async def append(self, draft: Draft) -> tuple[StoredMessage, bool]:
        touched: list[int] = []
        return await self._write(lambda conn: self._append_one(conn, draft, touched), touched)

    async def append_many(self, drafts: Sequence[Draft]) -> list[tuple[StoredMessage, bool]]:
        """All in one operation of the next transaction, in order."""
        touched: list[int] = []
        return await self._write(
            lambda conn: [self._append_one(conn, d, touched) for d in drafts], touched
        )

    async def history(
        self,
        conv: str,
        *,
        after_seq: int = 0,
        before_seq: int = 0,
        limit: int = 100,
        descending: bool = False,
    ) -> list[StoredMessage]:
        order = "DESC" if descending else "ASC"
        upper = before_seq if before_seq > 0 else 2**62

        def do(conn: sqlite3.Connection) -> list[StoredMessage]:
            rows = conn.execute(
                "SELECT m.seq, m.sender, m.text, m.sent_at_ms, m.client_msg_id FROM messages m "
                "JOIN conversations c ON c.id = m.conv_id "
                f"WHERE c.key = ? AND m.seq > ? AND m.seq < ? ORDER BY m.seq {order} LIMIT ?",
                (conv, after_seq, upper, limit),
            ).fetchall()
            return [row_to_message(conv, row) for row in rows]

        return await self._read(do)

    async def last_seq(self, conv: str) -> int:
        def do(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT last_seq FROM conversations WHERE key = ?", (conv,)
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._read(do)
