"""Room moderation: who may do what, what each action changes, and its stored item.

* Only owners and moderators moderate; making a room private or public,
  keeping it from pruning (or letting it go) and giving roles is for owners.
  A moderator acts on members only, never on an owner or another moderator.
  Nobody kicks, bans or mutes themselves.
* An owner stays one after leaving; the last owner of a room cannot step down
  (name another owner first), so a room is never left ownerless.
* Each action is checked against the room as the store has it now, applied to
  the store (durable, shared by every server), then recorded as an item of the
  room (chatrpc.model.ROOM_EVENTS) with the actor as sender, the user acted on
  and the reason: the hub fans it out like a message, and every server's hub
  acts on it as it arrives, in the room's order (a KICK or BAN ends the user's
  sessions in the room there, a MUTE refuses their sends; see chatrpc.hub).
* An action costs what a send costs from the actor's budget. A server
  operator (the admin service) acts as an owner of every room, unmetered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import room_access
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
    Draft,
    StoredMessage,
    normalize_name,
    room_key,
)
from .rules import SendRules
from .store import MEMBER, MODERATOR, OWNER, ROLES, Store

#: What each action is called in messages.
VERBS = {
    TOPIC: "set the topic of",
    PRIVACY: "make private or public",
    INVITE: "invite users to",
    KICK: "kick users from",
    BAN: "ban users from",
    UNBAN: "unban users from",
    MUTE: "mute users in",
    UNMUTE: "unmute users in",
    ROLE: "give roles in",
    KEEP: "keep or let go of",
}
#: Actions that name a user, and those only owners take.
ON_USER = frozenset({INVITE, KICK, BAN, UNBAN, MUTE, UNMUTE, ROLE})
OWNERS_ONLY = frozenset({PRIVACY, ROLE, KEEP})
#: Each role's number in the stored ROLE item (the proto's Member.Role).
ROLE_NUMBERS = {MEMBER: 0, MODERATOR: 1, OWNER: 2}
#: The longest ban that may be given, in seconds (a ban for ever has none).
MAX_BAN_S = 10 * 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Action:
    """One moderation action as asked for: its kind (TOPIC...ROLE), the room, and
    what the kind needs (the user acted on, the topic, privacy, ban length, role,
    whether the room is kept)."""

    kind: int
    room: str
    user: str = ""
    reason: str = ""
    topic: str = ""
    private: bool = False
    duration_s: int = 0
    role: str = MEMBER
    kept: bool = False


def refusal(action: Action, actor: str, actor_role: str, target_role: str) -> ChatError | None:
    """Why ``actor`` (with ``actor_role``) may not take ``action`` on a user with
    ``target_role``, or None: the pure rules of the module docstring."""
    room, verb = action.room, VERBS[action.kind]
    if action.kind in OWNERS_ONLY and actor_role != OWNER:  # members are told so too
        return ChatError(Code.PERMISSION_DENIED, f"only owners may {verb} #{room}")
    if actor_role == MEMBER:
        return ChatError(Code.PERMISSION_DENIED, f"only owners and moderators may {verb} #{room}")
    if action.kind in (KICK, BAN, MUTE) and action.user == actor:
        return invalid(f"you cannot {verb.split()[0]} yourself")
    if action.kind in ON_USER and actor_role == MODERATOR and target_role != MEMBER:
        return ChatError(
            Code.PERMISSION_DENIED,
            f"{action.user} is {'an' if target_role == OWNER else 'a'} {target_role} of #{room}:"
            " moderators act on members only",
        )
    return None


class Moderation:
    """Takes moderation actions over one store (see the module docstring)."""

    def __init__(self, store: Store, rules: SendRules) -> None:
        self._store = store
        self._rules = rules

    async def act(self, actor: str, action: Action, *, operator: bool = False) -> StoredMessage:
        """Checks and takes ``action`` for ``actor``; returns its stored item."""
        store = self._store
        room = normalize_name(action.room, "room")
        if not operator:
            self._rules.spend(actor, 1.0)
            await room_access.check_see(store, room, actor)
        elif await store.room_owner(room) is None:
            raise room_access.not_found(room)
        action = await self._checked(action, room)
        actor_role = OWNER if operator else await store.room_role(room, actor)
        target_role = await store.room_role(room, action.user) if action.user else MEMBER
        refused = refusal(action, actor, actor_role, target_role)
        if refused is not None:
            raise refused
        detail = await self._apply(actor, action, target_role)
        draft = Draft(
            room_key(room),
            actor,
            action.topic if action.kind == TOPIC else action.reason,
            int(time.time() * 1000),
            room=room,
            kind=action.kind,
            target_seq=detail,
            emoji=action.user,
        )
        stored, _ = await store.append(draft)
        return stored

    async def _checked(self, action: Action, room: str) -> Action:
        """The action with its room and user normalised and its texts checked."""
        user = ""
        if action.kind in ON_USER:
            user = normalize_name(action.user, "user")
            if await self._store.get_account(user) is None:
                raise ChatError(Code.NOT_FOUND, f"no user named {user!r}")
        reason = self._rules.text(action.reason) if action.reason else ""
        topic = self._rules.text(action.topic) if action.topic else ""
        if action.role not in ROLES:
            raise invalid(f"unknown role {action.role!r}")
        if not 0 <= action.duration_s <= MAX_BAN_S:
            raise invalid(
                f"duration_s {action.duration_s} is out of range: a ban lasts at most"
                f" {MAX_BAN_S} seconds (0: until lifted)"
            )
        return Action(
            action.kind,
            room,
            user,
            reason,
            topic,
            action.private,
            action.duration_s,
            action.role,
            action.kept,
        )

    async def _apply(self, actor: str, action: Action, target_role: str) -> int:
        """Changes the store as ``action`` says; returns the stored item's number."""
        store, room, user, kind = self._store, action.room, action.user, action.kind
        if kind == TOPIC:
            await store.set_topic(room, action.topic)
        elif kind == PRIVACY:
            await store.set_private(room, action.private)
            return int(action.private)
        elif kind == KEEP:
            # Kept again when kept already: stored all the same, as PRIVACY is.
            await store.set_kept(room, action.kept)
            return int(action.kept)
        elif kind == INVITE:
            if await store.is_member(room, user):
                raise ChatError(Code.FAILED_PRECONDITION, f"{user} is in #{room} already")
            await store.invite(room, user, actor, action.reason)
        elif kind in (KICK, BAN):
            if kind == KICK and not await store.is_member(room, user):
                raise ChatError(Code.FAILED_PRECONDITION, f"{user} is not in #{room}")
            if kind == BAN:
                until = int(time.time() * 1000) + action.duration_s * 1000
                await store.ban(room, user, until if action.duration_s else 0)
            await store.remove_member(room, user)
            await store.uninvite(room, user)
            return action.duration_s
        elif kind == UNBAN:
            if not await store.unban(room, user):
                raise ChatError(Code.FAILED_PRECONDITION, f"{user} is not banned from #{room}")
        elif kind in (MUTE, UNMUTE):
            if not await store.set_muted(room, user, kind == MUTE):
                state = "muted" if kind == MUTE else "not muted"
                raise ChatError(Code.FAILED_PRECONDITION, f"{user} is {state} in #{room} already")
        elif kind == ROLE:
            await self._set_role(room, user, action.role, target_role)
            return ROLE_NUMBERS[action.role]
        return 0

    async def _set_role(self, room: str, user: str, role: str, current: str) -> None:
        if current == OWNER and role != OWNER:
            owners = [u for u, r in (await self._store.room_roles(room)).items() if r == OWNER]
            if owners == [user]:
                raise ChatError(
                    Code.FAILED_PRECONDITION,
                    f"{user} is the last owner of #{room}: name another owner first",
                )
        await self._store.set_role(room, user, role)
