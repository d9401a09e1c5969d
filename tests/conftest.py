"""Fixtures: real servers on port 0 (in-process and as subprocesses) and test clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from chatrpc.client import ChatStream, channel, login
from chatrpc.config import ServerConfig
from chatrpc.hub import Limits
from chatrpc.server import ChatServer
from chatrpc.store import StoreOptions
from chatrpc.v1 import chat_pb2 as pb

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
READY = re.compile(r"listening on (\S+):(\d+)")

#: How long a test waits for an event it expects before failing.
WAIT = 10.0


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using it runs against every store."""
    if request.param == "memory":
        return "memory://"
    return f"sqlite://{tmp_path / 'chat.db'}"


def make_config(store: str, **overrides: Any) -> ServerConfig:
    # No send rate limit unless a test sets one: tests send as fast as they can.
    limits = overrides.pop("limits", Limits(rate_limit=0))
    options = overrides.pop("store_options", StoreOptions())
    return ServerConfig(
        host="127.0.0.1",
        port=0,
        web_port=overrides.pop("web_port", 0),
        store=store,
        limits=limits,
        store_options=options,
        shutdown_grace_s=overrides.pop("shutdown_grace_s", 1.0),
        **overrides,
    )


@pytest.fixture
async def server(store_url: str) -> AsyncIterator[ChatServer]:
    """A real chatrpc server in this process, on a free port, for each store."""
    srv = ChatServer(make_config(store_url))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@contextlib.asynccontextmanager
async def running_server(store: str = "memory://", **overrides: Any) -> AsyncIterator[ChatServer]:
    srv = ChatServer(make_config(store, **overrides))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def target(srv: ChatServer) -> str:
    return f"127.0.0.1:{srv.port}"


@dataclass
class Peer:
    """A test user with one open Chat stream and everything it received."""

    user: str
    token: str
    ch: grpc.aio.Channel
    stream: ChatStream
    events: list[pb.ServerEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    status: grpc.StatusCode | None = None
    details: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        try:
            async for event in self.stream:
                self.events.append(event)
                self.changed.set()
            self.status = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            self.status = exc.code()
            self.details = exc.details() or ""
        finally:
            self.done.set()
            self.changed.set()

    async def wait_for(
        self, predicate: Callable[[list[pb.ServerEvent]], bool], timeout: float = WAIT
    ) -> list[pb.ServerEvent]:
        """Waits until ``predicate(events)`` holds; fails the test on timeout."""

        async def until() -> None:
            while not predicate(self.events):
                if self.done.is_set():
                    raise AssertionError(
                        f"{self.user}: stream ended ({self.status}: {self.details}) before"
                        f" the expected events; got {self.describe()}"
                    )
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.user}: timed out waiting; got {self.describe()}") from None
        return self.events

    async def wait_end(self, timeout: float = WAIT) -> grpc.StatusCode | None:
        await asyncio.wait_for(self.done.wait(), timeout)
        return self.status

    def of(self, kind: str) -> list[Any]:
        return [getattr(e, kind) for e in self.events if e.WhichOneof("event") == kind]

    def messages(self) -> list[pb.Message]:
        return list(self.of("message"))

    def texts(self) -> list[str]:
        return [m.text for m in self.messages()]

    def describe(self) -> str:
        return "; ".join(str(e).replace("\n", " ") for e in self.events[-10:])

    async def join(self, room: str, after_seq: int | None = None, epoch: str = "") -> pb.Joined:
        n = len(self.of("joined"))
        await self.stream.join(room, after_seq, epoch)
        await self.wait_for(lambda ev: len(self.of("joined")) > n)
        joined: pb.Joined = self.of("joined")[-1]
        return joined

    async def send_and_ack(
        self, text: str, *, room: str = "", to_user: str = "", client_msg_id: str = ""
    ) -> pb.Message:
        # A client_msg_id is printable ASCII: the text's other characters become '_'.
        cid = client_msg_id or re.sub(r"[^!-~]", "_", f"{self.user}-{len(self.events)}-{text[:8]}")
        await self.stream.send(text, room=room, to_user=to_user, client_msg_id=cid)
        await self.wait_for(
            lambda ev: any(
                (
                    e.WhichOneof("event") == "message"
                    and e.message.client_msg_id == cid
                    and e.message.sender == self.user
                )
                or (e.WhichOneof("event") == "error" and e.error.client_msg_id == cid)
                for e in ev
            )
        )
        for e in self.events:
            if e.WhichOneof("event") == "error" and e.error.client_msg_id == cid:
                raise AssertionError(f"send refused: {e.error}")
        return next(m for m in self.messages() if m.client_msg_id == cid and m.sender == self.user)

    async def error_for(self, client_msg_id: str) -> pb.Error:
        await self.wait_for(
            lambda ev: any(
                e.WhichOneof("event") == "error" and e.error.client_msg_id == client_msg_id
                for e in ev
            )
        )
        err: pb.Error = next(e for e in self.of("error") if e.client_msg_id == client_msg_id)
        return err

    async def quit(self) -> None:
        """Ends the session as a client quitting does: half-closes, and reads to
        the end of the stream (the server's OK)."""
        await self.stream.done_writing()
        if self.reader is not None:
            await self.reader
        await self.ch.close()

    async def close(self) -> None:
        """Drops the connection without a word (the server sees the client gone)."""
        self.stream.cancel()
        if self.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        await self.ch.close()


