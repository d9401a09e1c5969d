"""The web server: static app, ``/ws`` sessions and the unary JSON API, over aiohttp.

It runs in the gRPC server's event loop over the same hub, session core and
unary API (chatrpc.api), so a browser and a terminal are in the same rooms and
every limit applies the same way. Routes:

* ``GET /`` and ``/static/...``: the app (plain ES modules, HTML, CSS);
* ``GET /ws``: the Chat session, proto3 JSON ``ClientEvent`` frames up and
  ``ServerEvent`` frames down (see jsonwire), closed as closes.py says;
* ``POST /chatrpc.v1.ChatService/<Method>``: each unary call, a JSON request
  body and a JSON response, as in Connect's unary protocol;
* ``GET /session``: who the cookie signs in (the page cannot read the cookie).
"""

from __future__ import annotations

import functools
import json
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import WebSocketError, WSCloseCode, WSMsgType, web
from google.protobuf import json_format

from ..api import UNARY, Caller, ChatApi
from ..auth import hash_token
from ..config import ServerConfig
from ..errors import INTERNAL_MESSAGE, ChatError, Code
from ..session import ClientGone, MalformedEvent, SessionRunner
from ..subscriber import Outgoing
from ..v1 import chat_pb2 as pb
from . import security
from .closes import HTTP_STATUS, close_code, close_reason
from .jsonwire import event_json, json_frames, to_json

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
SERVICE_PATH = "/" + pb.DESCRIPTOR.services_by_name["ChatService"].full_name
#: Files served from the site's root: the page, and what must be at the root to
#: apply to it (the service worker's scope is its own directory).
ROOT_FILES = {
    "/": "index.html",
    "/sw.js": "sw.js",
    "/manifest.webmanifest": "manifest.webmanifest",
}
CONTENT_TYPES = {".js": "text/javascript", ".webmanifest": "application/manifest+json"}


def error_response(exc: ChatError) -> web.Response:
    """A refused call: its HTTP status and ``{"code", "message"}`` (Connect's shape)."""
    return web.json_response(
        {"code": exc.code.name.lower(), "message": exc.message}, status=HTTP_STATUS[exc.code]
    )


def _client_address(request: web.Request) -> str:
    return request.remote or ""


