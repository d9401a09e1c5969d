"""The gRPC adapter: metadata, authentication, ``context.write``, status codes.

The Chat session itself runs in the transport-neutral core (chatrpc.session);
this module feeds it the call's events, writes what it queues as protobuf
frames (see wire.py) and ends the call with the status its end reason names.
It is the only module that knows gRPC status codes: known problems
(:class:`ChatError`) become the status of a whole call; anything unexpected is
logged with its traceback and the client sees INTERNAL.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .admin import AdminServer, AdminService
from .api import Caller, ChatApi
from .auth import Auth, hash_token
from .config import ServerConfig
from .diagnostics import awaiting as awaiting  # where tests look for it
from .diagnostics import describe
from .directs_summary import headers
from .errors import INTERNAL_MESSAGE, ChatError, Code
from .housekeeping import Housekeeping
from .hub import Hub
from .idle import LastSeen, touch_interval
from .metrics import MetricsServer
from .session import SessionRunner
from .store import Store, open_store
from .subscriber import Outgoing, Session
from .tls import server_credentials
from .v1 import chat_pb2 as pb
from .v1 import chat_pb2_grpc as pb_grpc
from .web import WebServer
from .wire import encode, frames

log = logging.getLogger(__name__)

#: How long the end of a Chat call's events waits for a cancellation that may
#: follow it (seconds). grpcio ends a call the client dropped (cancelled, or its
#: connection lost) as if it had half-closed, then cancels the handler a few
#: turns of the loop later (measured: within four), so a drop is not taken for
#: a goodbye (a dropped user lingers, one who quits does not: chatrpc.presence).
HALF_CLOSE_SETTLE_S = 0.05

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ChatService"].full_name

_STATUS = {code: getattr(grpc.StatusCode, code.name) for code in Code}

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


def _caller(context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
    return Caller(_bearer(context), _client_address(context))


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
        calls = self.hub.stats.calls
        try:
            response = await method(self, request, context)
        except ChatError as exc:
            calls[method.__name__, exc.code.name] += 1
            await context.abort(_STATUS[exc.code], exc.message)
        except grpc.aio.AbortError:
            calls[method.__name__, "ABORTED"] += 1
            raise
        except Exception:
            calls[method.__name__, "INTERNAL"] += 1
            log.exception("%s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        else:
            calls[method.__name__, "OK"] += 1
            return response
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    return wrapper


def _api_call(name: str) -> Any:  # Any: it stands in for each generated signature
    """The handler of the unary call ``name``: :class:`ChatApi`'s method of that name."""

    async def call(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return await getattr(self.api, name)(request, _caller(context))

    call.__name__ = call.__qualname__ = name
    return _unary(call)


class ChatServicer(pb_grpc.ChatServiceServicer):
    """``chatrpc.v1.ChatService`` over a :class:`Hub`."""

    def __init__(self, hub: Hub, auth: Auth, config: ServerConfig) -> None:
        self.hub = hub
        self.auth = auth
        self.config = config
        self.api = ChatApi(hub, auth)
        self.sessions = SessionRunner(
            hub, queue_size=config.queue_size, stall_timeout_s=config.stall_timeout_s
        )

    async def _user(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        return await self.auth.authenticate(_bearer(context), client=_client_address(context))

    # The unary calls: each is ChatApi's method of the same name (see api.py).
    Login = _api_call("Login")
    Logout = _api_call("Logout")
    SetPassword = _api_call("SetPassword")
    Search = _api_call("Search")
    History = _api_call("History")
    ListRooms = _api_call("ListRooms")
    ListMembers = _api_call("ListMembers")
    ListDirects = _api_call("ListDirects")
    ModerateRoom = _api_call("ModerateRoom")
    Block = _api_call("Block")
    Unblock = _api_call("Unblock")
    ListBlocked = _api_call("ListBlocked")

    async def _open_session(self, context: grpc.aio.ServicerContext[Any, Any]) -> Session:
        """Authenticates a Chat call and registers its session with the hub."""
        return await self.sessions.open(
            functools.partial(self._user, context),
            hash_token(_bearer(context)),
            transport="grpc",
            peer=context.peer() or "",
        )

    async def Chat(  # type: ignore[override]  # writes with context.write, returns nothing
        self,
        request_iterator: AsyncIterator[pb.ClientEvent],
        context: grpc.aio.ServicerContext[pb.ClientEvent, pb.ServerEvent],
    ) -> None:
        """A session over gRPC: the session core runs it; this maps its end to a status."""
        stats = self.hub.stats
        try:
            opened = self.sessions.admit(context.peer() or "")  # a storm: refused at once
            try:
                session = await self._open_session(context)
            except BaseException:
                opened()
                raise
        except ChatError as exc:
            stats.calls["Chat", exc.code.name] += 1
            await context.abort(_STATUS[exc.code], exc.message)
        try:
            # Headers now, so the client knows the session is up before any event.
            # (No local keeps the metadata: this frame lives as long as the session.)
            await context.send_initial_metadata(
                await headers(self.hub.store, session.user, context.invocation_metadata() or ())
            )
        except BaseException:
            opened()
            self.hub.disconnect(session)
            raise
        max_events = _batch_size(context)

        async def write(items: list[Outgoing]) -> None:
            # One event per write, or what piled up as ``batch`` frames if the
            # client asked for them; a lone event is written at once.
            for frame in frames([encode(item) for item in items], max_events):
                await context.write(frame)
                stats.frames += 1

        end = await self.sessions.run(
            session, request_iterator, write, opened, settle_s=HALF_CLOSE_SETTLE_S
        )
        stats.calls["Chat", end.code.name if end.code else "OK"] += 1
        if end.code is not None:
            await context.abort(_STATUS[end.code], end.message)


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


class ChatServer:
    """A running chatrpc server: store, hub, gRPC server, health and reflection, and
    the browser adapter on its own port (chatrpc.web) unless ``no_web``.

    Use as an async context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, config: ServerConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store or open_store(config.store_url(), config.store_options)
        self.hub = Hub(self.store, config.limits)
        last_seen = LastSeen(touch_interval(config.idle_account_ttl_s))
        self.auth = Auth(
            self.store,
            login_rate=config.login_rate,
            login_burst=config.login_burst,
            registration=config.registration,
            stats=self.hub.stats,
            last_seen=last_seen,
        )
        #: Pruning empty rooms; last-seen times and idle accounts (background tasks).
        self.housekeeping = Housekeeping(
            self.store,
            last_seen,
            lambda: {s.user for s in self.hub.sessions()},
            empty_room_ttl_s=config.empty_room_ttl_s,
            idle_account_ttl_s=config.idle_account_ttl_s,
        )
        #: AdminService on its Unix socket (None with --admin-socket '').
        path = config.admin_socket_path()
        service = AdminService(self.hub, config.store_url())
        chosen = config.admin_socket != "auto"
        self.admin = AdminServer(service, path, chosen=chosen) if path else None
        #: Prometheus metrics (--metrics-port); made now so a missing library fails early.
        self.metrics = MetricsServer(self.hub, self.auth) if config.metrics_port else None
        #: Server credentials when TLS is configured; read now so a bad file fails early.
        self._tls = server_credentials(config)
        self.health = health.aio.HealthServicer()
        self.port = 0
        self._server: grpc.aio.Server | None = None
        #: The browser adapter (None with --no-web); its port once started.
        self.web: WebServer | None = None

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
        # Who was online at the last stop lingers for the presence grace, so the
        # rooms see nothing of the restart as their members come back.
        self.hub.presence.restore(await self.store.take_online())
        server = grpc.aio.server(options=self._options())
        servicer = ChatServicer(self.hub, self.auth, self.config)
        _add_servicer(servicer, server)
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
        if not self.config.no_web:
            try:
                web = WebServer(self.config, servicer.api, servicer.sessions)
                await web.start()
            except BaseException:
                await server.stop(None)
                await self.store.close()
                raise
            self.web = web
        await server.start()
        self._server = server
        if self.admin is not None:
            try:
                await self.admin.start()
            except BaseException:
                await self.stop()
                raise
        if self.metrics is not None:
            try:
                await self.metrics.start(self.config.host, self.config.metrics_port)
            except OSError as exc:
                await self.stop()
                raise ChatError(
                    Code.UNAVAILABLE,
                    f"cannot serve metrics on {self.config.host}:{self.config.metrics_port}:"
                    f" {exc.strerror}",
                ) from exc
        self.housekeeping.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    @property
    def rooms_pruned(self) -> int:
        return self.housekeeping.rooms_pruned

    async def next_sweep(self) -> None:
        """Waits until the background pruning of empty rooms completes its next sweep."""
        await self.housekeeping.next_sweep()

    def describe(self) -> str:
        """What every session and every task of the server is doing (SIGUSR1 logs it)."""
        return describe(self.hub)

    async def stop(self) -> None:
        """Stops accepting, tells sessions to reconnect, drains, closes the store."""
        if self._server is None:
            return
        server, self._server = self._server, None
        await self.housekeeping.stop()
        if self.admin is not None:
            await self.admin.stop()
        await self.health.enter_graceful_shutdown()
        # server.stop refuses new calls at once and gives running ones the grace
        # period; meanwhile every session ends with UNAVAILABLE (reconnect).
        stopping = [asyncio.create_task(server.stop(self.config.shutdown_grace_s))]
        if self.web is not None:
            # The same two stages on the web port: aiohttp stops accepting at once
            # and gives the running handlers the grace period.
            stopping.append(asyncio.create_task(self.web.stop()))
        self.hub.shutdown()
        await asyncio.gather(*stopping)
        if self.metrics is not None:
            await self.metrics.stop()
        online = self.hub.presence.stop()
        try:
            await self.store.keep_online(online)
        except ChatError as exc:
            log.warning("could not keep who was online for the restart: %s", exc.message)
        await self.store.close()

    async def __aenter__(self) -> ChatServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
