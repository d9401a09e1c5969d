"""Routing: the registry of sessions, fan-out, and what a session asks for.

The hub sits between the sessions and the store. Sends are checked
(chatrpc.rules) and appended to the store; the store notifies every committed
message back to :meth:`Hub._on_commit`, which fans it out to the sessions of the
room (chatrpc.presence keeps which sessions are in which room) or of both users
of a DM. Fan-out only calls :meth:`Session.push`, which never waits, so one slow
reader never stalls a room. Resumes are planned by chatrpc.replay.

No gRPC here: problems are raised as :class:`chatrpc.errors.ChatError`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Sequence

from . import resume
from .drafts import Change, Drafts
from .errors import ChatError, Code
from .limits import JOIN_COST
from .limits import Limits as Limits  # the hub's settings; callers import them from here
from .listings import Listings
from .model import (
    Draft,
    StoredMessage,
    dm_key,
    dm_users,
    is_room_key,
    normalize_name,
    room_key,
)
from .presence import RoomPresence
from .read_state import ReadState
from .room_guard import RoomGuard
from .rules import SendRules, claim_membership
from .stats import Stats
from .store import Signal, Store
from .store.signals import TYPING
from .subscriber import Ack, EndReason, Left, Replay, Session
from .typing_notices import TypingRelay


class Hub:
    """Rooms, sessions and fan-out over one store (see the module docstring)."""

    def __init__(self, store: Store, limits: Limits | None = None) -> None:
        self.store = store
        self.limits = limits or Limits()
        #: What the server counted (chatrpc.metrics exports it).
        self.stats = Stats()
        self.presence = RoomPresence(store, self.limits)
        self.rules = SendRules(self.limits, self.stats)
        #: Blocks and mutes of this server's sessions; acts on room events.
        self.guard = RoomGuard(store, self.presence, self._sessions_of)
        #: What sends and changes become before they are committed.
        self.drafts = Drafts(store, self.rules, self.guard.is_muted)
        #: History and the paged listings (read-only queries).
        self.listings = Listings(store, self.limits, self.presence)
        #: Sessions closed since the server started (what garbage there is to collect).
        self.sessions_closed = 0
        self._users: dict[str, dict[Session, None]] = {}
        #: The hash of the token each session was opened with, to end it on revocation.
        self._token_of: dict[Session, str] = {}
        #: Sessions whose token was revoked, until their stream ends; how many
        #: revocations this server acted on (see SessionRunner.open).
        self._revoked: set[Session] = set()
        self.revocations = 0
        #: Who is typing, and how far each user has read (live signals).
        found = (self._sessions_of, self._check_live)
        self.typing = TypingRelay(store, self.limits, self.presence, *found, self.guard.blocks)
        self.reads = ReadState(store, self.rules, *found)
        store.set_listener(self._on_commit)
        # Revoked tokens and disabled accounts (through other servers): sessions here end.
        store.set_revoke_listener(self.revoke)
        store.set_disable_listener(functools.partial(self.revoke, reason=EndReason.DISABLED))
        store.set_signal_listener(functools.partial(_on_signal, self.typing, self.reads))

    # -- sessions --------------------------------------------------------------------

    def connect(self, session: Session, token_hash: str = "") -> None:
        """Registers a session: from now on it receives its user's DMs.

        Refused with RESOURCE_EXHAUSTED past ``max_sessions`` on the server or
        ``max_sessions_per_user`` for its user. ``token_hash`` is the hash of the
        token it was opened with: :meth:`revoke` ends it when that token is revoked.
        """
        mine = self._users.get(session.user, {})
        if len(mine) >= self.limits.max_sessions_per_user:
            raise ChatError(
                Code.RESOURCE_EXHAUSTED,
                f"{session.user!r} already has {len(mine)} sessions open, the most allowed:"
                " close one first",
            )
        if len(self._token_of) >= self.limits.max_sessions:
            raise ChatError(
                Code.RESOURCE_EXHAUSTED, "the server has as many sessions as it allows: retry later"
            )
        if session.user not in self._users:
            self.store.watch("@" + session.user)  # their DMs from other servers
        self._users.setdefault(session.user, {})[session] = None
        self._token_of[session] = token_hash

    def revoke(
        self, user: str, token_hash: str | None = None, reason: EndReason = EndReason.REVOKED
    ) -> int:
        """Ends ``user``'s sessions opened with ``token_hash`` (every one if None).

        Their streams end with ``reason`` (REVOKED, or DISABLED); returns how many.
        They are disconnected at once and all they ask for from now on is refused
        (UNAUTHENTICATED), even while their writer is blocked on a client that
        does not read and has not seen the end yet."""
        self.revocations += 1
        ended = 0
        for session in list(self._users.get(user, ())):
            if token_hash is None or self._token_of.get(session) == token_hash:
                self.disconnect(session)
                self._revoked.add(session)
                session.end(reason)
                ended += 1
        return ended

    def _check_live(self, session: Session) -> None:
        if session in self._revoked:
            raise ChatError(Code.UNAUTHENTICATED, "token revoked: log in again")

    @property
    def sessions_open(self) -> int:
        return len(self._token_of)

    def disconnect(self, session: Session, *, linger: bool = False) -> None:
        """Removes a session everywhere; announces users gone (or ``linger``s them)."""
        self._revoked.discard(session)
        if self._token_of.pop(session, None) is not None:
            self.sessions_closed += 1
        for room in list(session.rooms):
            self.presence.unsubscribe(session, room, linger=linger)
        if (sessions := self._users.get(session.user)) is not None:
            sessions.pop(session, None)
            if not sessions:
                del self._users[session.user]
                self.guard.forget(session.user)
                self.store.unwatch("@" + session.user)

    def park(self, session: Session) -> None:
        """Takes an ended session whose client stopped reading out of its rooms (it
        is announced gone) while it stays registered, counted against the limits."""
        for room in list(session.rooms):
            self.presence.unsubscribe(session, room, forget=False)  # its end: where to resume

    def sessions(self) -> list[Session]:
        return [s for group in self._users.values() for s in group]

    def shutdown(self) -> None:
        """Tells every session the server is stopping."""
        for session in self.sessions():
            session.end(EndReason.SHUTDOWN)

    def online(self, room: str) -> list[str]:
        """Users with a session in ``room`` on this server now, sorted."""
        return sorted(self.presence.users_here(room))

    # -- fan-out -----------------------------------------------------------------------

    def _on_commit(self, messages: Sequence[StoredMessage]) -> None:
        self.stats.fanned_out += len(messages)
        for msg in messages:
            for session in self.guard.screened(msg, self._recipients):
                session.push(msg)

    def _sessions_of(self, user: str) -> list[Session]:
        return list(self._users.get(user, ()))

    def _recipients(self, msg: StoredMessage) -> Iterable[Session]:
        if is_room_key(msg.conv):
            return self.presence.sessions_in(msg.room)
        a, b = dm_users(msg.conv)
        targets = list(self._users.get(a, ()))
        if b != a:
            targets.extend(self._users.get(b, ()))
        return targets

    # -- what a session asks for ---------------------------------------------------------

    async def join(
        self, session: Session, room: str, after_seq: int | None = None, epoch: str = ""
    ) -> None:
        """Joins ``room`` (creating it), then queues the acknowledgement and any replay.

        Live messages are subscribed to before history is read, and held back
        until the replay is queued, so the session sees no gap and no duplicate.
        """
        self._check_live(session)
        room = normalize_name(room, "room")
        conv = room_key(room)
        if room not in session.rooms and len(session.rooms) >= self.limits.max_rooms_per_session:
            raise ChatError(
                Code.RESOURCE_EXHAUSTED,
                f"this session is in {len(session.rooms)} rooms, the most allowed: leave one first",
            )
        self.rules.spend(session.user, JOIN_COST)
        standing, member = await self.guard.admit(room, session.user)  # private, banned?
        if not member:  # a rejoin (a reconnect) writes nothing: see docs/BENCHMARKS.md
            await claim_membership(self.store, self.limits, room, session.user)
        await self.guard.entered(room, session.user, standing)
        self._check_live(session)  # revoked while the store worked: do not subscribe it
        session.hold(conv)
        try:
            self.presence.subscribe(session, room)
            replay = await self._replay(conv, after_seq, epoch, room=room, user=session.user)
        except BaseException:
            session.release(conv)
            raise
        session.push(self.guard.screen_replay(session.user, replay, standing))

    async def resume_direct(
        self, session: Session, with_user: str, after_seq: int | None, epoch: str = ""
    ) -> None:
        """Replays a DM conversation of the session's user after ``after_seq``."""
        self._check_live(session)
        peer = normalize_name(with_user, "user")
        self.rules.spend(session.user, JOIN_COST)
        if await self.store.get_account(peer) is None:
            raise ChatError(Code.NOT_FOUND, f"no user named {peer!r}")
        conv = dm_key(session.user, peer)
        session.hold(conv)
        try:
            replay = await self._replay(conv, after_seq, epoch, with_user=peer, user=session.user)
        except BaseException:
            session.release(conv)
            raise
        session.push(replay)

    async def _replay(
        self, conv: str, after_seq: int | None, epoch: str, *, user: str, **target: str
    ) -> Replay:
        return await resume.answer(
            self.store, self.presence, self.limits, conv, after_seq, epoch, user=user, **target
        )

    async def leave(self, session: Session, room: str) -> None:
        self._check_live(session)
        room = normalize_name(room, "room")
        if room not in session.rooms:
            raise ChatError(Code.FAILED_PRECONDITION, f"you are not in #{room}")
        self.presence.unsubscribe(session, room)
        if not self.presence.user_here(room, session.user):
            await self.store.remove_member(room, session.user)
        session.push(Left(room))

    async def prepare(
        self,
        session: Session,
        text: str,
        *,
        room: str = "",
        to_user: str = "",
        client_msg_id: str = "",
        reply_to: int = 0,
    ) -> Draft:
        """Checks a send and returns what to store; raises ChatError if it is refused
        (see :meth:`Drafts.send`)."""
        self._check_live(session)
        return await self.drafts.send(
            session,
            text,
            room=room,
            to_user=to_user,
            client_msg_id=client_msg_id,
            reply_to=reply_to,
        )

    async def prepare_change(self, session: Session, change: Change) -> Draft:
        """Checks an edit, delete or reaction and returns what to store; raises
        ChatError if it is refused (see :meth:`Drafts.change`)."""
        self._check_live(session)
        return await self.drafts.change(session, change)

    async def commit(self, session: Session, drafts: list[Draft]) -> list[StoredMessage]:
        """Stores prepared sends in order (together, where the store can) and
        returns them once committed. A retried one (a ``client_msg_id`` stored
        before) is answered to ``session`` by its delivery rules (see
        :class:`Ack`): the original in its place, or an ``ack``, never a repeat."""
        self._check_live(session)
        started = time.perf_counter()
        results = await self.store.append_many(drafts)
        self.stats.append_seconds.observe(time.perf_counter() - started)
        for msg, duplicate in results:
            if duplicate:
                session.push(Ack(msg))
            else:
                self.stats.committed += 1
        return [msg for msg, _ in results]


def _on_signal(typing: TypingRelay, reads: ReadState, signal: Signal) -> None:
    """The store's signal listener: someone typing, or a read marker moved, elsewhere."""
    if signal.kind == TYPING:
        typing.deliver(signal.conv, signal.user)
    else:
        reads.deliver(signal.conv, signal.user, signal.seq)
