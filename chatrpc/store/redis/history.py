"""Reading a conversation's stream back: history pages, seq ranges, and the
messages committed since a Redis time (how a new watch catches up)."""

from __future__ import annotations

import time

from ...model import Draft, StoredMessage
from ..options import StoreOptions
from ..rules import dropped_original, retention_cutoff_ms
from .connection import Connection
from .keys import FETCH_PAGE, Entry, conv_stream, counter_key, entries, entry_seq, message


class History:
    """The message log's reads."""

    def __init__(self, conn: Connection, options: StoreOptions) -> None:
        self._conn = conn
        self._options = options

    async def history(
        self, conv: str, *, after_seq: int, before_seq: int, limit: int, descending: bool
    ) -> list[StoredMessage]:
        if limit <= 0:
            return []
        low = f"{after_seq + 1}-0"
        high = f"{before_seq - 1}-0" if before_seq > 0 else "+"
        if before_seq > 0 and before_seq - 1 < after_seq + 1:
            return []
        key = conv_stream(conv)

        async def do() -> list[Entry]:
            if descending:
                return entries(await self._conn.r().xrevrange(key, high, low, count=limit))
            return entries(await self._conn.r().xrange(key, low, high, count=limit))

        found = await self._conn.call(do)
        messages = [message(conv, entry_seq(i), f) for i, f in found]
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
            found = entries(
                await self._conn.r().xrange(
                    conv_stream(conv), f"{after + 1}-0", f"{upto}-0", count=FETCH_PAGE
                )
            )
            if not found:
                break
            out.extend(message(conv, entry_seq(i), f) for i, f in found)
            after = out[-1].seq
        return out

    async def since(self, conv: str, upto: int, start_ms: int) -> list[StoredMessage]:
        """Messages up to ``upto`` committed at ``start_ms`` (Redis time) or later."""
        out: list[StoredMessage] = []
        top = f"{upto}-0"
        while len(out) < FETCH_PAGE:
            found = entries(await self._conn.r().xrevrange(conv_stream(conv), top, "-", count=100))
            for entry_id, fields in found:
                if int(fields.get("ct", "0")) < start_ms:
                    out.reverse()
                    return out
                out.append(message(conv, entry_seq(entry_id), fields))
            if len(found) < 100:
                break
            top = f"({found[-1][0]}"
        out.reverse()
        return out

    async def original(self, conv: str, seq: int, draft: Draft) -> StoredMessage:
        """The stored message a retried ``draft`` duplicates."""
        found = entries(await self._conn.r().xrange(conv_stream(conv), f"{seq}-0", f"{seq}-0"))
        if found:
            return message(conv, seq, found[0][1])
        return dropped_original(conv, seq, draft)
