"""Search at 100,000 stored messages: how long a Search call takes.

Fills a fresh store with ``--messages`` messages (through the store, in batches)
over ``--rooms`` rooms and a few DM conversations, all readable by one user;
each message is ten words of a 5,000-word vocabulary, every other one holds the
word ``common`` and one in 10,000 the word ``rareword``. Then starts a
``chatrpc-server`` on it (127.0.0.1, a free port) and times Search calls from
one client: a word on half the messages, a rare word, two words, a prefix, one
room only, the second page. With SQLite it also times what a delete adds: the
index rewrite that drops every old copy of the deleted words. Prints a table
and writes JSON.

    .venv/bin/python bench/search.py --messages 100000 [--store sqlite|redis]

With ``--store redis`` and no ``--redis-url`` it starts a redis-server of its
own on a free port (no persistence) and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chatrpc.client import auth_metadata, channel, login
from chatrpc.model import Draft, dm_key, dm_users, room_key
from chatrpc.store import open_store
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

BIN = Path(sys.executable).parent
USER = "bencher"
VOCABULARY = [f"w{i}" for i in range(5000)]


def text_of(i: int, rng: random.Random) -> str:
    words = rng.choices(VOCABULARY, k=10)
    if i % 2:
        words.append("common")
    if i % 10_000 == 5_000:
        words.append("rareword")
    return " ".join(words)


async def fill(url: str, messages: int, rooms: int) -> float:
    store = open_store(url)
    await store.open()
    rng = random.Random(1)
    convs = [room_key(f"room{r:03d}") for r in range(rooms)]
    convs += [dm_key(USER, f"peer{p}") for p in range(5)]
    started = time.perf_counter()
    try:
        for r in range(rooms):
            await store.add_member(f"room{r:03d}", USER)
        now = int(time.time() * 1000) - messages
        for start in range(0, messages, 500):
            drafts = []
            for i in range(start, min(messages, start + 500)):
                conv = convs[i % len(convs)]
                room = conv[1:] if conv.startswith("#") else ""
                peer = "" if room else next(u for u in dm_users(conv) if u != USER)
                sender = USER if room else peer
                to_user = "" if room else USER
                drafts.append(
                    Draft(conv, sender, text_of(i, rng), now + i, room=room, to_user=to_user)
                )
            await store.append_many(drafts)
    finally:
        await store.close()
    return time.perf_counter() - started


async def timed(calls: int, make: Any) -> dict[str, Any]:
    took = []
    hits = 0
    for _ in range(calls):
        t = time.perf_counter()
        response = await make()
        took.append((time.perf_counter() - t) * 1000)
        hits = len(response.hits)
    took.sort()
    return {
        "p50_ms": round(statistics.median(took), 2),
        "p99_ms": round(took[min(len(took) - 1, int(len(took) * 0.99))], 2),
        "hits": hits,
    }


async def measure(address: str, calls: int) -> dict[str, Any]:
    ch = channel(address)
    try:
        api = pb_grpc.ChatServiceStub(ch)
        md = auth_metadata((await login(ch, USER)).token)

        def search(query: str, **kw: Any) -> Any:
            return api.Search(pb.SearchRequest(query=query, **kw), metadata=md, timeout=120)

        out: dict[str, Any] = {}
        out["common word (half match), 20 hits"] = await timed(calls, lambda: search("common"))
        out["common word, 100 hits"] = await timed(calls, lambda: search("common", limit=100))
        out["two words"] = await timed(calls, lambda: search("w17 common"))
        out["prefix w12*"] = await timed(calls, lambda: search("w12*"))
        out["one room, common word"] = await timed(calls, lambda: search("common", room="room007"))
        first = await search("common")
        out["second page"] = await timed(
            calls, lambda: search("common", page_token=first.next_page_token)
        )
        out["rare word, first page"] = await timed(calls, lambda: search("rareword"))
        # Every page of the rare word: the whole history is looked at once.
        started = time.perf_counter()
        token, pages, found = "", 0, 0
        while True:
            page = await search("rareword", page_token=token)
            pages += 1
            found += len(page.hits)
            token = page.next_page_token
            if not token:
                break
        out["rare word, every page"] = {
            "total_ms": round((time.perf_counter() - started) * 1000, 1),
            "pages": pages,
            "hits": found,
        }
        return out
    finally:
        await ch.close()


def purge_cost(path: Path, deletes: int) -> dict[str, Any]:
    """What erasing a message's words costs the SQLite writer (the index rewrite)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA secure_delete = ON")
    took = []
    try:
        for seq in range(1, deletes + 1):
            t = time.perf_counter()
            conn.execute(
                "UPDATE messages SET text = '', deleted = 1 WHERE seq = ? AND conv_id ="
                " (SELECT id FROM conversations WHERE key = '#room000')",
                (seq,),
            )
            took.append((time.perf_counter() - t) * 1000)
    finally:
        conn.close()
    took.sort()
    return {"p50_ms": round(statistics.median(took), 1), "max_ms": round(took[-1], 1)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp),
            *("--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def run(args: argparse.Namespace, tmp: str, url: str) -> dict[str, Any]:
    fill_s = asyncio.run(fill(url, args.messages, args.rooms))
    cmd = [str(BIN / "chatrpc-server"), "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--store", url, "--log-level", "warning", "--rate-limit", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert proc.stdout is not None
        match = re.search(r"listening on (\S+):(\d+)", proc.stdout.readline())
        if not match:
            raise SystemExit("the server did not start")
        results = asyncio.run(measure(f"127.0.0.1:{match.group(2)}", args.calls))
    finally:
        proc.terminate()
        proc.wait(30)
    report: dict[str, Any] = {"store": args.store, "messages": args.messages}
    report["fill_s"] = round(fill_s, 1)
    report.update(results)
    if args.store == "sqlite":
        report["a delete's index rewrite"] = purge_cost(Path(tmp) / "chat.db", 5)
    return report


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--rooms", type=int, default=50)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    p.add_argument("--redis-url", default="", help="a redis:// URL of an empty database")
    p.add_argument("--json", default="", help="write the results here too")
    args = p.parse_args()
    redis: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="chatrpc-bench-search-") as tmp:
        try:
            if args.store == "sqlite":
                url = f"sqlite://{Path(tmp) / 'chat.db'}"
            elif args.redis_url:
                url = args.redis_url
            else:
                redis, url = start_redis(tmp)
            report = run(args, tmp, url)
        finally:
            if redis is not None:
                redis.terminate()
                redis.wait(15)
    for key, value in report.items():
        print(f"{key:<36} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
