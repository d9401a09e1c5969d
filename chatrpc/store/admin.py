"""The operations role: what an operator does to the state, and idle accounts.

* **Listings.** Accounts and rooms are listed a page at a time by name
  (:meth:`AdminStore.users_page`, :meth:`AdminStore.room_infos`), with what an
  operator wants to see of each; no answer grows with the number of either.
* **Disabled accounts** keep their name, password and tokens, but the server
  refuses them (see :class:`~chatrpc.store.accounts.Account`). A store shared
  by several servers announces a disable, so every server ends the user's
  sessions (:meth:`~chatrpc.store.presence.ClusterPresence.set_disable_listener`).
* **Room owners** are kept by the rooms role (see rooms.py); an owner's rooms
  keep their owner's account from expiring.
* **Deleting and pruning** removes stored items, never a conversation's seq
  counter: a room made again under a deleted room's name, and a pruned
  conversation, go on from their newest seq, so a seq is never reused.
* **Idle accounts.** Each account has a last-seen time, written at most every
  few minutes (:meth:`AdminStore.touch_accounts`).
  :meth:`AdminStore.expire_idle_accounts` removes, in bounded steps, accounts
  with no password, not disabled, not seen since a time, that take part in no
  direct conversation and own no room, freeing their names.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """An account as an operator sees it (never its password hash or tokens)."""

    user: str
    has_password: bool
    disabled: bool
    created_ms: int
    #: Last login, token use or live session, to within the touch interval (0: never).
    last_seen_ms: int


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A room as an operator sees it."""

    name: str
    #: Its creator unless given to someone else; "" if nobody created it.
    owner: str
    members: int
    #: Items stored now (retention and pruning remove some) and the newest seq.
    stored: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class RoomDeleted:
    """What :meth:`AdminStore.delete_room` removed."""

    messages: int
    members: list[str]


class AdminStore(abc.ABC):
    """What an operator does to the stored state; see the module docstring."""

    @abc.abstractmethod
    async def users_page(self, prefix: str, *, limit: int, after: str = "") -> list[AccountInfo]:
        """Up to ``limit`` accounts whose name starts with ``prefix``, by name, after ``after``."""

    @abc.abstractmethod
    async def account_info(self, user: str) -> AccountInfo | None:
        """The account of ``user``, or None if the name is free."""

    @abc.abstractmethod
    async def count_accounts(self) -> int:
        """How many accounts there are."""

    @abc.abstractmethod
    async def clear_password(self, user: str) -> bool:
        """Removes the password of an existing account; False if there is none."""

    @abc.abstractmethod
    async def set_disabled(self, user: str, disabled: bool) -> bool:
        """Disables (or enables) an account; False if there is none. Disabling
        tells the other servers sharing the store (see the module docstring)."""

    @abc.abstractmethod
    async def room_infos(self, prefix: str, *, limit: int, after: str = "") -> list[RoomInfo]:
        """Up to ``limit`` rooms whose name starts with ``prefix``, by name, after ``after``."""

    @abc.abstractmethod
    async def count_rooms(self) -> int:
        """How many rooms there are."""

    @abc.abstractmethod
    async def delete_room(self, room: str) -> RoomDeleted | None:
        """Removes ``room``, its stored items and memberships (keeping its seq
        counter); None if there is no such room."""

    @abc.abstractmethod
    async def prune_history(self, conv: str, *, before_ms: int = 0, keep_last: int = 0) -> int:
        """Removes the items of ``conv`` sent before ``before_ms`` (0: none by age)
        and all but the ``keep_last`` newest (0: none by count); returns how many."""

    @abc.abstractmethod
    async def touch_accounts(self, users: Sequence[str], now_ms: int) -> None:
        """Records that ``users`` were seen at ``now_ms`` (free names are ignored)."""

    @abc.abstractmethod
    async def expire_idle_accounts(
        self, seen_before_ms: int, *, limit: int, after: str = ""
    ) -> tuple[list[str], str | None]:
        """Looks at up to ``limit`` accounts last seen before ``seen_before_ms``,
        least recently seen first, and removes those that may expire (see the
        module docstring) with their tokens and memberships.

        Returns the names removed and where the next step starts (None: every
        account idle that long was looked at): an opaque cursor to pass as
        ``after``. Many accounts may share a last-seen time; a step never stops
        short of them. Accounts seen meanwhile may be looked at in a later sweep.
        """
