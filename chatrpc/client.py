"""The async client library: login, one Chat stream, and a resuming client.

* :func:`login` claims or proves a name and returns a token.
* :class:`ChatStream` is one ``Chat`` call: send events, iterate what arrives.
* :class:`ChatClient` keeps a session alive across failures: it reconnects with
  capped exponential backoff and jitter, rejoins its rooms resuming each from
  the last seq it saw, resends unacknowledged messages with their original
  ``client_msg_id`` (stored once by the server), and drops anything it already
  delivered, so its consumer sees each message once and in order (but for DMs
  sent while it resumes: those can come before the older ones the resume fills in
  from History). A resent send the server already delivered is settled by an
  ``ack`` event, which the consumer does not see.

Nothing here imports the server; the CLI, the tests and the benchmark use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from .names import canonical
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
    # Once a minute: a silently dead connection is noticed within 70 s (a send on
    # it fails sooner, when its data goes unacknowledged for the timeout), and NAT
    # mappings stay up. The server pings only connections that stay quieter than it.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),
    # grpc core backs off reconnecting on its own, up to 2 minutes: a client would
    # stay away long after the server came back. ChatClient has its own backoff.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]


@dataclass(frozen=True, slots=True)
class ChannelSecurity:
    """TLS for a channel: whom to trust, and the client's own certificate for mutual TLS.

    Attributes:
        ca: PEM of the CA certificates to trust; None trusts the system's roots.
        cert, key: PEM of a client certificate chain and its key, for servers
            that require one (``chatrpc-server --tls-client-ca``).
        server_name: the name to verify in the server's certificate when it
            differs from the host in the target (e.g. connecting by IP).
    """

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    server_name: str | None = None

    @classmethod
    def from_files(
        cls,
        ca: str | os.PathLike[str] | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        server_name: str | None = None,
    ) -> ChannelSecurity:
        """Reads the PEM files given (raises OSError if one cannot be read)."""

        def read(path: str | os.PathLike[str] | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return cls(read(ca), read(cert), read(key), server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


def channel(
    target: str,
    options: list[tuple[str, Any]] | None = None,
    *,
    security: ChannelSecurity | None = None,
) -> grpc.aio.Channel:
    """A channel to ``target`` (host:port) with keepalive pings.

    Plaintext by default; TLS (and mutual TLS) with ``security``.
    """
    opts = CHANNEL_OPTIONS + (options or [])
    if security is None:
        return grpc.aio.insecure_channel(target, options=opts)
    if security.server_name:
        opts.append(("grpc.ssl_target_name_override", security.server_name))
    return grpc.aio.secure_channel(target, security.credentials(), options=opts)


def auth_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def login(
    ch: grpc.aio.Channel,
    user: str,
    password: str = "",
    token: str = "",
    timeout: float = 10.0,
    *,
    registration_token: str = "",
) -> pb.LoginResponse:
    """Claims ``user`` or proves it (``password`` or ``token``); raises AioRpcError.

    ``registration_token`` lets a new name be claimed on a server that asks for one.
    """
    stub = pb_grpc.ChatServiceStub(ch)
    metadata = auth_metadata(token) if token else None
    request = pb.LoginRequest(user=user, password=password, registration_token=registration_token)
    response: pb.LoginResponse = await stub.Login(request, metadata=metadata, timeout=timeout)
    return response


async def logout(
    ch: grpc.aio.Channel, token: str, *, all_sessions: bool = False, timeout: float = 10.0
) -> pb.LogoutResponse:
    """Revokes ``token`` (or every token of its user); raises AioRpcError."""
    stub = pb_grpc.ChatServiceStub(ch)
    response: pb.LogoutResponse = await stub.Logout(
        pb.LogoutRequest(all_sessions=all_sessions),
        metadata=auth_metadata(token),
        timeout=timeout,
    )
    return response


async def set_password(
    ch: grpc.aio.Channel, token: str, current: str, new: str, *, timeout: float = 10.0
) -> pb.SetPasswordResponse:
    """Sets or changes the password of the user of ``token``; raises AioRpcError."""
    stub = pb_grpc.ChatServiceStub(ch)
    response: pb.SetPasswordResponse = await stub.SetPassword(
        pb.SetPasswordRequest(current_password=current, new_password=new),
        metadata=auth_metadata(token),
        timeout=timeout,
    )
    return response


def conv_of(msg: pb.Message, me: str) -> str:
    """The client-side conversation key of a message: ``#room`` or ``@peer``."""
    if msg.WhichOneof("target") == "room":
        return "#" + msg.room
    return "@" + (msg.to_user if msg.sender == me else msg.sender)


