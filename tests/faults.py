"""A TCP proxy on 127.0.0.1 that injects faults: dropped connections, stalled readers."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket


class _Link:
    """One proxied connection: two pumps, and a gate on the server-to-client side."""

    def __init__(self, proxy: FaultProxy, down_r, down_w, up_r, up_w) -> None:
        self.proxy = proxy
        self.down_w = down_w
        self.up_w = up_w
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.tasks = [
            asyncio.create_task(self._pump(down_r, up_w, gated=False)),
            asyncio.create_task(self._pump(up_r, down_w, gated=True)),
        ]

    async def _pump(self, reader, writer, gated: bool) -> None:
        try:
            while True:
                if gated:
                    await self.flowing.wait()
                data = await reader.read(16384)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        for w in (self.down_w, self.up_w):
            with contextlib.suppress(Exception):
                sock = w.get_extra_info("socket")
                if sock is not None:
                    # An abortive close (RST), like a network that went away.
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                w.close()
        self.flowing.set()
        self.proxy.links.discard(self)
        for t in self.tasks:
            if t is not asyncio.current_task():
                t.cancel()


class FaultProxy:
    """Forwards 127.0.0.1:port to the server; tests call drop/stall to break things."""

    def __init__(self, upstream_port: int, rng: random.Random | None = None) -> None:
        self.upstream_port = upstream_port
        self.rng = rng or random.Random(1)
        self.links: set[_Link] = set()
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self.drops = 0
        self.stalls = 0
        #: While set, new connections are closed at once, as if the server were down.
        self.refusing = False

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _accept(self, down_r, down_w) -> None:
        if self.refusing:
            down_w.close()
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # A small receive buffer: a stalled link backs up to the server quickly.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.upstream_port))
            up_r, up_w = await asyncio.open_connection(sock=sock)
        except BaseException as exc:
            sock.close()  # the server is gone (or the proxy is closing)
            down_w.close()
            if isinstance(exc, OSError):
                return
            raise
        self.links.add(_Link(self, down_r, down_w, up_r, up_w))

    def drop_random(self) -> None:
        if self.links:
            self.rng.choice(sorted(self.links, key=id)).close()
            self.drops += 1

    def drop_all(self) -> None:
        for link in list(self.links):
            link.close()
            self.drops += 1

    async def stall_random(self, seconds: float) -> None:
        """Stops reading from the server for one connection for a while."""
        if not self.links:
            return
        link = self.rng.choice(sorted(self.links, key=id))
        self.stalls += 1
        link.flowing.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            link.flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self.links):
            link.close()
        if self._server is not None:
            await self._server.wait_closed()
