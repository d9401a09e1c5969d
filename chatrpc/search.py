"""What the Search call answers: who may search where, page sizes, snippets.

Search covers only what the caller may read: the rooms they are a member of
and their own direct conversations. A scope the caller may not read (a room
they are not in, or one that does not exist) answers NOT_FOUND, the same either
way, so a search never tells whether a room exists. What a query means and how
a store finds its hits are the store's rules (chatrpc.store.matching,
chatrpc.store.search).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ChatError, Code, invalid
from .model import StoredMessage, dm_key, normalize_name, room_key
from .store import Store
from .store.matching import Query, parse_query, snippet

#: Hits per page when the request gives no limit, and the most one page holds.
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
#: What a Search call takes from the caller's send budget (``--rate-limit``):
#: one call may read thousands of stored items.
SEARCH_COST = 1.0


@dataclass(frozen=True, slots=True)
class Hit:
    """A message found (in its current state) and an excerpt around its first match."""

    message: StoredMessage
    snippet: str


@dataclass(frozen=True, slots=True)
class Found:
    """One page of a search: its hits, newest first, and the next page's token."""

    hits: list[Hit]
    next_page_token: str


class Searches:
    """The Search call over one store (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def readable(self, user: str, *, room: str = "", with_user: str = "") -> list[str]:
        """The conversation keys a search by ``user`` covers, given its scope."""
        if room:
            room = normalize_name(room, "room")
            if not await self.store.is_member(room, user):
                raise ChatError(Code.NOT_FOUND, f"no room #{room} among the rooms you are in")
            return [room_key(room)]
        if with_user:
            return [dm_key(user, normalize_name(with_user, "user"))]
        rooms = [room_key(r) for r in await self.store.member_rooms(user)]
        return rooms + [c.key for c in await self.store.list_directs(user)]

    async def search(
        self,
        user: str,
        query: str,
        *,
        room: str = "",
        with_user: str = "",
        limit: int = 0,
        before_seq: int = 0,
        page_token: str = "",
    ) -> Found:
        """A page of the messages ``user`` may read that match ``query``, newest first."""
        parsed: Query = parse_query(query)
        if before_seq and not (room or with_user):
            raise invalid("before_seq needs a room or with_user to search in")
        convs = await self.readable(user, room=room, with_user=with_user)
        size = DEFAULT_LIMIT if limit <= 0 else min(limit, MAX_LIMIT)
        page = await self.store.search(
            parsed, convs, limit=size, before_seq=before_seq, page_token=page_token
        )
        hits = [Hit(m, snippet(parsed, m.text)) for m in page.hits]
        return Found(hits, page.next_page_token)
