"""The multi-node store: chat state in Redis, shared by several servers.

One job per module: ``keys`` (key names, limits, reading entries back),
``scripts`` (the Lua scripts), ``connection`` (the clients, the call wrapper,
the cancellation guard), ``history`` (reads), ``writer`` (the append pipeline),
``watches`` and ``feed`` (what other servers commit, notified in order),
``presence`` (who is online on every server), ``rooms`` and ``accounts``;
``store`` composes them into :class:`RedisStore`.
"""

from .store import RedisStore

__all__ = ["RedisStore"]
