"""History, sequence numbers and accounts behind one interface (see base.py)."""

from .base import Account, Listener, Store, StoreOptions
from .factory import open_store

__all__ = ["Account", "Listener", "Store", "StoreOptions", "open_store"]