class WebServer:
    """The browser adapter of one ChatServer: start it after the store opens, stop it
    beside the gRPC server (see ChatServer.stop)."""

    def __init__(self, config: ServerConfig, api: ChatApi, sessions: SessionRunner) -> None:
        self.config = config
        self.api = api
        self.sessions = sessions
        self.origins = security.parse_origins(config.web_origin)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._ssl = self._ssl_context()

    def _ssl_context(self) -> ssl.SSLContext | None:
        c = self.config
        if not (c.tls_cert and c.tls_key):
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(c.tls_cert, c.tls_key)
        if c.tls_client_ca:
            context.load_verify_locations(c.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    @property
    def secure(self) -> bool:
        return self._ssl is not None

    @property
    def url(self) -> str:
        scheme = "https" if self.secure else "http"
        host = self.config.host
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[security.headers], client_max_size=self.config.max_receive_bytes
        )
        app.router.add_get("/ws", self.chat)
        app.router.add_get("/session", self.whoami)
        app.router.add_post(SERVICE_PATH + "/{method}", self.unary)
        for path, name in ROOT_FILES.items():
            app.router.add_get(path, functools.partial(self.file, STATIC / name))
        app.router.add_get("/static/{path:.+}", self.static)
        return app

    async def start(self) -> int:
        runner = web.AppRunner(
            self.app(),
            access_log=None,
            shutdown_timeout=self.config.shutdown_grace_s,
        )
        await runner.setup()
        site = web.TCPSite(
            runner,
            self.config.host,
            self.config.web_port,
            ssl_context=self._ssl,
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ChatError(
                Code.UNAVAILABLE,
                f"cannot listen on {self.config.host}:{self.config.web_port}"
                f" (--web-port): {exc.strerror}",
            ) from exc
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        return self.port

    async def stop(self) -> None:
        """Stops accepting, then waits for the running handlers (the grace period)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- static files ---------------------------------------------------------------

    async def file(self, path: Path, request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(path, headers={"Cache-Control": "no-cache"})
        kind = CONTENT_TYPES.get(path.suffix)
        if kind:
            response.content_type = kind
        return response

    async def static(self, request: web.Request) -> web.StreamResponse:
        path = (STATIC / request.match_info["path"]).resolve()
        if not path.is_relative_to(STATIC) or not path.is_file():
            raise web.HTTPNotFound()
        return await self.file(path, request)

    # -- the unary API --------------------------------------------------------------

    def _caller(self, request: web.Request) -> Caller:
        return Caller(security.token_of(request), _client_address(request))

    async def whoami(self, request: web.Request) -> web.Response:
        try:
            user = await self.api.user(self._caller(request))
        except ChatError as exc:
            return error_response(exc)
        return web.json_response({"user": user})

    async def unary(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        method = self.api.method(name)
        if method is None:
            return error_response(ChatError(Code.NOT_FOUND, f"no unary method {name!r}"))
        if not security.origin_allowed(request, self.origins):
            return error_response(ChatError(Code.PERMISSION_DENIED, "origin not allowed"))
        if request.content_type != "application/json":
            return error_response(
                ChatError(Code.INVALID_ARGUMENT, "send the request as application/json")
            )
        request_class, _ = UNARY[name]
        try:
            body = await request.text()
            message = json_format.Parse(body or "{}", request_class())
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            return error_response(
                ChatError(Code.INVALID_ARGUMENT, f"not a {request_class.__name__}: {exc}")
            )
        caller = self._caller(request)
        if name == "Login" and not request.headers.get("Authorization"):
            # A browser signs in with a name and a password; its cookie (perhaps
            # stale, perhaps another user's) is no proof it means to present.
            caller = Caller("", caller.address)
        try:
            reply = await method(message, caller)
        except ChatError as exc:
            response = error_response(exc)
            if name == "Logout" and exc.code is Code.UNAUTHENTICATED:
                security.clear_token(response, secure=self.secure)
            return response
        except Exception:
            log.exception("%s failed", name)
            return error_response(ChatError(Code.INTERNAL, INTERNAL_MESSAGE))
        if isinstance(reply, pb.LoginResponse):
            token, reply.token = reply.token, ""  # the page never sees it: the cookie holds it
            response = web.Response(text=to_json(reply), content_type="application/json")
            security.set_token(response, token, secure=self.secure)
            return response
        response = web.Response(text=to_json(reply), content_type="application/json")
        if name == "Logout":
            security.clear_token(response, secure=self.secure)
        return response

    # -- the Chat session -----------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """A session over a WebSocket: the session core runs it; its end becomes a close."""
        if not security.origin_allowed(request, self.origins):
            log.info("WebSocket from origin %r refused", request.headers.get("Origin"))
            return error_response(ChatError(Code.PERMISSION_DENIED, "origin not allowed"))
        caller = self._caller(request)
        try:
            opened = self.sessions.admit(caller.address)  # a storm: refused at once
        except ChatError as exc:
            return error_response(exc)
        try:
            session = await self.sessions.open(
                functools.partial(self.api.user, caller),
                hash_token(caller.token),
                transport="web",
                peer=caller.address,
            )
        except BaseException as exc:
            opened()
            if isinstance(exc, ChatError):
                return error_response(exc)
            raise
        ws = web.WebSocketResponse(
            max_msg_size=self.config.max_receive_bytes,
            heartbeat=self.config.keepalive_s,
        )
        try:
            await ws.prepare(request)
        except BaseException:
            opened()
            self.sessions.hub.disconnect(session)
            raise
        log.info("session %d of %s opened (web, %s)", session.id, session.user, request.remote)

        async def write(items: list[Outgoing]) -> None:
            for frame in json_frames([event_json(item) for item in items]):
                await ws.send_str(frame)

        end = await self.sessions.run(session, _events(ws), write, opened)
        await ws.close(code=close_code(end.code), message=close_reason(end.message))
        return ws


async def _events(ws: web.WebSocketResponse) -> AsyncIterator[pb.ClientEvent]:
    """The client's ``ClientEvent`` frames (JSON text), until it closes."""
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            yield _parse_event(msg.data)
        elif msg.type is WSMsgType.ERROR:
            if isinstance(msg.data, WebSocketError):
                # A frame past max_msg_size, or one that breaks the protocol: the client's fault.
                raise MalformedEvent(f"bad WebSocket frame: {msg.data}")
            # The connection was lost (e.g. no answer to a heartbeat): the client is gone.
            raise ClientGone(str(msg.data))
        else:
            raise MalformedEvent("send ClientEvents as JSON text frames")
    if ws.close_code == WSCloseCode.ABNORMAL_CLOSURE:
        raise ClientGone("the connection closed without a close frame")


def _parse_event(text: str) -> pb.ClientEvent:
    try:
        event = pb.ClientEvent()
        json_format.Parse(text, event)
    except (json_format.ParseError, json.JSONDecodeError) as exc:
        raise MalformedEvent(f"not a ClientEvent: {exc}") from exc
    return event
