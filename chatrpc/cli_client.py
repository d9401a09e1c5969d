"""``chatrpc-client``: chat from a terminal or a script.

Piped (stdin not a terminal): every line is sent to the room (``/msg USER TEXT``
sends a DM, ``/join ROOM`` switches room); received events print one per line;
at the end of input the client waits for the echo of each line it sent, then
exits 0. ``--listen`` stays connected and prints until interrupted.

Exit codes: 0 ok, 1 server or connection failure, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import grpc
from google.protobuf import json_format

from . import __version__
from .client import ChatClient, ClientClosed, SendError, State, channel, login
from .v1 import chat_pb2 as pb

PROG = "chatrpc-client"
DEFAULT_SERVER = "localhost:50051"


class Fatal(Exception):
    """A one-line error for stderr and the exit code to leave with."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


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


def describe_rpc_error(exc: grpc.aio.AioRpcError, server: str) -> str:
    details = exc.details() or ""
    if exc.code() == grpc.StatusCode.UNAVAILABLE and (
        "connect" in details.lower() or "refused" in details.lower() or "dns" in details.lower()
    ):
        reason = "connection refused" if "refused" in details.lower() else details
        return f"cannot reach {server}: {reason}"
    return f"{server}: {details or exc.code().name}"


async def obtain_token(server: str, user: str, password: str, tokens: TokenFile) -> tuple[str, str]:
    """Logs in with the stored token, or claims the name; returns (user, token)."""
    stored = tokens.get(server, user.lower())
    ch = channel(server)
    try:
        try:
            response = await login(ch, user, password=password, token=stored)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.UNAUTHENTICATED):
                raise Fatal(exc.details() or "login refused") from None
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise Fatal(exc.details() or "invalid name", 2) from None
            raise Fatal(describe_rpc_error(exc, server)) from None
    finally:
        await ch.close()
    tokens.put(server, response.user, response.token)
    return response.user, response.token


class Printer:
    """Formats received events as lines (or JSON objects with ``--json``)."""

    def __init__(self, me: str, out: TextIO, as_json: bool) -> None:
        self.me = me
        self.out = out
        self.as_json = as_json

    def line(self, event: pb.ServerEvent) -> str | None:
        kind = event.WhichOneof("event")
        if kind == "message":
            m = event.message
            stamp = time.strftime("%H:%M", time.localtime(m.sent_at.seconds))
            if m.WhichOneof("target") == "room":
                return f"[{stamp}] #{m.room} <{m.sender}> {m.text}"
            peer = m.to_user if m.sender == self.me else m.sender
            return f"[{stamp}] @{peer} <{m.sender}> {m.text}"
        if kind == "presence":
            p = event.presence
            verb = "joined" if p.kind == pb.Presence.JOINED else "left"
            return f"-- {p.user} {verb} #{p.room}"
        if kind == "joined":
            j = event.joined
            if j.WhichOneof("target") != "room":
                return None
            who = ", ".join(j.members)
            return f"-- you joined #{j.room} (online: {who})"
        if kind == "left":
            return f"-- you left #{event.left.room}"
        if kind == "error":
            e = event.error
            return f"-- error: {pb.Error.Code.Name(e.code)}: {e.message}"
        return None

    def __call__(self, event: pb.ServerEvent) -> None:
        if self.as_json:
            data = json_format.MessageToDict(event)
            print(json.dumps(data, ensure_ascii=False), file=self.out, flush=True)
            return
        text = self.line(event)
        if text is not None:
            print(text, file=self.out, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description="Chat on a chatrpc server.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--user", "-u", default=os.environ.get("CHATRPC_USER"), help="your name (env CHATRPC_USER)"
    )
    p.add_argument(
        "--server",
        "-s",
        default=os.environ.get("CHATRPC_SERVER", DEFAULT_SERVER),
        help="HOST:PORT (env CHATRPC_SERVER, default %(default)s)",
    )
    p.add_argument("--room", "-r", default="general", help="room to join (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object per event")
    p.add_argument(
        "--listen",
        action="store_true",
        help="after the input ends, stay connected and print until interrupted",
    )
    p.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the account password from this environment variable",
    )
    args = p.parse_args(argv)
    if not args.user:
        p.error("--user is required (or set CHATRPC_USER)")
    if ":" not in args.server:
        p.error(f"--server must be HOST:PORT, not {args.server!r}")
    return args


async def run_piped(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    password = os.environ.get(args.password_env, "") if args.password_env else ""
    user, token = await obtain_token(args.server, args.user, password, TokenFile())
    printer = Printer(user, out, args.json)

    def on_state(state: State, detail: str) -> None:
        if state is State.RECONNECTING:
            print(f"{PROG}: reconnecting ({detail})", file=sys.stderr, flush=True)
        elif state is State.CONNECTED and detail == "reconnected":
            print(f"{PROG}: reconnected", file=sys.stderr, flush=True)

    client = ChatClient(args.server, user, token, on_event=printer, on_state=on_state)
    try:
        await client.start()
    except ClientClosed as exc:
        raise Fatal(f"{args.server}: {exc.details}") from None
    failures = 0
    try:
        room = args.room.lstrip("#")
        await client.join(room)
        loop = asyncio.get_running_loop()
        sends: list[asyncio.Future[pb.Message]] = []
        while True:
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
                break
            text = line.rstrip("\n")
            if not text.strip():
                continue
            if text.startswith("/msg "):
                _, _, rest = text.partition(" ")
                peer, _, body = rest.strip().partition(" ")
                sends.append(client.submit(body, to_user=peer))
            elif text.startswith("/join "):
                room = text.split(None, 1)[1].strip().lstrip("#")
                await client.join(room)
            else:
                sends.append(client.submit(text, room=room))
        for result in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(result, SendError):
                failures += 1
                print(f"{PROG}: not sent: {result}", file=sys.stderr, flush=True)
            elif isinstance(result, BaseException):
                raise result
        if args.listen:
            await client.wait_closed()
    except ClientClosed as exc:
        raise Fatal(f"{args.server}: {exc.details}") from None
    finally:
        await client.close()
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.suppress(AttributeError):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    runner: Callable[[argparse.Namespace, TextIO, TextIO], Any] = run_piped
    try:
        return int(asyncio.run(runner(args, sys.stdin, sys.stdout)))
    except Fatal as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
