"""The physical limit of this stack: a raw grpcio asyncio fan-out server, no chat logic.

``/bench.Raw/Subscribe`` streams to each subscriber every payload published;
``/bench.Raw/Session`` is the same as a bidirectional stream, the shape of a
chat session: a task reads the client's requests (each answered with an
acknowledgement, as a join is) while the handler writes what is queued;
``/bench.Raw/Publish`` takes a stream of payloads and queues each, pre-encoded
bytes, to every subscriber (one gRPC message per event, no batching). Prints
``raw-server listening on HOST:PORT`` when ready; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator

import grpc

from chatrpc.cli_server import tune_gc


def _identity(data: bytes) -> bytes:
    return data


class Raw:
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[bytes]] = set()

    async def subscribe(
        self, request: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues.add(queue)
        await context.send_initial_metadata(())  # tells the subscriber it is live
        try:
            while True:
                yield await queue.get()
        finally:
            self.queues.discard(queue)

    async def session(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        async def read() -> None:
            async for request in requests:
                queue.put_nowait(b"ack:" + request)

        reader = asyncio.create_task(read())
        self.queues.add(queue)
        await context.send_initial_metadata(())
        try:
            while True:
                yield await queue.get()
        finally:
            self.queues.discard(queue)
            reader.cancel()

    async def publish(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        n = 0
        async for payload in requests:
            for queue in self.queues:
                queue.put_nowait(payload)
            n += 1
        return str(n).encode()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    raw = Raw()
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    handlers = {
        "Subscribe": grpc.unary_stream_rpc_method_handler(
            raw.subscribe, request_deserializer=_identity, response_serializer=_identity
        ),
        "Session": grpc.stream_stream_rpc_method_handler(
            raw.session, request_deserializer=_identity, response_serializer=_identity
        ),
        "Publish": grpc.stream_unary_rpc_method_handler(
            raw.publish, request_deserializer=_identity, response_serializer=_identity
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Raw", handlers),))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    await server.start()
    tune_gc()  # the same garbage-collection settings as chatrpc-server: a fair baseline
    print(f"raw-server listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


if __name__ == "__main__":
    asyncio.run(main())
