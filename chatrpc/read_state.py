"""Read markers as the sessions see them: ``mark_read`` events, the ``read_marker``
events that sync them, and the markers and unread counts a join and the
listings show.

* **Only forward.** A marker moves only to a higher seq (the store keeps the
  highest); a lower or equal one changes nothing and sends nothing. A seq past
  the conversation's newest is refused (INVALID_ARGUMENT), not clamped: a
  client marks what it was shown, so a seq nobody was shown is a client's bug.
* **Synced live.** A marker that moved goes to the user's other sessions and,
  in a DM, to the peer's, here and (through the store) on the other servers.
  In a room only the user's own sessions learn it.
* **Counted once.** What is unread is a function of the user, the conversation,
  their marker and the conversation's newest seq (an edit or a delete is a new
  item, so it moves the newest seq too), so counts are kept in a bounded LRU
  (:data:`COUNTS_CACHED`) and a listing recounts only the conversations that
  changed since it was last asked: asking again and again costs look-ups.
* **Who may mark.** A room's member (joined in this session, or a member in the
  store, as History asks), a DM's participant; others get the error a send to
  that room would. Marks have a budget of their own, each a tenth
  (:data:`MARK_COST`) of a send at the send rate: a mark writes to the store,
  but a client marking what it shows never costs its user a send (nor an error
  while their sends wait for the rate limit).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from .errors import ChatError, Code, invalid
from .live import ReadMark
from .model import dm_key, dm_peer, is_room_key, normalize_name, room_key, seq_field
from .ratelimit import Buckets, retry_hint
from .rules import SendRules
from .store import Span, Store, Unread
from .subscriber import Session

#: What a mark_read costs, in sends (a tenth of one, as a join), from its own budget.
MARK_COST = 0.1
#: Store reads a listing page makes at once.
CONCURRENT_READS = 32
#: Unread counts remembered, by (epoch, user, conversation, marker, newest seq).
COUNTS_CACHED = 50_000

T = TypeVar("T")


class ReadState:
    """Moves, syncs and counts read markers (see the module docstring).

    Args:
        sessions_of: a user's sessions on this server.
        check_live: raises ChatError (UNAUTHENTICATED) for a session whose token
            was revoked.
    """

    def __init__(
        self,
        store: Store,
        rules: SendRules,
        sessions_of: Callable[[str], Iterable[Session]],
        check_live: Callable[[Session], None],
    ) -> None:
        self.store = store
        self.rules = rules
        self._sessions_of = sessions_of
        self._check_live = check_live
        self._counts: OrderedDict[tuple[str, str, Span], Unread] = OrderedDict()
        limits = rules.limits
        self._budget = Buckets(limits.rate_limit / MARK_COST, limits.rate_burst / MARK_COST)

    async def mark(self, session: Session, seq: int, *, room: str = "", to_user: str = "") -> None:
        """Moves ``session``'s user's marker in ``room`` (or the DM with ``to_user``)
        to ``seq`` and tells their other sessions and the DM's peer; raises ChatError."""
        self._check_live(session)
        user = session.user
        wait = self._budget.take(user)
        if wait:
            self.rules.stats.rate_limited += 1
            raise ChatError(Code.RESOURCE_EXHAUSTED, f"rate limit: retry in {retry_hint(wait)}")
        seq = seq_field(seq, "seq")
        if room:
            room = normalize_name(room, "room")
            if room not in session.rooms and not await self.store.is_member(room, user):
                raise ChatError(Code.FAILED_PRECONDITION, f"join #{room} before marking it read")
            conv, where = room_key(room), f"#{room}"
        elif to_user:
            peer = normalize_name(to_user, "user")
            if await self.store.get_account(peer) is None:
                raise ChatError(Code.NOT_FOUND, f"no user named {peer!r}")
            conv, where = dm_key(user, peer), f"your conversation with {peer}"
        else:
            raise invalid("mark_read needs a room or a to_user")
        last = await self.store.last_seq(conv)
        if seq > last:
            raise invalid(f"seq {seq} is past the newest message of {where} ({last})")
        if seq and await self.store.mark_read(user, conv, seq):
            self.deliver(conv, user, seq, skip=session)

    def deliver(self, conv: str, user: str, seq: int, skip: Session | None = None) -> None:
        """Tells this server's sessions that are to know: ``user``'s (but ``skip``),
        and in a DM the peer's."""
        if is_room_key(conv):
            own = ReadMark(user, seq, room=conv[1:])
        else:
            peer = dm_peer(conv, user)
            own = ReadMark(user, seq, with_user=peer)
            if peer != user:
                theirs = ReadMark(user, seq, with_user=user)
                for s in self._sessions_of(peer):
                    s.push(theirs)
        for s in self._sessions_of(user):
            if s is not skip:
                s.push(own)

    async def rooms(self, user: str, rooms: Sequence[tuple[str, int]]) -> list[tuple[int, Unread]]:
        """For a listing page of (room, last seq): ``user``'s marker and unread counts
        in each room they are a member of, (0, nothing) in the others."""
        member = await _gather(self.store.is_member, [(name, user) for name, _ in rooms])
        convs = [room_key(name) for name, _ in rooms]
        marks = await self.store.read_markers(user, convs)
        spans = [
            Span(conv, mark if joined else last, last)
            for conv, mark, joined, (_, last) in zip(convs, marks, member, rooms, strict=True)
        ]
        counts = await self._count(user, spans)
        return [
            (mark, count) if joined else (0, Unread())
            for mark, count, joined in zip(marks, counts, member, strict=True)
        ]

    async def directs(
        self, user: str, directs: Sequence[tuple[str, int]]
    ) -> list[tuple[int, int, Unread]]:
        """For a listing page of (peer, last seq): ``user``'s marker, the peer's, and
        ``user``'s unread counts in each DM."""
        convs = [dm_key(user, peer) for peer, _ in directs]
        marks = await self.store.read_markers(user, convs)
        pairs = [(peer, conv) for (peer, _), conv in zip(directs, convs, strict=True)]
        theirs = await _gather(self.store.read_marker, pairs)
        spans = [Span(c, m, last) for c, m, (_, last) in zip(convs, marks, directs, strict=True)]
        counts = await self._count(user, spans)
        return list(zip(marks, theirs, counts, strict=True))

    async def _count(self, user: str, spans: Sequence[Span]) -> list[Unread]:
        """The store's counts of the spans not counted before (see the module docstring)."""
        epoch = self.store.epoch  # a store that lost its history numbers anew
        found = {span: self._counts.get((epoch, user, span)) for span in spans}
        missing = [span for span, count in found.items() if count is None and not span.empty]
        if missing:
            counted = await self.store.unread_counts(user, missing)
            for span, count in zip(missing, counted, strict=True):
                found[span] = self._counts[(epoch, user, span)] = count
            while len(self._counts) > COUNTS_CACHED:
                self._counts.popitem(last=False)
        for span in spans:
            if (epoch, user, span) in self._counts:
                self._counts.move_to_end((epoch, user, span))
        return [found[span] or Unread() for span in spans]


async def _gather(
    call: Callable[[str, str], Awaitable[T]], args: Sequence[tuple[str, str]]
) -> list[T]:
    """``call`` on each pair of ``args``, :data:`CONCURRENT_READS` at a time (a page
    holds up to 500: not 500 store connections at once), the results in order."""
    out: list[T] = []
    for start in range(0, len(args), CONCURRENT_READS):
        chunk = args[start : start + CONCURRENT_READS]
        out.extend(await asyncio.gather(*(call(a, b) for a, b in chunk)))
    return out
