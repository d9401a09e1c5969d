"""Live signals from a :class:`~chatrpc.client.chat.ChatClient`: "I am typing" and
"I have read up to here".

Both are written on the session's stream and answered by nothing when they are
fine (the server relays typing to the others and syncs markers as
``read_marker`` events). The server answers a bad one with an ``error`` event
that names no call, and this client reads such errors as the answer of the join
it waits for, if any; so it writes only what the server takes: typing and marks
in rooms this client is in (not while their join is on its way) and in DMs it
has seen, and marks no further than the seq it delivered. Typing is throttled
here as the server does (one notice per conversation every
:data:`TYPING_INTERVAL_S`), so calling :meth:`Signals.typing` on every keystroke
costs nothing; a mark that does not move forward is not written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from dataclasses import dataclass, field

import grpc

from ..names import canonical
from ..v1 import chat_pb2 as pb
from .cursor import Cursor
from .stream import ChatStream

#: The server relays one typing notice per user and conversation in this many seconds.
TYPING_INTERVAL_S = 3.0


@dataclass
class _Written:
    """Per conversation key: when typing was last written, and the newest mark."""

    typing: dict[str, float] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)


class Signals:
    """Typing notices and read markers written by a client (a part of ChatClient)."""

    _stream: ChatStream | None
    _cursor: Cursor
    _asked: deque[tuple[str, str]]
    _connected: asyncio.Event

    @functools.cached_property
    def _written(self) -> _Written:
        return _Written()

    def _followed(self, room: str, to_user: str) -> str | None:
        """The conversation key if this client is in it now (a room joined and
        answered, a DM it has seen), else None."""
        if room:
            conv = "#" + canonical(room)
            if conv[1:] not in self._cursor.state.rooms or ("join", conv) in self._asked:
                return None
            return conv
        conv = "@" + canonical(to_user)
        return conv if conv in self._cursor.state.cursors else None

    async def _write(self, event: pb.ClientEvent) -> bool:
        stream = self._stream
        if stream is None or not self._connected.is_set():
            return False
        # A stream that broke meanwhile: nothing to do, a live signal is not resent.
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await stream.write(event)
            return True
        return False

    async def typing(self, *, room: str = "", to_user: str = "") -> bool:
        """Tells the other members of ``room`` (or ``to_user``) that this user is
        typing. True if a notice was written; False if it was not needed (one went
        out less than :data:`TYPING_INTERVAL_S` ago), not possible (no connection)
        or not allowed (a conversation this client is not in)."""
        conv = self._followed(room, to_user)
        if conv is None:
            return False
        last = self._written.typing
        now = time.monotonic()
        if conv in last and now - last[conv] < TYPING_INTERVAL_S:
            return False
        notice = pb.Typing(room=conv[1:]) if room else pb.Typing(to_user=conv[1:])
        if not await self._write(pb.ClientEvent(typing=notice)):
            return False
        last[conv] = now
        return True

    async def mark_read(self, seq: int, *, room: str = "", to_user: str = "") -> bool:
        """Moves this user's read marker in ``room`` (or the DM with ``to_user``) to
        ``seq``, at most the newest seq this client delivered there. True if the
        mark was written; False if it would not move the marker this client last
        set, names what it did not deliver, or there is no connection."""
        conv = self._followed(room, to_user)
        if conv is None or seq > self._cursor.state.cursors.get(conv, 0):
            return False
        marked = self._written.marks
        if seq <= marked.get(conv, 0):
            return False
        mark = (
            pb.MarkRead(room=conv[1:], seq=seq) if room else pb.MarkRead(to_user=conv[1:], seq=seq)
        )
        if not await self._write(pb.ClientEvent(mark_read=mark)):
            return False
        marked[conv] = seq
        return True
