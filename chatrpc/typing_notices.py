"""Who is typing: a session's ``typing`` event relayed live to the other members
of its conversation, never stored or replayed.

* **Who gets it.** In a room, every session here in the room but the typist's
  own; in a DM, the peer's sessions (never the typist's). Other servers get it
  through the store (:meth:`chatrpc.store.ClusterSignals.relay_typing`) and do
  the same for their sessions. A room past the presence cap
  (``presence_max_sessions``) relays none: like its joins and leaves, a notice
  there would cost one event per member.
* **Throttled.** At most one notice per user and conversation every
  :data:`TYPING_INTERVAL_S` seconds is relayed (per server); the others are
  dropped without a word: a client sends one per keystroke if it likes.
* **Rate limited apart from sends.** A relayed notice takes a token from the
  user's typing budget, a bucket of its own with the send rate and burst
  (``rate_limit``, ``rate_burst``), so a flood of notices to many conversations
  is held to the send rate but never costs a send. Past it, notices are dropped
  too. A notice the throttle drops costs one dictionary look-up.
* **Droppable.** Each goes to a session with :meth:`Session.offer`: a session
  whose queue is half full skips it rather than be cut off as a slow reader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from .errors import ChatError, Code, invalid
from .limits import Limits
from .live import TypingNotice
from .model import dm_key, dm_peer, is_room_key, normalize_name, room_key
from .presence import RoomPresence
from .ratelimit import Buckets
from .store import Store
from .subscriber import Session

#: At most one typing notice per user and conversation in this many seconds.
TYPING_INTERVAL_S = 3.0


class TypingRelay:
    """Checks, throttles and relays typing notices (see the module docstring).

    Args:
        sessions_of: a user's sessions on this server.
        check_live: raises ChatError (UNAUTHENTICATED) for a session whose token
            was revoked.
        blocks: whom each user blocked; a blocked user's typing is not shown to them.
    """

    def __init__(
        self,
        store: Store,
        limits: Limits,
        presence: RoomPresence,
        sessions_of: Callable[[str], Iterable[Session]],
        check_live: Callable[[Session], None],
        blocks: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.store = store
        self.presence = presence
        self._sessions_of = sessions_of
        self._check_live = check_live
        #: Whom each user blocked (the hub's, kept current): they see none of their typing.
        self._blocks: Mapping[str, frozenset[str]] = {} if blocks is None else blocks
        self._throttle = Buckets(1 / TYPING_INTERVAL_S, 1)
        self._budget = Buckets(limits.rate_limit, limits.rate_burst)
        #: Notices dropped by the throttle or the budget.
        self.dropped = 0

    async def notice(self, session: Session, *, room: str = "", to_user: str = "") -> None:
        """Relays that ``session``'s user is typing in ``room`` or to ``to_user``.

        Raises ChatError for a room the session is not in (as a send would) or an
        unknown user; a notice over the throttle or the budget is dropped silently.
        """
        self._check_live(session)
        user = session.user
        peer = ""
        if room:
            room = normalize_name(room, "room")
            if room not in session.rooms:
                raise ChatError(Code.FAILED_PRECONDITION, f"join #{room} before sending to it")
            conv = room_key(room)
        elif to_user:
            peer = normalize_name(to_user, "user")
            conv = dm_key(user, peer)
        else:
            raise invalid("typing needs a room or a to_user")
        if self._throttle.take(f"{user} {conv}") or self._budget.take(user):
            self.dropped += 1
            return
        if peer and await self.store.get_account(peer) is None:
            raise ChatError(Code.NOT_FOUND, f"no user named {peer!r}")
        self.deliver(conv, user)
        self.store.relay_typing(conv, user)

    def deliver(self, conv: str, user: str) -> None:
        """Offers the notice to this server's sessions that are to see it."""
        if is_room_key(conv):
            room = conv[1:]
            if self.presence.crowded(room):
                return
            notice = TypingNotice(user, room=room)
            targets: Iterable[Session] = self.presence.sessions_in(room)
        else:
            peer = dm_peer(conv, user)
            if peer == user:
                return  # a note to self: nobody else to tell
            notice = TypingNotice(user, with_user=user)
            targets = self._sessions_of(peer)
        for session in targets:
            if session.user != user and user not in self._blocks.get(session.user, ()):
                session.offer(notice)
