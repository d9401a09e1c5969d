""":class:`ChatClient`: a session kept alive across failures.

It reconnects with capped exponential backoff and jitter, rejoins its rooms
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
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc

from ..names import canonical
from ..v1 import chat_pb2 as pb
from .connection import ChannelSecurity, channel
from .cursor import Cursor
from .errors import RECONNECT_ON, ClientClosed, SendError
from .sends import Backoff, PendingSend, Sends, Stored
from .session import Sessions
from .signals import Signals
from .state import ClientState, State
from .stream import ChatStream
from .writes import Writes

log = logging.getLogger(__name__)


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
        on_held: Callable[[Stored, float], None] | None = None,
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
        self.on_event = on_event or (lambda event: None)
        self.on_state = on_state or (lambda state, detail: None)
        self.on_held = on_held or (lambda send, delay: None)
        self.ordered = ordered
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._backoff = Backoff(backoff_initial, backoff_max)
        self.resume_directs = resume_directs
        self.channel_options = channel_options
        self.status = State.CONNECTING
        self.reconnects = 0
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

    # -- the connection loop -------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._reconnect_loop()
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
            self._resumed.clear()

    async def _reconnect_loop(self) -> None:
        """Runs sessions one after the other, with a growing pause after each failure."""
        attempt = 0
        while True:
            try:
                await self._session()
                if self._closing:
                    return
                detail = self._restart or "the server ended the session"
            except grpc.aio.AioRpcError as exc:
                if self._closing:
                    return
                if exc.code() not in RECONNECT_ON:
                    raise ClientClosed(exc.code(), exc.details() or str(exc.code())) from None
                detail = f"{exc.code().name}: {exc.details()}"
                if self._connected.is_set() or self.status is State.CONNECTED:
                    attempt = 0
            self._connected.clear()
            self._resumed.clear()
            self._set_status(State.RECONNECTING, detail)
            delay = self._backoff.delay(attempt)
            attempt += 1
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))

    def _stop_with(self, exc: ClientClosed) -> None:
        self._failure = exc
        self._sends.fail_all(exc)
        for f in self._joined.values():
            if not f.done():
                f.set_exception(exc)
        self._set_status(State.CLOSED, exc.details)
