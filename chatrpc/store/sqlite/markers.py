"""The SQLite store's read markers and unread counts.

A count is two indexed range reads of the conversation's rows past the marker:
how many messages of others there are, and the texts of those that hold
``@name`` at all (``LIKE``, case-insensitive for ASCII as names are), which
:func:`chatrpc.mentions.mentions` then checks word by word.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ...mentions import mentions
from ..markers import UNREAD_CAP, Span, Unread
from .engine import SQLiteBase

#: The rows that count as unread: messages (kind 0), not deleted, of others.
_UNREAD = (
    "FROM messages WHERE conv_id = ? AND seq > ? AND seq <= ?"
    " AND kind = 0 AND deleted = 0 AND sender != ?"
)


def _like(user: str) -> str:
    """A LIKE pattern for texts holding ``@user`` (``_`` escaped: names may hold it)."""
    return "%@" + user.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def read_markers(conn: sqlite3.Connection, user: str, convs: Sequence[str]) -> list[int]:
    """``user``'s marker in each of ``convs`` (0: none), in order."""
    found: dict[str, int] = {}
    for start in range(0, len(convs), 500):
        chunk = list(convs[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT c.key, r.seq FROM read_markers r"
            " JOIN conversations c ON c.id = r.conv_id"
            f" WHERE r.user = ? AND c.key IN ({marks})",
            (user, *chunk),
        ).fetchall()
        found.update((key, int(seq)) for key, seq in rows)
    return [found.get(conv, 0) for conv in convs]


class SQLiteMarkers(SQLiteBase):
    """Read markers of the SQLite store (see chatrpc.store.markers)."""

    async def mark_read(self, user: str, conv: str, seq: int) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT id FROM conversations WHERE key = ?", (conv,)).fetchone()
            if row is None or seq <= 0:
                return False
            cur = conn.execute(
                "INSERT INTO read_markers (user, conv_id, seq) VALUES (?, ?, ?)"
                " ON CONFLICT (user, conv_id) DO UPDATE SET seq = excluded.seq"
                " WHERE excluded.seq > read_markers.seq",
                (user, row[0], seq),
            )
            return cur.rowcount > 0

        return await self._write(do)

    async def read_markers(self, user: str, convs: Sequence[str]) -> list[int]:
        if not convs:
            return []
        return await self._read_now(lambda conn: read_markers(conn, user, convs))

    async def unread_counts(self, user: str, spans: Sequence[Span]) -> list[Unread]:
        def do(conn: sqlite3.Connection) -> list[Unread]:
            return [_count(conn, user, span) for span in spans]

        return await self._read(do)


def _count(conn: sqlite3.Connection, user: str, span: Span) -> Unread:
    if span.empty:
        return Unread()
    row = conn.execute("SELECT id FROM conversations WHERE key = ?", (span.conv,)).fetchone()
    if row is None:
        return Unread()
    after, upto = span.window()
    args = (row[0], after, upto, user)
    (unread,) = conn.execute(f"SELECT count(*) {_UNREAD}", args).fetchone()
    texts = conn.execute(f"SELECT text {_UNREAD} AND text LIKE ? ESCAPE '\\'", (*args, _like(user)))
    mentioned = sum(1 for (text,) in texts if mentions(text, user))
    return Unread(min(int(unread), UNREAD_CAP), min(mentioned, UNREAD_CAP))