def new_client_msg_id() -> str:
    return uuid.uuid4().hex


#: How many times in a row the resume of one room or DM refused for a reason that
#: may pass (a rate limit) is asked for again before the client gives it up.
RESUME_RETRIES = 8

#: Events per frame this library asks the server for (``chatrpc-batch`` metadata).
BATCH_EVENTS = 64


class ChatStream:
    """One ``Chat`` call. Events are written by the caller and read by iterating.

    Iterating yields single events: ``batch`` frames are unpacked in order.
    """

    def __init__(self, ch: grpc.aio.Channel, token: str, *, batch: int = BATCH_EVENTS) -> None:
        self._stub = pb_grpc.ChatServiceStub(ch)
        metadata = auth_metadata(token)
        if batch > 1:
            metadata += (("chatrpc-batch", str(batch)),)
        self.call: Any = self._stub.Chat(metadata=metadata)
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
            if event.WhichOneof("event") == "batch":
                for inner in event.batch.events:
                    yield inner
            else:
                yield event


class State(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(slots=True)
class _Pending:
    """A send not yet acknowledged by its echo.

    ``held`` while it waits (until ``retry_at``, loop time) to be written again
    after a refusal that may pass (a rate limit); ``refusals`` counts those.
    """

    send: pb.Send
    future: asyncio.Future[pb.Message]
    held: bool = False
    retry_at: float = 0.0
    refusals: int = 0
    #: Whether ``on_held`` was told it waits for the rate limit.
    told: bool = False


#: The wait a refusal names ("rate limit: retry in 0.3 s").
_RETRY_HINT = re.compile(r"retry in (\d+(?:\.\d+)?) ?s\b")

#: How many times in a row one send refused for a reason that may pass (a rate
#: limit, a store that is away) is written again before it fails for good.
SEND_RETRIES = 100


def retry_delay(message: str) -> float | None:
    """The wait in seconds a refusal's message hints at, if it names one."""
    match = _RETRY_HINT.search(message)
    return float(match.group(1)) if match else None


@dataclass
class ClientState:
    """What a :class:`ChatClient` knows, enough to resume after any failure."""

    epoch: str = ""
    rooms: list[str] = field(default_factory=list)
    #: Per conversation key (``#room`` or ``@peer``): every seq up to this one was
    #: delivered (or predates what the client follows); sessions resume from it.
    cursors: dict[str, int] = field(default_factory=dict)
    #: Seqs delivered above a DM's cursor, not yet contiguous with it: live DMs that
    #: arrived before the conversation's resume filled in what came before them.
    #: Saved state must keep it with ``cursors``, or those are shown again.
    ahead: dict[str, set[int]] = field(default_factory=dict)


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
        on_event: called with every event to show, in order, once per message (a
            DM sent while the client resumes can come before the older ones the
            resume fills in); also with ``None`` when the connection state changes.
            An ``error`` event that answers a :meth:`send` or :meth:`join` is not
            passed on: that call raises :class:`SendError` with it.
        on_state: called with the new state and why, when the connection changes.
        on_held: called with a send that waits for the rate limit (the server
            refused it for now, or it is held behind one that was) and the wait
            the refusal named (0 behind another); it goes out by itself, in order.
        backoff_initial, backoff_max: reconnect delays (seconds), doubled per
            failed attempt up to the cap, each with +-50% jitter.
        resume_directs: on reconnect, also resume the DM conversations seen.
        channel_options: extra grpc channel arguments.
        security: TLS settings (plaintext if None).
        ordered: write each send once the one before it was answered (its echo
            or a refusal), so one the server refuses for now (the rate limit) is
            retried before any later one can be stored: sends are stored in the
            order they were made. Costs a round trip per send when many are made
            at once; without it they are pipelined, and a send already on its
            way when an earlier one is refused can overtake it.
    """

    def __init__(
        self,
        target: str,
        user: str,
        token: str,
        *,
        on_event: Callable[[pb.ServerEvent], None] | None = None,
        on_state: Callable[[State, str], None] | None = None,
        on_held: Callable[[pb.Send, float], None] | None = None,
        state: ClientState | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        resume_directs: bool = True,
        channel_options: list[tuple[str, Any]] | None = None,
        security: ChannelSecurity | None = None,
        ordered: bool = True,
    ) -> None:
        self.target = target
        self.security = security
        self.user = user
        self.token = token
        self.state = state or ClientState()
        self.on_event = on_event or (lambda event: None)
        self.on_state = on_state or (lambda state, detail: None)
        self.on_held = on_held or (lambda send, delay: None)
        self.ordered = ordered
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
        # DM conversations and their last seq at the first session (epoch, {peer: seq}).
        self._dm_baseline: tuple[str, dict[str, int]] | None = None
        #: Conversations whose resume gap is being filled from History, with the
        #: live and replayed events held back meanwhile.
        self._filling: dict[str, list[pb.ServerEvent]] = {}
        #: Tasks of this session (gap fills, refused resumes asked again).
        self._session_tasks: set[asyncio.Task[None]] = set()
        #: DM conversations this session resumes whose ``joined`` has not arrived
        #: yet, with the seq they resume from: live DMs can come before it.
        self._resuming: dict[str, int] = {}
        #: What this session asked that the server answers in order, one answer each:
        #: ("join", "#room") and ("resume", "@peer") with ``joined`` or an error,
        #: ("leave", "#room") with ``left`` or an error.
        self._asked: deque[tuple[str, str]] = deque()
        #: Why this client ended its own session (to reconnect and resume), if it did.
        self._restart: str | None = None
        #: Resumes refused in a row on this session, per conversation (a refusal
        #: that may pass is asked for again a few times, then given up).
        self._refusals: dict[str, int] = {}
        #: Writes held sends again, one at a time and in order (see _release_held).
        self._releaser: asyncio.Task[None] | None = None
        #: Set whenever a pending send is answered (echo or refusal).
        self._answered_send = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connects (retrying as configured) and returns once the first stream is up."""
        self._channel = channel(self.target, self.channel_options, security=self.security)
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
        if self._releaser is not None:
            self._releaser.cancel()
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
        room = canonical(room)
        if room not in self.state.rooms:
            self.state.rooms.append(room)
        future: asyncio.Future[pb.Joined] = asyncio.get_running_loop().create_future()
        self._joined[room] = future
        await self._connected.wait()
        assert self._stream is not None
        after = self.state.cursors.get("#" + room)
        self._asked.append(("join", "#" + room))
        # A stream that broke meanwhile: the next one joins every room of the state.
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await self._stream.join(room, after, self.state.epoch)
        try:
            return await future
        except SendError:
            # Refused (a bad name, say): not a room to rejoin after a reconnect.
            if room in self.state.rooms:
                self.state.rooms.remove(room)
            raise

    async def leave(self, room: str) -> None:
        room = canonical(room)
        if room in self.state.rooms:
            self.state.rooms.remove(room)
        await self._connected.wait()
        assert self._stream is not None
        self._asked.append(("leave", "#" + room))
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
        pending = _Pending(send, future)
        if self._holding() or (self.ordered and self._pending):
            # Behind a send not answered yet (ordered), or waiting for its retry:
            # written after it, in order.
            behind_retry = self._holding()
            pending.held = True
            self._pending[send.client_msg_id] = pending
            if behind_retry:
                pending.told = True
                self.on_held(send, 0.0)
            self._start_releaser()
            return await future
        self._pending[send.client_msg_id] = pending
        if self._connected.is_set() and self._stream is not None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await self._stream.write(pb.ClientEvent(send=send))
        return await future

    def submit(
        self, text: str, *, room: str = "", to_user: str = "", client_msg_id: str = ""
    ) -> asyncio.Future[pb.Message]:
        """Like :meth:`send` but returns at once with a future for the echo."""
        return asyncio.ensure_future(
            self.send(text, room=room, to_user=to_user, client_msg_id=client_msg_id)
        )

    async def wait_connected(self) -> None:
        """Returns once a session is up (at once if it is)."""
        await self._connected.wait()

    def pending_sends(self) -> list[pb.Send]:
        """Sends not acknowledged yet, in the order they were made."""
        return [p.send for p in self._pending.values()]

    # -- one-off calls on the same connection ---------------------------------------------

    def _stub(self) -> pb_grpc.ChatServiceStub:
        if self._channel is None:
            raise ClientClosed(None, "the client is not started")
        return pb_grpc.ChatServiceStub(self._channel)

    async def history(
        self,
        *,
        room: str = "",
        with_user: str = "",
        after_seq: int = 0,
        before_seq: int = 0,
        limit: int = 0,
        descending: bool = False,
        timeout: float = 10.0,
    ) -> pb.HistoryResponse:
        """A page of a room's or a DM conversation's history; raises AioRpcError."""
        request = pb.HistoryRequest(
            after_seq=after_seq, before_seq=before_seq, limit=limit, descending=descending
        )
        if room:
            request.room = room
        else:
            request.with_user = with_user
        response: pb.HistoryResponse = await self._stub().History(
            request, metadata=auth_metadata(self.token), timeout=timeout
        )
        return response

    async def list_rooms(
        self, *, prefix: str = "", page_token: str = "", page_size: int = 0, timeout: float = 10.0
    ) -> pb.ListRoomsResponse:
        """A page of rooms with how many are online in each (the most active first,
        or those named ``prefix``...); raises AioRpcError."""
        request = pb.ListRoomsRequest(prefix=prefix, page_token=page_token, page_size=page_size)
        response: pb.ListRoomsResponse = await self._stub().ListRooms(
            request, metadata=auth_metadata(self.token), timeout=timeout
        )
        return response

    async def list_members(self, room: str, *, timeout: float = 10.0) -> pb.ListMembersResponse:
        """Who is online in ``room``; raises AioRpcError."""
        response: pb.ListMembersResponse = await self._stub().ListMembers(
            pb.ListMembersRequest(room=room), metadata=auth_metadata(self.token), timeout=timeout
        )
        return response

    async def set_password(
        self, current: str, new: str, *, timeout: float = 10.0
    ) -> pb.SetPasswordResponse:
        """Sets or changes this user's password (``current``: empty if none); raises AioRpcError."""
        response: pb.SetPasswordResponse = await self._stub().SetPassword(
            pb.SetPasswordRequest(current_password=current, new_password=new),
            metadata=auth_metadata(self.token),
            timeout=timeout,
        )
        return response

    async def list_directs(self, *, timeout: float = 10.0) -> pb.ListDirectsResponse:
        """The user's DM conversations with their last seq; raises AioRpcError."""
        response: pb.ListDirectsResponse = await self._stub().ListDirects(
            pb.ListDirectsRequest(), metadata=auth_metadata(self.token), timeout=timeout
        )
        return response

    # -- the connection loop -------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        try:
            while True:
                try:
                    await self._session()
                    if self._closing:
                        return
                    detail = self._restart or "the server ended the session"
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
            self._stop_with(exc)
            raise
        except Exception as exc:
            # A defect, not a network failure: stop, but never leave a caller waiting.
            log.exception("the client's connection loop failed")
            closed = ClientClosed(None, f"the client failed: {exc!r}")
            self._stop_with(closed)
            raise closed from exc
        finally:
            self._connected.clear()

    def _stop_with(self, exc: ClientClosed) -> None:
        self._failure = exc
        self._fail_pending(exc)
        self._set_status(State.CLOSED, exc.details)

    def _fail_pending(self, exc: BaseException) -> None:
        for p in self._pending.values():
            if not p.future.done():
                p.future.set_exception(exc)
        self._pending.clear()
        self._answered_send.set()
        for f in self._joined.values():
            if not f.done():
                f.set_exception(exc)

    async def _session(self) -> None:
        assert self._channel is not None
        stream = ChatStream(self._channel, self.token)
        self._stream = stream
        self._asked.clear()
        self._restart = None
        self._refusals.clear()
        try:
            # A call that ends while resuming: reading it below gives its status.
            with contextlib.suppress(asyncio.InvalidStateError):
                await self._open_session(stream)
            async for event in stream:
                self._received(event)
            if self._closing:
                return
            # A clean end we did not ask for: resume like after a failure.
        except asyncio.CancelledError:
            if self._restart is None or self._closing:
                raise
            # This client cancelled the call to start over (see _restart_session).
        finally:
            self._stream = None
            stream.cancel()
            # Its gap fills and retried resumes end with it; the next session
            # resumes from the cursors.
            for task in list(self._session_tasks):
                task.cancel()
            self._filling.clear()
            self._resuming.clear()

    def _restart_session(self, why: str) -> None:
        """Ends this session so that the next one resumes (after the usual backoff)."""
        log.info("restarting the session: %s", why)
        if self._stream is not None and self._restart is None:
            self._restart = why
            self._stream.cancel()

    async def _open_session(self, stream: ChatStream) -> None:
        """Resumes rooms, DMs and unacknowledged sends on a new stream."""
        for room in self.state.rooms:
            self._asked.append(("join", "#" + room))
            await stream.join(room, self.state.cursors.get("#" + room), self.state.epoch)
        if self.resume_directs:
            points = await self._direct_resume_points()
            # Set before the first resume is written, so before any of its answers.
            self._resuming = {"@" + peer: seq for peer, seq in points.items()}
            for peer, seq in points.items():
                self._asked.append(("resume", "@" + peer))
                await stream.resume_direct(peer, seq, self.state.epoch)
        # Unacknowledged sends go again with their ids: the server stores each once.
        resent = set(self._pending)
        for p in list(self._pending.values()):
            if not p.held:  # held ones wait for their retry (see _release_held)
                await stream.write(pb.ClientEvent(send=p.send))
        # The server sends its headers as soon as it accepted the session.
        await stream.call.initial_metadata()
        if stream.call.done():
            return
        self._mark_connected()
        # Sends made while the ones above were written went nowhere: send them now
        # (from here on, send() writes by itself).
        for cid, p in list(self._pending.items()):
            if cid not in resent and not p.held:
                await stream.write(pb.ClientEvent(send=p.send))

    async def _direct_resume_points(self) -> dict[str, int]:
        """The DM conversations to resume on this session, and from which seq.

        Those seen are resumed from their cursor, or from 0 when the server's
        history is another than the cursors' (a new epoch). One that began while
        the client was away (nothing seen, but newer than at the first session)
        from where it stood then, so a first DM sent meanwhile is not missed.
        """
        try:
            listed = await self.list_directs()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:  # UNIMPLEMENTED: an older server
                raise
            listed = None
        points: dict[str, int] = {}
        if self.state.epoch:
            points = {c[1:]: s for c, s in self.state.cursors.items() if c.startswith("@")}
        if listed is not None and listed.epoch != self.state.epoch:
            if self.state.epoch:
                # A different history (the server's was reset): its seqs are new, and
                # live DMs may come before any joined says so. Known DMs start over.
                self.state.cursors.clear()
                self.state.ahead.clear()
                self.state.epoch = listed.epoch
                points = dict.fromkeys(points, 0)
            elif not any(c.startswith("@") for c in self.state.cursors):
                # A client that only has DMs learns the history's epoch here, before
                # any DM of its own: its cursors belong to this history.
                self.state.epoch = listed.epoch
        if listed is None:
            return points
        if self._dm_baseline is None:
            self._dm_baseline = (listed.epoch, {d.with_user: d.last_seq for d in listed.directs})
            return points
        epoch, baseline = self._dm_baseline
        for d in listed.directs:
            start = baseline.get(d.with_user, 0) if epoch == listed.epoch else 0
            if d.with_user not in points and d.last_seq > start:
                points[d.with_user] = start
        return points

    def _mark_connected(self) -> None:
        was_reconnecting = self.status is State.RECONNECTING
        self._connected.set()
        if was_reconnecting:
            self.reconnects += 1
        self._set_status(State.CONNECTED, "reconnected" if was_reconnecting else "connected")

    def _received(self, event: pb.ServerEvent) -> None:
        """Takes an event as this session's stream gave it (events held back while a
        gap is filled are handled again later, but received once)."""
        self._handle(event)

    def _handle(self, event: pb.ServerEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "message":
            msg = event.message
            conv = conv_of(msg, self.user)
            pending = (
                self._pending.pop(msg.client_msg_id, None) if msg.sender == self.user else None
            )
            if pending is not None and not pending.future.done():
                pending.future.set_result(msg)
            if pending is not None:
                self._answered_send.set()
            held = self._filling.get(conv)
            if held is not None:
                held.append(event)  # shown once the gap before it is filled
                return
            if not self._accept(conv, msg.seq):
                return  # already delivered (a held event that a History fill gave first)
        elif kind == "ack":
            # A resent send this session is already past: the server stored it
            # once, and the message itself was shown (or predates what we follow).
            self._settled(event.ack)
            return
        elif kind == "joined":
            joined = event.joined
            if self.state.epoch and joined.epoch != self.state.epoch:
                # A different history: its seqs are new, so are the resumes' starts.
                self.state.cursors.clear()
                self.state.ahead.clear()
                self._resuming = dict.fromkeys(self._resuming, 0)
            self.state.epoch = joined.epoch
            target = joined.WhichOneof("target")
            conv = "#" + joined.room if target == "room" else "@" + joined.with_user
            self._answered(("join" if target == "room" else "resume", conv))
            self._refusals.pop(conv, None)
            start = self._resuming.pop(conv, None)
            if start is not None and conv not in self.state.cursors:
                self.state.cursors[conv] = start
            seen = self.state.cursors.get(conv)
            if seen is not None and not joined.complete:
                # The server replays only the newest messages of a long gap: fetch
                # the rest with History before showing anything newer.
                self._filling[conv] = []
                self._session_task(self._fill_gap(conv, joined, seen))
            if target == "room":
                if seen is None:
                    self.state.cursors[conv] = joined.last_seq if not joined.replayed else 0
                future = self._joined.pop(joined.room, None)
                if future is not None and not future.done():
                    future.set_result(joined)
        elif kind == "left":
            self._answered(("leave", "#" + event.left.room))
        elif kind == "error":
            err = event.error
            pending = self._pending.get(err.client_msg_id) if err.client_msg_id else None
            if pending is not None:
                # The caller of send() hears of it (or it is sent again): not shown twice.
                self._send_refused(pending, err)
                return
            if not err.client_msg_id and self._asked and self._refused(self._asked.popleft(), err):
                return  # the caller of join() hears of it
        self.on_event(event)

    def _settled(self, ack: pb.Ack) -> None:
        """Resolves the send an ``ack`` answers, if it still waits, with its stored seq."""
        pending = self._pending.pop(ack.client_msg_id, None)
        if pending is None or pending.future.done():
            return
        msg = pb.Message(
            seq=ack.seq, sender=self.user, text=pending.send.text, client_msg_id=ack.client_msg_id
        )
        if ack.WhichOneof("target") == "room":
            msg.room = ack.room
        else:
            msg.to_user = ack.to_user
        pending.future.set_result(msg)

    def _answered(self, asked: tuple[str, str]) -> None:
        with contextlib.suppress(ValueError):
            self._asked.remove(asked)

    def _send_refused(self, pending: _Pending, err: pb.Error) -> None:
        """A refused send fails its caller, or, when the refusal may pass (a rate
        limit; a store that is away), is held and written again after the hinted
        wait (a capped backoff without a hint), with its ``client_msg_id``. Sends
        after a held one wait behind it (see :meth:`_release_held`)."""
        self._answered_send.set()
        cid = pending.send.client_msg_id
        pending.refusals += 1
        if (
            err.code in (pb.Error.RESOURCE_EXHAUSTED, pb.Error.UNAVAILABLE)
            and pending.refusals <= SEND_RETRIES
            and not self._closing_now()
        ):
            hint = retry_delay(err.message)
            backoff = min(self.backoff_max, self.backoff_initial * 2 ** (pending.refusals - 1))
            delay = hint if hint is not None else backoff * random.uniform(0.5, 1.5)
            pending.held = True
            pending.retry_at = asyncio.get_running_loop().time() + delay
            # It waits, and so does every send held behind it.
            for p in self._pending.values():
                if p.held and not p.told:
                    p.told = True
                    self.on_held(p.send, delay if p is pending else 0.0)
            self._start_releaser()
            return
        del self._pending[cid]
        if not pending.future.done():
            pending.future.set_exception(SendError(err))

    def _closing_now(self) -> bool:
        return self._closing and self.status is State.CLOSED

    def _holding(self) -> bool:
        """Whether a send waits for a retry: later sends are not written before it."""
        return any(p.held and p.refusals for p in self._pending.values())

    def _start_releaser(self) -> None:
        if self._releaser is None or self._releaser.done():
            self._releaser = asyncio.create_task(self._release_held())

    async def _release_held(self) -> None:
        """Writes held sends in their order, one at a time: each once every send
        written before it was answered and the wait its refusal named (if any) has
        passed. So a later line never overtakes an earlier one waiting for its
        retry. Ends when nothing is held."""
        loop = asyncio.get_running_loop()
        while True:
            # Sends on their way (not held) are answered first; a reconnect
            # writes them again by itself.
            while any(not p.held for p in self._pending.values()):
                self._answered_send.clear()
                await self._answered_send.wait()
            first = next((p for p in self._pending.values() if p.held), None)
            if first is None:
                return
            delay = first.retry_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._connected.wait()
            stream = self._stream
            if not first.held or first.future.done() or stream is None:
                continue
            first.held = False
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await stream.write(pb.ClientEvent(send=first.send))

    def _refused(self, asked: tuple[str, str], err: pb.Error) -> bool:
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
            delay = min(self.backoff_max, self.backoff_initial * 2 ** (refusals - 1))
            self._session_task(self._ask_again(asked, delay * random.uniform(0.5, 1.5)))
            return False
        log.warning("resuming %s was refused (%s): giving it up", conv, err.message)
        self._refusals.pop(conv, None)
        if what == "join" and conv[1:] in self.state.rooms:
            self.state.rooms.remove(conv[1:])
        self._resuming.pop(conv, None)
        return False

    async def _ask_again(self, asked: tuple[str, str], delay: float) -> None:
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
                await stream.join(conv[1:], self.state.cursors.get(conv), self.state.epoch)
            else:
                start = self._resuming.get(conv, self.state.cursors.get(conv, 0))
                await stream.resume_direct(conv[1:], start, self.state.epoch)

    def _session_task(self, coro: Coroutine[Any, Any, None]) -> None:
        """Runs ``coro`` for this session only: it is cancelled when the session ends."""
        task = asyncio.create_task(coro)
        self._session_tasks.add(task)
        task.add_done_callback(self._session_tasks.discard)

    def _accept(self, conv: str, seq: int) -> bool:
        """Records ``seq`` of ``conv`` as delivered; False if it already was.

        The server sends each conversation's seqs in strictly increasing order
        within a session, so a repeat comes only from this client's own History
        fills. But a DM resumed on this session can see live messages before
        its ``joined``; the server then leaves what is older out of the replay
        (``complete`` false) and a History fill puts it in below them. Those live
        ones are kept in ``ahead`` and the cursor stays where the resume started
        until the gap below them is filled, so a session that fails in between
        resumes from before the gap and still shows each message once.
        """
        start = self._resuming.get(conv)
        cursor = self.state.cursors.get(conv, start or 0)
        ahead = self.state.ahead.get(conv)
        if seq <= cursor or (ahead is not None and seq in ahead):
            return False
        if seq == cursor + 1 or (ahead is None and start is None):
            # The next one, or a jump where no resume is pending (a new conversation).
            cursor = seq
        elif start is not None or (ahead is not None and seq < max(ahead)):
            # Live before the resume's replay, or a fill-in below what that delivered.
            self.state.ahead.setdefault(conv, set()).add(seq)
            return True
        else:
            # Past everything held: the resume filled in all it had.
            cursor = seq
            ahead = None
            self.state.ahead.pop(conv, None)
        if ahead:
            while cursor + 1 in ahead:
                cursor += 1
                ahead.discard(cursor)
            if not ahead or max(ahead) <= cursor:
                self.state.ahead.pop(conv, None)
        self.state.cursors[conv] = cursor
        return True

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
                    if self._accept(conv, msg.seq):
                        self.on_event(pb.ServerEvent(message=msg))
                if not page.has_more or not page.messages:
                    break
                after = page.messages[-1].seq
        except grpc.aio.AioRpcError as exc:
            # Held messages are dropped and the session restarts from the cursor,
            # so the resume replays them: shown late, never out of order or lost.
            self._filling.pop(conv, None)
            self._restart_session(f"filling {conv} from History failed ({exc.code().name})")
            return
        for event in self._filling.pop(conv, []):
            self._handle(event)


class SendError(Exception):
    """The server refused one event (an ``error`` event)."""

    def __init__(self, error: pb.Error) -> None:
        super().__init__(f"{pb.Error.Code.Name(error.code)}: {error.message}")
        self.error = error