class Peers:
    """Opens test users against one server and closes them all at the end."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.opened: list[Peer] = []
        self.tokens: dict[str, str] = {}

    async def token(self, user: str) -> str:
        if user not in self.tokens:
            ch = channel(self.address)
            try:
                self.tokens[user] = (await login(ch, user)).token
            finally:
                await ch.close()
        return self.tokens[user]

    async def open(self, user: str, token: str | None = None) -> Peer:
        tok = token if token is not None else await self.token(user)
        ch = channel(self.address)
        stream = ChatStream(ch, tok)
        peer = Peer(user, tok, ch, stream)
        peer.reader = asyncio.create_task(peer._read())
        self.opened.append(peer)
        await stream.call.initial_metadata()
        return peer

    async def close(self) -> None:
        for peer in self.opened:
            await peer.close()


@pytest.fixture
async def peers(server: ChatServer) -> AsyncIterator[Peers]:
    group = Peers(target(server))
    try:
        yield group
    finally:
        await group.close()


# -- subprocesses ---------------------------------------------------------------------


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    host: str
    port: int
    args: list[str]
    #: The server's stderr goes to a file, so a chatty server never blocks on a pipe.
    stderr_path: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signals the server (if running), waits for it and returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def start_server_process(
    *args: str, env: dict[str, str] | None = None, log_dir: Path | None = None
) -> ServerProcess:
    """Starts ``chatrpc-server --port 0 ARGS`` and waits for its ready line.

    The send rate limit is lifted (``--rate-limit 0``) unless ARGS set one.
    """
    cmd = [str(BIN / "chatrpc-server"), "--host", "127.0.0.1", "--port", "0", "--rate-limit", "0"]
    if "--web-port" not in args and "--no-web" not in args:
        cmd += ["--web-port", "0"]
    cmd += args
    fd, name = tempfile.mkstemp(prefix="chatrpc-server-", suffix=".log", dir=log_dir)
    with os.fdopen(fd, "w") as err:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, **(env or {})},
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the server prints it when ready, or exits
    match = READY.search(line)
    if not match:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise AssertionError(f"server did not start: {line!r} {Path(name).read_text()}")
    return ServerProcess(proc, match.group(1), int(match.group(2)), cmd, Path(name))


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real ``chatrpc-server`` subprocess on a free port with an SQLite file."""
    sp = start_server_process(
        "--db", str(tmp_path / "chat.db"), "--log-level", "warning", log_dir=tmp_path
    )
    try:
        yield sp
    finally:
        sp.stop(signal.SIGKILL)


@pytest.fixture
def client_env(tmp_path: Path) -> dict[str, str]:
    """Environment for CLI subprocesses: a private config directory, no colors."""
    cfg = tmp_path / "config"
    return {**os.environ, "XDG_CONFIG_HOME": str(cfg), "NO_COLOR": "1"}


# -- Redis ------------------------------------------------------------------------------
# The session's redis-server (tests/redis_fixture.py), for the Redis store tests.

from .redis_fixture import redis_server  # noqa: E402, F401


async def end_status(stream: Any) -> tuple[grpc.StatusCode, str]:
    """Reads a stream to its end: the status it ended with (cut off, or OK)."""
    try:
        async for _ in stream:
            pass
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""
