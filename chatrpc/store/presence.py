"""The cluster presence role: who is online through the other servers sharing a store.

A store shared by several servers (Redis) tells each server which users the
others report online in each room, and which tokens were revoked through them,
on the event loop. Reports from one server reach the others in the order they
were made; a server that stops without a word drops out after the presence
TTL. A single-process store has no other servers: :class:`LocalPresence` is
its do-nothing implementation.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

PresenceListener = Callable[[str, str, bool], None]
RevokeListener = Callable[[str, "str | None"], object]
DisableListener = Callable[[str], object]
RoomDropListener = Callable[[str], object]
NoticeListener = Callable[[str, str, str], object]


class ClusterPresence(abc.ABC):
    """Presence shared between servers; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._presence_listener: PresenceListener = _no_presence
        self._revoke_listener: RevokeListener = _no_revoke
        self._disable_listener: DisableListener = _no_disable
        self._room_drop_listener: RoomDropListener = _no_disable
        self._notice_listener: NoticeListener = _no_notice

    def set_presence_listener(self, listener: PresenceListener) -> None:
        """Registers the callback for users other servers report online or gone:
        ``listener(room, user, online)``, on the event loop."""
        self._presence_listener = listener

    def set_revoke_listener(self, listener: RevokeListener) -> None:
        """Registers the callback for tokens revoked through other servers:
        ``listener(user, token_hash)``, None for every token of ``user``, on the
        event loop, so their live sessions here end too."""
        self._revoke_listener = listener

    def set_disable_listener(self, listener: DisableListener) -> None:
        """Registers the callback for accounts disabled through other servers:
        ``listener(user)``, on the event loop, so their live sessions here end too."""
        self._disable_listener = listener

    def set_room_drop_listener(self, listener: RoomDropListener) -> None:
        """Registers the callback for rooms deleted through other servers:
        ``listener(room)``, on the event loop, so their sessions here leave it."""
        self._room_drop_listener = listener

    def set_notice_listener(self, listener: NoticeListener) -> None:
        """Registers the callback for what other servers :meth:`announce` about a
        user: ``listener(kind, user, detail)``, on the event loop."""
        self._notice_listener = listener

    async def announce(self, kind: str, user: str, detail: str = "") -> None:
        """Tells the other servers something about ``user`` that their sessions of
        that user must follow (a block, an invitation): each server's notice
        listener gets it once, in the order told. Nothing to do without others."""
        del kind, user, detail

    async def keep_online(self, rooms: dict[str, list[str]]) -> None:
        """Keeps who was online in each room as this server stops, for
        :meth:`take_online` when it starts again (see chatrpc.presence). A
        store that keeps nothing across a restart does nothing."""
        del rooms

    async def take_online(self) -> dict[str, list[str]]:
        """What :meth:`keep_online` kept at the last stop (empty if nothing), once:
        it is forgotten as it is read."""
        return {}

    @abc.abstractmethod
    def set_online(self, room: str, user: str, online: bool) -> None:
        """Reports that ``user`` has (or no longer has) a session in ``room`` on this
        server. A shared store tells the other servers, in the order of the
        reports, and keeps the fact alive with heartbeats until it is withdrawn
        or this server stops. Returns at once."""

    @abc.abstractmethod
    def online_elsewhere(self, room: str, user: str) -> bool:
        """Whether ``user`` is in ``room`` through another server, as far as this
        one knows (a shared store keeps that current from the other servers'
        reports and heartbeats)."""

    @abc.abstractmethod
    def count_elsewhere(self, room: str) -> int:
        """How many users are in ``room`` through other servers, as far as this one
        knows (see :meth:`online_elsewhere`)."""

    @abc.abstractmethod
    async def online_users(self, room: str) -> list[str] | None:
        """Users online in ``room`` on any server, or None if the store shares no
        presence (then the hub's own sessions are all there is)."""

    @abc.abstractmethod
    async def online_users_many(self, rooms: Sequence[str]) -> list[set[str]] | None:
        """The users online in each of ``rooms`` on any server, in one step (a
        listing page), or None if the store shares no presence."""


class LocalPresence(ClusterPresence):
    """No other servers: nobody is online elsewhere, and nothing is shared."""

    def set_online(self, room: str, user: str, online: bool) -> None:
        del room, user, online

    def online_elsewhere(self, room: str, user: str) -> bool:
        del room, user
        return False

    def count_elsewhere(self, room: str) -> int:
        del room
        return 0

    async def online_users(self, room: str) -> list[str] | None:
        del room
        return None

    async def online_users_many(self, rooms: Sequence[str]) -> list[set[str]] | None:
        del rooms
        return None


def _no_presence(room: str, user: str, online: bool) -> None:
    del room, user, online


def _no_revoke(user: str, token_hash: str | None) -> None:
    del user, token_hash


def _no_disable(name: str) -> None:
    del name


def _no_notice(kind: str, user: str, detail: str) -> None:
    del kind, user, detail
