"""Makes the store a URL names; each backend's module (and driver) is imported only
when its URL is used, so the core needs no backend's client library."""

from __future__ import annotations

from ..errors import invalid
from .base import Store, StoreOptions


def open_store(url: str, options: StoreOptions | None = None) -> Store:
    """Makes the store a URL names (not yet opened).

    ``memory://`` keeps everything in the process (tests); ``sqlite:///path`` or a
    bare path uses an SQLite file; ``redis://host:port/db`` (needs the ``redis``
    extra) shares state between several servers.
    """
    if url.startswith("memory://"):
        from .memory import MemoryStore

        return MemoryStore(options)
    if url.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        # sqlite:///abs/chat.db names /abs/chat.db; sqlite://chat.db a relative path.
        path = url[len("sqlite://") :]
        if not path:
            raise invalid("sqlite:// needs a path, e.g. sqlite:///var/lib/chatrpc/chat.db")
        return SQLiteStore(path, options)
    if url.startswith(("redis://", "rediss://", "unix://")):
        try:
            from .redis import RedisStore
        except ImportError as exc:
            raise invalid(
                f"the redis store needs the redis package ({exc}): pip install 'chatrpc[redis]'"
            ) from exc
        return RedisStore(url, options)
    if "://" in url:
        raise invalid(
            f"unknown store URL {url!r}: use memory://, sqlite:///PATH, redis://HOST:PORT/DB"
            " or a file path"
        )
    from .sqlite import SQLiteStore

    return SQLiteStore(url, options)
