"""The connection: channel options, TLS, and the one-off calls that need no session.

* :func:`channel` opens a channel with keepalive pings (TLS with
  :class:`ChannelSecurity`).
* :func:`login` claims or proves a name and returns a token; :func:`logout` and
  :func:`set_password` act on a token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ..v1 import chat_pb2 as pb
from ..v1 import chat_pb2_grpc as pb_grpc

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
    # A connection of its own per channel. grpc core otherwise shares one HTTP/2
    # connection among every channel of a process to the same target (its global
    # subchannel pool), and a server allows a bounded number of streams on one
    # connection (`chatrpc-server --streams-per-connection`, 100): the 101st
    # ChatClient of a bot host would wait for a stream with no error. Each client
    # holds one long stream, so a connection each is what users' clients do anyway.
    ("grpc.use_local_subchannel_pool", 1),
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
    # grpc core takes the first value of an argument given twice: the caller's
    # come first, so they override the defaults.
    opts = (options or []) + CHANNEL_OPTIONS
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
