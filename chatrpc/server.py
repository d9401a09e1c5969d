"""The gRPC front door: authentication, the Chat session's two tasks, status codes.

This is the only module that knows gRPC status codes. Known problems
(:class:`ChatError`) become the status of a whole call, or an ``error`` event on
a Chat stream when only one event was wrong; anything unexpected is logged with
its traceback and the client sees INTERNAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .auth import Auth
from .config import ServerConfig
from .errors import ChatError, Code
from .hub import Hub
from .model import StoredMessage
from .store import Store, open_store
from .subscriber import End, EndReason, Joined, Left, Notice, Outgoing, Presence, Session
from .v1 import chat_pb2 as pb
from .v1 import chat_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ChatService"].full_name

_STATUS = {code: getattr(grpc.StatusCode, code.name) for code in Code}

#: What the client sees when its stream ends for a reason other than its own close.
_END_STATUS = {
    EndReason.SLOW_CONSUMER: grpc.StatusCode.RESOURCE_EXHAUSTED,
    EndReason.SHUTDOWN: grpc.StatusCode.UNAVAILABLE,
}

Req = TypeVar("Req")
Resp = TypeVar("Resp")


def _bearer(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""


def _unary(
    method: Callable[[Any, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]],
) -> Callable[[Any, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]:
    """Maps what a unary handler raises to its gRPC status (the one boundary)."""

    @functools.wraps(method)
    async def wrapper(
        self: Any, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> Resp:
        try:
            return await method(self, request, context)
        except ChatError as exc:
            await context.abort(_STATUS[exc.code], exc.message)
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("%s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; it has been logged")
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    return wrapper


def _timestamp(ms: int) -> Timestamp:
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def message_pb(msg: StoredMessage) -> pb.Message:
    out = pb.Message(
        seq=msg.seq,
        sender=msg.sender,
        text=msg.text,
        sent_at=_timestamp(msg.sent_at_ms),
        client_msg_id=msg.client_msg_id,
    )
    if msg.room:
        out.room = msg.room
    else:
        out.to_user = msg.to_user
    return out


def encode(item: Outgoing) -> pb.ServerEvent:
    """The wire event for an outgoing item; a message is encoded once for all sessions."""
    if isinstance(item, StoredMessage):
        if item.wire is None:
            item.wire = pb.ServerEvent(message=message_pb(item))
        event: pb.ServerEvent = item.wire
        return event
    if isinstance(item, Presence):
        kind = pb.Presence.JOINED if item.joined else pb.Presence.LEFT
        return pb.ServerEvent(presence=pb.Presence(room=item.room, user=item.user, kind=kind))
    if isinstance(item, Joined):
        joined = pb.Joined(
            epoch=item.epoch,
            last_seq=item.last_seq,
            complete=item.complete,
            replayed=item.replayed,
            members=item.members,
        )
        if item.room:
            joined.room = item.room
        else:
            joined.with_user = item.with_user
        return pb.ServerEvent(joined=joined)
    if isinstance(item, Left):
        return pb.ServerEvent(left=pb.Left(room=item.room))
    if isinstance(item, Notice):
        return pb.ServerEvent(
            error=pb.Error(
                code=pb.Error.Code.Value(item.code),
                message=item.message,
                client_msg_id=item.client_msg_id,
            )
        )
    raise TypeError(f"cannot encode {item!r}")


class ChatServicer(pb_grpc.ChatServiceServicer):
    """``chatrpc.v1.ChatService`` over a :class:`Hub`."""

    def __init__(self, hub: Hub, auth: Auth, config: ServerConfig) -> None:
        self.hub = hub
        self.auth = auth
        self.config = config

    async def _user(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        return await self.auth.authenticate(_bearer(context))

    @_unary
    async def Login(
        self, request: pb.LoginRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.LoginResponse:
        result = await self.auth.login(request.user, request.password, _bearer(context))
        log.info("login %s%s", result.user, " (new)" if result.created else "")
        return pb.LoginResponse(token=result.token, user=result.user, created=result.created)

    @_unary
    async def History(
        self, request: pb.HistoryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HistoryResponse:
        user = await self._user(context)
        messages, last_seq, has_more = await self.hub.history(
            user,
            room=request.room,
            with_user=request.with_user,
            after_seq=request.after_seq,
            before_seq=request.before_seq,
            limit=request.limit,
            descending=request.descending,
        )
        return pb.HistoryResponse(
            messages=[message_pb(m) for m in messages],
            epoch=self.hub.store.epoch,
            last_seq=last_seq,
            has_more=has_more,
        )

    @_unary
    async def ListRooms(
        self, request: pb.ListRoomsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListRoomsResponse:
        await self._user(context)
        rooms = [pb.Room(name=n, online=o, last_seq=s) for n, o, s in await self.hub.rooms()]
        return pb.ListRoomsResponse(rooms=rooms)

    @_unary
    async def ListMembers(
        self, request: pb.ListMembersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListMembersResponse:
        await self._user(context)
        room, members = self.hub.members(request.room)
        return pb.ListMembersResponse(room=room, members=members)

    @_unary
    async def ListDirects(
        self, request: pb.ListDirectsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListDirectsResponse:
        user = await self._user(context)
        directs = [pb.Direct(with_user=u, last_seq=s) for u, s in await self.hub.directs(user)]
        return pb.ListDirectsResponse(directs=directs, epoch=self.hub.store.epoch)

    async def Chat(  # type: ignore[override]  # writes with context.write, returns nothing
        self,
        request_iterator: AsyncIterator[pb.ClientEvent],
        context: grpc.aio.ServicerContext[pb.ClientEvent, pb.ServerEvent],
    ) -> None:
        """The writer: drains the session's queue; a reader task handles the client's events."""
        try:
            user = await self._user(context)
        except ChatError as exc:
            await context.abort(_STATUS[exc.code], exc.message)
        session = Session(user, self.config.queue_size)
        self.hub.connect(session)
        reader: asyncio.Task[None] | None = None
        reason = EndReason.GONE
        hint = ""
        try:
            # Headers now, so the client knows the session is up before any event.
            await context.send_initial_metadata(())
            log.info("session %d of %s opened (%s)", session.id, user, context.peer())
            reader = asyncio.create_task(self._read(request_iterator, session))
            reason = await self._write_loop(session, context)
            if reason is EndReason.SLOW_CONSUMER:
                hint = self._resume_hint(session)
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            self.hub.disconnect(session)
            log.info("session %d of %s closed (%s)", session.id, user, reason.value)
        if reason is EndReason.SLOW_CONSUMER:
            await context.abort(_END_STATUS[reason], hint)
        elif reason is EndReason.SHUTDOWN:
            await context.abort(_END_STATUS[reason], "server shutting down: reconnect and resume")
        elif reason is EndReason.FAILED:
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; it has been logged")

    @staticmethod
    async def _write_loop(
        session: Session, context: grpc.aio.ServicerContext[pb.ClientEvent, pb.ServerEvent]
    ) -> EndReason:
        """Writes what the session queues until it ends; returns why it ended."""
        while True:
            for item in await session.next_batch():
                if isinstance(item, End):
                    return item.reason
                try:
                    await context.write(encode(item))
                except Exception:
                    # grpcio fails the write when the client went away under it;
                    # anything else is a real fault.
                    if context.done() or context.cancelled():
                        return EndReason.GONE
                    raise

    @staticmethod
    def _resume_hint(session: Session) -> str:
        points = ", ".join(f"{seq} in {conv}" for conv, seq in sorted(session.cursors().items()))
        return f"slow consumer: resume from seq {points or '0'}"

    async def _read(self, events: AsyncIterator[pb.ClientEvent], session: Session) -> None:
        """The reader: handles the client's events one by one until it half-closes."""
        try:
            async for event in events:
                await self._handle(event, session)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The stream itself broke (not one event): end the session.
            log.exception("session %d: reading events failed", session.id)
            session.end(EndReason.FAILED)
            return
        session.end(EndReason.DONE)

    async def _handle(self, event: pb.ClientEvent, session: Session) -> None:
        kind = event.WhichOneof("event")
        client_msg_id = event.send.client_msg_id if kind == "send" else ""
        try:
            if kind == "join":
                join = event.join
                after = join.after_seq if join.HasField("after_seq") else None
                if join.WhichOneof("target") == "with_user":
                    await self.hub.resume_direct(session, join.with_user, after, join.epoch)
                else:
                    await self.hub.join(session, join.room, after, join.epoch)
            elif kind == "leave":
                await self.hub.leave(session, event.leave.room)
            elif kind == "send":
                send = event.send
                target = send.WhichOneof("target")
                await self.hub.send(
                    session,
                    send.text,
                    room=send.room if target == "room" else "",
                    to_user=send.to_user if target == "to_user" else "",
                    client_msg_id=client_msg_id,
                )
            else:
                raise ChatError(Code.INVALID_ARGUMENT, "empty event: set join, leave or send")
        except ChatError as exc:
            session.push(Notice(exc.code.name, exc.message, client_msg_id))
        except Exception:
            log.exception("session %d: %s event failed", session.id, kind)
            session.push(
                Notice(Code.INTERNAL.name, "internal error; it has been logged", client_msg_id)
            )


