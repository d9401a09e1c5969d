"""The sessions of a :class:`~chatrpc.client.chat.ChatClient`, one at a time.

Each opens a ``Chat`` stream, resumes on it what the client follows (its rooms and
DMs from their cursors, its unacknowledged sends with their ids) and handles what
arrives (:mod:`~chatrpc.client.events`) until the stream ends; the client's
connection loop then starts the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import grpc

from ..directs_summary import HEADER
from .calls import Calls
from .errors import RECONNECT_ON, ClientClosed
from .events import SessionEvents
from .retry import busy_delay, pause_before_retry
from .sends import retry_delay
from .state import ClientState, State
from .stream import ChatStream

log = logging.getLogger(__name__)


class Sessions(SessionEvents, Calls):
    """Runs one session after the other (a part of ChatClient)."""

    _closing: bool
    resume_directs: bool
    status: State
    reconnects: int
    failures: int
    on_state: Callable[[State, str], None]
    _connected: asyncio.Event
    _resumed: asyncio.Event
    target: str
    connect_timeout: float
    _last_failure: str
    _failure: ClientClosed | None

    @property
    def state(self) -> ClientState:
        """What this client knows, enough to resume after any failure."""
        return self._cursor.state

    @state.setter
    def state(self, state: ClientState) -> None:
        self._cursor.state = state

    def _set_status(self, status: State, detail: str) -> None:
        if status is not self.status:
            self.status = status
            self.on_state(status, detail)

    def _mark_connected(self) -> None:
        was_reconnecting = self.status is State.RECONNECTING
        self._connected.set()
        if was_reconnecting:
            self.reconnects += 1
        self._set_status(State.CONNECTED, "reconnected" if was_reconnecting else "connected")

    async def _session(self) -> None:
        assert self._channel is not None
        stream = ChatStream(self._channel, self.token, directs=self.resume_directs)
        self._stream = stream
        self._asked.clear()
        self._resumed.clear()
        self._restart = None
        self._refusals.clear()
        try:
            # A call that ends while resuming: reading it below gives its status.
            with contextlib.suppress(asyncio.InvalidStateError):
                await self._open_within_timeout(stream)
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
            self._cursor.session_ended()

    async def _open_within_timeout(self, stream: ChatStream) -> None:
        """Opens the session, or fails as UNAVAILABLE when the server did not accept
        it within ``connect_timeout``: a connection that never comes up, or a stream
        that waits for a free slot on a connection the server limits, never leaves
        the client waiting silently. Once accepted, the session is not given up for
        being slow (a server busy with a reconnect storm would only redo its work)."""
        try:
            async with asyncio.timeout(self.connect_timeout) as deadline:
                await self._open_session(stream, deadline)
        except TimeoutError:
            details = (
                f"no answer from {self.target} within {self.connect_timeout:g} s to the Chat call"
            )
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details
            ) from None

    async def _open_session(self, stream: ChatStream, deadline: asyncio.Timeout) -> None:
        """Resumes rooms, DMs and unacknowledged sends on a new stream."""
        for room in self.state.rooms:
            self._asked.append(("join", "#" + room))
            await stream.join(room, self._cursor.room_point(room), self.state.epoch)
        # The server sends its headers as soon as it accepted the session.
        await stream.call.initial_metadata()
        if stream.call.done():
            return
        deadline.reschedule(None)
        if self.resume_directs:
            points = await self._direct_resume_points(stream)
            self._cursor.resume_directs(points)
            for peer, seq in points.items():
                self._asked.append(("resume", "@" + peer))
                await stream.resume_direct(peer, seq, self.state.epoch)
        # Unacknowledged sends go again with their ids (held ones wait for their
        # retry): the server stores each once.
        resent = await self._sends.write_unheld(stream)
        if stream.call.done():
            return
        self._mark_connected()
        self._check_resumed()
        # Sends made while the ones above were written went nowhere: send them now
        # (from here on, send() writes by itself).
        await self._sends.write_unheld(stream, skip=resent)

    async def _direct_resume_points(self, stream: ChatStream) -> dict[str, int]:
        """The DM conversations to resume on this session, and from which seq (see
        :meth:`Cursor.direct_points`): those known, and if the server's summary in
        the headers says any changed, those it lists."""
        headers = await stream.call.initial_metadata()
        found = [v for k, v in headers or () if k == HEADER]
        if found and found[0] == self._cursor.directs_summary():
            return self._cursor.direct_points(None)
        try:
            listed = await self.list_directs(timeout=self.connect_timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:  # UNIMPLEMENTED: an older server
                raise
            listed = None
        return self._cursor.direct_points(listed)

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
        """Runs sessions one after the other, with a growing pause after each failure
        (cut short when a lost connection is back: see :mod:`.retry`)."""
        attempt = 0
        while True:
            hint: float | None = None  # the wait a busy server asked for
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
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    hint = retry_delay(exc.details() or "")
                if self._connected.is_set() or self.status is State.CONNECTED:
                    attempt = 0
            self._last_failure = detail
            self.failures += 1
            self._connected.clear()
            self._resumed.clear()
            if self.status is not State.CONNECTING:
                # Before the first session, a failure is still connecting (start()
                # says why if it gives up).
                self._set_status(State.RECONNECTING, detail)
            assert self._channel is not None
            if hint is not None:
                await asyncio.sleep(busy_delay(hint))  # the server's pace, not ours
                continue
            await pause_before_retry(self._channel, self._backoff.jittered(attempt))
            attempt += 1

    def _no_session(self, waited: float) -> str:
        """Why :meth:`start` gives up: the target, the wait and the last failure."""
        last = self._last_failure or "no answer to the Chat call"
        return f"could not open a session with {self.target} within {waited:g} s ({last})"

    def _check_open(self) -> None:
        """Raises ClientClosed if the client stopped: nothing made now would be answered."""
        if self._failure is not None:
            raise self._failure
        if self.status is State.CLOSED:
            raise ClientClosed(None, f"the client of {self.target} is closed")

    def _stop_with(self, exc: ClientClosed) -> None:
        self._failure = exc
        self._sends.fail_all(exc)
        for f in self._joined.values():
            if not f.done():
                f.set_exception(exc)
        self._set_status(State.CLOSED, exc.details)
