"""One connected session: its bounded queue and what it has delivered.

Fan-out calls :meth:`Session.push`, which never blocks: when the queue is full
the session is marked as a slow consumer and its queue is dropped, and the
writer ends the stream with the resume points (RESOURCE_EXHAUSTED). Nothing
acknowledged is lost that way: the client resumes from the last seq it got.

The writer calls :meth:`Session.next_batch`, which applies the delivery rules
so each stored message reaches the session at most once and in seq order:

* live messages of a conversation being replayed are held back until its
  replay is queued, then only those past the replay are delivered;
* a message at or below what the session already delivered in its
  conversation is dropped.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .model import StoredMessage

_ids = itertools.count(1)


class EndReason(enum.Enum):
    """Why a session's stream ends, and so which status the client sees."""

    #: The client half-closed and every echo was delivered: OK.
    DONE = "done"
    #: The session fell behind its queue bound: RESOURCE_EXHAUSTED, resume.
    SLOW_CONSUMER = "slow consumer"
    #: The server is stopping: UNAVAILABLE, reconnect (to another server).
    SHUTDOWN = "shutdown"
    #: Reading the client's events failed unexpectedly: INTERNAL.
    FAILED = "failed"
    #: The token the session was opened with was revoked: UNAUTHENTICATED, log in again.
    REVOKED = "token revoked"
    #: The client sent bytes that are not a ClientEvent: INVALID_ARGUMENT.
    MALFORMED = "malformed event"
    #: The client went away (cancelled, disconnected, or vanished): no status to send.
    GONE = "client gone"


@dataclass(slots=True)
class Presence:
    """A user came online in a room or left it; one object goes to every session."""

    room: str
    user: str
    joined: bool
    #: The encoded wire event, filled once by the server for all sessions.
    wire: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True, frozen=True)
class Joined:
    """Acknowledges a join of a room (``room``) or a DM resume (``with_user``)."""

    conv: str
    room: str
    with_user: str
    epoch: str
    last_seq: int
    complete: bool
    replayed: int
    members: tuple[str, ...]
    #: users online in the room (``members`` may be empty past the presence cap)
    online: int = 0


@dataclass(slots=True, frozen=True)
class Left:
    room: str


@dataclass(slots=True, frozen=True)
class Notice:
    """A problem with one client event (sent as an ``error`` event)."""

    code: str
    message: str
    client_msg_id: str = ""


@dataclass(slots=True)
class Replay:
    """The acknowledgement of a join and the stored messages it replays."""

    joined: Joined
    messages: list[StoredMessage]
    #: Seq the replay starts after: what the client says it has already seen.
    after_seq: int


@dataclass(slots=True, frozen=True)
class Ack:
    """The original of a retried send, returned to the session that retried it."""

    message: StoredMessage


@dataclass(slots=True, frozen=True)
class End:
    reason: EndReason


Item = StoredMessage | Presence | Replay | Left | Notice | Ack | End
#: What the writer receives: stored messages, notices and acknowledgements.
Outgoing = StoredMessage | Presence | Joined | Left | Notice | End


@dataclass(slots=True)
class _Delivered:
    """The contiguous range of a conversation's seqs this session delivered."""

    low: int
    high: int


