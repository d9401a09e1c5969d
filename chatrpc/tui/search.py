"""``/search``: finding messages with the Search call and showing the hits."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..v1 import chat_pb2 as pb
from .commands import CALL_TIMEOUT, Command
from .formatter import printable
from .output import ChatOutput


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A search to run again for its next page: its words, scope and page token."""

    query: str
    room: str = ""
    page_token: str = ""


def hit_line(hit: pb.SearchHit, me: str) -> str:
    """``#room [seq] YYYY-MM-DD HH:MM sender: snippet`` (``@peer`` for a DM)."""
    m = hit.message
    if m.WhichOneof("target") == "room":
        where = f"#{m.room}"
    else:
        where = "@" + (m.to_user if m.sender == me else m.sender)
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.sent_at.seconds))
    return f"{where} [{m.seq}] {stamp} {m.sender}: {printable(hit.snippet)}"


class SearchCommand(ChatOutput):
    """``/search`` for :class:`~chatrpc.tui.view.ChatView` (a part of it)."""

    #: The search ``/search -m`` goes on with, if it has more pages.
    _search_next: SearchRequest | None = None

    async def search(self, cmd: Command) -> None:
        """Runs ``/search``: in the current room (everywhere with -a), or its next page."""
        if cmd.flag == "more":
            if self._search_next is None:
                self.problem("no more hits: /search WORDS starts a new search")
                return
            request = self._search_next
        else:
            room = "" if cmd.flag == "all" else (self.room or "")
            request = SearchRequest(cmd.text, room)
        found = await self.client.search(
            request.query, room=request.room, page_token=request.page_token, timeout=CALL_TIMEOUT
        )
        token = found.next_page_token
        self._search_next = SearchRequest(request.query, request.room, token) if token else None
        if self.as_json:
            self._emit_json("search", found)
            return
        where = f"#{request.room}" if request.room else "your rooms and direct messages"
        if not found.hits:
            self.emit(self.formatter.info(f"no messages found in {where} (yet)"))
        for hit in found.hits:
            self.emit(hit_line(hit, self.me))
        if token:
            self.emit(self.formatter.info("more: /search -m"))
