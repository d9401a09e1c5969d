"""What the listing calls answer: History pages and paged rooms, members and DMs.

Read-only: each answer is computed from the store and, for who is online, from
the room presence (chatrpc.presence). No listing answer grows with the number of
rooms or users: every one is a page (chatrpc.listing keeps the page tokens).
"""

from __future__ import annotations

from dataclasses import replace

from . import room_access
from .errors import ChatError, Code, invalid
from .limits import Limits
from .listing import decode_token, encode_token, page_size
from .model import ROOM_EVENTS, StoredMessage, dm_key, dm_peer, normalize_name, room_key
from .presence import RoomPresence
from .store import RoomSettings, Store


class Listings:
    """The queries of the unary calls, over one store (see the module docstring)."""

    def __init__(self, store: Store, limits: Limits, presence: RoomPresence) -> None:
        self.store = store
        self.limits = limits
        self.presence = presence

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
                # A room this user may not see is one that does not exist.
                await room_access.check_see(self.store, room, user)
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
        page = page[:limit]
        if room:
            page = await self._hide_blocked(user, page)
        return page, await self.store.last_seq(conv), has_more

    async def _hide_blocked(self, user: str, page: list[StoredMessage]) -> list[StoredMessage]:
        """Marks the messages of users ``user`` blocked hidden, their text left out."""
        blocked = set(await self.store.blocked(user))
        if not blocked:
            return page
        return [
            replace(m, hidden=True, text="", reactions=())
            if m.sender in blocked and m.kind not in ROOM_EVENTS
            else m
            for m in page
        ]

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

    async def shown_rooms(self, user: str, names: list[str]) -> dict[str, RoomSettings]:
        """The settings of the rooms of ``names`` that ``user`` may see (a private
        room only to those in it; see chatrpc.room_access)."""
        found = await self.store.rooms_settings(names)
        return {
            name: settings
            for name, settings in found.items()
            if not settings.private or await room_access.in_room(self.store, name, user)
        }

    async def members(
        self, room: str, *, limit: int = 0, page_token: str = "", user: str = ""
    ) -> tuple[str, list[str], str]:
        """A page of the users online in ``room``, by name: (room, names, next token).

        NOT_FOUND for a room that does not exist or that ``user`` may not see."""
        room = normalize_name(room, "room")
        await room_access.check_see(self.store, room, user)
        after = decode_token(page_token, "m", 1)[0] if page_token else ""
        size = self._page_size(limit)
        names = [u for u in sorted(await self.presence.online(room)) if u > after]
        more = len(names) > size
        return room, names[:size], encode_token("m", names[size - 1]) if more else ""

    async def directs(
        self, user: str, *, limit: int = 0, page_token: str = ""
    ) -> tuple[list[tuple[str, int]], str]:
        """A page of the user's DM conversations, (other user, last seq) each, by the
        other user's name, and the next page's token."""
        after = decode_token(page_token, "d", 1)[0] if page_token else ""
        size = self._page_size(limit)
        peers = [(dm_peer(c.key, user), c.last_seq) for c in await self.store.list_directs(user)]
        out = sorted(d for d in peers if d[0] > after)
        more = len(out) > size
        return out[:size], encode_token("d", out[size - 1][0]) if more else ""
