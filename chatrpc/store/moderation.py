"""The moderation role: room settings, roles, invitations, bans, mutes and blocks.

Everything here is a *mark*: a short value the store keeps for a (scope, user,
what) triple, durable and shared by every server using the store, so a ban set
through one server refuses a join through another and survives a restart.

* **Settings** of a room: its topic, whether it is private (invite-only), and
  whether its owners keep it (pruning leaves a kept room even when it is empty;
  the stores' ``prune_rooms`` read this mark in the same step).
* **Roles**: ``owner`` or ``moderator`` per room and user (anyone else is a
  member). The room's creator (:meth:`~chatrpc.store.rooms.RoomStore.room_owner`)
  is an owner unless a role given later says otherwise.
* **Invitations** to a private room, until the invitee joins (or is uninvited).
* **Bans** with an expiry (ms since the epoch, 0: never); an expired ban is no
  ban. **Mutes** until lifted.
* **Blocks**: which users a user blocked (scope ``@user``, which no room name
  can be).

Backends implement the four primitives (:meth:`_mark`, :meth:`_set_mark`,
:meth:`_marks`, :meth:`_marks_of`); the methods callers use are defined here
once on top of them, so every backend means the same thing by them.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

#: The roles a room member may hold, weakest first ("" and MEMBER: no role).
MEMBER, MODERATOR, OWNER = "member", "moderator", "owner"
ROLES = (MEMBER, MODERATOR, OWNER)

_TOPIC, _PRIVATE, _ROLE, INVITE, _BAN, _MUTE, BLOCK = (
    "topic",
    "private",
    "role",
    "invite",
    "ban",
    "mute",
    "block",
)
#: The mark (scope the room, user "") of a room its owners keep from pruning; the
#: stores' pruning reads it under this name.
KEPT = "kept"


@dataclass(frozen=True, slots=True)
class RoomSettings:
    """What a room's owners set: its topic, whether it is invite-only, and
    whether it is kept from pruning."""

    topic: str = ""
    private: bool = False
    kept: bool = False


@dataclass(frozen=True, slots=True)
class Standing:
    """A room's settings and where one user stands in it, read in one step (a join)."""

    settings: RoomSettings
    #: Their role mark (None: none given; the creator is an owner then).
    role: str | None
    invited: bool
    #: When their ban ends (0: never), as stored; None if never banned.
    banned_until: int | None
    muted: bool


def standing_keys(user: str) -> list[tuple[str, str]]:
    """The marks (user, what) :class:`Standing` is read from, in :func:`standing_of`'s order."""
    return [
        ("", _TOPIC),
        ("", _PRIVATE),
        (user, _ROLE),
        (user, INVITE),
        (user, _BAN),
        (user, _MUTE),
    ]


def standing_of(marks: list[str | None]) -> Standing:
    """The :class:`Standing` the values of :func:`standing_keys` make."""
    topic, private, role, invite, ban, mute = marks
    return Standing(
        RoomSettings(topic or "", private == "1"),
        role,
        invite is not None,
        None if ban is None else int(ban),
        mute is not None,
    )


def block_scope(user: str) -> str:
    return "@" + user


