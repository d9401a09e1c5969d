""":class:`ChatClient`: a session kept alive across failures.

It reconnects with capped exponential backoff and full jitter, coming back as
soon as a lost connection is back (:mod:`~chatrpc.client.retry`), rejoins its rooms
resuming each from the last seq it saw, resends unacknowledged messages with
their original ``client_msg_id`` (stored once by the server), and drops anything
it already delivered, so its consumer sees each message once and in order (but
for DMs sent while it resumes: those can come before the older ones the resume
fills in from History). A resent send the server already delivered is settled by
an ``ack`` event, which the consumer does not see.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc

from ..names import canonical
from ..v1 import chat_pb2 as pb
from .connection import ChannelSecurity, channel
from .cursor import Cursor
from .errors import ClientClosed, SendError
from .retry import Backoff
from .sends import PendingSend, Sends, Stored
from .session import Sessions
from .signals import Signals
from .state import ClientState, State
from .stream import ChatStream
from .writes import Writes


class ChatClient(Sessions, Writes, Signals):
    """A session that survives reconnects (see the module docstring).

    Args:
        target: ``host:port`` of a server.
        user: the name to chat as (normalised by the server).
        token: a token from :func:`~chatrpc.client.login`.
        on_event: called with every event to show, in order, once per message (a
            DM sent while the client resumes can come before the older ones the
            resume fills in), ``typing`` and ``read_marker`` events included; also
            with ``None`` when the connection state changes.
            An ``error`` event that answers a :meth:`send` or :meth:`join` is not
            passed on: that call raises :class:`SendError` with it.
        on_state: called with the new state and why, when the connection changes.
        on_held: called with a send that waits for the rate limit (the server
            refused it for now, or it is held behind one that was) and the wait
            the refusal named (0 behind another); it goes out by itself, in order.
        backoff_initial, backoff_max: reconnect delays (seconds), doubled per
            failed attempt up to the cap, each drawn at random below that
            (full jitter); a pause ends early once a lost connection is back
            (see :mod:`~chatrpc.client.retry`).
        connect_timeout: how long one attempt may take to open a session (the
            connection, the ``Chat`` stream, the resumes written and the
            server's answer) before it fails as UNAVAILABLE and is retried; also
            how long :meth:`start` tries before it gives up.
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
        on_held: Callable[[Stored, float], None] | None = None,
        state: ClientState | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        connect_timeout: float = 20.0,
        resume_directs: bool = True,
        channel_options: list[tuple[str, Any]] | None = None,
        security: ChannelSecurity | None = None,
        ordered: bool = True,
    ) -> None:
        self.target = target
        self.security = security
        self.user = user
        self.token = token
        self.on_event = on_event or (lambda event: None)
        self.on_state = on_state or (lambda state, detail: None)
        self.on_held = on_held or (lambda send, delay: None)
        self.ordered = ordered
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._backoff = Backoff(backoff_initial, backoff_max)
        self.connect_timeout = connect_timeout
        #: Why the last attempt to open a session failed (for errors that say so).
        self._last_failure = ""
        self.resume_directs = resume_directs
        self.channel_options = channel_options
        self.status = State.CONNECTING
        self.reconnects = 0
        #: Sessions that failed or could not be opened, in all (each was retried).
        self.failures = 0
        self._channel: grpc.aio.Channel | None = None
        self._stream: ChatStream | None = None
        self._connected = asyncio.Event()
        #: Set once the session is up and every room and DM it resumed was answered.
        self._resumed = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._failure: ClientClosed | None = None
        self._joined: dict[str, asyncio.Future[pb.Joined]] = {}
        self._cursor = Cursor(state or ClientState())
        self._sends = Sends(
            on_held=lambda send, delay: self.on_held(send, delay),
            backoff=self._backoff,
            connected=self._connected,
            stream=lambda: self._stream,
            closing=lambda: self._closing and self.status is State.CLOSED,
        )
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._asked: deque[tuple[str, str]] = deque()
        self._restart: str | None = None
        self._refusals: dict[str, int] = {}

    @property
    def _pending(self) -> dict[str, PendingSend]:
        return self._sends.pending

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, timeout: float | None = None) -> None:
        """Connects (retrying as configured) and returns once the first session is up.

        Raises:
            ClientClosed: UNAVAILABLE, naming the target and the last failure, when
                no session came up within ``timeout`` (``connect_timeout`` by
                default; the client is then closed); or the status that stopped it
                (UNAUTHENTICATED, say).
        """
        self._channel = channel(self.target, self.channel_options, security=self.security)
        self._runner = asyncio.create_task(self._run())
        waiter = asyncio.create_task(self._connected.wait())
        limit = self.connect_timeout if timeout is None else timeout
        done, _ = await asyncio.wait(
            {waiter, self._runner}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter in done:
            return
        waiter.cancel()
        if self._runner in done:
            await self._runner  # raises ClientClosed
        failure = ClientClosed(grpc.StatusCode.UNAVAILABLE, self._no_session(limit))
        self._stop_with(failure)
        await self.aclose()
        raise failure

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
        self._sends.stop()
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

    # -- what the user does --------------------------------------------------------------

    async def join(self, room: str) -> pb.Joined:
        """Joins a room (remembered across reconnects); returns the acknowledgement."""
        self._check_open()
        room = canonical(room)
        if room not in self.state.rooms:
            self.state.rooms.append(room)
        future: asyncio.Future[pb.Joined] = asyncio.get_running_loop().create_future()
        self._joined[room] = future
        await self._connected.wait()
        assert self._stream is not None
        after = self._cursor.room_point(room)
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
        self._check_open()
        room = canonical(room)
        if room in self.state.rooms:
            self.state.rooms.remove(room)
        await self._connected.wait()
        assert self._stream is not None
        self._asked.append(("leave", "#" + room))
        await self._stream.leave(room)

    def submit(
        self,
        text: str,
        *,
        room: str = "",
        to_user: str = "",
        client_msg_id: str = "",
        reply_to: int = 0,
    ) -> asyncio.Future[pb.Message]:
        """Like :meth:`send` but returns at once with a future for the echo."""
        return asyncio.ensure_future(
            self.send(
                text, room=room, to_user=to_user, client_msg_id=client_msg_id, reply_to=reply_to
            )
        )

    async def wait_connected(self) -> None:
        """Returns once a session is up (at once if it is)."""
        await self._connected.wait()

    async def wait_resumed(self) -> None:
        """Returns once a session is up and the server answered every room and DM it
        resumed (a call made then sees this client back in its rooms)."""
        await self._resumed.wait()

    def pending_sends(self) -> list[Stored]:
        """Sends (and changes) not acknowledged yet, in the order they were made."""
        return [p.send for p in self._pending.values()]
