"""The rooms role: rooms, memberships, the room creation quota, paging and pruning.

* **Rooms and quotas.** :meth:`RoomStore.claim_room` counts the rooms each user
  created over the last :data:`QUOTA_WINDOW_MS` in the store itself, so servers
  sharing a store enforce one quota. Rooms are listed a page at a time by
  latest activity or by name (:meth:`RoomStore.rooms_page`); no answer grows
  with the number of rooms. Every room has an owner: its creator, until an
  operator gives it to someone else (:meth:`RoomStore.set_room_owner`); ""
  for a room nobody created. :meth:`RoomStore.prune_rooms` removes idle rooms
  that have no members and no stored messages and that their owners do not
  keep (the moderation mark ``kept``, read in the same step), keeping their seq
  counter so a seq is never reused.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from ..model import Conversation

#: The rolling window of the room creation quota: a day, in milliseconds.
QUOTA_WINDOW_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class RoomEntry:
    """A room as listed: its name (no ``#``), newest seq and latest activity."""

    name: str
    last_seq: int
    #: When the room last saw a message, a first join or its creation (ms since the
    #: epoch); a member's rejoin (a reconnect) leaves it.
    active_ms: int


@dataclass(frozen=True, slots=True)
class RoomClaim:
    """What :meth:`RoomStore.claim_room` did."""

    #: The room did not exist and now does (counted against the user's quota).
    created: bool = False
    #: Over quota: nothing was created, and this many seconds pass before the
    #: oldest creation in the window leaves it (0: not refused).
    retry_after_s: float = 0.0


def next_prune_start(examined: list[int], limit: int) -> int | None:
    """Where the next pruning step starts, from the activity times just looked at.

    None once fewer than ``limit`` were there to look at. Otherwise at the last
    time again (rooms sharing it may remain), or just past it when the whole
    step shared one time, so every step moves on.
    """
    if len(examined) < limit:
        return None
    return examined[-1] + 1 if examined[0] == examined[-1] else examined[-1]


class RoomStore(abc.ABC):
    """Rooms and who joined them; see the module docstring."""

    @abc.abstractmethod
    async def ensure_room(self, room: str) -> None:
        """Creates the room if it does not exist yet."""

    @abc.abstractmethod
    async def list_rooms(self) -> list[Conversation]:
        """Every room (key ``#name``) with its newest seq, by name."""

    @abc.abstractmethod
    async def claim_room(self, room: str, user: str, *, per_day: int = 0) -> RoomClaim:
        """Creates ``room`` for ``user`` within their quota (``user`` owns it), or
        marks it active.

        An existing room is only marked active (it costs nothing). A new one is
        created unless ``user`` already created ``per_day`` rooms (0: no limit)
        over the last :data:`QUOTA_WINDOW_MS`; then nothing changes and the claim
        says when to retry. The check and the creation are one atomic step.
        """

    @abc.abstractmethod
    async def rooms_page(
        self, *, limit: int, after: tuple[int, str] | None = None
    ) -> list[RoomEntry]:
        """Up to ``limit`` rooms by latest activity, newest first (ties: name, last first).

        ``after`` is the ``(active_ms, name)`` of the last room of the previous
        page: the page holds the rooms that come strictly after it in that order.
        """

    @abc.abstractmethod
    async def rooms_by_name(self, prefix: str, *, limit: int, after: str = "") -> list[RoomEntry]:
        """Up to ``limit`` rooms whose name starts with ``prefix``, by name, after ``after``."""

    @abc.abstractmethod
    async def prune_rooms(
        self, idle_before_ms: int, *, limit: int, from_ms: int = 0
    ) -> tuple[list[str], int | None]:
        """Looks at up to ``limit`` rooms last active in ``[from_ms, idle_before_ms)``,
        oldest first, and removes those with no members, no stored messages and
        no ``kept`` mark (see chatrpc.store.moderation); a kept room is looked at
        all the same, so the next start moves past it.

        Returns the names removed and where the next step starts (None: every
        idle room was looked at). A removed room's seq counter is kept when it
        had messages (retention dropped them), so a room created again under
        that name goes on from it and a seq is never reused.
        """

    @abc.abstractmethod
    async def room_owner(self, room: str) -> str | None:
        """The owner of ``room`` ("" for none), or None if there is no such room."""

    @abc.abstractmethod
    async def set_room_owner(self, room: str, owner: str) -> str | None:
        """Gives ``room`` to ``owner``; returns the previous owner, None if no such room."""

    @abc.abstractmethod
    async def list_directs(self, user: str) -> list[Conversation]:
        """Every direct conversation ``user`` takes part in, with its newest seq."""

    @abc.abstractmethod
    async def add_member(self, room: str, user: str) -> None:
        """Records that ``user`` joined ``room`` (kept until they leave it)."""

    @abc.abstractmethod
    async def remove_member(self, room: str, user: str) -> None:
        """Records that ``user`` left ``room``."""

    @abc.abstractmethod
    async def is_member(self, room: str, user: str) -> bool:
        """Whether ``user`` joined ``room`` and has not left it."""

    @abc.abstractmethod
    async def member_rooms(self, user: str) -> list[str]:
        """The rooms (names, no ``#``) ``user`` joined and has not left, by name."""
