"""The SQLite store's message log: appends (deduplicated) and reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

from ... import replay
from ...model import CHANGES, DELETE, EDIT, MESSAGE, REACTION, Draft, StoredMessage, is_room_key
from ..rules import dropped_original
from .engine import MESSAGE_COLUMNS, SQLiteBase, now_ms, row_to_message

#: The most messages a resume reads in place, on the event loop (see readers.py).
IN_PLACE_ROWS = 100


class SQLiteMessages(SQLiteBase):
    """The message log of the SQLite store."""

    def _append_one(
        self, conn: sqlite3.Connection, draft: Draft, touched: list[int]
    ) -> tuple[StoredMessage, bool]:
        now = now_ms()
        if draft.client_msg_id:
            hit = self._sent(conn, draft.sender, draft.client_msg_id, now)
            if hit is not None:
                key, seq, found = hit
                return (found or dropped_original(key, seq, draft)), True
        conv_id = self._conv_id(conn, draft.conv)
        touched.append(conv_id)
        if is_room_key(draft.conv):
            self._touch_room(conn, draft.conv, now)
        conn.execute("UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ?", (conv_id,))
        (seq,) = conn.execute(
            "SELECT last_seq FROM conversations WHERE id = ?", (conv_id,)
        ).fetchone()
        stored = draft.stored(seq)
        if draft.kind in CHANGES and not _apply_change(conn, conv_id, draft):
            stored = replace(stored, text="")  # it changed nothing: keep no text of it
        conn.execute(
            "INSERT INTO messages (conv_id, seq, sender, text, sent_at_ms, client_msg_id,"
            " kind, target_seq, reply_to, emoji, remove) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                conv_id,
                seq,
                draft.sender,
                stored.text,
                draft.sent_at_ms,
                draft.client_msg_id,
                draft.kind,
                draft.target_seq,
                draft.reply_to,
                draft.emoji,
                int(draft.remove),
            ),
        )
        if draft.client_msg_id:
            conn.execute(
                "INSERT OR REPLACE INTO dedup (sender, client_msg_id, conv_id, seq, created_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (draft.sender, draft.client_msg_id, conv_id, seq, now),
            )
        return stored, False

    def _sent(
        self, conn: sqlite3.Connection, sender: str, client_msg_id: str, now: int
    ) -> tuple[str, int, StoredMessage | None] | None:
        """The conversation and seq stored for a client_msg_id within the window,
        and the item (None if retention dropped it)."""
        row = conn.execute(
            "SELECT c.key, d.seq, d.created_ms FROM dedup d "
            "JOIN conversations c ON c.id = d.conv_id "
            "WHERE d.sender = ? AND d.client_msg_id = ?",
            (sender, client_msg_id),
        ).fetchone()
        if row is None or now - row[2] >= self.options.idempotency_window_s * 1000:
            return None
        key, seq, _ = row
        original = conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages "
            "WHERE conv_id = (SELECT id FROM conversations WHERE key = ?) AND seq = ?",
            (key, seq),
        ).fetchone()
        if original is None:
            return key, seq, None
        return key, seq, _with_reactions(conn, key, [row_to_message(key, original)])[0]

    async def find_sent(self, sender: str, client_msg_id: str) -> StoredMessage | None:
        def do(conn: sqlite3.Connection) -> StoredMessage | None:
            hit = self._sent(conn, sender, client_msg_id, now_ms())
            return None if hit is None else hit[2]

        return await self._read_now(do)

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
        return await self._read(
            lambda conn: _history(conn, conv, after_seq, before_seq, limit, descending)
        )

    async def last_seq(self, conv: str) -> int:
        return await self._read_now(lambda conn: _last_seq(conn, conv))

    async def resume_window(
        self,
        conv: str,
        after_seq: int | None,
        epoch: str,
        max_replay: int,
        readers: Sequence[str] = (),
    ) -> replay.Window:
        """The window's reads in place (see ``_read_now``), but for a replay of
        more than :data:`IN_PLACE_ROWS` messages, which a reader thread reads.
        The newest seq and the readers' markers are one query."""
        markers: dict[str, int] = {}

        def answer(conn: sqlite3.Connection, read: replay.Read) -> replay.Answer:
            if isinstance(read, replay.LastSeq):
                last, found = _last_seq_and_markers(conn, conv, readers)
                markers.update(found)
                return last
            if isinstance(read, replay.Marker):
                return markers.get(read.user, 0)
            page = _history(conn, conv, read.after_seq, 0, read.limit, read.newest)
            return page[::-1] if read.newest else page

        reads = replay.Driver(replay.window(after_seq, epoch, self.epoch, max_replay, readers))
        small = await self._read_now(lambda conn: reads.run(partial(answer, conn), IN_PLACE_ROWS))
        if not small:
            await self._read(lambda conn: reads.run(partial(answer, conn)))
        assert reads.result is not None
        return reads.result