class RoomModeration(abc.ABC):
    """Room settings, roles, invitations, bans, mutes and blocks; see the module
    docstring."""

    # -- what a backend implements ------------------------------------------------

    @abc.abstractmethod
    async def _mark(self, scope: str, user: str, what: str) -> str | None:
        """The value marked for (scope, user, what), or None."""

    @abc.abstractmethod
    async def _set_mark(self, scope: str, user: str, what: str, value: str | None) -> str | None:
        """Sets (None: removes) the mark, in one atomic step; returns the value it had."""

    @abc.abstractmethod
    async def _marks(self, scope: str, what: str) -> dict[str, str]:
        """Every user marked ``what`` in ``scope``, with their values."""

    @abc.abstractmethod
    async def _marks_of(self, user: str, what: str) -> dict[str, str]:
        """Every scope where ``user`` is marked ``what``, with the values."""

    @abc.abstractmethod
    async def _some_marks(self, scope: str, keys: list[tuple[str, str]]) -> list[str | None]:
        """The values of the marks (scope, user, what) for each (user, what) of
        ``keys``, in one read."""

    @abc.abstractmethod
    async def _clear_marks(self, scope: str) -> None:
        """Removes every mark of ``scope``."""

    @abc.abstractmethod
    async def room_owner(self, room: str) -> str | None:
        """The room's creator (see RoomStore); None if there is no such room."""

    async def forget_room(self, room: str) -> None:
        """Removes everything moderation kept of ``room`` (it was deleted): a room
        created again under its name starts public, with no roles and no bans."""
        await self._clear_marks(room)

    # -- settings ---------------------------------------------------------------------

    async def standing(self, room: str, user: str) -> Standing:
        """The room's settings and ``user``'s marks in it, in one read."""
        return standing_of(await self._some_marks(room, standing_keys(user)))

    async def room_settings(self, room: str) -> RoomSettings:
        """The room's topic, privacy and whether it is kept (the defaults for a
        room never set), in one read."""
        marks = await self._some_marks(room, [("", _TOPIC), ("", _PRIVATE), ("", KEPT)])
        return RoomSettings(marks[0] or "", marks[1] == "1", marks[2] == "1")

    async def rooms_settings(self, rooms: list[str]) -> dict[str, RoomSettings]:
        """:meth:`room_settings` of each of ``rooms`` (a listing page), in three reads."""
        topics = await self._marks_of("", _TOPIC)
        private = await self._marks_of("", _PRIVATE)
        kept = await self._marks_of("", KEPT)
        return {
            r: RoomSettings(topics.get(r, ""), private.get(r) == "1", kept.get(r) == "1")
            for r in rooms
        }

    async def set_topic(self, room: str, topic: str) -> None:
        await self._set_mark(room, "", _TOPIC, topic or None)

    async def set_private(self, room: str, private: bool) -> bool:
        """Makes the room invite-only or public; returns whether that changed it."""
        before = await self._set_mark(room, "", _PRIVATE, "1" if private else None)
        return (before == "1") != private

    async def set_kept(self, room: str, kept: bool) -> bool:
        """Keeps the room from pruning (or lets it go); returns whether that changed it."""
        before = await self._set_mark(room, "", KEPT, "1" if kept else None)
        return (before == "1") != kept

    # -- roles --------------------------------------------------------------------------

    async def room_role(self, room: str, user: str) -> str:
        """``owner``, ``moderator`` or ``member`` (also for a user not in the room)."""
        given = await self._mark(room, user, _ROLE)
        if given is not None:
            return given
        return OWNER if user and await self.room_owner(room) == user else MEMBER

    async def room_roles(self, room: str) -> dict[str, str]:
        """Every user of ``room`` with a role (owners and moderators)."""
        given = await self._marks(room, _ROLE)
        creator = await self.room_owner(room)
        if creator and creator not in given:
            given[creator] = OWNER
        return {u: r for u, r in given.items() if r != MEMBER}

    async def set_role(self, room: str, user: str, role: str) -> None:
        """Gives ``user`` a role in ``room`` (one of :data:`ROLES`)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        creator = await self.room_owner(room)
        # The creator is an owner by default: a lesser role must be written down.
        keep = role != MEMBER or user == creator
        await self._set_mark(room, user, _ROLE, role if keep else None)

    # -- invitations -------------------------------------------------------------------

    async def invite(self, room: str, user: str, by: str, reason: str = "") -> bool:
        """Invites ``user`` to ``room``; returns False if they were invited already."""
        return await self._set_mark(room, user, INVITE, f"{by}\n{reason}") is None

    async def uninvite(self, room: str, user: str) -> bool:
        return await self._set_mark(room, user, INVITE, None) is not None

    async def is_invited(self, room: str, user: str) -> bool:
        return await self._mark(room, user, INVITE) is not None

    async def invitations(self, user: str) -> list[tuple[str, str, str]]:
        """``user``'s open invitations: (room, by, reason), by room."""
        return invitations_of(await self._marks_of(user, INVITE))

    # -- bans and mutes ----------------------------------------------------------------

    async def ban(self, room: str, user: str, until_ms: int) -> None:
        """Bans ``user`` from ``room`` until ``until_ms`` (0: until unbanned)."""
        await self._set_mark(room, user, _BAN, str(until_ms))

    async def unban(self, room: str, user: str) -> bool:
        return await self._set_mark(room, user, _BAN, None) is not None

    async def banned_until(self, room: str, user: str, now_ms: int) -> int | None:
        """When ``user``'s ban from ``room`` ends (0: never), None if not banned now."""
        value = await self._mark(room, user, _BAN)
        if value is None:
            return None
        until = int(value)
        return until if until == 0 or until > now_ms else None

    async def set_muted(self, room: str, user: str, muted: bool) -> bool:
        """Mutes or unmutes; returns whether that changed anything."""
        before = await self._set_mark(room, user, _MUTE, "1" if muted else None)
        return (before is not None) != muted

    async def is_muted(self, room: str, user: str) -> bool:
        return await self._mark(room, user, _MUTE) is not None

    # -- blocks -------------------------------------------------------------------------

    async def block(self, user: str, other: str) -> bool:
        """``user`` blocks ``other``; returns False if they had already."""
        return await self._set_mark(block_scope(user), other, BLOCK, "1") is None

    async def unblock(self, user: str, other: str) -> bool:
        return await self._set_mark(block_scope(user), other, BLOCK, None) is not None

    async def blocked(self, user: str) -> list[str]:
        """The users ``user`` blocked, by name."""
        return sorted(await self._marks(block_scope(user), BLOCK))

    async def has_blocked(self, user: str, other: str) -> bool:
        return await self._mark(block_scope(user), other, BLOCK) is not None


def invitations_of(found: dict[str, str]) -> list[tuple[str, str, str]]:
    """The invitations (room, by, reason), by room, of the INVITE marks of a user
    (room -> value)."""
    return [(room, *_split(value)) for room, value in sorted(found.items())]


def _split(value: str) -> tuple[str, str]:
    by, _, reason = value.partition("\n")
    return by, reason
