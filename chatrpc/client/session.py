"""The sessions of a :class:`~chatrpc.client.chat.ChatClient`, one at a time.

Each opens a ``Chat`` stream, resumes on it what the client follows (its rooms and
DMs from their cursors, its unacknowledged sends with their ids) and handles what
arrives (:mod:`~chatrpc.client.events`) until the stream ends; the client's
connection loop then starts the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import grpc

from .calls import Calls
from .events import SessionEvents
from .state import ClientState, State
from .stream import ChatStream


class Sessions(SessionEvents, Calls):
    """Runs one session after the other (a part of ChatClient)."""

    _closing: bool
    resume_directs: bool
    status: State
    reconnects: int
    on_state: Callable[[State, str], None]
    _connected: asyncio.Event
    _resumed: asyncio.Event

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
        stream = ChatStream(self._channel, self.token)
        self._stream = stream
        self._asked.clear()
        self._resumed.clear()
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
            self._cursor.session_ended()

    async def _open_session(self, stream: ChatStream) -> None:
        """Resumes rooms, DMs and unacknowledged sends on a new stream."""
        for room in self.state.rooms:
            self._asked.append(("join", "#" + room))
            await stream.join(room, self._cursor.room_point(room), self.state.epoch)
        if self.resume_directs:
            points = await self._direct_resume_points()
            self._cursor.resume_directs(points)
            for peer, seq in points.items():
                self._asked.append(("resume", "@" + peer))
                await stream.resume_direct(peer, seq, self.state.epoch)
        # Unacknowledged sends go again with their ids (held ones wait for their
        # retry): the server stores each once.
        resent = await self._sends.write_unheld(stream)
        # The server sends its headers as soon as it accepted the session.
        await stream.call.initial_metadata()
        if stream.call.done():
            return
        self._mark_connected()
        self._check_resumed()
        # Sends made while the ones above were written went nowhere: send them now
        # (from here on, send() writes by itself).
        await self._sends.write_unheld(stream, skip=resent)

    async def _direct_resume_points(self) -> dict[str, int]:
        """The DM conversations to resume on this session, and from which seq (see
        :meth:`Cursor.direct_points`)."""
        try:
            listed = await self.list_directs()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:  # UNIMPLEMENTED: an older server
                raise
            listed = None
        return self._cursor.direct_points(listed)
