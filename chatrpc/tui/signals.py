"""The terminal's live signals: who is typing (shown under the input line for
:data:`SHOW_S` after their last notice), the typing notices of the user's own
half-typed line, and the read markers of what the terminal showed.

:class:`Typists` and the functions are pure (a clock is passed in);
:class:`LiveSignals` ties them to a client and the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ..client import ChatClient, conv_of
from ..names import canonical
from ..v1 import chat_pb2 as pb

#: How long a typing notice is shown unless another one comes (the server relays
#: one every 3 s while someone types).
SHOW_S = 6.0
#: How long after showing a message it is marked read: marks of a busy room
#: go out once a second at most, a tenth of a send each.
MARK_DELAY_S = 1.0
#: The most unread messages a listing counts (the server's cap: it means "or more").
UNREAD_CAP = 999


class Typists:
    """Who is typing in each conversation (``#room``, ``@peer``), until when."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._until: dict[str, dict[str, float]] = {}

    def saw(self, conv: str, user: str) -> None:
        """``user`` is typing in ``conv``: shown for :data:`SHOW_S` from now."""
        self._until.setdefault(conv, {})[user] = self.clock() + SHOW_S

    def stopped(self, conv: str, user: str) -> None:
        """``user`` sent their message in ``conv``: no longer typing."""
        self._until.get(conv, {}).pop(user, None)

    def typing(self, conv: str) -> list[str]:
        """Who is typing in ``conv`` now, sorted (forgetting who stopped)."""
        now = self.clock()
        users = self._until.get(conv, {})
        for user in [u for u, until in users.items() if until <= now]:
            del users[user]
        return sorted(users)

    def conversations(self) -> list[str]:
        return sorted(conv for conv in self._until if self.typing(conv))


def describe(names: list[str]) -> str:
    """``bob is typing``, ``bob and carol are typing``, ``bob, carol and 2 more are typing``."""
    if len(names) == 1:
        return f"{names[0]} is typing"
    if len(names) == 2:
        return f"{names[0]} and {names[1]} are typing"
    return f"{names[0]}, {names[1]} and {len(names) - 2} more are typing"


def typing_target(line: str, room: str | None) -> tuple[str, str] | None:
    """Where a half-typed input line goes, as (room, to_user): plain text to the
    current room, ``/msg USER text`` to USER, ``/me text`` to the room; None for
    other commands, an empty line or no room."""
    if not line.strip():
        return None
    if line.startswith("/msg ") or line.startswith("/query "):
        parts = line.split(None, 2)
        return ("", canonical(parts[1])) if len(parts) == 3 and parts[2].strip() else None
    if line.startswith("/") and not line.startswith("//") and not line.startswith("/me "):
        return None
    return (room, "") if room else None


def unread_note(unread: int, mentions: int) -> str:
    """``, 3 unread, 1 mentions you`` for a listing line (empty when nothing is unread)."""
    if not unread:
        return ""
    count = f"{UNREAD_CAP}+" if unread >= UNREAD_CAP else str(unread)
    note = f", {count} unread"
    if mentions:
        note += f", {mentions} mention{'s' if mentions > 1 else ''} of you"
    return note


class LiveSignals:
    """Typing notices in and out, and read marks, for one terminal and client.

    Args:
        client: the client whose typing and marks are written (it can be replaced
            by a new one after logging in again).
        redraw: called when what is shown under the input line changes.
    """

    def __init__(self, client: Callable[[], ChatClient], redraw: Callable[[], None]) -> None:
        self.client = client
        self.redraw = redraw
        self.typists = Typists()
        #: The newest seq shown per conversation, and the marks waiting to go out.
        self.shown: dict[str, int] = {}
        self._due: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[bool]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, bool]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def typed(self, room: str, to_user: str) -> None:
        """The user is typing a line to ``room`` or ``to_user`` (the client throttles)."""
        if room:
            self._spawn(self.client().typing(room=room))
        else:
            self._spawn(self.client().typing(to_user=to_user))

    def on_typing(self, notice: pb.UserTyping) -> None:
        """Someone else is typing: shown until :data:`SHOW_S` pass without another."""
        where = notice.room if notice.WhichOneof("target") == "room" else ""
        conv = "#" + where if where else "@" + notice.with_user
        self.typists.saw(conv, notice.user)
        asyncio.get_running_loop().call_later(SHOW_S + 0.1, self.redraw)
        self.redraw()

    def on_message(self, msg: pb.Message, me: str, room: str | None) -> None:
        """A message was shown: its sender stopped typing; marked read (a moment
        later) if it is in the current room or a DM."""
        conv = conv_of(msg, me)
        if msg.sender != me:
            self.typists.stopped(conv, msg.sender)
        if conv.startswith("@") or conv == f"#{room}":
            self.shown[conv] = max(msg.seq, self.shown.get(conv, 0))
            self._due[conv] = self.shown[conv]
            if self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(MARK_DELAY_S, self._flush)

    def _flush(self) -> None:
        self._timer = None
        due, self._due = self._due, {}
        for conv, seq in due.items():
            if conv.startswith("#"):
                self._spawn(self.client().mark_read(seq, room=conv[1:]))
            else:
                self._spawn(self.client().mark_read(seq, to_user=conv[1:]))

    def read_here(self, conv: str, last_seq: int) -> bool:
        """Whether this terminal showed ``conv`` up to ``last_seq`` (its marks may not
        have reached a listing yet)."""
        return self.shown.get(conv, 0) >= last_seq > 0
