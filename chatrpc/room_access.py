"""Who may see and join a room.

A private room is invisible to whoever is not in it: every call about it
(join, resume, History, ListMembers, Search, ModerateRoom) answers a
non-member exactly as it answers about a room that does not exist,
:func:`not_found`, so its name cannot be probed. Its members, the users
invited to it, and its owners and moderators (who stay so after leaving) see
it. A ban refuses joins (PERMISSION_DENIED) until it ends; in a private room
the banned user is no member any more, so they are answered NOT_FOUND.
"""

from __future__ import annotations

import time

from .errors import ChatError, Code
from .store import MEMBER, MODERATOR, OWNER, Standing, Store


def not_found(room: str) -> ChatError:
    """What a call about a room the caller may not see (or that does not exist) gets."""
    return ChatError(Code.NOT_FOUND, f"no room named #{room}")


def now_ms() -> int:
    return int(time.time() * 1000)


async def in_room(store: Store, room: str, user: str) -> bool:
    """Whether ``user`` is a member of ``room``, invited to it, or one of its owners
    or moderators: who may see it even when it is private."""
    return (
        await store.is_member(room, user)
        or await store.is_invited(room, user)
        or await store.room_role(room, user) != MEMBER
    )


async def may_see(store: Store, room: str, user: str) -> bool:
    """Whether ``room`` exists and ``user`` may see it."""
    if await store.room_owner(room) is None:
        return False
    if not (await store.room_settings(room)).private:
        return True
    return await in_room(store, room, user)


async def check_see(store: Store, room: str, user: str) -> None:
    """Raises :func:`not_found` unless ``user`` may see ``room``."""
    if not await may_see(store, room, user):
        raise not_found(room)


async def check_join(store: Store, room: str, user: str) -> tuple[Standing, bool]:
    """The settings of ``room``, where ``user`` stands in it and whether they are
    a member of it already, if they may join it (a room that does not exist yet
    may be created); else NOT_FOUND (a private room they are not in) or
    PERMISSION_DENIED (banned). One store read on SQLite."""
    standing, member = await store.join_standing(room, user)
    if standing.settings.private and not (
        standing.invited
        or standing.role in (OWNER, MODERATOR)
        or member
        or (standing.role is None and await store.room_owner(room) == user)
    ):
        raise not_found(room)
    until = standing.banned_until
    if until is not None and (until == 0 or until > now_ms()):
        when = "until an owner or moderator lifts it" if until == 0 else _until(until)
        raise ChatError(Code.PERMISSION_DENIED, f"you are banned from #{room} {when}")
    return standing, member


def _until(ms: int) -> str:
    return "until " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))
