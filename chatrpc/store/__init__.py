"""History, sequence numbers and accounts behind one interface (see base.py)."""

from .base import (
    QUOTA_WINDOW_MS,
    Account,
    AccountStore,
    ClusterPresence,
    Listener,
    LocalPresence,
    MessageLog,
    RegistrationToken,
    RoomClaim,
    RoomEntry,
    RoomStore,
    Store,
    StoreOptions,
    token_id,
)
from .factory import open_store

__all__ = [
    "QUOTA_WINDOW_MS",
    "Account",
    "AccountStore",
    "ClusterPresence",
    "Listener",
    "LocalPresence",
    "MessageLog",
    "RegistrationToken",
    "RoomClaim",
    "RoomEntry",
    "RoomStore",
    "Store",
    "StoreOptions",
    "open_store",
    "token_id",
]
