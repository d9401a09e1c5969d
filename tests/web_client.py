"""A browser-like test client of the web API: aiohttp's cookie jar, JSON POSTs, /ws."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from chatrpc.server import ChatServer

WAIT = 10.0
SERVICE = "/chatrpc.v1.ChatService"


def web_url(srv: ChatServer) -> str:
    assert srv.web is not None
    return f"http://127.0.0.1:{srv.web.port}"


class CallFailed(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


@dataclass
class WebSocketPeer:
    """One open /ws session and every ServerEvent it received (batches unpacked)."""

    ws: aiohttp.ClientWebSocketResponse
    events: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    batches: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    close_reason: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    if msg.type is aiohttp.WSMsgType.CLOSE:
                        self.close_reason = msg.extra or ""
                    break
                event = json.loads(msg.data)
                self.frames += 1
                if "batch" in event:
                    self.batches += 1
                    self.events.extend(event["batch"]["events"])
                else:
                    self.events.append(event)
                self.changed.set()
        finally:
            self.close_code = self.ws.close_code
            self.done.set()
            self.changed.set()

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e[kind] for e in self.events if kind in e]

    def texts(self) -> list[str]:
        return [m.get("text", "") for m in self.of("message")]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        async def until() -> None:
            while not predicate():
                if self.done.is_set():
                    raise AssertionError(
                        f"socket closed ({self.close_code}) before the expected events;"
                        f" got {self.events[-10:]}"
                    )
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out; got {self.events[-10:]}") from None

    async def join(self, room: str, **resume: Any) -> dict[str, Any]:
        n = len(self.of("joined"))
        await self.send({"join": {"room": room, **resume}})
        await self.wait_for(lambda: len(self.of("joined")) > n)
        return self.of("joined")[-1]

    async def wait_closed(self, timeout: float = WAIT) -> int | None:
        await asyncio.wait_for(self.done.wait(), timeout)
        return self.close_code


class WebUser:
    """A browser's worth of state: a cookie jar against one server's web port."""

    def __init__(self, base: str, origin: str | None = "same") -> None:
        self.base = base
        self.origin = base if origin == "same" else origin
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.sockets: list[WebSocketPeer] = []

    def _headers(self) -> dict[str, str]:
        return {"Origin": self.origin} if self.origin else {}

    async def call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.http.post(
            f"{self.base}{SERVICE}/{method}", json=body or {}, headers=self._headers()
        ) as resp:
            data: dict[str, Any] = await resp.json()
            if resp.status != 200:
                raise CallFailed(resp.status, data)
            return data

    async def login(self, user: str, password: str = "") -> dict[str, Any]:
        return await self.call("Login", {"user": user, "password": password})

    async def open(self) -> WebSocketPeer:
        ws = await self.http.ws_connect(f"{self.base}/ws", headers=self._headers())
        peer = WebSocketPeer(ws)
        peer.reader = asyncio.create_task(peer._read())
        self.sockets.append(peer)
        return peer

    async def close(self) -> None:
        for peer in self.sockets:
            await peer.ws.close()
            if peer.reader is not None:
                await peer.reader
        await self.http.close()
