"""``/topic``, ``/private``, ``/keep``, ``/invite``, ``/kick``, ``/ban``, ``/unban``, ``/mute``,
``/unmute``, ``/op``, ``/block`` and ``/unblock``: the ModerateRoom, Block and
Unblock calls from the prompt and piped mode. What a moderation action records
comes back as an event of the room and is shown as a notice like any other."""

from __future__ import annotations

from typing import Any

from ..v1 import chat_pb2 as pb
from .commands import CALL_TIMEOUT, Command
from .formatter import printable
from .output import ChatOutput

#: The proto's roles by the names the commands use.
ROLES = {"member": pb.Member.MEMBER, "moderator": pb.Member.MODERATOR, "owner": pb.Member.OWNER}


def moderation_action(cmd: Command) -> dict[str, Any]:
    """The ModerateRequest fields (its action) of a moderation command."""
    name, user = cmd.name, cmd.target
    if name == "topic":
        return {"set_topic": cmd.text}
    if name == "private":
        return {"set_private": cmd.flag == "on"}
    if name == "keep":
        return {"set_kept": cmd.flag == "on"}
    if name == "ban":
        return {"ban": pb.Ban(user=user, duration_s=cmd.count, reason=cmd.text)}
    if name == "op":
        return {"set_role": pb.SetRole(user=user, role=ROLES[cmd.flag])}
    return {name: user}


class ModerationCommands(ChatOutput):
    """The moderation and blocking commands for :class:`~chatrpc.tui.view.ChatView`
    (a part of it)."""

    async def moderate(self, cmd: Command) -> None:
        """Runs a moderation command in the current room, or a blocking command."""
        if cmd.name in ("block", "unblock"):
            await self._block(cmd)
            return
        if self.room is None:
            self.problem(f"/{cmd.name} acts on the current room: /join ROOM first")
            return
        if cmd.name == "topic" and not cmd.flag:
            await self._show_topic(self.room)
            return
        reason = "" if cmd.name in ("topic", "ban") else cmd.text
        response = await self.client.moderate(
            self.room, reason=reason, timeout=CALL_TIMEOUT, **moderation_action(cmd)
        )
        if self.as_json:
            self._emit_json("moderated", response.event)

    async def _show_topic(self, room: str) -> None:
        listed = await self.client.list_rooms(prefix=room, page_size=1, timeout=CALL_TIMEOUT)
        found = next((r for r in listed.rooms if r.name == room), None)
        topic = found.topic if found is not None else ""
        self.notice(f"topic of #{room}: {printable(topic)}" if topic else f"#{room} has no topic")

    async def _block(self, cmd: Command) -> None:
        if not cmd.target:
            blocked = await self.client.list_blocked(timeout=CALL_TIMEOUT)
            self.notice(f"you blocked: {', '.join(blocked)}" if blocked else "you blocked nobody")
            return
        unblock = cmd.name == "unblock"
        changed = await self.client.block(cmd.target, unblock=unblock, timeout=CALL_TIMEOUT)
        if not changed:
            state = "not blocked" if unblock else "blocked already"
            self.notice(f"{cmd.target} was {state}")
        else:
            self.notice(f"{cmd.target} is {'un' if unblock else ''}blocked")
