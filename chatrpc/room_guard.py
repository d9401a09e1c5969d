"""What a server keeps of moderation for its own sessions, and how it acts on room events.

The store holds bans, mutes and blocks for every server; fan-out cannot ask it
for each message, so each server keeps what its sessions need in memory:

* **Blocks** of each user with a session here (read when their first session
  opens, changed by Block and Unblock): the room messages of a user they
  blocked, and changes to them, are not pushed to their sessions, live or
  replayed (History marks them ``hidden``).
* **Mutes** of the users in each room here (read when they join, then followed
  from the room's MUTE and UNMUTE items): a muted user's sends are refused.

Room events arrive here as items of their room, in its order, from this
server's commits and (Redis) from other servers' through the watch feed, so
one rule covers both: a KICK or BAN takes the user's sessions here out of the
room before anything after it is fanned out (each gets ``left`` with the
reason), and a MUTE or UNMUTE updates the mutes. What concerns a user rather
than a room (a block, an invitation) other servers learn from the store's
announcements (:meth:`ClusterPresence.announce`), since they may follow none of
the rooms involved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from . import room_access
from .model import (
    BAN,
    KICK,
    MUTE,
    ROOM_EVENTS,
    UNMUTE,
    Invitation,
    StoredMessage,
)
from .presence import RoomPresence
from .store import Standing, Store
from .subscriber import Left, Replay, Session


def left_reason(msg: StoredMessage) -> str:
    """What a kicked or banned user's ``left`` event says."""
    what = "kicked" if msg.kind == KICK else "banned"
    by = msg.sender or "the operator"  # the admin service acts with no sender
    return f"{what} by {by}" + (f": {msg.text}" if msg.text else "")


class RoomGuard:
    """Blocks and mutes of this server's sessions; acts on room events (see the
    module docstring)."""

    def __init__(
        self, store: Store, presence: RoomPresence, sessions_of: Callable[[str], Iterable[Session]]
    ) -> None:
        self._store = store
        self._presence = presence
        self._sessions_of = sessions_of
        #: Users with a session here -> the users they blocked (only non-empty sets).
        self.blocks: dict[str, frozenset[str]] = {}
        #: (room, user) of the muted users in the rooms of this server's sessions.
        self._muted: set[tuple[str, str]] = set()
        store.set_notice_listener(self.on_notice)

    # -- sessions ---------------------------------------------------------------------

    async def greet(self, session: Session) -> None:
        """A new session: reads its user's blocks (if no session of theirs had) and
        tells it the invitations its user has not accepted yet."""
        user = session.user
        blocked, invitations = await self._store.greeting(user)
        if self._sessions_of(user):  # else it ended meanwhile: keep nothing of it
            self.set_blocks(user, blocked)
        for room, by, reason in invitations:
            session.push(Invitation(room, by, reason))

    async def blocks_changed(self, user: str) -> None:
        """``user`` blocked or unblocked someone: their sessions here follow it."""
        if self._sessions_of(user):
            self.set_blocks(user, await self._store.blocked(user))

    def on_notice(self, kind: str, user: str, detail: str) -> None:
        """What another server announced (chatrpc.store.presence): ``user`` blocked
        (``+name``) or unblocked (``-name``) someone, or was invited (``room``, who,
        why, one a line)."""
        if kind == "invite":
            room, by, reason = [*detail.split("\n", 2), "", ""][:3]
            self.invited(user, Invitation(room, by, reason))
        elif kind == "block" and detail[:1] in "+-" and self._sessions_of(user):
            found = set(self.blocks.get(user, ()))
            if detail[0] == "+":
                found.add(detail[1:])
            else:
                found.discard(detail[1:])
            self.set_blocks(user, found)

    def invited(self, user: str, invitation: Invitation) -> None:
        """Tells ``user``'s sessions here of an invitation."""
        for session in self._sessions_of(user):
            session.push(invitation)

    def set_blocks(self, user: str, blocked: Iterable[str]) -> None:
        """What ``user`` blocks now (after Block or Unblock, or read from the store)."""
        found = frozenset(blocked)
        if found:
            self.blocks[user] = found
        else:
            self.blocks.pop(user, None)

    def forget(self, user: str) -> None:
        """``user``'s last session here ended."""
        self.blocks.pop(user, None)
        if self._muted:
            self._muted = {(r, u) for r, u in self._muted if u != user}

    async def admit(self, room: str, user: str) -> tuple[Standing, bool]:
        """Before ``user`` joins ``room``: its settings, their standing in it and
        whether they are a member already, or
        NOT_FOUND (a private room they are not in) or PERMISSION_DENIED (banned);
        see chatrpc.room_access."""
        return await room_access.check_join(self._store, room, user)

    async def entered(self, room: str, user: str, standing: Standing) -> None:
        """``user`` joined ``room`` here: accepts their invitation, and notes
        whether they are muted in it."""
        if standing.invited:
            await self._store.uninvite(room, user)
        if standing.muted:
            self._muted.add((room, user))
        else:
            self._muted.discard((room, user))

    def is_muted(self, room: str, user: str) -> bool:
        return (room, user) in self._muted

    # -- fan-out -----------------------------------------------------------------------

    def hides(self, reader: str, msg: StoredMessage) -> bool:
        """Whether ``msg`` is kept from ``reader``: a room message (or a change of
        one) by a user ``reader`` blocked. Room events are never hidden."""
        blocked = self.blocks.get(reader)
        return blocked is not None and msg.sender in blocked and msg.kind not in ROOM_EVENTS

    def screened(
        self, msg: StoredMessage, recipients: Callable[[StoredMessage], Iterable[Session]]
    ) -> Iterable[Session]:
        """The sessions of ``sessions`` that get ``msg`` (none by a user they blocked);
        acts on a room event first (a kick takes its user out of the room here)."""
        if msg.kind in ROOM_EVENTS:
            self.on_event(msg)
        sessions = recipients(msg)  # after the event: a kicked user is not among them
        if not self.blocks or not msg.room:
            return sessions
        return [s for s in sessions if not self.hides(s.user, msg)]

    def screen_replay(self, reader: str, replay: Replay, standing: Standing) -> Replay:
        """A join's replay without what is kept from ``reader``, its acknowledgement
        with the room's topic and privacy."""
        if reader in self.blocks:
            replay.messages = [m for m in replay.messages if not self.hides(reader, m)]
        settings = standing.settings
        replay.joined = dataclasses.replace(
            replay.joined, topic=settings.topic, private=settings.private
        )
        return replay

    def on_event(self, msg: StoredMessage) -> None:
        """Acts on a room event before it is fanned out (see the module docstring)."""
        room, user = msg.room, msg.target_user
        if msg.kind in (KICK, BAN):
            for session in self._presence.sessions_in(room):
                if session.user == user:
                    self._presence.unsubscribe(session, room)
                    session.push(Left(room, left_reason(msg)))
            self._muted.discard((room, user))
        elif msg.kind == MUTE and self._presence.user_here(room, user):
            self._muted.add((room, user))
        elif msg.kind == UNMUTE:
            self._muted.discard((room, user))
