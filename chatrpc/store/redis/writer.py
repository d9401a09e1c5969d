"""The append writer: one task sends the queued appends in one pipeline, in order."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ...errors import StoreUnavailable
from ...model import Draft, StoredMessage, dm_users, is_room_key
from ..options import StoreOptions
from ..rules import retention_cutoff_ms, store_closed
from .connection import Connection, cancel_task
from .feed import Feed
from .history import History
from .keys import (
    ACTIVE,
    INBOX_MAXLEN,
    MAX_BATCH,
    NAMES,
    ROOMS,
    P,
    body_key,
    conv_stream,
    counter_key,
    dedup_key,
    directs_key,
    inbox_key,
    state_key,
)

log = logging.getLogger(__name__)

Results = list[tuple[StoredMessage, bool]]


@dataclass(slots=True)
class _Batch:
    drafts: Sequence[Draft]
    future: asyncio.Future[Results]


class Writer:
    """Queues appends and commits them, a pipeline of scripts at a time."""

    def __init__(
        self, conn: Connection, options: StoreOptions, history: History, feed: Feed
    ) -> None:
        self._conn = conn
        self._options = options
        self._history = history
        self._feed = feed
        self._queue: asyncio.Queue[_Batch | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="chatrpc-redis-writer")

    async def append_many(self, drafts: Sequence[Draft]) -> Results:
        self._conn.r()
        if not drafts:
            return []
        future: asyncio.Future[Results] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Batch(list(drafts), future))
        return await future

    async def stop(self) -> None:
        """Finishes what is queued (a while at most), then refuses what is left."""
        if self._task is not None:
            self._queue.put_nowait(None)  # finishes what is queued, then stops
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self._conn.timeout_s * 2)
            except TimeoutError:
                log.warning("Redis writer did not finish in time; refusing what is left")
            await cancel_task(self._task)
        while not self._queue.empty():
            batch = self._queue.get_nowait()
            if batch is not None and not batch.future.done():
                batch.future.set_exception(store_closed())

    async def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batches = [first]
            count = len(first.drafts)
            while count < MAX_BATCH and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                batches.append(nxt)
                count += len(nxt.drafts)
            try:
                await self._write_batches(batches)
            except asyncio.CancelledError:
                for b in batches:
                    if not b.future.done():
                        b.future.set_exception(store_closed())
                raise
            except Exception as exc:
                failure: BaseException = exc
                if not isinstance(exc, StoreUnavailable):
                    log.exception("Redis append failed")
                for b in batches:
                    if not b.future.done():
                        b.future.set_exception(failure)

    def _append_args(self, draft: Draft) -> tuple[list[str], list[Any]]:
        dm = not is_room_key(draft.conv)
        cid = draft.client_msg_id
        dedup = dedup_key(draft.sender, cid) if cid else f"{P}dedup:-"
        if dm:
            a, b = dm_users(draft.conv)
            index = [directs_key(a), directs_key(b), inbox_key(a), inbox_key(b)]
        else:
            index = [ROOMS, ACTIVE, NAMES, ROOMS]
        keys = [counter_key(draft.conv), conv_stream(draft.conv), dedup, *index]
        keys += [body_key(draft.conv), state_key(draft.conv)]
        cutoff = retention_cutoff_ms(self._options, int(time.time() * 1000))
        args: list[Any] = [
            draft.conv,
            draft.sender,
            draft.text,
            draft.sent_at_ms,
            cid,
            max(1, int(self._options.idempotency_window_s * 1000)),
            self._options.retention_max_messages,
            cutoff,
            "1" if dm else "0",
            INBOX_MAXLEN,
            draft.kind,
            draft.target_seq,
            draft.reply_to,
            draft.emoji,
            "1" if draft.remove else "0",
        ]
        return keys, args

    async def _write_batches(self, batches: list[_Batch]) -> None:
        drafts = [d for b in batches for d in b.drafts]
        script = self._conn.scripts["append"]

        async def run() -> list[Any]:
            async with self._conn.r().pipeline(transaction=False) as pipe:
                pipe.scripts.add(script)
                for draft in drafts:
                    keys, args = self._append_args(draft)
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                return await pipe.execute()

        # Running the script again is harmless when every append carries a
        # client_msg_id (the second run finds the first), so a connection left
        # over from before a Redis restart costs no error then.
        raw = await self._conn.call(run, retry=all(d.client_msg_id for d in drafts))
        results: Results = []
        async with self._feed.deliver_lock:
            for draft, res in zip(drafts, raw, strict=True):
                if int(res[0]) == 1:
                    msg = draft.stored(int(res[1]))
                    if not int(res[3]):
                        msg = replace(msg, text="")  # a change that changed nothing
                    await self._conn.unavailable_on_error(
                        self._feed.deliver(msg.conv, msg.seq, msg)
                    )
                    results.append((msg, False))
                else:
                    seq_s, conv = str(res[1]).split(" ", 1)
                    original = self._history.original(conv, int(seq_s), draft)
                    results.append((await self._conn.unavailable_on_error(original), True))
        i = 0
        for b in batches:
            n = len(b.drafts)
            if not b.future.done():
                b.future.set_result(results[i : i + n])
            i += n
