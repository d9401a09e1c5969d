"""Load generators, run as separate processes by bench/run.py.

``sub``: opens C subscriber streams (chatrpc: a user each, joined to one room;
raw: Subscribe calls), prints ``ready`` once all are live, counts what arrives
until told to stop (a line on stdin), then prints one JSON line: delivered
count, window seconds, latency samples' percentiles.

``pub``: P publishers send ~100-byte payloads stamped with the send time, as
fast as the server takes them (rate 0) or at a total rate, for a duration,
then print one JSON line with how many were sent (and acknowledged, for chatrpc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import grpc

from chatrpc.client import ChatStream, channel, login

PAYLOAD = 100


def _identity(data: bytes) -> bytes:
    return data


def stamp(seq: int) -> str:
    head = f"{time.time_ns()} {seq} "
    return head + "x" * max(0, PAYLOAD - len(head))


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[float] = []
        self.counting = False

    def seen(self, text: str) -> None:
        if not self.counting:
            return
        self.count += 1
        sent = int(text.split(" ", 1)[0])
        self.latencies.append((time.time_ns() - sent) / 1e6)


def _channel(args: argparse.Namespace) -> grpc.aio.Channel:
    """A connection of its own; chatrpc's keepalive settings for chatrpc only
    (the raw server keeps grpcio's defaults, which refuse frequent pings)."""
    local = [("grpc.use_local_subchannel_pool", 1)]
    if args.kind == "chat":
        return channel(args.target, local)
    return grpc.aio.insecure_channel(args.target, options=local)


async def _login(ch: grpc.aio.Channel, user: str) -> str:
    """Logs in, retrying what a server busy with a connection storm may answer."""
    for attempt in range(10):
        try:
            return (await login(ch, user, timeout=30)).token
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            print(f"login {user}: {exc.code().name}, retrying", file=sys.stderr, flush=True)
            await asyncio.sleep(0.5 * (attempt + 1))
    raise SystemExit(f"login {user} kept failing")


async def _stdin_line() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def subscribers(args: argparse.Namespace) -> None:
    counter = Counter()
    ready = 0
    all_ready = asyncio.Event()
    tasks = []
    # Several channels, so streams spread over a few connections like real clients.
    channels = [_channel(args) for _ in range(args.channels)]

    async def chat_sub(i: int) -> None:
        nonlocal ready
        ch = channels[i % len(channels)]
        token = await _login(ch, f"{args.prefix}{i}")
        stream = ChatStream(ch, token, batch=args.batch)
        await stream.join(args.room)
        async for event in stream:
            kind = event.WhichOneof("event")
            if kind == "joined":
                ready += 1
                if ready == args.count:
                    all_ready.set()
            elif kind == "message":
                counter.seen(event.message.text)

    async def raw_sub(i: int) -> None:
        nonlocal ready
        ch = channels[i % len(channels)]
        call = ch.unary_stream(
            "/bench.Raw/Subscribe", request_serializer=_identity, response_deserializer=_identity
        )(b"")
        await call.initial_metadata()
        ready += 1
        if ready == args.count:
            all_ready.set()
        async for payload in call:
            counter.seen(payload.decode())

    make = chat_sub if args.kind == "chat" else raw_sub
    for i in range(args.count):
        tasks.append(asyncio.create_task(make(i)))
        if i % 100 == 99:
            await asyncio.sleep(0.1)  # connect at 1,000 per second, a storm but a bounded one
    await asyncio.wait_for(all_ready.wait(), 120)
    print("ready", flush=True)
    await _stdin_line()  # "start"
    counter.counting = True
    t0 = time.perf_counter()
    await _stdin_line()  # "stop"
    window = time.perf_counter() - t0
    counter.counting = False
    lat = sorted(counter.latencies)
    print(
        json.dumps(
            {
                "delivered": counter.count,
                "window_s": window,
                "p50_ms": percentile(lat, 0.50),
                "p99_ms": percentile(lat, 0.99),
            }
        ),
        flush=True,
    )
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for ch in channels:
        await ch.close()


async def _pace(start: float, k: int, rate: float) -> None:
    """Waits until the k-th message of a publisher sending ``rate`` per second is due
    (at once when rate is 0: blast)."""
    if rate:
        delay = start + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


async def publishers(args: argparse.Namespace) -> None:
    per_pub_rate = args.rate / args.count if args.rate else 0.0
    sent = 0
    acked = 0
    deadline = time.perf_counter() + args.duration

    async def chat_pub(i: int) -> None:
        nonlocal sent, acked
        ch = channel(args.target, [("grpc.use_local_subchannel_pool", 1)])
        token = (await login(ch, f"{args.prefix}{i}")).token
        stream = ChatStream(ch, token, batch=64)
        room = f"{args.room}{i}" if args.own_rooms else args.room
        await stream.join(room)
        window = asyncio.Semaphore(args.window)

        async def read() -> None:
            nonlocal acked
            async for event in stream:
                if (
                    event.WhichOneof("event") == "message"
                    and event.message.sender == f"{args.prefix}{i}"
                ):
                    acked += 1
                    window.release()

        reader = asyncio.create_task(read())
        k = 0
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            await _pace(start, k, per_pub_rate)
            await window.acquire()  # at most `window` unacknowledged sends
            await stream.send(stamp(k), room=room, client_msg_id=f"{i}-{k}")
            sent += 1
            k += 1
        await asyncio.sleep(0.5)
        reader.cancel()
        stream.cancel()
        await ch.close()

    async def raw_pub(i: int) -> None:
        nonlocal sent
        ch = _channel(args)
        call = ch.stream_unary(
            "/bench.Raw/Publish", request_serializer=_identity, response_deserializer=_identity
        )()
        k = 0
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            await _pace(start, k, per_pub_rate)
            await call.write(stamp(k).encode())
            sent += 1
            k += 1
        await call.done_writing()
        await call
        await ch.close()

    make = chat_pub if args.kind == "chat" else raw_pub
    await asyncio.gather(*(make(i) for i in range(args.count)))
    print(json.dumps({"sent": sent, "acked": acked, "duration_s": args.duration}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["sub", "pub"])
    p.add_argument("--kind", choices=["chat", "raw"], required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--room", default="bench")
    p.add_argument("--prefix", default="u")
    p.add_argument("--rate", type=float, default=0.0, help="total messages/s (0: blast)")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--window", type=int, default=32, help="unacknowledged sends per publisher")
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--own-rooms", action="store_true", help="each publisher in a room of its own")
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    asyncio.run(subscribers(args) if args.mode == "sub" else publishers(args))


if __name__ == "__main__":
    main()
