"""What a :class:`~chatrpc.client.chat.ChatClient` does with what its session receives.

Each message is shown once and in order (the :class:`~chatrpc.client.cursor.Cursor`
decides), echoes and refusals answer the calls waiting for them, a resume whose
gap is too long is filled from History, and a resume refused for a reason that
may pass is asked for again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

from ..v1 import chat_pb2 as pb
from ..v1 import chat_pb2_grpc as pb_grpc
from .connection import auth_metadata
from .cursor import Cursor, conv_of, conv_of_joined
from .errors import SendError
from .retry import Backoff
from .sends import Sends, retry_delay
from .stream import ChatStream

log = logging.getLogger(__name__)

#: How many times in a row the resume of one room or DM refused for a reason that
#: may pass (a rate limit) is asked for again before the client gives it up.
RESUME_RETRIES = 8

#: One call written on a session that the server answers in order: ("join", "#room")
#: and ("resume", "@peer") with ``joined`` or an error, ("leave", "#room") with
#: ``left`` or an error.
Asked = tuple[str, str]


class SessionEvents:
    """What a ChatClient's session does with what arrives (a part of ChatClient)."""

    user: str
    token: str
    on_event: Callable[[pb.ServerEvent], None]
    _backoff: Backoff
    _channel: grpc.aio.Channel | None
    _stream: ChatStream | None
    _cursor: Cursor
    _sends: Sends
    _joined: dict[str, asyncio.Future[pb.Joined]]
    #: What this session asked that the server answers in order (see :data:`Asked`).
    _asked: deque[Asked]
    _connected: asyncio.Event
    _resumed: asyncio.Event
    #: Resumes refused in a row on this session, per conversation (a refusal
    #: that may pass is asked for again a few times, then given up).
    _refusals: dict[str, int]
    #: Tasks of this session (gap fills, refused resumes asked again).
    _session_tasks: set[asyncio.Task[None]]
    #: Why this client ended its own session (to reconnect and resume), if it did.
    _restart: str | None

    def _received(self, event: pb.ServerEvent) -> None:
        """Takes an event as this session's stream gave it (events held back while a
        gap is filled are handled again later, but received once)."""
        self._handle(event)

    def _handle(self, event: pb.ServerEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "message":
            if not self._on_message(event):
                return
        elif kind == "ack":
            # A resent send this session is already past: the server stored it
            # once, and the message itself was shown (or predates what we follow).
            self._sends.acked(event.ack, self.user)
            return
        elif kind == "joined":
            self._on_joined(event.joined)
        elif kind == "left":
            self._answered(("leave", "#" + event.left.room))
            if event.left.reason and event.left.room in self._cursor.state.rooms:
                # Taken out by the server (kicked, banned): not to be resumed.
                self._cursor.state.rooms.remove(event.left.room)
        elif kind == "error" and self._on_error(event.error):
            return
        self.on_event(event)

    def _on_message(self, event: pb.ServerEvent) -> bool:
        """Answers the send a message echoes; True if it is to be shown now."""
        msg = event.message
        conv = conv_of(msg, self.user)
        if msg.sender == self.user:
            self._sends.echoed(msg)
        if self._cursor.hold(conv, event):
            return False
        # False: already delivered (a held event that a History fill gave first).
        return self._cursor.accept(conv, msg.seq)

    def _on_joined(self, joined: pb.Joined) -> None:
        conv = conv_of_joined(joined)
        room = joined.WhichOneof("target") == "room"
        self._answered(("join" if room else "resume", conv))
        self._refusals.pop(conv, None)
        fill_after = self._cursor.joined(joined)
        if fill_after is not None:
            # The server replays only the newest messages of a long gap: fetch
            # the rest with History before showing anything newer.
            self._session_task(self._fill_gap(conv, joined, fill_after))
        if room:
            future = self._joined.pop(joined.room, None)
            if future is not None and not future.done():
                future.set_result(joined)

    def _on_error(self, err: pb.Error) -> bool:
        """True if the error answers a call that raises it (not to be shown)."""
        if self._sends.refused(err):
            # The caller of send() hears of it (or it is sent again): not shown twice.
            return True
        # The caller of join() hears of it.
        if err.client_msg_id or not self._asked:
            return False
        asked = self._asked.popleft()
        self._check_resumed()
        return self._refused(asked, err)

    def _answered(self, asked: Asked) -> None:
        with contextlib.suppress(ValueError):
            self._asked.remove(asked)
        self._check_resumed()

    def _check_resumed(self) -> None:
        """Sets ``_resumed`` once the session is up and nothing asked waits for its answer."""
        if self._connected.is_set() and not self._asked:
            self._resumed.set()

    def _refused(self, asked: Asked, err: pb.Error) -> bool:
        """What the server refused: a join the caller waits for fails. A room or DM
        being resumed is asked for again on this session, after a backoff, when the
        refusal may pass (a rate limit: a user with many conversations resumes more
        than one burst allows), at most RESUME_RETRIES times in a row; else it is
        given up, and the error event tells the consumer. Until then the DM's live
        messages wait above the gap (``ahead``), so nothing is skipped."""
        what, conv = asked
        if what == "leave":
            return False
        future = self._joined.pop(conv[1:], None) if what == "join" else None
        if future is not None:
            if not future.done():
                future.set_exception(SendError(err))
            return True
        refusals = self._refusals[conv] = self._refusals.get(conv, 0) + 1
        if (
            err.code in (pb.Error.RESOURCE_EXHAUSTED, pb.Error.UNAVAILABLE)
            and refusals <= RESUME_RETRIES
        ):
            # The wait the server hinted (a rate limit's "retry in N s"), never
            # less, spread a little so many refused resumes do not come back at
            # once; without a hint, the client's backoff.
            hint = retry_delay(err.message)
            if hint is not None:
                delay = hint * random.uniform(1.0, 1.5)
            else:
                delay = self._backoff.delay(refusals - 1) * random.uniform(0.5, 1.5)
            self._session_task(self._ask_again(asked, delay))
            return False
        log.warning("resuming %s was refused (%s): giving it up", conv, err.message)
        self._refusals.pop(conv, None)
        if what == "join" and conv[1:] in self._cursor.state.rooms:
            self._cursor.state.rooms.remove(conv[1:])
        self._cursor.give_up(conv)
        return False

    async def _ask_again(self, asked: Asked, delay: float) -> None:
        """Writes a refused room join or DM resume again after ``delay`` seconds."""
        await asyncio.sleep(delay)
        stream = self._stream
        if stream is None:
            return  # the next session resumes everything anyway
        what, conv = asked
        self._asked.append(asked)
        # A stream that broke meanwhile: the next session resumes it.
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            if what == "join":
                await stream.join(
                    conv[1:], self._cursor.room_point(conv[1:]), self._cursor.state.epoch
                )
            else:
                await stream.resume_direct(
                    conv[1:], self._cursor.direct_point(conv[1:]), self._cursor.state.epoch
                )

    def _session_task(self, coro: Coroutine[Any, Any, None]) -> None:
        """Runs ``coro`` for this session only: it is cancelled when the session ends."""
        task = asyncio.create_task(coro)
        self._session_tasks.add(task)
        task.add_done_callback(self._session_tasks.discard)

    async def _fill_gap(self, conv: str, joined: pb.Joined, after: int) -> None:
        """Pages History from ``after`` up to the join, then shows what was held."""
        request = pb.HistoryRequest(before_seq=joined.last_seq + 1, limit=1000)
        if conv.startswith("#"):
            request.room = conv[1:]
        else:
            request.with_user = conv[1:]
        try:
            assert self._channel is not None
            stub = pb_grpc.ChatServiceStub(self._channel)
            while True:
                request.after_seq = after
                page = await stub.History(request, metadata=auth_metadata(self.token))
                for msg in page.messages:
                    if self._cursor.accept(conv, msg.seq):
                        self.on_event(pb.ServerEvent(message=msg))
                if not page.has_more or not page.messages:
                    break
                after = page.messages[-1].seq
        except grpc.aio.AioRpcError as exc:
            # Held messages are dropped and the session restarts from the cursor,
            # so the resume replays them: shown late, never out of order or lost.
            self._cursor.fill_failed(conv)
            self._restart_session(f"filling {conv} from History failed ({exc.code().name})")
            return
        for event in self._cursor.filled(conv):
            self._handle(event)

    def _restart_session(self, why: str) -> None:
        """Ends this session so that the next one resumes (after the usual backoff)."""
        log.info("restarting the session: %s", why)
        if self._stream is not None and self._restart is None:
            self._restart = why
            self._stream.cancel()
