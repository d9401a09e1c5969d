"""Server CPU of one reconnect, against raw grpcio's connection plus stream.

``bench/reconnect_cost.py --clients N`` measures, one after the other on fresh
servers on 127.0.0.1, each paced at ``--rate`` a second so neither server queues:

* **raw**: ``bench/raw_server.py``; N subscribers of ``bench/load.py idle --kind
  raw`` each open a connection and a ``Subscribe`` stream (live at its headers).
* **chatrpc**: ``chatrpc-server`` (SQLite, rate limits lifted). N users log in
  and join three rooms of 100 each, a message goes into every room, and all
  disconnect. Then, measured, each reconnects as a client with a saved token does:
  a new connection, a ``Chat`` call, three joins with ``after_seq`` (the last seq
  it saw, so nothing is replayed but the resume is checked), live once the three
  ``joined`` arrive. No Login. The clients dropped their calls (no goodbye) two
  seconds before, within the presence grace: nobody is announced, as after a
  network blip or a restart.
* **chatrpc, every return announced** (``--presence-grace 0``): rooms fill up
  again as their members come back, so a join announces the user to the members
  already back (about 50 on average), as when users return after the grace.

Server CPU (user+system from /proc) over the N connects, divided by N. Also with
``--presence-off`` (``--presence-max-sessions 1``: no join announced) to show what
announcing costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from storm import FROM_DIR, cpu_seconds, start_server
from storm import profile as storm_profile

from chatrpc import SERVER_GRPC_EXPERIMENTS
from chatrpc.client import ChatStream, channel, login

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def _server(cmd: list[str]) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "GRPC_EXPERIMENTS": os.environ.get("GRPC_EXPERIMENTS", SERVER_GRPC_EXPERIMENTS),
    }
    return start_server(cmd, env)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def raw_cost(n: int, rate: float, kind: str = "raw") -> float:
    """Server CPU of a raw connection plus stream (``raw-bidi``: a bidirectional
    stream with three requests acknowledged before it is live, a reconnect's
    three joins without any chat)."""
    proc, address = _server([sys.executable, str(HERE / "raw_server.py"), "--port", "0"])
    load = subprocess.Popen(
        [
            *(sys.executable, str(HERE / "load.py"), "idle", "--kind", kind, "--joins", "3"),
            *("--target", address, "--connect-rate", str(rate), "--per-channel", "1"),
            *("--max-seconds", "300"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"},
    )
    assert load.stdin is not None and load.stdout is not None
    try:
        time.sleep(1.0)
        cpu0 = cpu_seconds(proc.pid)
        load.stdin.write(f"connect {n}\n")
        load.stdin.flush()
        report = json.loads(load.stdout.readline())
        cpu1 = cpu_seconds(proc.pid)
        if report["live"] != n:
            raise SystemExit(f"{kind}: {report['live']} of {n} live")
    finally:
        load.stdin.write("exit\n")
        load.stdin.close()
        load.wait(60)
        _stop(proc)
    return (cpu1 - cpu0) / n


def rooms_of(i: int, n: int) -> list[str]:
    r = max(1, n // 100)
    return [f"a{i // 100}", f"b{i % r}", f"c{(i * 7919) % r}"]


async def _joined(stream: ChatStream, count: int) -> dict[str, int]:
    """Reads until ``count`` joined events; returns room -> last_seq."""
    out: dict[str, int] = {}
    async for event in stream:
        if event.WhichOneof("event") == "joined":
            out[event.joined.room] = event.joined.last_seq
            if len(out) == count:
                return out
        elif event.WhichOneof("event") == "error":
            raise SystemExit(f"join refused: {event.error}")
    raise SystemExit("stream ended before the joins were answered")


async def _chat(n: int, rate: float, address: str, pid: int, profile: str = "") -> float:
    ch = channel(address)
    tokens = [(await login(ch, f"r{i}")).token for i in range(n)]
    await ch.close()
    last: list[dict[str, int]] = []
    # Setup: everyone joins, one message per room, everyone leaves.
    opened = []
    for i in range(n):
        c = channel(address)
        s = ChatStream(c, tokens[i])
        for room in rooms_of(i, n):
            await s.join(room)
        last.append(await _joined(s, 3))
        opened.append((c, s))
    for i in range(0, n, 100):
        _, s = opened[i]
        for room in rooms_of(i, n):
            await s.send("hello", room=room, client_msg_id=f"m{i}{room}")
    await asyncio.sleep(1.0)
    for c, s in opened:
        s.cancel()
        await c.close()
    await asyncio.sleep(2.0)
    # Measured: reconnect and resume, paced.
    reopened = []
    spy = storm_profile(pid, profile) if profile else None  # the reconnects only
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()

    async def one(i: int) -> None:
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        c = channel(address)
        s = ChatStream(c, tokens[i])
        for room in rooms_of(i, n):
            await s.join(room, after_seq=last[i].get(room, 0) + (1 if i % 100 == 0 else 0))
        await _joined(s, 3)
        reopened.append((c, s))

    await asyncio.gather(*(one(i) for i in range(n)))
    cpu1 = cpu_seconds(pid)
    if spy is not None:
        spy.send_signal(2)
        spy.wait(60)
    for c, s in reopened:
        s.cancel()
        await c.close()
    return (cpu1 - cpu0) / n


def chat_cost(
    n: int, rate: float, options: list[str], profile: str = "", server_from: str = ""
) -> float:
    with tempfile.TemporaryDirectory(prefix="chatrpc-reconnect-") as tmp:
        cmd = [
            *(
                [sys.executable, "-c", FROM_DIR, str(Path(server_from).resolve())]
                if server_from
                else [str(BIN / "chatrpc-server")]
            ),
            *("--host", "127.0.0.1", "--port", "0", "--web-port", "0"),
            *("--store", f"sqlite://{tmp}/r.db", "--rate-limit", "0", "--login-rate", "0"),
            *("--log-level", "warning"),
            *options,
        ]
        proc, address = _server(cmd)
        try:
            return asyncio.run(_chat(n, rate, address, proc.pid, profile))
        finally:
            _stop(proc)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rate", type=float, default=200.0, help="connects a second")
    p.add_argument("--presence-off", action="store_true", help="also measure without presence")
    p.add_argument("--out", default="")
    p.add_argument(
        "--server-from",
        default="",
        metavar="DIR",
        help="run the server from the chatrpc package in DIR (`git archive COMMIT chatrpc`)",
    )
    p.add_argument(
        "--profile",
        default="",
        help="py-spy raw stacks of the chatrpc server while clients reconnect",
    )
    args = p.parse_args()
    raw = raw_cost(args.clients, args.rate)
    bidi = raw_cost(args.clients, args.rate, "raw-bidi")
    chat = chat_cost(args.clients, args.rate, [], args.profile, args.server_from)
    announced = chat_cost(args.clients, args.rate, ["--presence-grace", "0"], "", args.server_from)
    result = {
        "clients": args.clients,
        "rate": args.rate,
        "raw_ms": 1000 * raw,
        "raw_bidi_ms": 1000 * bidi,
        "chat_ms": 1000 * chat,
        "chat_announced_ms": 1000 * announced,
    }
    line = (
        f"{args.clients} at {args.rate:g}/s: raw connection+stream {1000 * raw:.2f} ms of"
        f" server CPU; raw bidirectional stream + three acknowledged requests"
        f" {1000 * bidi:.2f} ms ({bidi / raw:.2f}x); chatrpc reconnect (Chat + three joins"
        f" with after_seq, rooms of 100) back within the presence grace {1000 * chat:.2f} ms"
        f" ({chat / raw:.2f}x, {chat / bidi:.2f}x raw bidi); every return announced"
        f" {1000 * announced:.2f} ms ({announced / raw:.2f}x, {announced / bidi:.2f}x raw bidi)"
    )
    if args.presence_off:
        options = ["--presence-max-sessions", "1"]
        quiet = chat_cost(args.clients, args.rate, options, server_from=args.server_from)
        result["chat_no_presence_ms"] = 1000 * quiet
        line += (
            f"; without presence {1000 * quiet:.2f} ms ({quiet / raw:.2f}x,"
            f" {quiet / bidi:.2f}x raw bidi)"
        )
    print(line, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
