"""Raw grpcio's floor for a reconnect storm, in the shape of ``bench/storm.py``.

``bench/raw_storm.py --clients N --processes P`` starts ``bench/raw_server.py`` on
a fixed port of 127.0.0.1 and P worker processes holding N raw clients in all:
each a channel of its own with the client library's options
(``chatrpc.client.CHANNEL_OPTIONS``) and a bidirectional ``/bench.Raw/Session``
stream, live once three requests (a reconnect's three joins) are acknowledged.
Then the server is stopped with SIGTERM and started again on the same port;
each client, seeing its stream end, waits for its channel to be ready (grpc
core reconnects it underneath, as for the library's clients) and opens its
stream again. Measured as ``storm.py`` does: when each client is live again,
counted from the new server's ready line, and server and worker CPU. No chat:
no login, no store, no presence, no resume; what grpcio and these processes
cost for a storm of that size on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import storm

from chatrpc.client import CHANNEL_OPTIONS

HERE = Path(__file__).resolve().parent
JOINS = 3


def _identity(data: bytes) -> bytes:
    return data


class RawClient:
    """One channel and its stream, reopened whenever it ends."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.live = asyncio.Event()
        self.back_at = 0.0
        self.attempts = 0

    async def _open(self) -> Any:
        call = self.channel.stream_stream(
            "/bench.Raw/Session", request_serializer=_identity, response_deserializer=_identity
        )()
        for j in range(JOINS):
            await call.write(f"join{j}".encode())
        for _ in range(JOINS):
            if await call.read() == grpc.aio.EOF:
                raise ConnectionError("stream ended")
        return call

    async def run(self, restarted: asyncio.Event) -> None:
        """Keeps the stream open; notes when it is live again after the restart."""
        while True:
            self.attempts += 1
            try:
                await self.channel.channel_ready()
                call = await self._open()
            except (grpc.aio.AioRpcError, ConnectionError):
                await asyncio.sleep(0.05)
                continue
            if restarted.is_set() and not self.back_at:
                self.back_at = time.time()
            self.live.set()
            try:
                while await call.read() != grpc.aio.EOF:
                    pass
            except grpc.aio.AioRpcError:
                pass  # the server went away: open it again
            self.live.clear()


async def worker(args: argparse.Namespace) -> None:
    restarted = asyncio.Event()
    clients: list[RawClient] = []
    tasks = []
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "exit":
            break
        if line[0] == "setup":
            t0 = time.time()
            for i in range(args.count):
                await asyncio.sleep(max(0.0, t0 + i / args.connect_rate - time.time()))
                clients.append(RawClient(args.target))
                tasks.append(asyncio.create_task(clients[-1].run(restarted)))
            await asyncio.wait_for(asyncio.gather(*(c.live.wait() for c in clients)), 300)
            report: dict[str, Any] = {"ready": len(clients), "setup_s": time.time() - t0}
        elif line[0] == "restarted":
            restarted.set()
            report = {}
        elif line[0] == "wait":
            waits = [asyncio.create_task(_back(c)) for c in clients]
            await asyncio.wait(waits, timeout=float(line[1]))
            times = sorted(c.back_at for c in clients if c.back_at)
            report = {
                "times": times,
                "missing": len(clients) - len(times),
                "attempts": sum(c.attempts for c in clients),
            }
        else:
            continue
        print(json.dumps(report), flush=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*(c.channel.close() for c in clients))


async def _back(client: RawClient) -> None:
    while not client.back_at:
        await client.live.wait()
        if not client.back_at:
            await asyncio.sleep(0.01)


def _raw_server(port: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(HERE / "raw_server.py"), "--port", str(port)]
    return storm.start_server(cmd, dict(os.environ))[0]


def run_raw_storm(clients: int, processes: int, rate: float, limit: float) -> dict[str, Any]:
    """One raw storm (see the module docstring); returns its figures."""
    port = storm._free_port()
    server = _raw_server(port)
    per = -(-clients // processes)
    workers = [
        subprocess.Popen(
            [
                *(sys.executable, str(HERE / "raw_storm.py"), "worker"),
                *("--target", f"127.0.0.1:{port}", "--count", str(min(per, clients - j * per))),
                *("--connect-rate", str(rate / processes)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for j in range(processes)
        if j * per < clients
    ]

    def tell(line: str) -> list[dict[str, Any]]:
        return storm.tell_workers(workers, line, "raw storm")

    try:
        ready = sum(r["ready"] for r in tell("setup"))
        tell("restarted")  # from now on a client that is live again is back
        server.terminate()
        server.wait(60)
        server = _raw_server(port)
        t_up = time.time()
        sampler = storm.Sampler([server.pid, *(w.pid for w in workers)])
        sampler.start()
        reports = tell(f"wait {limit}")
        sampler.stopped.set()
        sampler.join()
    finally:
        storm.stop_workers(workers)
        server.terminate()
        server.wait(60)
    times = sorted(t - t_up for r in reports for t in r["times"])
    last = times[-1] if times else float("nan")
    cpu_up, cpu_last = sampler.at(t_up), sampler.at(t_up + last)
    server_cpu = cpu_last[0] - cpu_up[0]
    load_cpu = sum(cpu_last[1:]) - sum(cpu_up[1:])
    result = {
        "clients": clients,
        "ready": ready,
        "back": len(times),
        "missing": sum(r["missing"] for r in reports),
        "p50_back_s": storm._pct(times, 0.5),
        "p90_back_s": storm._pct(times, 0.9),
        "last_back_s": last,
        "attempts": sum(r["attempts"] for r in reports),
        "server_cpu_s": server_cpu,
        "server_cpu_ms_per_client": 1000 * server_cpu / max(1, len(times)),
        "load_cpu_s": load_cpu,
        "loadavg": os.getloadavg(),
    }
    print(
        f"raw storm: {len(times)} of {ready} live again, the last {last:.1f} s after the"
        f" server was up (p50 {result['p50_back_s']:.1f} s, p90 {result['p90_back_s']:.1f} s);"
        f" server CPU {server_cpu:.1f} s ({result['server_cpu_ms_per_client']:.2f} ms a"
        f" client), workers {load_cpu:.1f} s",
        flush=True,
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", nargs="?", default="run", choices=["run", "worker"])
    p.add_argument("--clients", type=int, default=10_000)
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--connect-rate", type=float, default=150.0, help="first connects a second")
    p.add_argument("--max-seconds", type=float, default=180.0, help="longest storm waited for")
    p.add_argument("--target", default="")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--out", default="")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.mode == "worker":
        asyncio.run(worker(args))
        return
    result = run_raw_storm(args.clients, args.processes, args.connect_rate, args.max_seconds)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
