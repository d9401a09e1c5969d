"""ListRooms and ListDirects with unread counts: how long a page of conversations,
each far behind its reader, takes.

Fills a fresh store with ``--rooms`` rooms the reader is a member of, each holding
``--messages`` messages of another user (one in ten mentions the reader), and
``--directs`` DMs of as many messages; starts a ``chatrpc-server`` on it
(127.0.0.1, a free port) and times, from one client, ListRooms of the whole page
(every room counts up to its cap of 999 items: the first call counts them all,
later ones find the counts of unchanged rooms remembered) for the reader and
for a user in none of the rooms (no counting: the baseline), ListDirects, and
the same after the reader marked everything read (nothing left to count). Prints a table and
writes JSON.

    .venv/bin/python bench/unread.py [--rooms 500 --messages 1000] [--store sqlite|redis]
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
from chatrpc.model import Draft, dm_key, room_key
from chatrpc.store import open_store
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

BIN = Path(sys.executable).parent
READER, WRITER = "reader", "writer"


async def timed(calls: int, make: Any) -> dict[str, float]:
    took = []
    for _ in range(calls):
        t = time.perf_counter()
        await make()
        took.append((time.perf_counter() - t) * 1000)
    took.sort()
    return {
        "p50_ms": round(statistics.median(took), 2),
        "p99_ms": round(took[min(len(took) - 1, int(len(took) * 0.99))], 2),
    }


def _text(i: int) -> str:
    return f"@{READER} see this, number {i}" if i % 10 == 0 else f"message number {i}"


async def fill(url: str, rooms: int, messages: int, directs: int) -> float:
    store = open_store(url)
    await store.open()
    started = time.perf_counter()
    try:
        now = int(time.time() * 1000)
        for r in range(rooms):
            name = f"room{r:04d}"
            await store.claim_room(name, WRITER)
            await store.add_member(name, READER)
            drafts = [
                Draft(room_key(name), WRITER, _text(i), now, room=name) for i in range(messages)
            ]
            for start in range(0, len(drafts), 1000):
                await store.append_many(drafts[start : start + 1000])
        for d in range(directs):
            peer = f"peer{d:04d}"
            conv = dm_key(READER, peer)
            drafts = [Draft(conv, peer, _text(i), now, to_user=READER) for i in range(messages)]
            for start in range(0, len(drafts), 1000):
                await store.append_many(drafts[start : start + 1000])
    finally:
        await store.close()
    return time.perf_counter() - started


async def measure(address: str, calls: int, page: int) -> dict[str, Any]:
    ch = channel(address)
    try:
        api = pb_grpc.ChatServiceStub(ch)
        reader = auth_metadata((await login(ch, READER)).token)
        stranger = auth_metadata((await login(ch, "stranger")).token)
        request = pb.ListRoomsRequest(page_size=page)
        directs = pb.ListDirectsRequest(page_size=page)
        out: dict[str, Any] = {}
        started = time.perf_counter()
        answer = await api.ListRooms(request, metadata=reader)
        out["ListRooms, first call: counts every room (ms)"] = round(
            (time.perf_counter() - started) * 1000, 1
        )
        out["unread of the first room"] = answer.rooms[0].unread if answer.rooms else 0
        out["ListRooms again, nothing changed"] = await timed(
            calls, lambda: api.ListRooms(request, metadata=reader)
        )
        out["ListRooms, a non-member (no counting)"] = await timed(
            calls, lambda: api.ListRooms(request, metadata=stranger)
        )
        started = time.perf_counter()
        await api.ListDirects(directs, metadata=reader)
        out["ListDirects, first call: counts every DM (ms)"] = round(
            (time.perf_counter() - started) * 1000, 1
        )
        out["ListDirects again, nothing changed"] = await timed(
            calls, lambda: api.ListDirects(directs, metadata=reader)
        )
        stream = api.Chat(metadata=reader)
        for room in answer.rooms:
            mark = pb.MarkRead(room=room.name, seq=room.last_seq)
            await stream.write(pb.ClientEvent(mark_read=mark))
        await stream.write(pb.ClientEvent(join=pb.Join(room=answer.rooms[-1].name)))
        async for event in stream:  # the join answers once every mark is stored
            if event.WhichOneof("event") == "joined":
                break
        stream.cancel()
        out["ListRooms, reader up to date"] = await timed(
            calls, lambda: api.ListRooms(request, metadata=reader)
        )
        return out
    finally:
        await ch.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=500)
    p.add_argument("--directs", type=int, default=100)
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    p.add_argument("--redis-url", default="", help="a redis:// URL of an empty database")
    p.add_argument("--json", default="", help="write the results here too")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="chatrpc-bench-unread-") as tmp:
        if args.store == "sqlite":
            url = f"sqlite://{Path(tmp) / 'chat.db'}"
        else:
            if not args.redis_url:
                p.error("--store redis needs --redis-url of an empty database")
            url = args.redis_url
        fill_s = asyncio.run(fill(url, args.rooms, args.messages, args.directs))
        cmd = [str(BIN / "chatrpc-server"), "--host", "127.0.0.1", "--port", "0"]
        cmd += ["--store", url, "--log-level", "warning", "--rate-limit", "0"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        try:
            assert proc.stdout is not None
            match = re.search(r"listening on (\S+):(\d+)", proc.stdout.readline())
            if not match:
                print("the server did not start", file=sys.stderr)
                return 1
            page = max(args.rooms, args.directs)
            results = asyncio.run(measure(f"127.0.0.1:{match.group(2)}", args.calls, page))
        finally:
            proc.terminate()
            proc.wait(30)
    report = {
        "store": args.store,
        "rooms": args.rooms,
        "directs": args.directs,
        "messages each": args.messages,
        "fill_s": round(fill_s, 1),
        **results,
    }
    for key, value in report.items():
        print(f"{key:<40} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