class Session:
    """A connected client session of one user (see the module docstring)."""

    def __init__(self, user: str, max_queue: int = 2048) -> None:
        self.id = next(_ids)
        self.user = user
        self.rooms: set[str] = set()
        self.max_queue = max_queue
        self.overflowed = False
        self.dropped = 0
        self._queue: deque[Item] = deque()
        self._wakeup = asyncio.Event()
        self._ended = False
        self._delivered: dict[str, _Delivered] = {}
        self._held: dict[str, list[StoredMessage]] = {}
        #: Set by the writer while a write is in flight (the client may not be reading).
        self.writing = False
        #: Called once when the session overflows or is ended, so the server can
        #: end a session whose writer is stuck on a client that stopped reading.
        self.on_stop: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.user}>"

    # -- the producer side (fan-out, the session's own reader) -------------------------

    def push(self, item: Item) -> bool:
        """Queues an item without waiting; False if the session is over its bound."""
        if self.overflowed or self._ended:
            self.dropped += 1
            return False
        if len(self._queue) >= self.max_queue:
            self.overflowed = True
            self.dropped += len(self._queue) + 1
            self._queue.clear()
            self._wakeup.set()
            self._stopped()
            return False
        self._queue.append(item)
        self._wakeup.set()
        return True

    def end(self, reason: EndReason) -> None:
        """Asks the writer to finish after what is queued (bypasses the bound)."""
        if not self._ended:
            self._ended = True
            self._queue.append(End(reason))
            self._wakeup.set()
            self._stopped()

    def _stopped(self) -> None:
        if self.on_stop is not None:
            callback, self.on_stop = self.on_stop, None
            callback()

    def hold(self, conv: str) -> None:
        """Holds back live messages of ``conv`` until its :class:`Replay` is queued."""
        self._held.setdefault(conv, [])

    def release(self, conv: str) -> None:
        """Gives up a hold whose replay failed; held messages flow again in order."""
        held = self._held.pop(conv, None)
        if held:
            self._queue.extendleft(reversed(held))
            self._wakeup.set()

    def forget(self, conv: str) -> None:
        """Forgets what was delivered in ``conv`` (after leaving it)."""
        self._delivered.pop(conv, None)
        self._held.pop(conv, None)

    def describe(self) -> str:
        """One line on the session's state, for the server's state dump."""
        held = ",".join(sorted(self._held)) or "-"
        state = "ended" if self._ended else "over" if self.overflowed else "live"
        return (
            f"session {self.id} {self.user} {state}: rooms {sorted(self.rooms)}, held {held},"
            f" queued {len(self._queue)}, writing {self.writing},"
            f" delivered {dict(sorted(self.cursors().items()))}"
        )

    def cursors(self) -> dict[str, int]:
        """The newest seq delivered in each conversation."""
        return {conv: d.high for conv, d in self._delivered.items()}

    # -- the consumer side (the writer) -------------------------------------------------

    async def next_batch(self) -> list[Outgoing]:
        """Waits for queued items and returns them, filtered by the delivery rules.

        Returns ``[End(SLOW_CONSUMER)]`` once the session overflowed.
        """
        while True:
            if self.overflowed:
                return [End(EndReason.SLOW_CONSUMER)]
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            items = list(self._queue)
            self._queue.clear()
            out = self._filter(items)
            if out:
                return out

    def _filter(self, items: list[Item]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for item in items:
            if isinstance(item, StoredMessage):
                held = self._held.get(item.conv)
                if held is not None:
                    held.append(item)
                elif self._accept(item):
                    out.append(item)
            elif isinstance(item, Replay):
                out.append(item.joined)
                out.extend(self._replay(item))
            elif isinstance(item, Ack):
                out.append(item.message)
            else:
                out.append(item)
        return out

    def _replay(self, replay: Replay) -> list[StoredMessage]:
        conv = replay.joined.conv
        out: list[StoredMessage] = []
        d = self._delivered.get(conv)
        lowest = 0
        for msg in replay.messages:
            if msg.seq <= replay.after_seq:
                continue
            if d is None:
                d = self._delivered[conv] = _Delivered(msg.seq, msg.seq)
                out.append(msg)
            elif msg.seq > d.high:
                d.high = msg.seq
                out.append(msg)
            elif msg.seq < d.low:
                # Older than the live messages delivered before this join (a DM that
                # arrived before its resume): filled in below them, still once only.
                out.append(msg)
                lowest = lowest or msg.seq
        if d is None:
            # Nothing delivered or replayed: live starts after what the join saw.
            start = max(replay.joined.last_seq, replay.after_seq)
            d = self._delivered[conv] = _Delivered(start + 1, start)
        if lowest:
            d.low = lowest
        for msg in self._held.pop(conv, []):
            if self._accept(msg):
                out.append(msg)
        return out

    def _accept(self, msg: StoredMessage) -> bool:
        """Records a live ``msg`` as delivered unless it already was."""
        d = self._delivered.get(msg.conv)
        if d is None:
            self._delivered[msg.conv] = _Delivered(msg.seq, msg.seq)
            return True
        if msg.seq <= d.high:
            return False
        d.high = msg.seq
        return True
