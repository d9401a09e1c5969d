"""The async client library: login, one Chat stream, and a resuming client.

* :func:`login` claims or proves a name and returns a token.
* :class:`ChatStream` is one ``Chat`` call: send events, iterate what arrives.
* :class:`ChatClient` keeps a session alive across failures: it reconnects with
  capped exponential backoff and jitter, rejoins its rooms resuming each from
  the last seq it saw, resends unacknowledged messages with their original
  ``client_msg_id`` (stored once by the server), and drops anything it already
  delivered, so its consumer sees each message once and in order.

Nothing here imports the server; the CLI, the tests and the benchmark use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from .v1 import chat_pb2 as pb
from .v1 import chat_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

#: Status codes after which reconnecting (and resuming) may succeed.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),
]


def channel(target: str, options: list[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
    """An insecure channel to ``target`` (host:port) with keepalive pings."""
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS + (options or []))


def auth_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def login(
    ch: grpc.aio.Channel, user: str, password: str = "", token: str = "", timeout: float = 10.0
) -> pb.LoginResponse:
    """Claims ``user`` or proves it (``password`` or ``token``); raises AioRpcError."""
    stub = pb_grpc.ChatServiceStub(ch)
    metadata = auth_metadata(token) if token else None
    response: pb.LoginResponse = await stub.Login(
        pb.LoginRequest(user=user, password=password), metadata=metadata, timeout=timeout
    )
    return response


def conv_of(msg: pb.Message, me: str) -> str:
    """The client-side conversation key of a message: ``#room`` or ``@peer``."""
    if msg.WhichOneof("target") == "room":
        return "#" + msg.room
    return "@" + (msg.to_user if msg.sender == me else msg.sender)


def new_client_msg_id() -> str:
    return uuid.uuid4().hex


class ChatStream:
    """One ``Chat`` call. Events are written by the caller and read by iterating."""

    def __init__(self, ch: grpc.aio.Channel, token: str) -> None:
        self._stub = pb_grpc.ChatServiceStub(ch)
        self.call: Any = self._stub.Chat(metadata=auth_metadata(token))
        # grpcio allows one write in flight per call; tasks take turns.
        self._write_lock = asyncio.Lock()

    async def write(self, event: pb.ClientEvent) -> None:
        async with self._write_lock:
            await self.call.write(event)

    async def join(self, room: str, after_seq: int | None = None, epoch: str = "") -> None:
        join = pb.Join(room=room, epoch=epoch)
        if after_seq is not None:
            join.after_seq = after_seq
        await self.write(pb.ClientEvent(join=join))

    async def resume_direct(self, with_user: str, after_seq: int, epoch: str = "") -> None:
        join = pb.Join(with_user=with_user, after_seq=after_seq, epoch=epoch)
        await self.write(pb.ClientEvent(join=join))

    async def leave(self, room: str) -> None:
        await self.write(pb.ClientEvent(leave=pb.Leave(room=room)))

    async def send(
        self, text: str, *, room: str = "", to_user: str = "", client_msg_id: str = ""
    ) -> None:
        send = pb.Send(text=text, client_msg_id=client_msg_id)
        if room:
            send.room = room
        else:
            send.to_user = to_user
        await self.write(pb.ClientEvent(send=send))

    async def done_writing(self) -> None:
        """Half-closes: the server ends the stream after the echoes of what was sent."""
        async with self._write_lock:
            await self.call.done_writing()

    def cancel(self) -> None:
        self.call.cancel()

    async def __aiter__(self) -> AsyncIterator[pb.ServerEvent]:
        while True:
            event = await self.call.read()
            if event is grpc.aio.EOF:
                return
            yield event


