"""Logging in for ``chatrpc-client``: the token file, and claiming or proving a name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc

from .cli_errors import Fatal, describe_rpc_error
from .cli_io import stderr_line as _stderr
from .client import ChannelSecurity, channel, login, set_password
from .v1 import chat_pb2 as pb


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "chatrpc"


class TokenFile:
    """Tokens per server and user, in a file only its owner can read (mode 0600)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "tokens.json"

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def get(self, server: str, user: str) -> str:
        return self._load().get(f"{user}@{server}", "")

    def put(self, server: str, user: str, token: str) -> None:
        data = self._load()
        data[f"{user}@{server}"] = token
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


async def obtain_token(
    server: str,
    user: str,
    password: str,
    tokens: TokenFile,
    security: ChannelSecurity | None = None,
    *,
    new_password: str = "",
    stored: bool = True,
    registration_token: str = "",
) -> tuple[str, str]:
    """Logs in with the stored token, or claims the name; returns (user, token).

    With ``password`` and a stored token, the token logs in and the password is
    then made sure of: set if the account had none (said on stderr), refused as
    wrong if it has another. ``new_password`` sets or changes the password
    afterwards (``password`` is the current one). ``stored=False`` ignores the
    stored token (it is known to be refused). ``registration_token`` lets a new
    name be claimed on a server that asks for one.
    """
    token = tokens.get(server, user.lower()) if stored else ""
    ch = channel(server, security=security)
    tls = security is not None
    try:
        try:
            response = await login(
                ch, user, password=password, token=token, registration_token=registration_token
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.UNAUTHENTICATED):
                raise Fatal(exc.details() or "login refused") from None
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise Fatal(exc.details() or "invalid name", 2) from None
            raise Fatal(describe_rpc_error(exc, server, tls=tls)) from None
        tokens.put(server, response.user, response.token)
        if password and token and not response.created:
            await _ensure_password(ch, response, password, password, server, tls)
        if new_password:
            await _ensure_password(ch, response, password, new_password, server, tls)
    finally:
        await ch.close()
    return response.user, response.token


async def _ensure_password(
    ch: grpc.aio.Channel,
    account: pb.LoginResponse,
    current: str,
    new: str,
    server: str,
    tls: bool,
) -> None:
    """Sets the account's password to ``new``, proving ``current``; says what changed."""
    try:
        change = await set_password(ch, account.token, current, new)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise Fatal(
                f"wrong password for {account.user!r}: --password-env must give its current"
                " password"
            ) from None
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise Fatal(exc.details() or "password refused", 2) from None
        raise Fatal(describe_rpc_error(exc, server, tls=tls)) from None
    if change.changed:
        what = "changed" if change.had_password else "set"
        _stderr(f"password {what} for {account.user}")
