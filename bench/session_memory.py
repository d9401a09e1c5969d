"""Where a chatrpc server's memory per idle session goes, by tracemalloc.

``bench/session_memory.py --sessions N`` runs a ``ChatServer`` (SQLite in a
temporary directory, rate limits lifted) in this process with tracemalloc on,
connects ``--warmup`` idle subscribers and then N more from a load process
(``bench/load.py idle``: Login, a ``Chat`` stream, a join into a room of
``--room-size``; ``--per-connection`` on one connection), and compares
snapshots taken before and after the N: Python allocations per session,
grouped by file (chatrpc's own modules, asyncio, grpc's Python and Cython
layer...) and the lines that allocate most. tracemalloc sees what Python
allocates (objects, tasks, dicts, the protobuf bytes chatrpc keeps), not grpc
core's own C allocations (its transport, HTTP/2 buffers), so the VmRSS growth
per session is printed beside it: the difference is mostly grpc core.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _group(filename: str) -> str:
    """Which part of the process a file belongs to."""
    path = filename.replace(os.sep, "/")
    if "/chatrpc/" in path:
        return "chatrpc/" + path.rsplit("/chatrpc/", 1)[1]
    for part in ("grpc", "google/protobuf", "asyncio", "concurrent", "sqlite3"):
        if f"/{part}/" in path:
            return f"{part}/{path.rsplit(f'/{part}/', 1)[1]}"
    return "<other> " + Path(path).name


async def _connect(load: asyncio.subprocess.Process, k: int) -> dict[str, object]:
    assert load.stdin is not None and load.stdout is not None
    load.stdin.write(f"connect {k}\n".encode())
    await load.stdin.drain()
    report: dict[str, object] = json.loads(await load.stdout.readline())
    return report


def _settle() -> None:
    gc.collect()


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from chatrpc.config import ServerConfig
    from chatrpc.hub import Limits
    from chatrpc.server import ChatServer

    tmp = tempfile.mkdtemp(prefix="chatrpc-memory-")
    cap = max(10_000, 2 * (args.sessions + args.warmup))
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        web_port=0,
        store=f"sqlite://{tmp}/memory.db",
        limits=Limits(rate_limit=0, max_sessions=cap),
        login_rate=0,
        max_connections=cap,
    )
    tracemalloc.start(args.frames)
    server = ChatServer(config)
    await server.start()
    load = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "load.py"),
        "idle",
        *("--kind", "chat", "--target", f"127.0.0.1:{server.port}"),
        *("--room", "m", "--room-size", str(args.room_size), "--prefix", "m"),
        *("--connect-rate", str(args.connect_rate), "--per-channel", str(args.per_connection)),
        *("--max-seconds", "600"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"},
    )
    try:
        await _connect(load, args.warmup)
        await asyncio.sleep(2.0)  # let the last joins' work finish before the snapshot
        _settle()
        before, rss0 = tracemalloc.take_snapshot(), rss_kib()
        report = await _connect(load, args.sessions)
        await asyncio.sleep(2.0)
        _settle()
        after, rss1 = tracemalloc.take_snapshot(), rss_kib()
    finally:
        assert load.stdin is not None
        load.stdin.write(b"exit\n")
        await load.stdin.drain()
        await load.wait()
        await server.stop()
    n = args.sessions
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diff = after.filter_traces(filters).compare_to(before.filter_traces(filters), "filename")
    groups: dict[str, int] = {}
    for stat in diff:
        key = _group(stat.traceback[0].filename)
        groups[key] = groups.get(key, 0) + stat.size_diff
    lines = after.filter_traces(filters).compare_to(before.filter_traces(filters), "lineno")
    top = [
        {
            "where": f"{_group(s.traceback[0].filename)}:{s.traceback[0].lineno}",
            "bytes_per_session": s.size_diff / n,
            "blocks_per_session": s.count_diff / n,
        }
        for s in sorted(lines, key=lambda s: -s.size_diff)[: args.top]
    ]
    # Each allocation charged to the innermost chatrpc line it was made under
    # (asyncio's tasks and futures to the chatrpc code that made them), or to
    # grpc's Python layer or the rest when no chatrpc frame is on its stack.
    causes: dict[str, int] = {}
    for stat in after.filter_traces(filters).compare_to(before.filter_traces(filters), "traceback"):
        frame = next(
            (f for f in stat.traceback if "/chatrpc/" in f.filename.replace(os.sep, "/")),
            None,
        )
        if frame is None:
            key = "(no chatrpc frame) " + _group(stat.traceback[0].filename)
        else:
            key = f"{_group(frame.filename)}:{frame.lineno}"
        causes[key] = causes.get(key, 0) + stat.size_diff
    total = sum(groups.values())
    chatrpc_own = sum(v for k, v in groups.items() if k.startswith("chatrpc/"))
    return {
        "sessions": n,
        "live": report.get("live"),
        "per_connection": args.per_connection,
        "room_size": args.room_size,
        "rss_kib_per_session": (rss1 - rss0) / n,
        "python_bytes_per_session": total / n,
        "chatrpc_bytes_per_session": chatrpc_own / n,
        "groups": {
            k: v / n for k, v in sorted(groups.items(), key=lambda kv: -kv[1]) if abs(v) >= n
        },
        "top_lines": top,
        "caused_by": {
            k: v / n
            for k, v in sorted(causes.items(), key=lambda kv: -kv[1])[: args.top]
            if abs(v) >= n
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--room-size", type=int, default=100)
    p.add_argument("--per-connection", type=int, default=1)
    p.add_argument("--connect-rate", type=float, default=500.0)
    p.add_argument("--frames", type=int, default=16, help="traceback depth tracemalloc keeps")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", default="")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    result = asyncio.run(measure(args))
    print(
        f"{result['sessions']} idle sessions ({args.per_connection} per connection, rooms of"
        f" {args.room_size}): RSS {result['rss_kib_per_session']:.1f} KiB a session; Python"
        f" allocations {result['python_bytes_per_session'] / 1024:.1f} KiB, of which chatrpc's"
        f" own modules {result['chatrpc_bytes_per_session'] / 1024:.2f} KiB"
    )
    for k, v in result["groups"].items():
        print(f"  {v:9.0f} B  {k}")
    print("  lines:")
    for t in result["top_lines"]:
        print(
            f"  {t['bytes_per_session']:9.0f} B {t['blocks_per_session']:6.2f} blocks  {t['where']}"
        )
    print("  charged to the innermost chatrpc line on the stack:")
    for k, v in result["caused_by"].items():
        print(f"  {v:9.0f} B  {k}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