class State(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(slots=True)
class _Pending:
    """A send not yet acknowledged by its echo."""

    send: pb.Send
    future: asyncio.Future[pb.Message]


@dataclass
class ClientState:
    """What a :class:`ChatClient` knows, enough to resume after any failure."""

    epoch: str = ""
    rooms: list[str] = field(default_factory=list)
    #: Newest seq delivered, per conversation key (``#room`` or ``@peer``).
    cursors: dict[str, int] = field(default_factory=dict)


class ClientClosed(Exception):
    """The client stopped for good; ``code`` and ``details`` say why."""

    def __init__(self, code: grpc.StatusCode | None, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class ChatClient:
    """A session that survives reconnects (see the module docstring).

    Args:
        target: ``host:port`` of a server.
        user: the name to chat as (normalised by the server).
        token: a token from :func:`login`.
        on_event: called with every event to show, in order, once per message;
            also with ``None`` when the connection state changes.
        backoff_initial, backoff_max: reconnect delays (seconds), doubled per
            failed attempt up to the cap, each with +-50% jitter.
        resume_directs: on reconnect, also resume the DM conversations seen.
        channel_options: extra grpc channel arguments.
    """

    def __init__(
        self,
        target: str,
        user: str,
        token: str,
        *,
        on_event: Callable[[pb.ServerEvent], None] | None = None,
        on_state: Callable[[State, str], None] | None = None,
        state: ClientState | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        resume_directs: bool = True,
        channel_options: list[tuple[str, Any]] | None = None,
    ) -> None:
        self.target = target
        self.user = user
        self.token = token
        self.state = state or ClientState()
        self.on_event = on_event or (lambda event: None)
        self.on_state = on_state or (lambda state, detail: None)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.resume_directs = resume_directs
        self.channel_options = channel_options
        self.status = State.CONNECTING
        self.reconnects = 0
        self._channel: grpc.aio.Channel | None = None
        self._stream: ChatStream | None = None
        self._pending: dict[str, _Pending] = {}
        self._connected = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._joined: dict[str, asyncio.Future[pb.Joined]] = {}
        self._failure: ClientClosed | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connects (retrying as configured) and returns once the first stream is up."""
        self._channel = channel(self.target, self.channel_options)
        self._runner = asyncio.create_task(self._run())
        waiter = asyncio.create_task(self._connected.wait())
        done, _ = await asyncio.wait({waiter, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            await self._runner  # raises ClientClosed

    async def close(self) -> None:
        """Half-closes the stream after pending sends are acknowledged, then stops."""
        self._closing = True
        if self._pending:
            with contextlib.suppress(ClientClosed, asyncio.CancelledError):
                await asyncio.gather(*(p.future for p in self._pending.values()))
        if self._stream is not None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await self._stream.done_writing()
        if self._runner is not None:
            with contextlib.suppress(ClientClosed, asyncio.CancelledError):
                await asyncio.wait_for(self._runner, 10)
        await self.aclose()

    async def aclose(self) -> None:
        """Stops at once, without waiting for anything."""
        self._closing = True
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClientClosed):
                await self._runner
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        self._set_status(State.CLOSED, "")

    async def wait_closed(self) -> None:
        """Returns when the client stopped; raises ClientClosed if it stopped on an error."""
        if self._runner is not None:
            await self._runner

    def _set_status(self, status: State, detail: str) -> None:
        if status is not self.status:
            self.status = status
            self.on_state(status, detail)

    # -- what the user does --------------------------------------------------------------

    async def join(self, room: str) -> pb.Joined:
        """Joins a room (remembered across reconnects); returns the acknowledgement."""
        room = room.lstrip("#").lower()
        if room not in self.state.rooms:
            self.state.rooms.append(room)
        future: asyncio.Future[pb.Joined] = asyncio.get_running_loop().create_future()
        self._joined[room] = future
        await self._connected.wait()
        assert self._stream is not None
        after = self.state.cursors.get("#" + room)
        await self._stream.join(room, after, self.state.epoch)
        return await future

    async def leave(self, room: str) -> None:
        room = room.lstrip("#").lower()
        if room in self.state.rooms:
            self.state.rooms.remove(room)
        await self._connected.wait()
        assert self._stream is not None
        await self._stream.leave(room)

    async def send(
        self, text: str, *, room: str = "", to_user: str = "", client_msg_id: str = ""
    ) -> pb.Message:
        """Sends and returns the echo (the acknowledgement), across reconnects if needed.

        Raises :class:`SendError` if the server refuses the message.
        """
        send = pb.Send(text=text, client_msg_id=client_msg_id or new_client_msg_id())
        if room:
            send.room = room
        else:
            send.to_user = to_user
        future: asyncio.Future[pb.Message] = asyncio.get_running_loop().create_future()
        self._pending[send.client_msg_id] = _Pending(send, future)
        if self._connected.is_set() and self._stream is not None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await self._stream.write(pb.ClientEvent(send=send))
        return await future

    def submit(self, text: str, *, room: str = "", to_user: str = "") -> asyncio.Future[pb.Message]:
        """Like :meth:`send` but returns at once with a future for the echo."""
        return asyncio.ensure_future(self.send(text, room=room, to_user=to_user))

    # -- the connection loop -------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        try:
            while True:
                try:
                    await self._session()
                    if self._closing:
                        return
                    detail = "the server ended the session"
                except grpc.aio.AioRpcError as exc:
                    if self._closing:
                        return
                    if exc.code() not in RETRYABLE:
                        raise ClientClosed(exc.code(), exc.details() or str(exc.code())) from None
                    detail = f"{exc.code().name}: {exc.details()}"
                    if self._connected.is_set() or self.status is State.CONNECTED:
                        attempt = 0
                self._connected.clear()
                self._set_status(State.RECONNECTING, detail)
                delay = min(self.backoff_max, self.backoff_initial * 2**attempt)
                attempt += 1
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        except ClientClosed as exc:
            self._failure = exc
            self._fail_pending(exc)
            self._set_status(State.CLOSED, exc.details)
            raise
        finally:
            self._connected.clear()

    def _fail_pending(self, exc: BaseException) -> None:
        for p in self._pending.values():
            if not p.future.done():
                p.future.set_exception(exc)
        self._pending.clear()
        for f in self._joined.values():
            if not f.done():
                f.set_exception(exc)

    async def _session(self) -> None:
        assert self._channel is not None
        stream = ChatStream(self._channel, self.token)
        self._stream = stream
        try:
            for room in self.state.rooms:
                await stream.join(room, self.state.cursors.get("#" + room), self.state.epoch)
            if self.resume_directs and self.state.epoch:
                for conv, seq in self.state.cursors.items():
                    if conv.startswith("@"):
                        await stream.resume_direct(conv[1:], seq, self.state.epoch)
            # Unacknowledged sends go again with their ids: the server stores each once.
            for p in list(self._pending.values()):
                await stream.write(pb.ClientEvent(send=p.send))
            # The server sends its headers as soon as it accepted the session.
            await stream.call.initial_metadata()
            if not stream.call.done():
                self._mark_connected()
            async for event in stream:
                self._handle(event)
            if self._closing:
                return
            # A clean end we did not ask for: resume like after a failure.
        finally:
            self._stream = None
            stream.cancel()

    def _mark_connected(self) -> None:
        was_reconnecting = self.status is State.RECONNECTING
        self._connected.set()
        if was_reconnecting:
            self.reconnects += 1
        self._set_status(State.CONNECTED, "reconnected" if was_reconnecting else "connected")

    def _handle(self, event: pb.ServerEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "message":
            msg = event.message
            conv = conv_of(msg, self.user)
            last = self.state.cursors.get(conv, 0)
            pending = (
                self._pending.pop(msg.client_msg_id, None) if msg.sender == self.user else None
            )
            if pending is not None and not pending.future.done():
                pending.future.set_result(msg)
            if msg.seq <= last:
                return  # already delivered (a retried send's original, or a replay overlap)
            self.state.cursors[conv] = msg.seq
        elif kind == "joined":
            joined = event.joined
            if self.state.epoch and joined.epoch != self.state.epoch:
                # A different history: its seqs are new.
                self.state.cursors.clear()
            self.state.epoch = joined.epoch
            target = joined.WhichOneof("target")
            if target == "room":
                conv = "#" + joined.room
                if conv not in self.state.cursors:
                    self.state.cursors[conv] = joined.last_seq if not joined.replayed else 0
                future = self._joined.pop(joined.room, None)
                if future is not None and not future.done():
                    future.set_result(joined)
        elif kind == "error":
            err = event.error
            pending = self._pending.pop(err.client_msg_id, None) if err.client_msg_id else None
            if pending is not None and not pending.future.done():
                pending.future.set_exception(SendError(err))
        self.on_event(event)


class SendError(Exception):
    """The server refused one event (an ``error`` event)."""

    def __init__(self, error: pb.Error) -> None:
        super().__init__(f"{pb.Error.Code.Name(error.code)}: {error.message}")
        self.error = error
