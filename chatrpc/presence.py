"""Which sessions are in which room here, and who is online in each room.

:class:`RoomPresence` keeps the room registry that fan-out reads, tells the
store (and so the other servers) when a user comes or goes here, and announces
arrivals and departures to the room, on this server's own changes and on the
other servers' reports alike. Presence is live only: never stored, never replayed.

Rooms past the presence cap (``presence_max_sessions``) announce no joins and
leaves (each announcement costs one event per member: quadratic in a join
storm), and their joins name nobody, only how many are online.

A user whose connection dropped (or whose server stopped) stays online in their
rooms for the presence grace (``presence_grace_s``): coming back within it
announces nothing, so a network blip or a restart does not flap every member of
every room offline and online again (N returns would cost N^2/2 events). A user
who quits or leaves a room is announced gone at once; one who does not come
back is announced gone when the grace runs out. Who was online when the server
stopped is kept in the store (:meth:`~chatrpc.store.Store.keep_online`) and
lingers for the grace after it starts again.
"""

from __future__ import annotations

import asyncio
from collections import deque

from .errors import ChatError
from .limits import Limits
from .model import room_key
from .store import Store
from .subscriber import Left, Presence, Session


class RoomPresence:
    """The rooms of this server's sessions and who is online in them (see the module)."""

    def __init__(self, store: Store, limits: Limits) -> None:
        self.store = store
        self.limits = limits
        self._rooms: dict[str, dict[Session, None]] = {}
        #: Per room, each user here and how many of their sessions are in it: who
        #: is here, and whether a join or leave changes that, without a scan.
        self._users: dict[str, dict[str, int]] = {}
        #: Per room, users gone without a word and still shown online, and until
        #: when (the loop's clock); in order of those times (one grace for all).
        self._lingering: dict[str, dict[str, float]] = {}
        self._expiries: deque[tuple[float, str, str]] = deque()
        self._expiry: asyncio.TimerHandle | None = None
        store.set_presence_listener(self._on_remote)
        store.set_room_drop_listener(self.drop)

    def sessions_in(self, room: str) -> list[Session]:
        """The sessions in ``room`` on this server now."""
        return list(self._rooms.get(room, ()))

    def users_here(self, room: str) -> set[str]:
        """Users with a session in ``room`` on this server now, or lingering in it."""
        return set(self._users.get(room, ())).union(self._lingering.get(room, ()))

    def user_here(self, room: str, user: str) -> bool:
        return user in self._users.get(room, ()) or user in self._lingering.get(room, ())

    async def online(self, room: str) -> set[str]:
        """Users online in ``room`` on this server or, with a shared store, any other."""
        local = self.users_here(room)
        try:
            remote = await self.store.online_users(room)
        except ChatError:
            remote = None  # the shared store is down: say what this server knows
        return local.union(remote or ())

    async def online_many(self, rooms: list[str]) -> list[set[str]]:
        """:meth:`online` of several rooms, asking a shared store once."""
        try:
            remote = await self.store.online_users_many(rooms)
        except ChatError:
            remote = None  # the shared store is down: say what this server knows
        if remote is None:
            return [self.users_here(room) for room in rooms]
        return [self.users_here(room) | users for room, users in zip(rooms, remote, strict=True)]

    def drop(self, room: str) -> int:
        """Takes every session here out of a deleted room (here or, told by the
        store, on another server); each gets ``left``. Returns how many."""
        sessions = self.sessions_in(room)
        for session in sessions:
            self.unsubscribe(session, room)
            session.push(Left(room))
        for user in self._lingering.pop(room, ()):
            self.store.set_online(room, user, False)
        return len(sessions)

    def subscribe(self, session: Session, room: str) -> None:
        """Puts ``session`` in ``room``; announces its user if they just came online."""
        if room not in self._rooms:
            self.store.watch(room_key(room))  # its messages from other servers
        subs = self._rooms.setdefault(room, {})
        session.rooms.add(room)
        if session in subs:
            return
        subs[session] = None
        users = self._users.setdefault(room, {})
        first = session.user not in users
        users[session.user] = users.get(session.user, 0) + 1
        if first:
            lingering = self._lingering.get(room)
            if lingering is not None and lingering.pop(session.user, None) is not None:
                if not lingering:
                    del self._lingering[room]
                return  # back within the grace: still online to everyone
            if not self.store.online_elsewhere(room, session.user):
                self._announce(room, Presence(room, session.user, joined=True), skip=session)
            self.store.set_online(room, session.user, True)

    def unsubscribe(
        self, session: Session, room: str, *, forget: bool = True, linger: bool = False
    ) -> None:
        """Takes ``session`` out of ``room`` (forgetting what it delivered there, unless
        ``forget`` is False); announces its user if they are now gone, or with
        ``linger`` (gone without a word) keeps them online for the grace."""
        session.rooms.discard(room)
        if forget:
            session.forget(room_key(room))
        subs = self._rooms.get(room)
        if subs is None or session not in subs:
            return
        del subs[session]
        users = self._users[room]
        users[session.user] -= 1
        last = users[session.user] == 0
        if last:
            del users[session.user]
        if not subs:
            del self._rooms[room], self._users[room]
            self.store.unwatch(room_key(room))
        if not last:
            return
        if linger and self.limits.presence_grace_s > 0:
            self._linger(room, session.user)
        else:
            self._gone(room, session.user, skip=session)

    def stop(self) -> dict[str, list[str]]:
        """The server stops: no more expiries. Returns who is online in each room
        here, with a session or lingering (what the store keeps for the restart)."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        return {room: sorted(self.users_here(room)) for room in {*self._users, *self._lingering}}

    def restore(self, rooms: dict[str, list[str]]) -> None:
        """Users online when the server last stopped: they linger for the grace."""
        if self.limits.presence_grace_s <= 0:
            return
        for room, users in rooms.items():
            for user in users:
                if not self.user_here(room, user):
                    self._linger(room, user)
                    self.store.set_online(room, user, True)

    def _linger(self, room: str, user: str) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + self.limits.presence_grace_s
        self._lingering.setdefault(room, {})[user] = until
        self._expiries.append((until, room, user))
        if self._expiry is None:
            self._expiry = loop.call_at(until, self._expire)

    def _expire(self) -> None:
        """Announces the lingering users whose grace ran out; waits for the next."""
        self._expiry = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._expiries and self._expiries[0][0] <= now:
            until, room, user = self._expiries.popleft()
            lingering = self._lingering.get(room)
            if lingering is None or lingering.get(user) != until:
                continue  # came back (or lingers again, until later)
            del lingering[user]
            if not lingering:
                del self._lingering[room]
            self._gone(room, user, skip=None)
        if self._expiries:
            self._expiry = loop.call_at(self._expiries[0][0], self._expire)

    def _gone(self, room: str, user: str, skip: Session | None) -> None:
        if not self.store.online_elsewhere(room, user):
            self._announce(room, Presence(room, user, joined=False), skip=skip)
        self.store.set_online(room, user, False)

    def _on_remote(self, room: str, user: str, online: bool) -> None:
        """A user came online in ``room`` on another server, or left it there."""
        if self.user_here(room, user):
            return  # online here too: what the room sees does not change
        self._announce(room, Presence(room, user, joined=online), skip=None)

    def crowded(self, room: str, online: int = 0) -> bool:
        """Past the presence cap: more sessions here, or more users here and on the
        other servers (or ``online`` counted already), than ``presence_max_sessions``."""
        cap = self.limits.presence_max_sessions
        if not cap:
            return False
        if online > cap or len(self._rooms.get(room, ())) > cap:
            return True
        # Counted, not gathered (every announcement asks): nobody is both here
        # and lingering, as a return ends the linger.
        here = len(self._users.get(room, ())) + len(self._lingering.get(room, ()))
        return here + self.store.count_elsewhere(room) > cap

    def _announce(self, room: str, presence: Presence, skip: Session | None) -> None:
        if self.crowded(room):
            return
        for s in list(self._rooms.get(room, ())):
            if s is not skip:
                s.push(presence)
