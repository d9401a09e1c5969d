"""One connected session: its bounded queue and what it has delivered.

Fan-out calls :meth:`Session.push`, which never blocks: when the queue is full
the session is marked as a slow consumer and its queue is dropped, and the
writer ends the stream with the resume points (RESOURCE_EXHAUSTED). Nothing
acknowledged is lost that way: the client resumes from the last seq it got.

The writer calls :meth:`Session.next_batch`, which applies the delivery rules:
within one session, each conversation's messages go out in strictly increasing
seq, each at most once, whatever their way in (replay, live fan-out, the answer
to a retried send). Every adapter writes what ``next_batch`` returns, in order.

* Live messages of a conversation being replayed are held back until its
  replay is queued, then only those past the replay are delivered.
* A message at or below what the session delivered of its conversation is dropped.
* A replay never goes below what the session delivered: a DM resumed after
  newer DMs already reached the session live replays only past them, and its
  acknowledgement says the replay is not complete (``complete`` false), so
  the client reads the older ones with History.
* The answer to a retried send (:class:`Ack`) is an acknowledgement
  (:class:`Acked`) that repeats nothing when the session already delivered the
  original or anything newer of its conversation. Otherwise it is the original
  message, in its place: at once when it is the next seq here or nothing newer
  was delivered, else once the older ones still on their way went out.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from .live import LiveItem
from .live import Presence as Presence  # queued here like the other items
from .model import Invitation, StoredMessage
from .waits import Wakeup

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
    #: An operator disabled the account: PERMISSION_DENIED, do not retry.
    DISABLED = "account disabled"
    #: The client sent bytes that are not a ClientEvent: INVALID_ARGUMENT.
    MALFORMED = "malformed event"
    #: The client went away (cancelled, disconnected, or vanished): no status to send.
    GONE = "client gone"


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
    #: the user's read marker, and in a DM the peer's (0: none)
    read_seq: int = 0
    peer_read_seq: int = 0
    #: The room's topic, and whether it is private.
    topic: str = ""
    private: bool = False


@dataclass(slots=True, frozen=True)
class Left:
    room: str
    #: Why, when the session did not ask to leave (kicked, banned, room deleted).
    reason: str = ""


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
    """The original of a retried send, returned to the session that retried it.

    The session answers it by its delivery rules: with the message itself, or
    with an :class:`Acked` when the session is already past its seq.
    """

    message: StoredMessage


@dataclass(slots=True, frozen=True)
class Acked:
    """Settles a retried send whose original the session is already past.

    Sent as an ``ack`` event (seq, conversation and client_msg_id), never as a
    second ``message``, so a conversation's seqs only grow on the stream.
    """

    message: StoredMessage


@dataclass(slots=True, frozen=True)
class End:
    reason: EndReason


Item = StoredMessage | Presence | LiveItem | Replay | Left | Notice | Ack | Acked | End | Invitation
#: What the writer receives: stored messages, notices and acknowledgements.
Outgoing = StoredMessage | Presence | LiveItem | Joined | Left | Notice | Acked | End | Invitation


@dataclass(slots=True)
class _Delivered:
    """Where a session stands in one conversation.

    Live messages go on after ``high``; ``low`` to ``high`` were delivered (an
    empty range, ``low == high + 1``, after a join that replayed nothing). Seqs
    below ``low`` were not, but for a retried send's original given out in its
    place. ``top`` is the newest seq delivered (0: none): nothing at or below
    it can go out any more without breaking the seq order.
    """

    low: int
    high: int
    top: int = 0

    @classmethod
    def at(cls, seq: int) -> _Delivered:
        """The state after delivering ``seq`` as the first message of the conversation."""
        return cls(seq, seq, seq)


#: A session's attributes, as slots (a server holds many sessions, most of them idle).
_SESSION_ATTRIBUTES = """_delivered _ended _held _parked _queue _wakeup dropped id max_queue
    on_stop overflowed peer rooms transport user writing"""


class Session:
    """A connected client session of one user (see the module docstring). Many are
    idle: slots, and a list for the queue (a deque's first block is ~0.7 KiB)."""

    __slots__ = tuple(_SESSION_ATTRIBUTES.split())

    def __init__(
        self, user: str, max_queue: int = 2048, *, transport: str = "", peer: str = ""
    ) -> None:
        self.id = next(_ids)
        self.user = user
        #: How the client is connected (``grpc``...) and from where, for the logs.
        self.transport = transport
        self.peer = peer
        self.rooms: set[str] = set()
        self.max_queue = max_queue
        self.overflowed = False
        self.dropped = 0
        self._queue: list[Item] = []
        self._wakeup = Wakeup()
        self._ended = False
        self._delivered: dict[str, _Delivered] = {}
        self._held: dict[str, list[StoredMessage | Ack]] = {}
        #: Answers to retried sends whose seq is not this session's next one yet,
        #: per conversation, by seq: each goes out in its turn.
        self._parked: dict[str, list[Ack]] = {}
        #: Set by the writer while a write is in flight (the client may not be reading).
        self.writing = False
        #: Called once when the session overflows or is ended (a writer stuck on a
        #: client that stopped reading never sees that).
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

    def offer(self, item: LiveItem) -> bool:
        """Queues a droppable item (typing) only while under half the bound: never a cut."""
        if len(self._queue) * 2 >= self.max_queue:
            self.dropped += 1
            return False
        return self.push(item)

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
            self._queue[:0] = held
            self._wakeup.set()

    def forget(self, conv: str) -> None:
        """Forgets what was delivered in ``conv`` (after leaving it).

        Retried sends still waiting for their turn there are settled now: the
        session gets no more of that conversation's messages.
        """
        self._delivered.pop(conv, None)
        held = self._held.pop(conv, None) or []
        waiting = self._parked.pop(conv, [])
        waiting.extend(item for item in held if isinstance(item, Ack))
        if waiting:
            self._queue[:0] = [Acked(a.message) for a in waiting]
            self._wakeup.set()

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
        """Waits for queued items and returns them, filtered by the delivery rules;
        ``[End(SLOW_CONSUMER)]`` once the session overflowed."""
        while not self.overflowed:
            if self._queue and (out := self.ready()):
                return out
            self._wakeup.clear()
            await self._wakeup.wait()
        return [End(EndReason.SLOW_CONSUMER)]

    def ready(self) -> list[Outgoing]:
        """What :meth:`next_batch` would return now, without waiting (maybe nothing)."""
        items, self._queue = self._queue, []
        return self._filter(items)

    def _filter(self, items: list[Item]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for item in items:
            if isinstance(item, (StoredMessage, Ack)):
                conv = item.conv if isinstance(item, StoredMessage) else item.message.conv
                held = self._held.get(conv)
                if held is not None:
                    held.append(item)
                else:
                    self._deliver(item, out)
            elif isinstance(item, Replay):
                out.extend(self._replay(item))
            else:
                out.append(item)
        return out

    def _deliver(self, item: StoredMessage | Ack, out: list[Outgoing]) -> None:
        """Delivers a live message or answers a retried send (its conversation is not held)."""
        if isinstance(item, StoredMessage):
            if self._accept(item):
                out.append(item)
                self._take_turns(item.conv, out, item.seq)
            return
        msg = item.message
        d = self._delivered.get(msg.conv)
        if d is None and msg.room and msg.room not in self.rooms:
            # Left while the retry was being stored: settle it, start nothing.
            out.append(Acked(msg))
        elif d is None or msg.seq == d.high + 1:
            # Its turn (or nothing of the conversation delivered here yet): the
            # original goes out in its place, and its live copy is dropped later.
            self._accept(msg)
            out.append(msg)
            self._take_turns(msg.conv, out, msg.seq)
        elif msg.seq <= d.top:
            out.append(Acked(msg))  # delivered, or older than something delivered
        elif msg.seq <= d.high:
            # Before where the session started following the conversation, and
            # nothing newer was delivered yet: the original still fits the order.
            out.append(msg)
            d.top = msg.seq
            if msg.seq == d.low - 1:
                d.low = msg.seq
        else:
            # Older messages are still on their way here (fan-out from another
            # server can come after the store answered the retry): wait for them.
            parked = self._parked.setdefault(msg.conv, [])
            parked.append(item)
            parked.sort(key=lambda a: a.message.seq)

    def _take_turns(self, conv: str, out: list[Outgoing], given: int) -> None:
        """Answers the retried sends of ``conv`` whose turn came.

        Seqs from ``given`` up to the newest delivered just went out.
        """
        parked = self._parked.get(conv)
        d = self._delivered.get(conv)
        if not parked or d is None:
            return
        while parked and parked[0].message.seq <= d.high + 1:
            msg = parked.pop(0).message
            if msg.seq == d.high + 1:
                d.high = d.top = msg.seq
                out.append(msg)
            elif msg.seq < given:
                out.append(Acked(msg))  # passed without its message: settle it
            # else: the original itself just went out; that answers the retry.
        if not parked:
            del self._parked[conv]

    def _replay(self, replay: Replay) -> list[Outgoing]:
        """The join acknowledgement, the replay past what was delivered, then what was held.

        Replayed messages below what the session already delivered (DMs that
        came live before their resume) are not sent: they would break the seq
        order. The acknowledgement then says the replay is not complete, and
        counts only what follows it.
        """
        joined = replay.joined
        conv = joined.conv
        messages: list[StoredMessage] = []
        d = self._delivered.get(conv)
        skipped = False
        for msg in replay.messages:
            if msg.seq <= replay.after_seq:
                continue
            if d is None:
                d = self._delivered[conv] = _Delivered.at(msg.seq)
                messages.append(msg)
            elif msg.seq > d.high:
                d.high = d.top = msg.seq
                messages.append(msg)
            elif msg.seq < d.low:
                skipped = True
        if d is None:
            # Nothing delivered or replayed: live starts after what the join saw.
            start = max(joined.last_seq, replay.after_seq)
            d = self._delivered[conv] = _Delivered(start + 1, start)
        if skipped or joined.replayed != len(messages):
            joined = dataclasses.replace(
                joined, complete=joined.complete and not skipped, replayed=len(messages)
            )
        out: list[Outgoing] = [joined, *messages]
        if messages:
            self._take_turns(conv, out, messages[0].seq)
        for item in self._held.pop(conv, []):
            self._deliver(item, out)
        return out

    def _accept(self, msg: StoredMessage) -> bool:
        """Records a live ``msg`` as delivered unless it already was."""
        d = self._delivered.get(msg.conv)
        if d is None:
            self._delivered[msg.conv] = _Delivered.at(msg.seq)
            return True
        if msg.seq <= d.high:
            return False
        d.high = d.top = msg.seq
        return True
