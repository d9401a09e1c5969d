"""The SQLite store's reads: a small pool of read-only connections on threads,
which WAL lets proceed while the writer commits, and a read-only connection of
the event loop's own for reads of a few rows found by key (a token, a standing,
a resume window): the hop to a reader thread and back costs ~70 us of CPU, some
fifteen times such a read (docs/BENCHMARKS.md, round five).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ...errors import StoreUnavailable

T = TypeVar("T")

#: Reader threads (and their connections).
READER_THREADS = 4


class Readers:
    """Read-only connections, opened on first use by each thread that reads."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._pool = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="chatrpc-sqlite-read")
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self, *, in_place: bool = False) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            if in_place:
                conn.execute("PRAGMA busy_timeout = 0")  # never wait on the event loop
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``fn`` on a reader thread."""
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, lambda: fn(self._conn())
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the database could not be read: {exc}") from exc

    async def read_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``fn``, a read of a few rows found by key, on this thread's own
        connection (see the module docstring). If it finds the database busy,
        which WAL makes rare, the read goes to a reader thread, which waits."""
        try:
            return fn(self._conn(in_place=True))
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return await self.read(fn)
            raise StoreUnavailable(f"the database could not be read: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the database could not be read: {exc}") from exc

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
