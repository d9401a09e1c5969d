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

import time
from collections.abc import Iterable, Sequence

from . import replay
from .errors import ChatError, Code, invalid
from .limits import JOIN_COST
from .limits import Limits as Limits  # the hub's settings; callers import them from here
from .listing import decode_token, duration, encode_token, page_size
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
from .rules import SendRules
from .stats import Stats
from .store import Store
from .subscriber import Ack, EndReason, Joined, Left, Replay, Session


class Hub:
    """Rooms, sessions and fan-out over one store (see the module docstring)."""

    def __init__(self, store: Store, limits: Limits | None = None) -> None:
        self.store = store
        self.limits = limits or Limits()
        #: What the server counted (chatrpc.metrics exports it).
        self.stats = Stats()
        self.presence = RoomPresence(store, self.limits)
        self.rules = SendRules(self.limits, self.stats)
        #: Sessions closed since the server started (what garbage there is to collect).
        self.sessions_closed = 0
        self._users: dict[str, dict[Session, None]] = {}
        #: The hash of the token each session was opened with, to end it on revocation.
        self._token_of: dict[Session, str] = {}
        #: Sessions whose token was revoked, until their stream ends.
        self._revoked: set[Session] = set()
        store.set_listener(self._on_commit)
        store.set_revoke_listener(self._on_remote_revoke)

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

    def revoke(self, user: str, token_hash: str | None = None) -> int:
        """Ends ``user``'s sessions opened with ``token_hash`` (every one if None).

        Their streams end with :attr:`EndReason.REVOKED`; returns how many. They
        are disconnected at once and everything they ask for from now on is
        refused (UNAUTHENTICATED), even while their writer is still blocked on a
        client that does not read and has not seen the end yet.
        """
        ended = 0
        for session in list(self._users.get(user, ())):
            if token_hash is None or self._token_of.get(session) == token_hash:
                self.disconnect(session)
                self._revoked.add(session)
                session.end(EndReason.REVOKED)
                ended += 1
        return ended

    def _on_remote_revoke(self, user: str, token_hash: str | None) -> None:
        """A token was revoked through another server: its sessions here end too."""
        self.revoke(user, token_hash)

    def _check_live(self, session: Session) -> None:
        if session in self._revoked:
            raise ChatError(Code.UNAUTHENTICATED, "token revoked: log in again")

    @property
    def sessions_open(self) -> int:
        return len(self._token_of)

    def disconnect(self, session: Session) -> None:
        """Removes a session everywhere; announces users who went offline."""
        self._revoked.discard(session)
        if self._token_of.pop(session, None) is not None:
            self.sessions_closed += 1
        for room in list(session.rooms):
            self.presence.unsubscribe(session, room)
        sessions = self._users.get(session.user)
        if sessions is not None:
            sessions.pop(session, None)
            if not sessions:
                del self._users[session.user]
                self.store.unwatch("@" + session.user)

    def park(self, session: Session) -> None:
        """Takes an ended session whose client stopped reading out of its rooms
        (announcing it gone), while it stays registered, and so counted against
        its user's and the server's session limits, until its stream ends."""
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

    async def online_everywhere(self, room: str) -> list[str]:
        """Users online in ``room`` on this server or, with a shared store, any other."""
        return sorted(await self.presence.online(room))

    # -- fan-out -----------------------------------------------------------------------

    def _on_commit(self, messages: Sequence[StoredMessage]) -> None:
        self.stats.fanned_out += len(messages)
        for msg in messages:
            for session in self._recipients(msg):
                session.push(msg)

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
        await self._claim_room(room, session.user)
        await self.store.add_member(room, session.user)
        self._check_live(session)  # revoked while the store worked: do not subscribe it
        session.hold(conv)
        try:
            self.presence.subscribe(session, room)
            replay = await self._replay(conv, after_seq, epoch, room=room)
        except BaseException:
            session.release(conv)
            raise
        session.push(replay)

    async def _claim_room(self, room: str, user: str) -> None:
        """Creates the room within the user's daily quota, or marks it active."""
        quota = self.limits.rooms_per_user_per_day
        claim = await self.store.claim_room(room, user, per_day=quota)
        if claim.retry_after_s:
            raise ChatError(
                Code.RESOURCE_EXHAUSTED,
                f"you created {quota} rooms in the last 24 hours, the most allowed:"
                f" join an existing room (/rooms lists them), or create #{room}"
                f" in {duration(claim.retry_after_s)}",
            )

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
            replay = await self._replay(conv, after_seq, epoch, with_user=peer)
        except BaseException:
            session.release(conv)
            raise
        session.push(replay)

    async def _replay(
        self, conv: str, after_seq: int | None, epoch: str, *, room: str = "", with_user: str = ""
    ) -> Replay:
        last = await self.store.last_seq(conv)
        online = await self.presence.online(room) if room else set()
        crowded = bool(room) and self.presence.crowded(room, len(online))
        members = () if crowded else tuple(sorted(online))
        messages: list[StoredMessage] = []
        complete = False
        floor = last
        if after_seq is not None:
            resume = replay.plan(after_seq, epoch, self.store.epoch, last, self.limits.max_replay)
            floor = resume.floor
            if resume.from_floor:
                messages = await self.store.history(conv, after_seq=floor, limit=resume.limit)
            else:
                messages = await self.store.history(conv, limit=resume.limit, descending=True)
                messages.reverse()
            complete = replay.complete(after_seq, floor, last, messages)
        joined = Joined(
            conv=conv,
            room=room,
            with_user=with_user,
            epoch=self.store.epoch,
            last_seq=last,
            complete=complete,
            replayed=len(messages),
            members=members,
            online=len(online),
        )
        return Replay(joined, messages, floor if after_seq is not None else last)

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
    ) -> Draft:
        """Checks a send and returns what to store; raises ChatError if it is refused.

        Every send, valid or not, costs one token of the user's budget
        (``rate_limit``, ``rate_burst``).
        """
        self._check_live(session)
        self.rules.spend(session.user, 1.0)
        text = self.rules.text(text)
        client_msg_id = self.rules.client_msg_id(client_msg_id)
        now_ms = int(time.time() * 1000)
        if room:
            room = normalize_name(room, "room")
            if room not in session.rooms:
                raise ChatError(Code.FAILED_PRECONDITION, f"join #{room} before sending to it")
            return Draft(room_key(room), session.user, text, now_ms, client_msg_id, room=room)
        if to_user:
            peer = normalize_name(to_user, "user")
            if await self.store.get_account(peer) is None:
                raise ChatError(Code.NOT_FOUND, f"no user named {peer!r}")
            return Draft(
                dm_key(session.user, peer), session.user, text, now_ms, client_msg_id, to_user=peer
            )
        raise invalid("send needs a room or a to_user")

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

    # -- queries -----------------------------------------------------------------------

    async def history(
        self,
        user: str,
        *,
        room: str = "",
        with_user: str = "",
        after_seq: int = 0,
        before_seq: int = 0,
        limit: int = 0,
        descending: bool = False,
    ) -> tuple[list[StoredMessage], int, bool]:
        """A page of a conversation the user belongs to: (messages, last_seq, has_more)."""
        if room:
            room = normalize_name(room, "room")
            conv = room_key(room)
            if not await self.store.is_member(room, user):
                raise ChatError(Code.PERMISSION_DENIED, f"join #{room} to read its history")
        elif with_user:
            peer = normalize_name(with_user, "user")
            conv = dm_key(user, peer)
        else:
            raise invalid("history needs a room or a with_user")
        if limit <= 0:
            limit = self.limits.default_history_page
        limit = min(limit, self.limits.max_history_page)
        page = await self.store.history(
            conv, after_seq=after_seq, before_seq=before_seq, limit=limit + 1, descending=descending
        )
        has_more = len(page) > limit
        return page[:limit], await self.store.last_seq(conv), has_more

    def _page_size(self, asked: int) -> int:
        return page_size(asked, self.limits.default_list_page, self.limits.max_list_page)

    async def rooms(
        self, *, limit: int = 0, page_token: str = "", prefix: str = ""
    ) -> tuple[list[tuple[str, int, int]], str]:
        """A page of rooms, (name, users online, last seq) each, and the next page's token.

        Without ``prefix``: by latest activity, newest first, and within the page
        by users online, most first. With it: the rooms whose name starts with
        it, by name. The token is the store order's key of the page's last room
        (see chatrpc.listing), so pages go on after it even if it moved.
        """
        size = self._page_size(limit)
        if prefix:
            prefix = normalize_name(prefix, "room")
            after = decode_token(page_token, "n", 1)[0] if page_token else ""
            entries = await self.store.rooms_by_name(prefix, limit=size + 1, after=after)
        else:
            anchor: tuple[int, str] | None = None
            if page_token:
                ms, name = decode_token(page_token, "a", 2)
                if not ms.isdigit():
                    raise invalid("page_token is not one this listing gave: start again without it")
                anchor = (int(ms), name)
            entries = await self.store.rooms_page(limit=size + 1, after=anchor)
        more, entries = len(entries) > size, entries[:size]
        token = ""
        if more:
            last = entries[-1]
            token = (
                encode_token("n", last.name)
                if prefix
                else encode_token("a", last.active_ms, last.name)
            )
        counts = [len(u) for u in await self.presence.online_many([e.name for e in entries])]
        rows = [(e.name, n, e.last_seq) for e, n in zip(entries, counts, strict=True)]
        if not prefix:
            rows.sort(key=lambda r: -r[1])  # stable: equal counts keep the activity order
        return rows, token

    async def members(
        self, room: str, *, limit: int = 0, page_token: str = ""
    ) -> tuple[str, list[str], str]:
        """A page of the users online in ``room``, by name: (room, names, next token)."""
        room = normalize_name(room, "room")
        after = decode_token(page_token, "m", 1)[0] if page_token else ""
        size = self._page_size(limit)
        names = [u for u in await self.online_everywhere(room) if u > after]
        more = len(names) > size
        return room, names[:size], encode_token("m", names[size - 1]) if more else ""

    async def directs(
        self, user: str, *, limit: int = 0, page_token: str = ""
    ) -> tuple[list[tuple[str, int]], str]:
        """A page of the user's DM conversations, (other user, last seq) each, by the
        other user's name, and the next page's token."""
        after = decode_token(page_token, "d", 1)[0] if page_token else ""
        size = self._page_size(limit)
        out = []
        for conv in await self.store.list_directs(user):
            a, b = dm_users(conv.key)
            out.append((b if a == user else a, conv.last_seq))
        out = sorted(d for d in out if d[0] > after)
        more = len(out) > size
        return out[:size], encode_token("d", out[size - 1][0]) if more else ""
