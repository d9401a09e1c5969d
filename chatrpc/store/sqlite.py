"""The embedded default store: one SQLite file in WAL mode.

One writer thread owns the only writing connection. Writes queue up while a
transaction commits and the next transaction takes them all (group commit), so
durability costs one fsync per batch, not per message, and the event loop never
waits on disk. Reads run on a small pool of read-only connections, which WAL lets
proceed while the writer commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreUnavailable
from ..model import (
    Conversation,
    Draft,
    StoredMessage,
    dm_users,
    is_room_key,
    message_in,
    room_key,
)
from .base import (
    QUOTA_WINDOW_MS,
    Account,
    LocalPresence,
    RegistrationToken,
    RoomClaim,
    RoomEntry,
    Store,
    StoreOptions,
    next_prune_start,
    token_id,
)
from .rules import dropped_original, retention_cutoff_ms, store_closed

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Schema versions, applied in order; ``PRAGMA user_version`` records the last
#: one applied, so a newer release opens an older file by running the rest.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        last_seq INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        conv_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        sent_at_ms INTEGER NOT NULL,
        client_msg_id TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (conv_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE directs (
        user TEXT NOT NULL,
        conv_id INTEGER NOT NULL,
        PRIMARY KEY (user, conv_id)
    ) WITHOUT ROWID;
    CREATE TABLE dedup (
        sender TEXT NOT NULL,
        client_msg_id TEXT NOT NULL,
        conv_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (sender, client_msg_id)
    ) WITHOUT ROWID;
    CREATE INDEX dedup_by_age ON dedup (created_ms);
    CREATE TABLE members (
        room TEXT NOT NULL,
        user TEXT NOT NULL,
        joined_ms INTEGER NOT NULL,
        PRIMARY KEY (room, user)
    ) WITHOUT ROWID;
    CREATE TABLE accounts (
        user TEXT PRIMARY KEY,
        password_hash TEXT,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE tokens (
        token_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX tokens_by_user ON tokens (user);
    """,
    # How many times every token of the user was revoked: a Login that checked a
    # password before a revoke-all must not mint a token after it.
    """
    ALTER TABLE accounts ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
    """,
    # Rooms listed a page at a time by latest activity, the room creation quota
    # and registration tokens. Existing rooms were last active at their newest
    # message (or now, if they have none).
    """
    CREATE TABLE rooms (
        name TEXT PRIMARY KEY,
        created_ms INTEGER NOT NULL,
        active_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX rooms_by_activity ON rooms (active_ms, name);
    INSERT INTO rooms (name, created_ms, active_ms)
        SELECT c.key, CAST(strftime('%s', 'now') AS INTEGER) * 1000,
            COALESCE(
                (SELECT MAX(m.sent_at_ms) FROM messages m WHERE m.conv_id = c.id),
                CAST(strftime('%s', 'now') AS INTEGER) * 1000)
        FROM conversations c WHERE c.key LIKE '#%';
    CREATE TABLE room_creations (
        user TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        room TEXT NOT NULL
    );
    CREATE INDEX room_creations_by_user ON room_creations (user, created_ms);
    CREATE INDEX room_creations_by_age ON room_creations (created_ms);
    CREATE TABLE registration_tokens (
        token_hash TEXT PRIMARY KEY,
        uses_left INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
]

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


def _now_ms() -> int:
    return int(time.time() * 1000)


def _row_to_message(key: str, row: tuple[Any, ...]) -> StoredMessage:
    seq, sender, text, sent_at_ms, client_msg_id = row
    return message_in(key, seq, sender, text, sent_at_ms, client_msg_id)


class SQLiteStore(LocalPresence, Store):
    """Chat state in one SQLite file (WAL); see the module docstring for the threads.

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
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        if readonly:
            conn.execute("PRAGMA query_only = ON")
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> str:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.path} has schema version {version}, newer than this release"
                    f" understands ({len(MIGRATIONS)}); upgrade chatrpc"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
            row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
            if row is None:
                epoch = secrets.token_hex(8)
                conn.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", (epoch,))
            else:
                epoch = row[0]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return str(epoch)

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def setup() -> tuple[sqlite3.Connection, str]:
            conn = self._connect(readonly=False)
            try:
                return conn, self._migrate(conn)
            except BaseException:
                conn.close()
                raise

        conn, self.epoch = await asyncio.to_thread(setup)
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="chatrpc-sqlite-writer", daemon=True
        )
        self._writer.start()
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="chatrpc-sqlite-read")
        log.info("SQLite store at %s (epoch %s)", self.path, self.epoch)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._requests.put(None)
            await asyncio.to_thread(self._writer.join)
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

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
        cutoff = retention_cutoff_ms(self.options, _now_ms())
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

    def _sweep(self, conn: sqlite3.Connection) -> None:
        cutoff = _now_ms() - int(self.options.idempotency_window_s * 1000)
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
        if self._closed or self._readers is None:
            raise store_closed()

        def run() -> T:
            conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._connect(readonly=True)
                self._local.conn = conn
                with self._conns_lock:
                    self._reader_conns.append(conn)
            return fn(conn)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._readers, run)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the database could not be read: {exc}") from exc

    # -- messages --------------------------------------------------------------------

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

    def _append_one(
        self, conn: sqlite3.Connection, draft: Draft, touched: list[int]
    ) -> tuple[StoredMessage, bool]:
        now = _now_ms()
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
                    return _row_to_message(key, original), True
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
            return [_row_to_message(conv, row) for row in rows]

        return await self._read(do)

    async def last_seq(self, conv: str) -> int:
        def do(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT last_seq FROM conversations WHERE key = ?", (conv,)
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._read(do)

    # -- rooms and memberships --------------------------------------------------------

    async def ensure_room(self, room: str) -> None:
        key = room_key(room)

        def do(conn: sqlite3.Connection) -> None:
            self._conv_id(conn, key)
            if conn.execute("SELECT 1 FROM rooms WHERE name = ?", (key,)).fetchone() is None:
                self._touch_room(conn, key, _now_ms())

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
            now = _now_ms()
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
                    " OR EXISTS (SELECT 1 FROM messages WHERE conv_id = ?)",
                    (name[1:], conv_id),
                ).fetchone()[0]
                if busy:
                    continue
                conn.execute("DELETE FROM rooms WHERE name = ?", (name,))
                if not last_seq:
                    conn.execute("DELETE FROM conversations WHERE id = ?", (conv_id,))
                gone.append(name[1:])
            conn.execute(
                "DELETE FROM room_creations WHERE created_ms < ?", (_now_ms() - QUOTA_WINDOW_MS,)
            )
            return gone, next_prune_start([r[1] for r in rows], limit)

        return await self._write(do)

    async def list_directs(self, user: str) -> list[Conversation]:
        def do(conn: sqlite3.Connection) -> list[Conversation]:
            rows = conn.execute(
                "SELECT c.key, c.last_seq FROM directs d JOIN conversations c ON c.id = d.conv_id"
                " WHERE d.user = ? ORDER BY c.key",
                (user,),
            ).fetchall()
            return [Conversation(k, s) for k, s in rows]

        return await self._read(do)

    async def add_member(self, room: str, user: str) -> None:
        def do(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO members (room, user, joined_ms) VALUES (?, ?, ?)",
                (room, user, _now_ms()),
            )

        await self._write(do)

    async def remove_member(self, room: str, user: str) -> None:
        def do(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM members WHERE room = ? AND user = ?", (room, user))

        await self._write(do)

    async def is_member(self, room: str, user: str) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM members WHERE room = ? AND user = ?", (room, user)
            ).fetchone()
            return row is not None

        return await self._read(do)

    # -- accounts --------------------------------------------------------------------

    async def create_account(self, user: str, password_hash: str | None, token_hash: str) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            now = _now_ms()
            cur = conn.execute(
                "INSERT OR IGNORE INTO accounts (user, password_hash, created_ms) VALUES (?, ?, ?)",
                (user, password_hash, now),
            )
            if cur.rowcount == 0:
                return False
            conn.execute(
                "INSERT INTO tokens (token_hash, user, created_ms) VALUES (?, ?, ?)",
                (token_hash, user, now),
            )
            return True

        return await self._write(do)

    async def get_account(self, user: str) -> Account | None:
        def do(conn: sqlite3.Connection) -> Account | None:
            row = conn.execute(
                "SELECT user, password_hash FROM accounts WHERE user = ?", (user,)
            ).fetchone()
            return Account(row[0], row[1]) if row else None

        return await self._read(do)

    async def add_token(self, user: str, token_hash: str) -> None:
        def do(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO tokens (token_hash, user, created_ms) VALUES (?, ?, ?)",
                (token_hash, user, _now_ms()),
            )

        await self._write(do)

    async def mint_token(
        self,
        user: str,
        token_hash: str,
        *,
        proof_hash: str | None = None,
        generation: int | None = None,
    ) -> bool:
        # On the writer thread, in its transaction: serialized with revoke_tokens.
        def do(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT token_generation FROM accounts WHERE user = ?", (user,)
            ).fetchone()
            if row is None or (generation is not None and row[0] != generation):
                return False
            if proof_hash is not None:
                owner = conn.execute(
                    "SELECT user FROM tokens WHERE token_hash = ?", (proof_hash,)
                ).fetchone()
                if owner is None or owner[0] != user:
                    return False
            conn.execute(
                "INSERT INTO tokens (token_hash, user, created_ms) VALUES (?, ?, ?)",
                (token_hash, user, _now_ms()),
            )
            return True

        return await self._write(do)

    async def token_generation(self, user: str) -> int:
        def do(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT token_generation FROM accounts WHERE user = ?", (user,)
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._read(do)

    async def user_for_token(self, token_hash: str) -> str | None:
        def do(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT user FROM tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            return str(row[0]) if row else None

        return await self._read(do)

    async def revoke_tokens(self, user: str) -> int:
        def do(conn: sqlite3.Connection) -> int:
            conn.execute(
                "UPDATE accounts SET token_generation = token_generation + 1 WHERE user = ?",
                (user,),
            )
            return conn.execute("DELETE FROM tokens WHERE user = ?", (user,)).rowcount

        return await self._write(do)

    async def revoke_token(self, token_hash: str) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM tokens WHERE token_hash = ?", (token_hash,))
            return cur.rowcount > 0

        return await self._write(do)

    async def set_password(self, user: str, password_hash: str) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE accounts SET password_hash = ? WHERE user = ?", (password_hash, user)
            )
            return cur.rowcount > 0

        return await self._write(do)

    # -- registration tokens --------------------------------------------------------

    async def create_registration_token(
        self, token_hash: str, *, uses: int, expires_ms: int
    ) -> None:
        def do(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO registration_tokens (token_hash, uses_left, expires_ms, created_ms)"
                " VALUES (?, ?, ?, ?)",
                (token_hash, uses, expires_ms, _now_ms()),
            )

        await self._write(do)

    async def use_registration_token(self, token_hash: str, now_ms: int) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE registration_tokens SET uses_left = uses_left - 1"
                " WHERE token_hash = ? AND uses_left > 0 AND expires_ms > ?",
                (token_hash, now_ms),
            )
            return cur.rowcount > 0

        return await self._write(do)

    async def list_registration_tokens(self) -> list[RegistrationToken]:
        def do(conn: sqlite3.Connection) -> list[RegistrationToken]:
            rows = conn.execute(
                "SELECT token_hash, uses_left, expires_ms, created_ms FROM registration_tokens"
            ).fetchall()
            return sorted(
                (RegistrationToken(token_id(h), u, e, c) for h, u, e, c in rows),
                key=lambda t: t.id,
            )

        return await self._read(do)

    async def revoke_registration_token(self, token_id_: str) -> bool:
        def do(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM registration_tokens WHERE substr(token_hash, 1, 12) = ?",
                (token_id_,),
            )
            return cur.rowcount > 0

        return await self._write(do)
