"""The embedded default store: one SQLite file in WAL mode.

One writer thread owns the only writing connection. Writes queue up while a
transaction commits and the next transaction takes them all (group commit), so
durability costs one fsync per batch, not per message, and the event loop never
waits on disk. Reads run on a small pool of read-only connections, which WAL lets
proceed while the writer commits.

One job per module: ``schema`` (the schema and its migrations), ``engine`` (the
writer thread with group commit, the readers, the lifecycle), ``messages``,
``rooms``, ``accounts`` and ``admin`` (each role's SQL); ``store`` gathers them into
:class:`SQLiteStore`.
"""

from .schema import MIGRATIONS
from .store import SQLiteStore

__all__ = ["MIGRATIONS", "SQLiteStore"]
