"""The cluster signals role: live notices between the servers sharing a store.

Typing notices and moved read markers reach the sessions on other servers
through the store: a shared store (Redis) tells the other servers, on the
event loop, and a single-process store has nobody to tell
(:class:`LocalSignals`). Signals are live only: at most once, never stored for
later; a typing notice and a marker made together may arrive in either order.
One a server misses while it cannot reach the store is lost (a typing notice
means nothing a few seconds later, and a read marker is read again with the
next join or listing).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

#: The kinds of :class:`Signal`.
TYPING, READ = "typing", "read"


@dataclass(frozen=True, slots=True)
class Signal:
    """From another server: ``user`` is typing in ``conv`` (``kind`` TYPING), or
    ``user``'s read marker in ``conv`` moved to ``seq`` (``kind`` READ)."""

    kind: str
    conv: str
    user: str
    seq: int = 0


SignalListener = Callable[[Signal], None]


class ClusterSignals(abc.ABC):
    """Live signals shared between servers; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._signal_listener: SignalListener = _no_signal

    def set_signal_listener(self, listener: SignalListener) -> None:
        """Registers the callback for signals made through other servers."""
        self._signal_listener = listener

    @abc.abstractmethod
    def relay_typing(self, conv: str, user: str) -> None:
        """Tells the other servers that ``user`` is typing in ``conv``. Returns at
        once; may drop the notice (the store unreachable, a backlog)."""


class LocalSignals(ClusterSignals):
    """No other servers: nothing to tell."""

    def relay_typing(self, conv: str, user: str) -> None:
        del conv, user


def _no_signal(signal: Signal) -> None:
    del signal
