"""The message log role: each conversation's history with sequence numbers.

What a store guarantees to its callers (the hub, the sessions):

* **Sequence numbers.** Each conversation's messages get ``seq`` 1, 2, 3, ...
  with no gap and no reuse, in the order :meth:`MessageLog.append` calls were
  made from one task. ``epoch`` identifies the history: it changes only when
  the history is lost (a new database), so ``(epoch, conv, seq)`` names one
  message forever.
* **Commit before acknowledgement.** :meth:`MessageLog.append` returns only
  after the message is as durable as the store can make it (committed to disk
  for SQLite).
* **Ordered notification.** Every newly committed message is passed to the
  listener (:meth:`MessageLog.set_listener`) exactly once, in seq order within
  its conversation, on the event loop, *before* the ``append`` that made it
  returns. The hub fans messages out from there, so what a session receives
  live is always in commit order. A store shared by several servers (Redis)
  also notifies messages committed by the other servers, but only for the
  conversations this server watches (:meth:`MessageLog.watch`); a
  single-process store notifies everything and ignores watches.
* **Idempotency.** An ``append`` whose ``(sender, client_msg_id)`` was stored
  within the idempotency window stores nothing and returns the original message
  with ``duplicate=True``; the listener is not called for it.
* **Changes.** An item of kind EDIT, DELETE or REACTION is appended like a
  message and applied to the message it names in the same atomic step, so
  :meth:`MessageLog.history` gives every message in its current state (text,
  ``edited``, ``deleted``, ``reactions``) and a delete leaves no copy of the
  text; see :mod:`chatrpc.store.changes`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

from ..model import Draft, StoredMessage
from ..stats import Histogram
from . import rules

Listener = Callable[[Sequence[StoredMessage]], None]


class MessageLog(abc.ABC):
    """Appends, reads and notifies messages; see the module docstring."""

    #: Identifies this history; set by ``open``.
    epoch: str = ""
    #: A store shared by several servers: how far behind its watch feed's reader
    #: is, in seconds from a message's commit to its delivery here, one
    #: observation per batch read (None: the store has no such feed).
    feed_lag: Histogram | None = None

    def __init__(self) -> None:
        super().__init__()
        self._listener: Listener = _no_listener

    def set_listener(self, listener: Listener) -> None:
        """Registers the one callback that receives newly committed messages."""
        self._listener = listener

    def _notify(self, messages: Sequence[StoredMessage]) -> None:
        """Passes newly committed messages to the listener (see rules.notify)."""
        rules.notify(self._listener, messages)

    def watch(self, key: str) -> None:
        """Asks for messages that other servers commit to ``key`` from now on.

        ``key`` is ``#room`` for a room or ``@user`` for every direct
        conversation of ``user``. The hub watches a room while it has a local
        session in it and a user while they have a local session. A store shared
        by several servers notifies (besides this server's own appends) the
        messages of watched conversations committed after this call, never
        missing one, possibly a few committed just before it. It does not wait:
        the store catches up in the background. A no-op for single-process stores.
        """
        del key

    def unwatch(self, key: str) -> None:
        """Ends :meth:`watch` for ``key`` (called once the last local session left)."""
        del key

    @abc.abstractmethod
    async def append(self, draft: Draft) -> tuple[StoredMessage, bool]:
        """Stores a message and returns it with its seq, and whether it was a duplicate."""

    async def append_many(self, drafts: Sequence[Draft]) -> list[tuple[StoredMessage, bool]]:
        """Appends several messages in order, as :meth:`append` would one by one.

        A store may commit them together (SQLite: in one transaction), which is
        how a session that sends faster than a commit takes keeps up.
        """
        return [await self.append(draft) for draft in drafts]

    @abc.abstractmethod
    async def find_sent(self, sender: str, client_msg_id: str) -> StoredMessage | None:
        """The item ``sender`` stored with ``client_msg_id`` within the idempotency
        window (as a retry of it would be answered), None if there is none."""

    @abc.abstractmethod
    async def history(
        self,
        conv: str,
        *,
        after_seq: int = 0,
        before_seq: int = 0,
        limit: int = 100,
        descending: bool = False,
    ) -> list[StoredMessage]:
        """Messages with ``after_seq < seq < before_seq`` (0: unbounded), ``limit`` at most.

        Oldest first; with ``descending`` the newest first, i.e. the page that
        ends just below ``before_seq``.
        """

    @abc.abstractmethod
    async def last_seq(self, conv: str) -> int:
        """The newest seq of a conversation, 0 if it has none."""


def _no_listener(messages: Sequence[StoredMessage]) -> None:
    del messages
