"""Typing notices and read markers between servers, on the presence stream.

Every server already reads the presence stream (the watch feed's XREAD), so a
signal costs one XADD where it is made and one entry read by each server;
nothing else is kept, and the stream's MAXLEN trims it. Typing notices (``k``
"typing", ``c`` conversation, ``u`` user) are queued and written by one task in
a pipeline, and dropped past :data:`MAX_QUEUED` or when Redis is unreachable:
a typing notice is worth nothing a few seconds later. Read markers are written
by :mod:`.markers` in the same script that moves them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from redis.exceptions import RedisError

from ...errors import StoreUnavailable
from ..signals import READ, TYPING, Signal, SignalListener
from .connection import Connection, cancel_task
from .keys import PRESENCE, PRESENCE_MAXLEN, Entry

log = logging.getLogger(__name__)

#: Typing notices waiting to be written, at most (more are dropped).
MAX_QUEUED = 1000


class Signals:
    """This server's typing notices out, and every signal of the others in.

    Args:
        node: this server's id on the presence stream (see presence.py).
        listener: told each signal of another server.
    """

    def __init__(self, conn: Connection, node: str, listener: SignalListener) -> None:
        self._conn = conn
        self._node = node
        self._listener = listener
        self._queued: deque[tuple[str, str]] = deque()
        self._task: asyncio.Task[None] | None = None
        #: Notices dropped (a backlog, or Redis unreachable).
        self.dropped = 0

    def relay_typing(self, conv: str, user: str) -> None:
        if self._conn.closed or self._conn.redis is None or len(self._queued) >= MAX_QUEUED:
            self.dropped += 1
            return
        self._queued.append((conv, user))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._queued:
            batch = [self._queued.popleft() for _ in range(len(self._queued))]
            try:
                pipe = self._conn.r().pipeline(transaction=False)
                for conv, user in batch:
                    fields: dict[Any, Any] = {"n": self._node, "k": TYPING, "c": conv, "u": user}
                    pipe.xadd(PRESENCE, fields, maxlen=PRESENCE_MAXLEN, approximate=True)
                await self._conn.call(pipe.execute, retry=False)
            except (RedisError, StoreUnavailable) as exc:
                self.dropped += len(batch)
                log.debug("typing notices not shared: %s", exc)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_task(self._task)

    def on_entries(self, found: list[Entry]) -> None:
        """Tells the listener the signals of other servers among presence entries."""
        for _, f in found:
            kind = f.get("k")
            if f.get("n") == self._node or kind not in (TYPING, READ):
                continue
            try:
                signal = Signal(kind, f["c"], f["u"], int(f.get("q", "0")))
            except (KeyError, ValueError):
                continue  # not an entry this release writes
            self._listener(signal)
