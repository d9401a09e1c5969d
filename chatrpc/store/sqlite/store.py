"""The SQLite store: its roles' methods gathered on the engine."""

from __future__ import annotations

from .accounts import SQLiteAccounts
from .admin import SQLiteAdmin
from .markers import SQLiteMarkers
from .messages import SQLiteMessages
from .moderation import SQLiteModeration
from .online import SQLiteOnline
from .rooms import SQLiteRooms
from .search import SQLiteSearch


class SQLiteStore(
    SQLiteAccounts,
    SQLiteAdmin,
    SQLiteRooms,
    SQLiteModeration,
    SQLiteMessages,
    SQLiteSearch,
    SQLiteMarkers,
    SQLiteOnline,
):
    """Chat state in one SQLite file (WAL); see the package docstring for the threads.

    Args:
        path: the database file; its directory is created if missing.
        options: limits shared by every store.
        synchronous: SQLite's ``synchronous`` setting. ``FULL`` (the default)
            makes every acknowledged message survive a power loss; ``NORMAL``
            survives a killed process but may lose the last commits on power loss.
    """
