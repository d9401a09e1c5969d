"""The SQLite store's threads: one writer thread with group commit, a pool of readers.

One writer thread owns the only writing connection. Writes queue up while a
transaction commits and the next transaction takes them all (group commit), so
durability costs one fsync per batch, not per message, and the event loop never
waits on disk. Reads run on a small pool of read-only connections, which WAL lets
proceed while the writer commits (chatrpc.store.sqlite.readers).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ...errors import StoreUnavailable
from ...model import StoredMessage, dm_users, is_room_key, message_in
from ..base import LocalPresence, LocalSignals, Store, StoreOptions
from ..rules import retention_cutoff_ms, store_closed
from .readers import Readers
from .schema import connect, migrate

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Most operations one transaction takes from the queue.
MAX_BATCH = 2000
#: How often the writer forgets client_msg_ids older than the idempotency window.
DEDUP_SWEEP_S = 60.0


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    #: Set for appends: the conversation it wrote, for retention.
    conv_id: list[int] = field(default_factory=list)


def now_ms() -> int:
    return int(time.time() * 1000)


#: The columns of ``messages`` that :func:`row_to_message` reads, in its order.
MESSAGE_COLUMNS = (
    "seq, sender, text, sent_at_ms, client_msg_id, kind, target_seq, reply_to, emoji,"
    " remove, edited, deleted"
)


def row_to_message(key: str, row: tuple[Any, ...]) -> StoredMessage:
    seq, sender, text, sent_at_ms, client_msg_id, kind, target, reply, emoji, remove, ed, dl = row
    msg = message_in(key, seq, sender, text, sent_at_ms, client_msg_id)
    msg.kind, msg.target_seq, msg.reply_to, msg.emoji = kind, target, reply, emoji
    msg.remove, msg.edited, msg.deleted = bool(remove), bool(ed), bool(dl)
    return msg


class SQLiteBase(LocalPresence, LocalSignals, Store):
    """The threads of the SQLite store and its lifecycle; the roles' methods are in
    the modules beside this one, and :class:`SQLiteStore` gathers them.

    Args:
        path: the database file; its directory is created if missing.
        options: limits shared by every store.
        synchronous: SQLite's ``synchronous`` setting. ``FULL`` (the default)
            makes every acknowledged message survive a power loss; ``NORMAL``
            survives a killed process but may lose the last commits on power loss.
    """

    def __init__(
        self, path: str | Path, options: StoreOptions | None = None, synchronous: str = "FULL"
    ) -> None:
        super().__init__(options)
        self.path = Path(path).expanduser()
        if synchronous.upper() not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError(f"unsupported synchronous mode {synchronous!r}")
        self._synchronous = synchronous.upper()
        self._requests: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers: Readers | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        return connect(self.path, self._synchronous, readonly=readonly)

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def setup() -> tuple[sqlite3.Connection, str]:
            conn = self._connect(readonly=False)
            try:
                return conn, migrate(conn, self.path)
            except BaseException:
                conn.close()
                raise

        conn, self.epoch = await asyncio.to_thread(setup)
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="chatrpc-sqlite-writer", daemon=True
        )
        self._writer.start()
        self._readers = Readers(functools.partial(self._connect, readonly=True))
        log.info("SQLite store at %s (epoch %s)", self.path, self.epoch)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._requests.put(None)
            await asyncio.to_thread(self._writer.join)
        if self._readers is not None:
            self._readers.close()

    # -- the writer thread -----------------------------------------------------------

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        last_sweep = time.monotonic()
        try:
            stopping = False
            while not stopping:
                first = self._requests.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        nxt = self._requests.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stopping = True
                        break
                    batch.append(nxt)
                results = self._run_batch(conn, batch)
                assert self._loop is not None
                with contextlib.suppress(RuntimeError):  # the loop closed under us
                    self._loop.call_soon_threadsafe(self._complete, results)
                if time.monotonic() - last_sweep > DEDUP_SWEEP_S:
                    last_sweep = time.monotonic()
                    self._sweep(conn)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA optimize")
            conn.close()

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_Op]
    ) -> list[tuple[_Op, Any, BaseException | None]]:
        results: list[tuple[_Op, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                conn.execute("SAVEPOINT op")
                try:
                    result = op.fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    results.append((op, None, exc))
                else:
                    results.append((op, result, None))
                conn.execute("RELEASE op")
            self._apply_retention(conn, {c for op in batch for c in op.conv_id})
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.exception("SQLite transaction failed; %d writes are refused", len(batch))
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            failure = StoreUnavailable(f"the database could not commit: {exc}")
            results = [(op, None, failure) for op in batch]
        return results

    def _complete(self, results: list[tuple[_Op, Any, BaseException | None]]) -> None:
        fresh: list[StoredMessage] = []
        for _, result, exc in results:
            if exc is not None:
                continue
            appended = result if isinstance(result, list) else [result]
            for item in appended:
                if isinstance(item, tuple) and isinstance(item[0], StoredMessage) and not item[1]:
                    fresh.append(item[0])
        self._notify(fresh)
        for op, result, exc in results:
            if op.future.done():
                continue
            if exc is None:
                op.future.set_result(result)
            else:
                op.future.set_exception(exc)

    def _apply_retention(self, conn: sqlite3.Connection, conv_ids: Iterable[int]) -> None:
        cap = self.options.retention_max_messages
        age = self.options.retention_max_age_s
        if not (cap or age):
            return
        cutoff = retention_cutoff_ms(self.options, now_ms())
        for conv_id in conv_ids:
            if cap:
                conn.execute(
                    "DELETE FROM messages WHERE conv_id = ? AND seq <= "
                    "(SELECT last_seq FROM conversations WHERE id = ?) - ?",
                    (conv_id, conv_id, cap),
                )
            if age:
                conn.execute(
                    "DELETE FROM messages WHERE conv_id = ? AND sent_at_ms < ?", (conv_id, cutoff)
                )
            # The reactions of the messages dropped go with them.
            conn.execute(
                "DELETE FROM reactions WHERE conv_id = ? AND seq < "
                "COALESCE((SELECT MIN(seq) FROM messages WHERE conv_id = ?), "
                "(SELECT last_seq + 1 FROM conversations WHERE id = ?))",
                (conv_id, conv_id, conv_id),
            )

    def _sweep(self, conn: sqlite3.Connection) -> None:
        cutoff = now_ms() - int(self.options.idempotency_window_s * 1000)
        try:
            conn.execute("DELETE FROM dedup WHERE created_ms < ?", (cutoff,))
            if self.options.retention_max_age_s:
                ids = [r[0] for r in conn.execute("SELECT id FROM conversations")]
                conn.execute("BEGIN IMMEDIATE")
                self._apply_retention(conn, ids)
                conn.execute("COMMIT")
        except sqlite3.Error:
            log.exception("SQLite housekeeping failed")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    async def _write(
        self, fn: Callable[[sqlite3.Connection], T], conv_id: list[int] | None = None
    ) -> T:
        if self._closed or self._loop is None:
            raise store_closed()
        future: asyncio.Future[T] = self._loop.create_future()
        self._requests.put(_Op(fn, future, conv_id if conv_id is not None else []))
        return await future

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``fn`` on a reader thread."""
        if self._closed or self._readers is None:
            raise store_closed()
        return await self._readers.read(fn)

    async def _read_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``fn``, a read of a few rows found by key, in place (see
        :meth:`Readers.read_now`)."""
        if self._closed or self._readers is None:
            raise store_closed()
        return await self._readers.read_now(fn)

    # -- helpers of the roles ----------------------------------------------------

    @staticmethod
    def _conv_id(conn: sqlite3.Connection, key: str) -> int:
        row = conn.execute("SELECT id FROM conversations WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return int(row[0])
        cur = conn.execute("INSERT INTO conversations (key) VALUES (?)", (key,))
        conv_id = cur.lastrowid
        assert conv_id is not None
        if not is_room_key(key):
            for user in set(dm_users(key)):
                conn.execute("INSERT INTO directs (user, conv_id) VALUES (?, ?)", (user, conv_id))
        return conv_id

    @staticmethod
    def _touch_room(conn: sqlite3.Connection, key: str, now: int) -> None:
        """Marks a room the most recently active (creating its listing entry)."""
        (newest,) = conn.execute("SELECT MAX(active_ms) FROM rooms").fetchone()
        active = now if newest is None or newest < now else newest + 1
        conn.execute(
            "INSERT INTO rooms (name, created_ms, active_ms) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET active_ms = excluded.active_ms",
            (key, now, active),
        )
