"""Reading a conversation's stream back: history pages, seq ranges, and the
messages committed since a Redis time (how a new watch catches up).

Every read joins the stream entries with their texts and states (the ``body``
and ``state`` hashes, see keys.py) in one script, so an item comes back in its
current state.
"""

from __future__ import annotations

import time
from typing import Any

from ...model import Draft, StoredMessage
from ..options import StoreOptions
from ..rules import dropped_original, retention_cutoff_ms
from .connection import Connection, keeping_cancellation
from .keys import (
    FETCH_PAGE,
    Entry,
    body_key,
    conv_stream,
    counter_key,
    dedup_key,
    entry_seq,
    flat_fields,
    message,
    state_key,
)


class History:
    """The message log's reads."""

    def __init__(self, conn: Connection, options: StoreOptions) -> None:
        self._conn = conn
        self._options = options

    async def _range(
        self, conv: str, low: str, high: str, count: int, *, reverse: bool = False
    ) -> list[tuple[StoredMessage, int]]:
        """Items with ids in [low, high] (XRANGE bounds; reversed: [high, low]),
        each with the Redis time of its commit (ms)."""
        keys = [conv_stream(conv), body_key(conv), state_key(conv)]
        args = ["r", high, low, count] if reverse else ["f", low, high, count]
        raw: Any = await self._conn.scripts["read"](keys, args)
        out: list[tuple[StoredMessage, int]] = []
        for entry_id, fields_raw, text, state in raw or []:
            fields = flat_fields(fields_raw)
            msg = message(conv, entry_seq(str(entry_id)), fields, str(text), str(state))
            out.append((msg, int(fields.get("ct", "0"))))
        return out

    async def history(
        self, conv: str, *, after_seq: int, before_seq: int, limit: int, descending: bool
    ) -> list[StoredMessage]:
        if limit <= 0:
            return []
        low = f"{after_seq + 1}-0"
        high = f"{before_seq - 1}-0" if before_seq > 0 else "+"
        if before_seq > 0 and before_seq - 1 < after_seq + 1:
            return []

        async def do() -> list[tuple[StoredMessage, int]]:
            return await self._range(conv, low, high, limit, reverse=descending)

        messages = [m for m, _ in await self._conn.call(do)]
        cutoff = retention_cutoff_ms(self._options, int(time.time() * 1000))
        if cutoff:
            messages = [m for m in messages if m.sent_at_ms >= cutoff]
        return messages

    async def last_seq(self, conv: str) -> int:
        async def do() -> int:
            return int(await self._conn.r().get(counter_key(conv)) or 0)

        return await self._conn.call(do)

    async def fetch(self, conv: str, after: int, upto: int) -> list[StoredMessage]:
        """Stored messages with ``after < seq <= upto``, oldest first."""
        out: list[StoredMessage] = []
        while after < upto:
            found = await self._range(conv, f"{after + 1}-0", f"{upto}-0", FETCH_PAGE)
            if not found:
                break
            out.extend(m for m, _ in found)
            after = out[-1].seq
        return out

    async def since(self, conv: str, upto: int, start_ms: int) -> list[StoredMessage]:
        """Messages up to ``upto`` committed at ``start_ms`` (Redis time) or later."""
        out: list[StoredMessage] = []
        top = f"{upto}-0"
        while len(out) < FETCH_PAGE:
            found = await self._range(conv, "-", top, 100, reverse=True)
            for msg, committed_ms in found:
                if committed_ms < start_ms:
                    out.reverse()
                    return out
                out.append(msg)
            if len(found) < 100:
                break
            top = f"({found[-1][0].seq}-0"
        out.reverse()
        return out

    async def entries(self, conv: str, found: list[Entry]) -> list[StoredMessage]:
        """The items of stream entries read elsewhere (XREAD), with their texts and states."""
        if not found:
            return []
        seqs = [str(entry_seq(i)) for i, _ in found]
        async with self._conn.r().pipeline(transaction=False) as pipe:
            pipe.hmget(body_key(conv), seqs)
            pipe.hmget(state_key(conv), seqs)
            texts, states = await keeping_cancellation(pipe.execute())
        return [
            message(conv, entry_seq(i), f, text or "", state or "")
            for (i, f), text, state in zip(found, texts, states, strict=True)
        ]

    async def find_sent(self, sender: str, client_msg_id: str) -> StoredMessage | None:
        """The item stored for a client_msg_id within the window (see MessageLog)."""

        async def do() -> StoredMessage | None:
            hit = await self._conn.r().get(dedup_key(sender, client_msg_id))
            if not hit:
                return None
            seq_s, conv = str(hit).split(" ", 1)
            found = await self._range(conv, f"{seq_s}-0", f"{seq_s}-0", 1)
            return found[0][0] if found else None

        return await self._conn.call(do)

    async def original(self, conv: str, seq: int, draft: Draft) -> StoredMessage:
        """The stored message a retried ``draft`` duplicates."""
        found = await self._range(conv, f"{seq}-0", f"{seq}-0", 1)
        if found:
            return found[0][0]
        return dropped_original(conv, seq, draft)
