"""Load generators, run as separate processes by bench/run.py.

``sub``: opens C subscriber streams (chatrpc: a user each, joined to one room;
raw: Subscribe calls), prints ``ready`` once all are live, counts what arrives
until told to stop (a line on stdin), then prints one JSON line: delivered
count, window seconds, latency samples' percentiles.

``sub --kind web``: the same subscribers on the web protocol: each logs in over
gRPC, then opens a WebSocket on ``--web`` (the server's web app URL) with its
token and reads proto3 JSON frames (batches included).

``idle``: subscribers that only stay connected, opened on command (``connect K``
on stdin), reporting how many are live, failed or were refused and retried; for
the population and connection-storm runs.

``pub``: P publishers send ~100-byte payloads stamped with the send time, as
fast as the server takes them (rate 0) or at a total rate, for a duration,
then print one JSON line with how many were sent (and acknowledged, for chatrpc).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from chatrpc.client import CHANNEL_OPTIONS, ChatStream, channel, login

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
    if args.kind == "chat" and args.keepalive:
        # chatrpc.client's options with another ping interval
        options = [o for o in CHANNEL_OPTIONS if o[0] != "grpc.keepalive_time_ms"]
        ping = [("grpc.keepalive_time_ms", int(args.keepalive * 1000))]
        return grpc.aio.insecure_channel(args.target, options=options + ping + local)
    if args.kind == "chat":
        return channel(args.target, local)
    return grpc.aio.insecure_channel(args.target, options=local)


#: What a server busy with a connection storm may answer: try again. grpc core
#: refuses calls past its backlog of calls not yet taken up with CANCELLED.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
ATTEMPTS = 10
#: Seconds one attempt (login, or opening the stream until the join is confirmed) may take.
STEP_TIMEOUT = 30.0


class Refused(Exception):
    """An attempt that did not get a live subscription (retried)."""


class Pool:
    """The connections subscribers use: ``channels`` of them, subscribers spread
    round-robin; or as many as needed, filled in order with ``per_channel`` each.

    Each subscriber makes a Login besides its stream: with at most 50 streams on a
    connection, one that chatrpc-server allows 100 on, logins never wait for a slot.
    """

    def __init__(self, args: argparse.Namespace, channels: int = 0, per_channel: int = 50):
        self.args = args
        self.fixed = channels
        self.per_channel = max(1, per_channel)
        self.channels = [_channel(args) for _ in range(channels)]

    def get(self, i: int) -> grpc.aio.Channel:
        if self.fixed:
            return self.channels[i % self.fixed]
        k = i // self.per_channel
        while len(self.channels) <= k:
            self.channels.append(_channel(self.args))
        return self.channels[k]

    async def close(self) -> None:
        await asyncio.gather(*(ch.close() for ch in self.channels), return_exceptions=True)


@dataclass
class Tally:
    """Subscribers by outcome, and where the ones still opening are."""

    live: int = 0
    failed: int = 0
    #: attempts refused or timed out, then retried
    refused: int = 0
    #: streams that ended after they were live
    dropped: int = 0
    phase: dict[int, str] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)

    def refusal(self, what: str) -> None:
        self.refused += 1
        self.codes[what] = self.codes.get(what, 0) + 1

    def stuck(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for where in self.phase.values():
            out[where] = out.get(where, 0) + 1
        return out


async def subscriber(
    args: argparse.Namespace,
    pool: Pool,
    i: int,
    counter: Counter,
    tally: Tally,
    done: asyncio.Future[bool],
) -> None:
    """Subscriber ``i``: logs in, opens its stream, joins, then reads until cancelled.
    ``done`` is set True once it is live, False if it never got there."""
    user = f"{args.prefix}{i}"
    token = ""
    try:
        for attempt in range(ATTEMPTS):
            ch = pool.get(i)
            try:
                if args.kind == "chat" and not token:
                    tally.phase[i] = "login"
                    token = (await login(ch, user, timeout=STEP_TIMEOUT)).token
                tally.phase[i] = "open"
                events, call = await asyncio.wait_for(
                    _open(args, ch, token, room_of(args, i), counter), STEP_TIMEOUT
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.ALREADY_EXISTS and attempt:
                    # A login that timed out here may have claimed the name there: take another.
                    user = f"{args.prefix}{i}-{attempt}"
                    tally.refusal("login:ALREADY_EXISTS")
                    continue
                if exc.code() not in RETRYABLE:
                    raise
                tally.refusal(f"{tally.phase.get(i)}:{exc.code().name}")
            except (TimeoutError, Refused) as exc:
                tally.refusal(f"{tally.phase.get(i)}:{type(exc).__name__}:{exc}")
            else:
                tally.phase.pop(i, None)
                tally.live += 1
                done.set_result(True)
                try:
                    async for payload in events:
                        counter.seen(payload)
                except grpc.aio.AioRpcError:
                    pass
                tally.live -= 1
                tally.dropped += 1
                call.cancel()
                return
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.5))
        raise Refused(f"{ATTEMPTS} attempts refused")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if not done.done():
            tally.phase.pop(i, None)
            tally.failed += 1
            done.set_result(False)
            print(f"subscriber {user} failed: {exc!r}", file=sys.stderr, flush=True)
    finally:
        if not done.done():
            done.set_result(False)


def room_of(args: argparse.Namespace, i: int) -> str:
    """``--room``, or with ``--room-size`` one room per that many subscribers."""
    if args.room_size:
        return f"{args.room}-{args.prefix}{i // args.room_size}"
    return str(args.room)


async def _open(
    args: argparse.Namespace, ch: grpc.aio.Channel, token: str, room: str, counter: Counter
) -> tuple[AsyncIterator[str], Any]:
    """Opens a stream and returns once it is live (chatrpc: the join is confirmed;
    raw: the server sent its headers), with an iterator of the payloads that follow."""
    if args.kind == "raw":
        call = ch.unary_stream(
            "/bench.Raw/Subscribe", request_serializer=_identity, response_deserializer=_identity
        )(b"")
        try:
            await call.initial_metadata()
            if call.done():  # a refused call has (empty) headers too
                raise Refused(f"stream ended: {(await call.code()).name}")
        except BaseException:
            call.cancel()
            raise

        async def raw_payloads() -> AsyncIterator[str]:
            async for payload in call:
                yield payload.decode()

        return raw_payloads(), call
    if args.kind == "raw-bidi":
        return await _open_raw_bidi(ch, args.joins)
    stream = ChatStream(ch, token, batch=args.batch)
    try:
        # The server sends its headers once the session is open; a call refused
        # meanwhile has (empty) headers too, and a write to it may never return.
        await stream.call.initial_metadata()
        if stream.call.done():
            raise Refused(f"stream ended: {(await stream.call.code()).name}")
        await stream.join(room)
        events = stream.__aiter__()
        async for event in events:
            kind = event.WhichOneof("event")
            if kind == "joined":
                break
            if kind == "message":
                counter.seen(event.message.text)
            elif kind == "error":
                raise RuntimeError(f"join refused: {event.error.code} {event.error.message}")
        else:
            raise Refused(f"stream ended: {(await stream.call.code()).name}")
    except BaseException:
        stream.cancel()
        raise

    async def messages() -> AsyncIterator[str]:
        async for event in events:
            if event.WhichOneof("event") == "message":
                yield event.message.text

    return messages(), stream.call


async def _open_raw_bidi(ch: grpc.aio.Channel, joins: int) -> tuple[AsyncIterator[str], Any]:
    """A raw bidirectional stream, live once its ``joins`` requests are acknowledged."""
    bidi = ch.stream_stream(
        "/bench.Raw/Session", request_serializer=_identity, response_deserializer=_identity
    )()
    try:
        await bidi.initial_metadata()
        if bidi.done():
            raise Refused(f"stream ended: {(await bidi.code()).name}")
        for j in range(joins):
            await bidi.write(f"join{j}".encode())
        for _ in range(joins):
            if await bidi.read() == grpc.aio.EOF:
                raise Refused(f"stream ended: {(await bidi.code()).name}")
    except BaseException:
        bidi.cancel()
        raise

    async def raw_payloads() -> AsyncIterator[str]:
        while (payload := await bidi.read()) != grpc.aio.EOF:
            yield payload.decode()

    return raw_payloads(), bidi


async def web_subscriber(
    args: argparse.Namespace,
    pool: Pool,
    http: Any,
    i: int,
    counter: Counter,
    tally: Tally,
    done: asyncio.Future[bool],
) -> None:
    """Subscriber ``i`` on the web protocol (see the module docstring)."""
    user = f"{args.prefix}{i}"
    try:
        token = (await login(pool.get(i), user, timeout=STEP_TIMEOUT)).token
        ws = await http.ws_connect(
            f"{args.web.rstrip('/')}/ws",
            headers={"Authorization": f"Bearer {token}"},
            max_msg_size=0,
        )
        await ws.send_str(json.dumps({"join": {"room": room_of(args, i)}}))
        live = False
        async for msg in ws:
            event = json.loads(msg.data)
            for e in event["batch"]["events"] if "batch" in event else [event]:
                if "joined" in e and not live:
                    live = True
                    tally.live += 1
                    done.set_result(True)
                elif "message" in e:
                    counter.seen(e["message"]["text"])
                elif "error" in e:
                    raise RuntimeError(f"refused: {e['error']}")
        tally.live -= 1
        tally.dropped += 1
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if not done.done():
            tally.failed += 1
            print(f"subscriber {user} failed: {exc!r}", file=sys.stderr, flush=True)
    finally:
        if not done.done():
            done.set_result(False)


async def _stdin_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def subscribers(args: argparse.Namespace) -> None:
    """``sub``: C subscribers, ``ready`` once all are live, counting between start and stop."""
    counter = Counter()
    tally = Tally()
    # Several channels, so streams spread over a few connections like real clients.
    pool = Pool(args, channels=args.channels)
    loop = asyncio.get_running_loop()
    tasks = []
    dones: list[asyncio.Future[bool]] = []
    start = time.perf_counter()
    http = None
    if args.kind == "web":
        import aiohttp

        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    for i in range(args.count):
        await _pace(start, i, args.connect_rate)  # a storm, but a bounded one
        dones.append(loop.create_future())
        if http is not None:
            sub = web_subscriber(args, pool, http, i, counter, tally, dones[-1])
        else:
            sub = subscriber(args, pool, i, counter, tally, dones[-1])
        tasks.append(asyncio.create_task(sub))
    await asyncio.wait(dones, timeout=STEP_TIMEOUT * ATTEMPTS)
    if tally.live != args.count:
        print(
            f"not ready: {tally.live} of {args.count} live, {tally.failed} failed,"
            f" {tally.refused} attempts refused {tally.codes}, opening: {tally.stuck()}",
            flush=True,
        )
        os._exit(1)
    # The receive timestamps are the latency figures: keep this process's own full
    # garbage collections (tens of ms with 1,000 streams) out of them, as the server does.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*gc.get_threshold()[:2], 1000)
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
                "refused": tally.refused,
                # every latency, so a run over several processes can merge them
                "latencies_ms": [round(x, 3) for x in lat],
            }
        ),
        flush=True,
    )
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if http is not None:
        await http.close()
    await pool.close()


async def idle(args: argparse.Namespace) -> None:
    """``sub --kind web``: the same subscribers on the web protocol: each logs in over
    gRPC, then opens a WebSocket on ``--web`` (the server's web app URL) with its
    token and reads proto3 JSON frames (batches included).

    ``idle``: subscribers that only stay connected, opened on command.

        ``connect K`` on stdin opens K more at ``--connect-rate`` a second and, once
        each is live or failed for good, prints one JSON line: live, failed, refused
        (attempts retried), dropped, seconds from the command to the last one live,
        and where any still opening are stuck. ``exit`` (or end of input) closes all.
    """
    counter = Counter()
    tally = Tally()
    pool = Pool(args, per_channel=args.per_channel)
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    opened = 0
    while True:
        line = (await _stdin_line()).split()
        if not line or line[0] != "connect":
            break
        k = int(line[1])
        t0 = time.perf_counter()
        dones: list[asyncio.Future[bool]] = []
        last = t0

        def mark(_: asyncio.Future[bool]) -> None:
            nonlocal last
            last = time.perf_counter()

        for j in range(k):
            await _pace(t0, j, args.connect_rate)
            done: asyncio.Future[bool] = loop.create_future()
            done.add_done_callback(mark)
            dones.append(done)
            tasks.append(
                asyncio.create_task(subscriber(args, pool, opened + j, counter, tally, done))
            )
        opened += k
        if dones:
            await asyncio.wait(dones, timeout=STEP_TIMEOUT * 3)
        print(
            json.dumps(
                {
                    "live": tally.live,
                    "failed": tally.failed,
                    "refused": tally.refused,
                    "refusals": tally.codes,
                    "dropped": tally.dropped,
                    "connect_s": last - t0,
                    "opening": tally.stuck(),
                    "connections": len(pool.channels),
                }
            ),
            flush=True,
        )
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await pool.close()


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
    p.add_argument("mode", choices=["sub", "pub", "idle"])
    p.add_argument("--kind", choices=["chat", "raw", "raw-bidi", "web"], required=True)
    p.add_argument(
        "--joins", type=int, default=1, help="raw-bidi: requests acknowledged before live"
    )
    p.add_argument("--target", required=True)
    p.add_argument("--web", default="", help="web: the server's web app URL")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--room", default="bench")
    p.add_argument(
        "--room-size", type=int, default=0, help="subscribers per room (0: all in --room)"
    )
    p.add_argument("--prefix", default="u")
    p.add_argument("--rate", type=float, default=0.0, help="total messages/s (0: blast)")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--window", type=int, default=32, help="unacknowledged sends per publisher")
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--own-rooms", action="store_true", help="each publisher in a room of its own")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument(
        "--connect-rate", type=float, default=1000.0, help="subscribers opened per second"
    )
    p.add_argument(
        "--per-channel", type=int, default=50, help="idle: subscribers on one connection"
    )
    p.add_argument(
        "--keepalive",
        type=float,
        default=0.0,
        help="chat: seconds between a connection's pings (0: the client library's)",
    )
    p.add_argument(
        "--max-seconds", type=float, default=900.0, help="the process ends itself after this"
    )
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run = {"sub": subscribers, "pub": publishers, "idle": idle}[args.mode]
    try:
        asyncio.run(asyncio.wait_for(run(args), args.max_seconds))
    except TimeoutError:
        print(f"load.py {args.mode}: still running after {args.max_seconds} s", file=sys.stderr)
        os._exit(2)


if __name__ == "__main__":
    main()
