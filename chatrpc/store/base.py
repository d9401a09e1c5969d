"""The store: durable history with sequence numbers, accounts and memberships.

Every store (memory, SQLite, Redis) implements :class:`Store` and passes the same
test suite (``tests/test_store.py``). :class:`Store` is the composition of eight
roles, each an interface of its own with its guarantees in its module's
docstring, so a caller can ask for only what it needs:

* :class:`~chatrpc.store.messages.MessageLog` (``messages.py``): sequence
  numbers, commit before acknowledgement, ordered notification, idempotency.
* :class:`~chatrpc.store.rooms.RoomStore` (``rooms.py``): rooms, memberships,
  the creation quota, paging and pruning.
* :class:`~chatrpc.store.accounts.AccountStore` (``accounts.py``): accounts,
  tokens and revocation, passwords, registration tokens.
* :class:`~chatrpc.store.presence.ClusterPresence` (``presence.py``): who is
  online through other servers; :class:`~chatrpc.store.presence.LocalPresence`
  for a single-process store.
* :class:`~chatrpc.store.search.MessageSearch` (``search.py``): finding messages
  by their words (``matching.py`` says what a query means; ``scan.py`` searches
  a store without an index, SQLite has FTS5).
* :class:`~chatrpc.store.moderation.RoomModeration` (``moderation.py``): room
  settings (topic, privacy), roles, invitations, bans, mutes and blocks.
* :class:`~chatrpc.store.admin.AdminStore` (``admin.py``): what an operator
  does (listings with sizes, disabled accounts, room owners, deleting and
  pruning) and idle accounts' expiry.
* :class:`~chatrpc.store.markers.ReadMarkers` (``markers.py``): read markers,
  only moving forward, and the bounded unread and mention counts.
* :class:`~chatrpc.store.signals.ClusterSignals` (``signals.py``): typing
  notices and moved read markers told to the other servers;
  :class:`~chatrpc.store.signals.LocalSignals` for a single-process store.

Methods raise :class:`chatrpc.errors.StoreUnavailable` when the backing service
cannot be reached (retryable); nothing is acknowledged in that case.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from .. import replay
from .accounts import Account, AccountStore, RegistrationToken, token_id
from .admin import AccountInfo, AdminStore, RoomDeleted, RoomInfo
from .markers import UNREAD_CAP, ReadMarkers, Span, Unread
from .messages import Listener, MessageLog
from .moderation import MEMBER, MODERATOR, OWNER, ROLES, RoomModeration, RoomSettings, Standing
from .options import StoreOptions
from .presence import (
    ClusterPresence,
    DisableListener,
    LocalPresence,
    PresenceListener,
    RevokeListener,
    RoomDropListener,
)
from .rooms import QUOTA_WINDOW_MS, RoomClaim, RoomEntry, RoomStore, next_prune_start
from .search import MessageSearch, SearchPage
from .signals import ClusterSignals, LocalSignals, Signal, SignalListener

__all__ = [
    "MEMBER",
    "MODERATOR",
    "OWNER",
    "QUOTA_WINDOW_MS",
    "ROLES",
    "UNREAD_CAP",
    "Account",
    "AccountInfo",
    "AccountStore",
    "AdminStore",
    "ClusterPresence",
    "ClusterSignals",
    "DisableListener",
    "Listener",
    "LocalPresence",
    "LocalSignals",
    "MessageLog",
    "MessageSearch",
    "PresenceListener",
    "ReadMarkers",
    "RegistrationToken",
    "RevokeListener",
    "RoomClaim",
    "RoomDeleted",
    "RoomDropListener",
    "RoomEntry",
    "RoomInfo",
    "RoomModeration",
    "RoomSettings",
    "RoomStore",
    "SearchPage",
    "Signal",
    "SignalListener",
    "Span",
    "Standing",
    "Store",
    "StoreOptions",
    "Unread",
    "next_prune_start",
    "token_id",
]


class Store(
    MessageLog,
    RoomStore,
    RoomModeration,
    AccountStore,
    AdminStore,
    ClusterPresence,
    MessageSearch,
    ReadMarkers,
    ClusterSignals,
):
    """Durable chat state behind one interface: the nine roles, opened and closed
    together; see the module docstring."""

    def __init__(self, options: StoreOptions | None = None) -> None:
        super().__init__()
        self.options = options or StoreOptions()

    async def join_standing(self, room: str, user: str) -> tuple[Standing, bool]:
        """What a join reads: :meth:`standing` and whether ``user`` is a member of
        ``room`` (a backend may read both at once)."""
        return await self.standing(room, user), await self.is_member(room, user)

    async def greeting(self, user: str) -> tuple[list[str], list[tuple[str, str, str]]]:
        """What a new session of ``user`` reads: :meth:`blocked` and
        :meth:`invitations` (a backend may read both at once)."""
        return await self.blocked(user), await self.invitations(user)

    async def resume_window(
        self,
        conv: str,
        after_seq: int | None,
        epoch: str,
        max_replay: int,
        readers: Sequence[str] = (),
    ) -> replay.Window:
        """What a join's acknowledgement reads (see :func:`chatrpc.replay.window`),
        here one call per read; a backend may answer them all in one step."""
        steps = replay.window(after_seq, epoch, self.epoch, max_replay, readers)
        try:
            read = next(steps)
            while True:
                read = steps.send(await self._answer(conv, read))
        except StopIteration as end:
            window: replay.Window = end.value
            return window

    async def _answer(self, conv: str, read: replay.Read) -> replay.Answer:
        if isinstance(read, replay.LastSeq):
            return await self.last_seq(conv)
        if isinstance(read, replay.Marker):
            return await self.read_marker(read.user, conv)
        page = await self.history(
            conv, after_seq=read.after_seq, limit=read.limit, descending=read.newest
        )
        return page[::-1] if read.newest else page

    @abc.abstractmethod
    async def open(self) -> None:
        """Connects, creates or migrates the schema and sets :attr:`epoch`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finishes pending writes and releases every resource."""
