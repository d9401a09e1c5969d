"""The admin service's own gRPC server, on a Unix socket only (mode 0600).

Authorization is the socket file's mode: only the account the server runs as
(and root) can connect, so the service asks nobody for a token. The socket is
created with a umask that leaves it 0600 from the start (no moment when it is
wider), a stale one left by a killed server is removed only when no server
answers on it, and it is removed at shutdown. It runs in the chat server's
process and event loop, beside its TCP port, which never serves AdminService.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection

from ..errors import INTERNAL_MESSAGE, ChatError, Code
from ..v1 import admin_pb2 as apb
from ..v1 import chat_pb2 as pb
from .service import AdminService

log = logging.getLogger(__name__)

SERVICE = apb.DESCRIPTOR.services_by_name["AdminService"]
#: The longest path a Unix socket address holds (sun_path, less its final NUL).
MAX_SOCKET_PATH = 107

_STATUS = {code: getattr(grpc.StatusCode, code.name) for code in Code}


def answers(path: Path) -> bool:
    """Whether a server accepts connections on the Unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _claim(path: Path) -> None:
    """Makes ``path`` free for a new socket: removes a stale socket, refuses otherwise."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ChatError(
            Code.INVALID_ARGUMENT,
            f"the admin socket path {path} is longer than a Unix socket address holds"
            f" ({MAX_SOCKET_PATH} bytes): give --admin-socket a shorter one",
        )
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ChatError(
            Code.UNAVAILABLE,
            f"{path} exists and is not a socket: give --admin-socket another path",
        )
    if answers(path):
        raise ChatError(
            Code.UNAVAILABLE,
            f"another server answers on the admin socket {path}: stop it, or give"
            " --admin-socket another path",
        )
    path.unlink()  # left by a server that was killed
    log.info("removed the stale admin socket %s", path)


def _unary(method: Callable[[Any], Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await method(request)
        except ChatError as exc:
            await context.abort(_STATUS[exc.code], exc.message)
        except Exception:
            log.exception("admin %s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)

    return handler


def _streaming(method: Callable[[Any], AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(method)
    async def handler(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            async for item in method(request):
                yield item
        except ChatError as exc:
            await context.abort(_STATUS[exc.code], exc.message)
        except Exception:
            log.exception("admin %s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)

    return handler


def _handlers(service: AdminService) -> grpc.GenericRpcHandler:
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in SERVICE.methods:
        # A request message of chat.proto (ModerateRequest) is chat_pb2's.
        request = getattr(apb, method.input_type.name, None) or getattr(pb, method.input_type.name)
        fn = getattr(service, method.name)
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _streaming(fn),
                request_deserializer=request.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(fn),
                request_deserializer=request.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)


class AdminServer:
    """AdminService on the Unix socket ``path``; :meth:`start`, then :meth:`stop`.

    Args:
        chosen: the operator named the path. If not (the default next to the
            database), a path that cannot be used (another server on the same
            database answers there, or it is too long) is a warning and the
            server runs without the admin service, as it runs beside another
            server on one file (chatrpc.dblock); a chosen one is an error.
    """

    def __init__(self, service: AdminService, path: str, *, chosen: bool = True) -> None:
        self.service = service
        self.path = Path(path).expanduser()
        self.chosen = chosen
        self._server: grpc.aio.Server | None = None
        self._inode = 0

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        try:
            _claim(self.path)
        except ChatError as exc:
            if self.chosen:
                raise
            log.warning("no admin service: %s", exc.message)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((_handlers(self.service),))
        reflection.enable_server_reflection((SERVICE.full_name, reflection.SERVICE_NAME), server)
        # grpc creates the socket file here: under this umask it is 0600 from the start.
        old = os.umask(0o177)
        try:
            bound = server.add_insecure_port(f"unix:{self.path}")
        except RuntimeError as exc:
            raise ChatError(
                Code.UNAVAILABLE, f"cannot listen on the admin socket {self.path}: {exc}"
            ) from exc
        finally:
            os.umask(old)
        if not bound:
            raise ChatError(Code.UNAVAILABLE, f"cannot listen on the admin socket {self.path}")
        os.chmod(self.path, 0o600)
        self._inode = self.path.stat().st_ino
        await server.start()
        self._server = server
        log.info("admin service on %s", self.path)

    async def stop(self, grace: float | None = 1.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        await server.stop(grace)
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_ino == self._inode:  # still ours, not a newer server's
                self.path.unlink()