def _history(
    conn: sqlite3.Connection,
    conv: str,
    after_seq: int,
    before_seq: int,
    limit: int,
    descending: bool,
) -> list[StoredMessage]:
    order = "DESC" if descending else "ASC"
    upper = before_seq if before_seq > 0 else 2**62
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages "
        "WHERE conv_id = (SELECT id FROM conversations WHERE key = ?)"
        f" AND seq > ? AND seq < ? ORDER BY seq {order} LIMIT ?",
        (conv, after_seq, upper, limit),
    ).fetchall()
    return _with_reactions(conn, conv, [row_to_message(conv, row) for row in rows])


def _last_seq_and_markers(
    conn: sqlite3.Connection, conv: str, readers: Sequence[str]
) -> tuple[int, dict[str, int]]:
    """The newest seq of ``conv`` and the read markers of ``readers`` in it."""
    if not readers:
        return _last_seq(conn, conv), {}
    rows = conn.execute(
        "SELECT c.last_seq, r.user, r.seq FROM conversations c LEFT JOIN read_markers r"
        f" ON r.conv_id = c.id AND r.user IN ({', '.join('?' * len(readers))}) WHERE c.key = ?",
        (*readers, conv),
    ).fetchall()
    if not rows:
        return 0, {}
    return int(rows[0][0]), {str(u): int(seq) for _, u, seq in rows if u is not None}


def _last_seq(conn: sqlite3.Connection, conv: str) -> int:
    row = conn.execute("SELECT last_seq FROM conversations WHERE key = ?", (conv,)).fetchone()
    return int(row[0]) if row else 0


def _apply_change(conn: sqlite3.Connection, conv_id: int, change: Draft) -> bool:
    """Applies a change to its target row (see chatrpc.store.changes); False if
    the target is not a live message, so it changed nothing."""
    target = change.target_seq
    row = conn.execute(
        "SELECT kind, deleted FROM messages WHERE conv_id = ? AND seq = ?", (conv_id, target)
    ).fetchone()
    if row is None or row[0] != MESSAGE or row[1]:
        return False
    if change.kind == EDIT:
        conn.execute(
            "UPDATE messages SET text = ?, edited = 1 WHERE conv_id = ? AND seq = ?",
            (change.text, conv_id, target),
        )
    elif change.kind == DELETE:
        conn.execute(
            "UPDATE messages SET text = '', deleted = 1 WHERE conv_id = ? AND seq = ?",
            (conv_id, target),
        )
        conn.execute(
            "UPDATE messages SET text = '' WHERE conv_id = ? AND seq > ? AND kind = ?"
            " AND target_seq = ?",
            (conv_id, target, EDIT, target),
        )
        conn.execute("DELETE FROM reactions WHERE conv_id = ? AND seq = ?", (conv_id, target))
    elif change.kind == REACTION and change.remove:
        conn.execute(
            "DELETE FROM reactions WHERE conv_id = ? AND seq = ? AND emoji = ? AND user = ?",
            (conv_id, target, change.emoji, change.sender),
        )
    elif change.kind == REACTION:
        conn.execute(
            "INSERT OR IGNORE INTO reactions (conv_id, seq, emoji, user) VALUES (?, ?, ?, ?)",
            (conv_id, target, change.emoji, change.sender),
        )
    return True


def _with_reactions(
    conn: sqlite3.Connection, conv: str, messages: list[StoredMessage]
) -> list[StoredMessage]:
    """Fills in the reactions of the messages (a page of one conversation)."""
    seqs = [m.seq for m in messages if m.kind == MESSAGE and not m.deleted]
    if not seqs:
        return messages
    rows = conn.execute(
        "SELECT seq, emoji, user FROM reactions "
        "WHERE conv_id = (SELECT id FROM conversations WHERE key = ?) AND seq BETWEEN ? AND ?"
        " ORDER BY seq, emoji, user",
        (conv, min(seqs), max(seqs)),
    ).fetchall()
    found: dict[int, dict[str, list[str]]] = {}
    for seq, emoji, user in rows:
        found.setdefault(seq, {}).setdefault(emoji, []).append(user)
    for m in messages:
        if m.seq in found:
            m.reactions = tuple((e, tuple(users)) for e, users in found[m.seq].items())
    return messages
