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
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .auth import Auth, hash_token
from .config import ServerConfig
from .errors import ChatError, Code
from .hub import Hub
from .model import Draft
from .pruning import prune_forever
from .store import Store, open_store
from .subscriber import End, EndReason, Notice, Session
from .v1 import chat_pb2 as pb
from .v1 import chat_pb2_grpc as pb_grpc
from .wire import encode, frames, message_pb

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ChatService"].full_name

_STATUS = {code: getattr(grpc.StatusCode, code.name) for code in Code}

#: What the client sees when its stream ends for a reason other than its own close.
_END_STATUS = {
    EndReason.SLOW_CONSUMER: grpc.StatusCode.RESOURCE_EXHAUSTED,
    EndReason.SHUTDOWN: grpc.StatusCode.UNAVAILABLE,
    EndReason.REVOKED: grpc.StatusCode.UNAUTHENTICATED,
    EndReason.MALFORMED: grpc.StatusCode.INVALID_ARGUMENT,
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


def _client_address(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The caller's IP address (``ipv4:1.2.3.4:5678`` -> ``1.2.3.4``), for throttling."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or rest
    return peer


#: Client events read ahead of processing, and the most sends committed together.
INBOX_EVENTS = 256
#: How long a session's end waits for its event processor to stop, in seconds.
PROCESSOR_STOP_S = 5.0

#: Most events a client may ask for in one ``batch`` frame.
MAX_BATCH_EVENTS = 256


def _batch_size(context: grpc.aio.ServicerContext[Any, Any]) -> int:
    """Events per frame the client asked for with ``chatrpc-batch: N`` (1: no batches)."""
    for key, value in context.invocation_metadata() or ():
        if key == "chatrpc-batch" and isinstance(value, str) and value.strip().isdigit():
            return max(1, min(int(value), MAX_BATCH_EVENTS))
    return 1


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


class ChatServicer(pb_grpc.ChatServiceServicer):
    """``chatrpc.v1.ChatService`` over a :class:`Hub`."""

    def __init__(self, hub: Hub, auth: Auth, config: ServerConfig) -> None:
        self.hub = hub
        self.auth = auth
        self.config = config
        self._watchdogs: set[asyncio.Task[None]] = set()

    async def _user(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        return await self.auth.authenticate(_bearer(context), client=_client_address(context))

    @_unary
    async def Login(
        self, request: pb.LoginRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.LoginResponse:
        result = await self.auth.login(
            request.user,
            request.password,
            _bearer(context),
            client=_client_address(context),
            registration_token=request.registration_token,
        )
        log.info("login %s%s", result.user, " (new)" if result.created else "")
        return pb.LoginResponse(token=result.token, user=result.user, created=result.created)

    @_unary
    async def Logout(
        self, request: pb.LogoutRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.LogoutResponse:
        token = _bearer(context)
        user, revoked = await self.auth.logout(
            token, all_sessions=request.all_sessions, client=_client_address(context)
        )
        # Sessions opened with a revoked token end now (UNAUTHENTICATED), not at
        # their next call: a live stream makes no further calls.
        ended = self.hub.revoke(user, None if request.all_sessions else hash_token(token))
        log.info("logout %s: %d tokens revoked, %d sessions ended", user, revoked, ended)
        return pb.LogoutResponse(revoked_tokens=revoked, ended_sessions=ended)

    async def _open_session(self, context: grpc.aio.ServicerContext[Any, Any]) -> Session:
        """Authenticates a Chat call and registers its session with the hub.

        The token is checked again once the session is registered: a Logout
        that revoked it in between either is seen by that check or finds the
        session registered and ends it, so no session outlives its token.
        """
        token = _bearer(context)
        user = await self._user(context)
        session = Session(user, self.config.queue_size)
        self.hub.connect(session, hash_token(token))
        try:
            if await self._user(context) != user:  # pragma: no cover - tokens never move
                raise ChatError(Code.UNAUTHENTICATED, "invalid or revoked token: log in again")
        except BaseException:
            self.hub.disconnect(session)
            raise
        return session

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
        page, token = await self.hub.rooms(
            limit=request.page_size, page_token=request.page_token, prefix=request.prefix
        )
        rooms = [pb.Room(name=n, online=o, last_seq=s) for n, o, s in page]
        return pb.ListRoomsResponse(rooms=rooms, next_page_token=token)

    @_unary
    async def ListMembers(
        self, request: pb.ListMembersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListMembersResponse:
        await self._user(context)
        room, members, token = await self.hub.members(
            request.room, limit=request.page_size, page_token=request.page_token
        )
        return pb.ListMembersResponse(room=room, members=members, next_page_token=token)

    @_unary
    async def ListDirects(
        self, request: pb.ListDirectsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListDirectsResponse:
        user = await self._user(context)
        page, token = await self.hub.directs(
            user, limit=request.page_size, page_token=request.page_token
        )
        directs = [pb.Direct(with_user=u, last_seq=s) for u, s in page]
        return pb.ListDirectsResponse(
            directs=directs, epoch=self.hub.store.epoch, next_page_token=token
        )

    async def Chat(  # type: ignore[override]  # writes with context.write, returns nothing
        self,
        request_iterator: AsyncIterator[pb.ClientEvent],
        context: grpc.aio.ServicerContext[pb.ClientEvent, pb.ServerEvent],
    ) -> None:
        """The writer: drains the session's queue; a reader task handles the client's events."""
        try:
            session = await self._open_session(context)
        except ChatError as exc:
            await context.abort(_STATUS[exc.code], exc.message)
        user = session.user
        handler = asyncio.current_task()
        assert handler is not None
        session.on_stop = functools.partial(self._watch_stalled, session, handler)
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
            # on_stop refers to this call's task, whose frame refers to the session:
            # break the cycle so the session is freed now, not by a full collection.
            session.on_stop = None
            log.info("session %d of %s closed (%s)", session.id, user, reason.value)
        if reason is EndReason.SLOW_CONSUMER:
            await context.abort(_END_STATUS[reason], hint)
        elif reason is EndReason.SHUTDOWN:
            await context.abort(_END_STATUS[reason], "server shutting down: reconnect and resume")
        elif reason is EndReason.REVOKED:
            await context.abort(_END_STATUS[reason], "token revoked: log in again")
        elif reason is EndReason.MALFORMED:
            await context.abort(_END_STATUS[reason], "malformed ClientEvent: not valid protobuf")
        elif reason is EndReason.FAILED:
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; it has been logged")

    @staticmethod
    async def _write_loop(
        session: Session, context: grpc.aio.ServicerContext[pb.ClientEvent, Any]
    ) -> EndReason:
        """Writes what the session queues until it ends; returns why it ended.

        Whatever queued up while a write was in flight goes out together: as
        ``batch`` frames if the client asked for them, else one event per write.
        A lone event is written at once, never held back to fill a frame.
        """
        max_events = _batch_size(context)
        while True:
            items = await session.next_batch()
            end = items[-1] if isinstance(items[-1], End) else None
            if end is not None:
                items = items[:-1]
            session.writing = True
            try:
                for frame in frames([encode(item) for item in items], max_events):
                    await context.write(frame)
                session.writing = False
            except Exception as exc:
                # grpcio fails a write (ExecuteBatchError) when the client went away
                # under it; the frames are bytes already, so nothing else can fail here.
                log.debug("session %d: write failed (%r): client gone", session.id, exc)
                return EndReason.GONE
            if end is not None:
                return end.reason

    def _watch_stalled(self, session: Session, handler: asyncio.Task[Any]) -> None:
        """Called when a session overflows or is ended. A writer blocked on a client
        that stopped reading would never see that, so after a grace period the call
        is cancelled: its slot and its presence are freed."""
        if not session.writing:
            return  # the writer is not blocked: it will find the end in its queue

        async def watch() -> None:
            await asyncio.sleep(self.config.stall_timeout_s)
            if session.writing and not handler.done():
                log.info(
                    "session %d of %s: client stopped reading; ending it", session.id, session.user
                )
                handler.cancel()

        task = asyncio.create_task(watch())
        self._watchdogs.add(task)
        task.add_done_callback(self._watchdogs.discard)

    @staticmethod
    def _resume_hint(session: Session) -> str:
        points = ", ".join(f"{seq} in {conv}" for conv, seq in sorted(session.cursors().items()))
        return f"slow consumer: resume from seq {points or '0'}"

    async def _read(self, events: AsyncIterator[pb.ClientEvent], session: Session) -> None:
        """The reader: takes the client's events in order until it half-closes.

        Events go through a bounded inbox to :meth:`_process`, so reading goes on
        while a commit is in flight, and a full inbox holds the client back
        (HTTP/2 flow control) instead of growing.
        """
        inbox: asyncio.Queue[pb.ClientEvent | None] = asyncio.Queue(INBOX_EVENTS)
        processor = asyncio.create_task(self._process(inbox, session))
        try:
            async for event in events:
                if processor.done():
                    return
                await inbox.put(event)
            await inbox.put(None)
            await processor
        except asyncio.CancelledError:
            raise
        except DecodeError:
            # Bytes that are not a ClientEvent: the client's fault, not worth a traceback.
            log.info("session %d: malformed event, ending it", session.id)
            session.end(EndReason.MALFORMED)
            return
        except Exception:
            # The stream itself broke (not one event): end the session.
            log.exception("session %d: reading events failed", session.id)
            session.end(EndReason.FAILED)
            return
        finally:
            await _stop_processor(processor, inbox)
        session.end(EndReason.DONE)

    async def _process(self, inbox: asyncio.Queue[pb.ClientEvent | None], session: Session) -> None:
        """Handles events in order; sends that queued up together are committed together."""
        event = await inbox.get()
        while event is not None:
            if event.WhichOneof("event") != "send":
                await self._handle(event, session)
                event = await inbox.get()
                continue
            sends = [event]
            taken = False  # whether the event after the sends was taken from the inbox
            follower: pb.ClientEvent | None = None
            while len(sends) < INBOX_EVENTS and not inbox.empty():
                follower = inbox.get_nowait()
                if follower is None or follower.WhichOneof("event") != "send":
                    taken = True
                    break
                sends.append(follower)
            await self._send(sends, session)
            event = follower if taken else await inbox.get()

    async def _send(self, sends: list[pb.ClientEvent], session: Session) -> None:
        drafts: list[Draft] = []
        for event in sends:
            send = event.send
            target = send.WhichOneof("target")
            try:
                drafts.append(
                    await self.hub.prepare(
                        session,
                        send.text,
                        room=send.room if target == "room" else "",
                        to_user=send.to_user if target == "to_user" else "",
                        client_msg_id=send.client_msg_id,
                    )
                )
            except ChatError as exc:
                session.push(Notice(exc.code.name, exc.message, send.client_msg_id))
        if not drafts:
            return
        try:
            await self.hub.commit(session, drafts)
        except ChatError as exc:
            for d in drafts:
                session.push(Notice(exc.code.name, exc.message, d.client_msg_id))
        except Exception:
            log.exception("session %d: storing %d messages failed", session.id, len(drafts))
            for d in drafts:
                session.push(
                    Notice(
                        Code.INTERNAL.name, "internal error; it has been logged", d.client_msg_id
                    )
                )

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


def _passthrough(frame: bytes) -> bytes:
    return frame


def _add_servicer(servicer: ChatServicer, server: grpc.aio.Server) -> None:
    """Registers every ChatService method, like the generated helper, except that
    Chat's responses are written as bytes already serialised (see wire.py)."""
    service = pb.DESCRIPTOR.services_by_name["ChatService"]
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        request = getattr(pb, method.input_type.name)
        response = getattr(pb, method.output_type.name)
        serialize = _passthrough if method.name == "Chat" else response.SerializeToString
        kind = (
            grpc.stream_stream_rpc_method_handler
            if method.client_streaming and method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = kind(
            getattr(servicer, method.name),
            request_deserializer=request.FromString,
            response_serializer=serialize,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)


def _read_pem(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ChatError(
            Code.INVALID_ARGUMENT, f"cannot read the {what} {path!r}: {exc.strerror}"
        ) from exc


def _server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from the configured PEM files, or None for plaintext."""
    if not (config.tls_cert or config.tls_key or config.tls_client_ca):
        return None
    if not (config.tls_cert and config.tls_key):
        raise ChatError(Code.INVALID_ARGUMENT, "TLS needs both a certificate and its key")
    pair = (_read_pem(config.tls_key, "TLS key"), _read_pem(config.tls_cert, "TLS certificate"))
    client_ca = (
        _read_pem(config.tls_client_ca, "client CA certificate") if config.tls_client_ca else None
    )
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


class ChatServer:
    """A running chatrpc server: store, hub, gRPC server, health and reflection.

    Use as an async context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, config: ServerConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store or open_store(config.store_url(), config.store_options)
        self.hub = Hub(self.store, config.limits)
        self.auth = Auth(
            self.store,
            login_rate=config.login_rate,
            login_burst=config.login_burst,
            registration=config.registration,
        )
        #: Server credentials when TLS is configured; read now so a bad file fails early.
        self._tls = _server_credentials(config)
        self.health = health.aio.HealthServicer()
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._pruner: asyncio.Task[None] | None = None
        #: Rooms pruned so far, and an event set after every sweep of empty rooms.
        self.rooms_pruned = 0
        self._swept = asyncio.Event()

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
            ("grpc.max_concurrent_streams", c.max_streams_per_connection),
            ("grpc.max_allowed_incoming_connections", c.max_connections),
            # Calls not yet taken up by the event loop: refused past this backlog, none
            # before it (the same soft and hard limit: grpc core's default drops at random
            # from 1,000, which cost logins in a connection storm).
            ("grpc.server.max_pending_requests", c.max_pending_calls),
            ("grpc.server.max_pending_requests_hard_limit", c.max_pending_calls),
        ]

    async def start(self) -> int:
        await self.store.open()
        server = grpc.aio.server(options=self._options())
        _add_servicer(ChatServicer(self.hub, self.auth, self.config), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        try:
            address = f"{self.config.host}:{self.config.port}"
            if self._tls is None:
                self.port = server.add_insecure_port(address)
            else:
                self.port = server.add_secure_port(address, self._tls)
        except RuntimeError as exc:
            await self.store.close()
            raise ChatError(
                Code.UNAVAILABLE, f"cannot listen on {self.config.host}:{self.config.port}: {exc}"
            ) from exc
        await server.start()
        self._server = server
        if self.config.empty_room_ttl_s:
            self._pruner = asyncio.create_task(
                prune_forever(self.store, self.config.empty_room_ttl_s, self._on_sweep),
                name="chatrpc-pruner",
            )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    def _on_sweep(self, removed: list[str]) -> None:
        self.rooms_pruned += len(removed)
        self._swept.set()

    async def next_sweep(self) -> None:
        """Waits until the background pruning of empty rooms completes its next sweep."""
        self._swept.clear()
        await self._swept.wait()

    def describe(self) -> str:
        """What every session and every task of the server is doing (SIGUSR1 logs it)."""
        sessions = sorted(self.hub.sessions(), key=lambda s: s.id)
        lines = [f"{len(sessions)} sessions", *(s.describe() for s in sessions)]
        for task in asyncio.all_tasks():
            where = awaiting(task.get_coro())
            if any(not w.endswith(":None") for w in where):  # grpc's own tasks have no lines
                lines.append(f"task {task.get_name()}: {' > '.join(where)}")
        return "\n".join(lines)

    async def stop(self) -> None:
        """Stops accepting, tells sessions to reconnect, drains, closes the store."""
        if self._server is None:
            return
        server, self._server = self._server, None
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
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


async def _stop_processor(
    processor: asyncio.Task[None], inbox: asyncio.Queue[pb.ClientEvent | None]
) -> None:
    """Cancels a session's event processor and waits for it. A library can lose a
    cancellation (see chatrpc.store.redis), so the processor also finds the end
    of its inbox, and the wait is bounded: a session never outlives its client."""
    processor.cancel()
    while not inbox.empty():
        inbox.get_nowait()  # the client resends what was not acknowledged
    inbox.put_nowait(None)
    await asyncio.wait({processor}, timeout=PROCESSOR_STOP_S)
    if not processor.done():
        log.warning("a session's event processor did not stop; leaving it")
    elif not processor.cancelled() and processor.exception() is not None:
        log.error("a session's event processor failed", exc_info=processor.exception())


def awaiting(coro: Any) -> list[str]:
    """Where a suspended coroutine is, down its chain of awaits."""
    where = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return where
