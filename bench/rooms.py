"""ListRooms with many rooms: how long a page takes at 100,000 rooms.

Fills a fresh store with ``--rooms`` rooms (through the store, in batches), starts
a ``chatrpc-server`` on it (127.0.0.1, a free port), then times ListRooms calls
from one client: the first page (default size and the maximum), a page deep in
the listing (reached by paging), a name prefix search, and a join that creates
a room. Prints a table and writes JSON.

    .venv/bin/python bench/rooms.py --rooms 100000 [--store sqlite|redis]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chatrpc.client import auth_metadata, channel, login
from chatrpc.store import open_store
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

BIN = Path(sys.executable).parent


async def fill(url: str, rooms: int) -> float:
    store = open_store(url)
    await store.open()
    started = time.perf_counter()
    try:
        for start in range(0, rooms, 50):
            names = [f"room{i:06d}" for i in range(start, min(rooms, start + 50))]
            await asyncio.gather(*(store.claim_room(n, "loader") for n in names))
    finally:
        await store.close()
    return time.perf_counter() - started


async def timed(calls: int, make: Any) -> dict[str, float]:
    took = []
    size = 0
    for _ in range(calls):
        t = time.perf_counter()
        response = await make()
        took.append((time.perf_counter() - t) * 1000)
        size = response.ByteSize()
    took.sort()
    return {
        "p50_ms": round(statistics.median(took), 2),
        "p99_ms": round(took[min(len(took) - 1, int(len(took) * 0.99))], 2),
        "bytes": size,
    }


async def measure(address: str, calls: int) -> dict[str, Any]:
    ch = channel(address)
    try:
        api = pb_grpc.ChatServiceStub(ch)
        md = auth_metadata((await login(ch, "bencher")).token)
        out: dict[str, Any] = {}
        out["first page (100)"] = await timed(
            calls, lambda: api.ListRooms(pb.ListRoomsRequest(), metadata=md)
        )
        out["first page (500)"] = await timed(
            calls, lambda: api.ListRooms(pb.ListRoomsRequest(page_size=500), metadata=md)
        )
        token = ""
        pages = 0
        started = time.perf_counter()
        while True:
            page = await api.ListRooms(
                pb.ListRoomsRequest(page_size=500, page_token=token), metadata=md
            )
            pages += 1
            token = page.next_page_token
            if not token or pages == 100:
                break
        out["pages walked (500 each)"] = pages
        out["walk total s"] = round(time.perf_counter() - started, 2)
        deep = token
        out["a page 50,000 rooms in (500)"] = await timed(
            calls,
            lambda: api.ListRooms(pb.ListRoomsRequest(page_size=500, page_token=deep), metadata=md),
        )
        out["prefix search (100)"] = await timed(
            calls, lambda: api.ListRooms(pb.ListRoomsRequest(prefix="room0999"), metadata=md)
        )
        return out
    finally:
        await ch.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=100_000)
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    p.add_argument("--redis-url", default="", help="a redis:// URL of an empty database")
    p.add_argument("--json", default="", help="write the results here too")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="chatrpc-bench-rooms-") as tmp:
        if args.store == "sqlite":
            url = f"sqlite://{Path(tmp) / 'chat.db'}"
        else:
            if not args.redis_url:
                p.error("--store redis needs --redis-url of an empty database")
            url = args.redis_url
        fill_s = asyncio.run(fill(url, args.rooms))
        cmd = [str(BIN / "chatrpc-server"), "--host", "127.0.0.1", "--port", "0"]
        cmd += ["--store", url, "--log-level", "warning", "--rate-limit", "0"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        try:
            assert proc.stdout is not None
            match = re.search(r"listening on (\S+):(\d+)", proc.stdout.readline())
            if not match:
                print("the server did not start", file=sys.stderr)
                return 1
            results = asyncio.run(measure(f"127.0.0.1:{match.group(2)}", args.calls))
        finally:
            proc.terminate()
            proc.wait(30)
    report = {"store": args.store, "rooms": args.rooms, "fill_s": round(fill_s, 1), **results}
    for key, value in report.items():
        print(f"{key:<32} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
