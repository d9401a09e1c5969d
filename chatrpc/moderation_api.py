"""The unary calls of moderation and blocking (ModerateRoom, Block, Unblock,
ListBlocked), as :class:`~chatrpc.api.ChatApi` serves them to every transport."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .caller import Caller
from .errors import ChatError, Code, invalid
from .model import (
    BAN,
    INVITE,
    KEEP,
    KICK,
    MUTE,
    PRIVACY,
    ROLE,
    TOPIC,
    UNBAN,
    UNMUTE,
    Invitation,
    StoredMessage,
    normalize_name,
)
from .moderation import Action, Moderation
from .v1 import chat_pb2 as pb
from .wire import message_pb

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)

#: The store's role names by the proto's numbers.
ROLE_NAMES = {
    pb.Member.MEMBER: "member",
    pb.Member.MODERATOR: "moderator",
    pb.Member.OWNER: "owner",
}
#: The request's action fields that name only a user, by the kind they record.
_USER_ACTIONS = {
    "invite": INVITE,
    "kick": KICK,
    "unban": UNBAN,
    "mute": MUTE,
    "unmute": UNMUTE,
}


def action_of(request: pb.ModerateRequest) -> Action:
    """The :class:`Action` a ModerateRequest asks for, or INVALID_ARGUMENT."""
    which = request.WhichOneof("action")
    room, reason = request.room, request.reason
    if not room:
        raise invalid("ModerateRoom needs a room")
    if which is None:
        raise invalid("ModerateRoom needs an action (set_topic, kick, ban...)")
    if which == "set_topic":
        return Action(TOPIC, room, topic=request.set_topic, reason=reason)
    if which == "set_private":
        return Action(PRIVACY, room, private=request.set_private, reason=reason)
    if which == "set_kept":
        return Action(KEEP, room, kept=request.set_kept, reason=reason)
    if which == "ban":
        ban = request.ban
        return Action(BAN, room, ban.user, ban.reason or reason, duration_s=ban.duration_s)
    if which == "set_role":
        role = ROLE_NAMES.get(request.set_role.role)
        if role is None:
            raise invalid(f"role {request.set_role.role} is out of range: no such role")
        return Action(ROLE, room, request.set_role.user, reason, role=role)
    return Action(_USER_ACTIONS[which], room, getattr(request, which), reason)


async def announce(hub: Hub, event: StoredMessage) -> None:
    """Tells an invitee's sessions, here and on the other servers, of an INVITE
    (every other room event reaches the servers that need it as an item of its
    room; see chatrpc.room_guard)."""
    if event.kind == INVITE:
        invitee, by = event.target_user, event.sender
        hub.guard.invited(invitee, Invitation(event.room, by, event.text))
        await hub.store.announce("invite", invitee, f"{event.room}\n{by}\n{event.text}")


class ModerationApi:
    """ModerateRoom, Block, Unblock and ListBlocked (a part of ChatApi)."""

    hub: Hub
    moderation: Moderation

    async def user(self, caller: Caller) -> str:
        raise NotImplementedError  # ChatApi's

    async def ModerateRoom(
        self, request: pb.ModerateRequest, caller: Caller
    ) -> pb.ModerateResponse:
        user = await self.user(caller)
        event = await self.moderation.act(user, action_of(request))
        await announce(self.hub, event)
        log.info(
            "moderation in #%s by %s: kind %d on %r",
            event.room,
            user,
            event.kind,
            event.target_user,
        )
        return pb.ModerateResponse(event=message_pb(event))

    async def _other_user(self, caller: Caller, name: str) -> tuple[str, str]:
        user = await self.user(caller)
        other = normalize_name(name, "user")
        if other == user:
            raise invalid("you cannot block yourself")
        if await self.hub.store.get_account(other) is None:
            raise ChatError(Code.NOT_FOUND, f"no user named {other!r}")
        return user, other

    async def _blocks_changed(self, user: str, change: str) -> None:
        """``user``'s sessions here and on every other server follow a block."""
        await self.hub.guard.blocks_changed(user)
        await self.hub.store.announce("block", user, change)

    async def Block(self, request: pb.BlockRequest, caller: Caller) -> pb.BlockResponse:
        user, other = await self._other_user(caller, request.user)
        changed = await self.hub.store.block(user, other)
        await self._blocks_changed(user, "+" + other)
        return pb.BlockResponse(changed=changed)

    async def Unblock(self, request: pb.UnblockRequest, caller: Caller) -> pb.UnblockResponse:
        user, other = await self._other_user(caller, request.user)
        changed = await self.hub.store.unblock(user, other)
        await self._blocks_changed(user, "-" + other)
        return pb.UnblockResponse(changed=changed)

    async def ListBlocked(
        self, request: pb.ListBlockedRequest, caller: Caller
    ) -> pb.ListBlockedResponse:
        del request
        user = await self.user(caller)
        return pb.ListBlockedResponse(users=await self.hub.store.blocked(user))
