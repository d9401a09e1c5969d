"""The SQLite store's search: an FTS5 index of the messages' current text.

The index (``message_words``, schema migration 5) is contentless: it holds the
words, not the text, and triggers on ``messages`` keep it in step with every
write of a message's text (send, edit, delete, retention). A row's rowid packs
its message's key, ``conv_id * 2^32 + seq``, so a hit finds its message by
primary key and a search of one conversation reads only that conversation's
rowid range. Messages past seq 2^32 in one conversation are not indexed.

A query goes to FTS5 with every word quoted (chatrpc.store.matching), ordered
newest first by joining the matching rows with their messages (a search of one
conversation reads its rowid range backwards: newest seq first); each hit is then
read back with ``history`` (so it is exactly what History returns) and matched
again, which drops a message edited or deleted since the index was read.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from ...errors import invalid
from ...listing import decode_token, encode_token
from ...model import MESSAGE, StoredMessage
from ..matching import Query
from ..search import SearchPage
from .engine import SQLiteBase

#: The factor packing a message key into an index rowid: conv_id * ROWID_CONV + seq.
ROWID_CONV = 1 << 32

_SELECT = """
SELECT c.key, m.seq, m.sent_at_ms FROM message_words f
JOIN messages m ON m.conv_id = f.rowid / 4294967296 AND m.seq = f.rowid % 4294967296
JOIN conversations c ON c.id = m.conv_id
WHERE message_words MATCH ? AND m.kind = 0 AND m.deleted = 0
"""


class SQLiteSearch(SQLiteBase):
    """Search over the FTS5 index of the SQLite store (see the module docstring)."""

    async def search(
        self,
        query: Query,
        convs: Sequence[str],
        *,
        limit: int,
        before_seq: int = 0,
        page_token: str = "",
    ) -> SearchPage:
        one = len(convs) == 1
        after = _after(page_token, one)
        if not convs:
            return SearchPage()

        def do(conn: sqlite3.Connection) -> list[tuple[str, int, int]]:
            ids = [r[0] for r in conn.execute(_IDS, (json.dumps(list(convs)),))]
            if not ids:
                return []
            sql = _SELECT
            args: list[str | int] = [query.fts5()]
            if one:
                # One conversation: its range of rowids, newest seq first, read
                # from the index in that order (no sort, stops at the limit).
                low = ids[0] * ROWID_CONV
                top = min(before_seq or ROWID_CONV, ROWID_CONV)
                if after is not None:
                    top = min(top, after[2])
                sql += " AND f.rowid >= ? AND f.rowid < ? ORDER BY f.rowid DESC LIMIT ?"
                args += [low, low + top, limit + 1]
            else:
                sql += " AND m.conv_id IN (SELECT value FROM json_each(?))"
                args.append(json.dumps(ids))
                if before_seq:
                    sql += " AND m.seq < ?"
                    args.append(before_seq)
                if after is not None:
                    sql += " AND (m.sent_at_ms, c.key, m.seq) < (?, ?, ?)"
                    args += list(after)
                sql += " ORDER BY m.sent_at_ms DESC, c.key DESC, m.seq DESC LIMIT ?"
                args.append(limit + 1)
            return [(k, s, t) for k, s, t in conn.execute(sql, args)]

        rows = await self._read(do)
        more = len(rows) > limit
        rows = rows[:limit]
        hits = [m for m in [await self._current(k, s) for k, s, _ in rows] if m is not None]
        found = [m for m in hits if m.kind == MESSAGE and not m.deleted and query.matches(m.text)]
        token = ""
        if more:
            conv, seq, t = rows[-1]
            token = encode_token("r", seq) if one else encode_token("q", t, conv, seq)
        return SearchPage(found, token)

    async def _current(self, conv: str, seq: int) -> StoredMessage | None:
        """The message as History returns it now (None if retention dropped it)."""
        page = await self.history(conv, after_seq=seq - 1, before_seq=seq + 1, limit=1)
        return page[0] if page else None


def _after(page_token: str, one: bool) -> tuple[int, str, int] | None:
    """Where the page of ``page_token`` starts: after this (sent_at_ms, key, seq).

    A search of one conversation goes by seq alone (its token holds only that).
    """
    if not page_token:
        return None
    bad = invalid("page_token is not one this search gave: start again without it")
    if one:
        (seq,) = decode_token(page_token, "r", 1)
        if not seq.isdigit():
            raise bad
        return (0, "", int(seq))
    t, conv, seq = decode_token(page_token, "q", 3)
    if not (t.isdigit() and seq.isdigit()):
        raise bad
    return (int(t), conv, int(seq))


#: The ids of the conversations given by key (a JSON array), skipping unknown ones.
_IDS = "SELECT id FROM conversations WHERE key IN (SELECT value FROM json_each(?)) ORDER BY id"