class ChatServer:
    """A running chatrpc server: store, hub, gRPC server, health and reflection.

    Use as an async context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, config: ServerConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store or open_store(config.store_url(), config.store_options)
        self.hub = Hub(self.store, config.limits)
        self.auth = Auth(self.store)
        self.health = health.aio.HealthServicer()
        self.port = 0
        self._server: grpc.aio.Server | None = None

    def _options(self) -> list[tuple[str, Any]]:
        c = self.config
        return [
            ("grpc.so_reuseport", 0),
            ("grpc.keepalive_time_ms", int(c.keepalive_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(c.keepalive_timeout_s * 1000)),
            # Recent grpc core waits this long for any ping's ack (60 s by default).
            ("grpc.http2.ping_timeout_ms", int(c.keepalive_timeout_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            # Keep pinging an idle stream: a vanished client may never send data again.
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.max_receive_message_length", c.max_receive_bytes),
        ]

    async def start(self) -> int:
        await self.store.open()
        server = grpc.aio.server(options=self._options())
        pb_grpc.add_ChatServiceServicer_to_server(
            ChatServicer(self.hub, self.auth, self.config), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        try:
            self.port = server.add_insecure_port(f"{self.config.host}:{self.config.port}")
        except RuntimeError as exc:
            await self.store.close()
            raise ChatError(
                Code.UNAVAILABLE, f"cannot listen on {self.config.host}:{self.config.port}: {exc}"
            ) from exc
        await server.start()
        self._server = server
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self) -> None:
        """Stops accepting, tells sessions to reconnect, drains, closes the store."""
        if self._server is None:
            return
        server, self._server = self._server, None
        await self.health.enter_graceful_shutdown()
        # server.stop refuses new calls at once and gives running ones the grace
        # period; meanwhile every session ends with UNAVAILABLE (reconnect).
        stopping = asyncio.create_task(server.stop(self.config.shutdown_grace_s))
        self.hub.shutdown()
        await stopping
        await self.store.close()

    async def __aenter__(self) -> ChatServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
