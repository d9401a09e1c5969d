"""``make bench``: chatrpc against a raw grpcio fan-out baseline, in the same run.

Starts both servers and the load generators as separate processes on
127.0.0.1, runs each scenario for a bounded time, measures delivered messages
per second, end-to-end latency (a timestamp in each payload) and server CPU
(from /proc), prints a table and writes JSON. Ratios between chatrpc and the
baseline in one run are the headline: absolute numbers depend on the machine.

chatrpc runs with the SQLite store (synchronous=FULL) in a temporary
directory and ``--rate-limit 0``: the per-user send rate limit is lifted so it
does not cap the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


def channels_for(subscribers: int) -> int:
    """Connections for the subscribers: up to 8, more to keep at most 50 streams on one
    (chatrpc-server allows 100 concurrent streams per connection by default)."""
    return min(subscribers, max(8, -(-subscribers // 50)))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Server:
    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            self.proc.kill()
            raise SystemExit(f"server did not start: {cmd}: {line!r}")
        self.address = m.group(1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def load(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "load.py"), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def read_json(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, float]:
    assert proc.stdout is not None
    out, _ = proc.communicate(timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@dataclass
class Result:
    server: str
    scenario: str
    subscribers: int
    publish_rate: float
    delivered_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_delivered: float
    server_cpu_pct: float


def fanout(
    server: Server,
    kind: str,
    subs: int,
    rate: float,
    duration: float,
    scenario: str,
    prefix: str,
    batch: int = 64,
    pub_server: Server | None = None,
) -> Result:
    """Subscribers on ``server``; publishers there too, or on ``pub_server`` (two nodes).
    CPU is the subscribers' server's (plus the publishers' when it is another)."""
    pub_server = pub_server or server
    pids = {server.proc.pid, pub_server.proc.pid}
    sub = load(
        "sub",
        "--kind",
        kind,
        "--target",
        server.address,
        "--count",
        str(subs),
        "--prefix",
        f"{prefix}s",
        "--channels",
        str(channels_for(subs)),
        "--batch",
        str(batch),
    )
    assert sub.stdout is not None and sub.stdin is not None
    if sub.stdout.readline().strip() != "ready":
        raise SystemExit(f"{kind}: subscribers did not get ready")
    pub = load(
        "pub",
        "--kind",
        kind,
        "--target",
        pub_server.address,
        "--count",
        "4",
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--prefix",
        f"{prefix}p",
    )
    time.sleep(0.5)  # let publishers connect and ramp up before the window opens
    cpu0, t0 = sum(cpu_seconds(p) for p in pids), time.perf_counter()
    sub.stdin.write("start\n")
    sub.stdin.flush()
    time.sleep(max(1.0, duration - 1.5))
    sub.stdin.write("stop\n")
    sub.stdin.flush()
    cpu1, t1 = sum(cpu_seconds(p) for p in pids), time.perf_counter()
    res = read_json(sub)
    read_json(pub)
    delivered = res["delivered"] / res["window_s"] if res["window_s"] else 0.0
    cpu = cpu1 - cpu0
    return Result(
        server=kind,
        scenario=scenario,
        subscribers=subs,
        publish_rate=rate,
        delivered_per_s=delivered,
        p50_ms=res["p50_ms"],
        p99_ms=res["p99_ms"],
        cpu_us_per_delivered=(cpu / (delivered * (t1 - t0)) * 1e6) if delivered else 0.0,
        server_cpu_pct=100 * cpu / (t1 - t0),
    )


def idle_memory(server: Server, kind: str, n: int, prefix: str) -> float:
    before = rss_kib(server.proc.pid)
    sub = load(
        "sub",
        "--kind",
        kind,
        "--target",
        server.address,
        "--count",
        str(n),
        "--prefix",
        prefix,
        "--channels",
        str(channels_for(n)),
    )
    assert sub.stdout is not None and sub.stdin is not None
    if sub.stdout.readline().strip() != "ready":
        raise SystemExit(f"{kind}: {n} idle subscribers did not connect")
    time.sleep(1.0)
    after = rss_kib(server.proc.pid)
    sub.stdin.write("start\nstop\n")
    sub.stdin.flush()
    read_json(sub)
    return (after - before) / n


def publish_throughput(server: Server, publishers: int, duration: float) -> float:
    pub = load(
        "pub",
        "--kind",
        "chat",
        "--target",
        server.address,
        "--count",
        str(publishers),
        "--duration",
        str(duration),
        "--prefix",
        "pt",
        "--room",
        "commit",
        "--own-rooms",
    )
    res = read_json(pub, timeout=duration + 120)
    return res["acked"] / duration


def two_nodes(tmp: str, subs: int, duration: float, batch: int) -> list[Result]:
    """Publishers on one chatrpc server, subscribers on another, sharing a Redis."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    redis = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            tmp,
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nodes: list[Server] = []
    out: list[Result] = []
    try:
        for _ in range(2):
            for _attempt in range(50):  # redis-server takes a moment to listen
                try:
                    nodes.append(
                        Server(
                            [
                                str(BIN / "chatrpc-server"),
                                "--port",
                                "0",
                                "--store",
                                f"redis://127.0.0.1:{port}/0",
                                "--rate-limit",
                                "0",
                                "--login-rate",
                                "0",
                                "--log-level",
                                "warning",
                            ]
                        )
                    )
                    break
                except SystemExit:
                    time.sleep(0.1)
        a, b = nodes
        blast = fanout(b, "chat", subs, 0, duration, "2-node blast", "rb", batch, pub_server=a)
        out.append(blast)
        print(_row(blast), flush=True)
        rate = 0.5 * blast.delivered_per_s / subs
        steady = fanout(b, "chat", subs, rate, duration, "2-node steady", "rs", batch, pub_server=a)
        out.append(steady)
        print(_row(steady), flush=True)
    finally:
        for node in nodes:
            node.stop()
        redis.terminate()
        redis.wait(15)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    p.add_argument("--subscribers", default="10,100,1000")
    p.add_argument("--idle", type=int, default=1000, help="idle subscribers for memory")
    p.add_argument("--out", default="bench-results/bench.json")
    p.add_argument(
        "--batch",
        type=int,
        default=64,
        help="events per frame chatrpc subscribers ask for (1: no batching)",
    )
    p.add_argument("--profile", metavar="SVG", help="record the chatrpc server with py-spy")
    p.add_argument(
        "--two-node",
        type=int,
        default=100,
        metavar="C",
        help="subscribers for the two-node run over Redis (0: skip; needs redis-server)",
    )
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="chatrpc-bench-")
    chat = Server(
        [
            str(BIN / "chatrpc-server"),
            "--port",
            "0",
            "--db",
            f"{tmp}/chat.db",
            "--rate-limit",
            "0",
            "--login-rate",
            "0",
            "--log-level",
            "warning",
        ]
    )
    raw = Server([sys.executable, str(HERE / "raw_server.py"), "--port", "0"])
    spy = None
    if args.profile:
        spy = subprocess.Popen(
            [
                str(BIN / "py-spy"),
                "record",
                "--rate",
                "200",
                "--pid",
                str(chat.proc.pid),
                "-o",
                args.profile,
                "--format",
                "raw" if args.profile.endswith(".txt") else "flamegraph",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    results: list[Result] = []
    extra: dict[str, float] = {}
    try:
        for n, subs in enumerate(int(x) for x in args.subscribers.split(",")):
            blast = {}
            for kind, server in (("raw", raw), ("chat", chat)):
                r = fanout(server, kind, subs, 0, args.duration, "blast", f"b{n}", args.batch)
                results.append(r)
                blast[kind] = r.delivered_per_s / subs
                print(_row(r), flush=True)
            rate = 0.5 * min(blast.values())
            for kind, server in (("raw", raw), ("chat", chat)):
                r = fanout(
                    server, kind, subs, rate, args.duration, "steady 50%", f"s{n}", args.batch
                )
                results.append(r)
                print(_row(r), flush=True)
        for kind, server in (("raw", raw), ("chat", chat)):
            extra[f"idle_kib_per_subscriber_{kind}"] = idle_memory(
                server, kind, args.idle, f"i{kind}"
            )
            print(
                f"idle memory per subscriber ({kind}, {args.idle}): "
                f"{extra[f'idle_kib_per_subscriber_{kind}']:.1f} KiB",
                flush=True,
            )
        if args.two_node and shutil.which("redis-server"):
            results.extend(two_nodes(tmp, args.two_node, args.duration, args.batch))
        extra["committed_per_s_50_publishers"] = publish_throughput(chat, 50, args.duration)
        print(
            f"committed msgs/s, 50 publishers, a room each (chat, SQLite): "
            f"{extra['committed_per_s_50_publishers']:.0f}",
            flush=True,
        )
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        chat.stop()
        raw.stop()
    print()
    print(table(results))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "results": [asdict(r) for r in results],
                **extra,
            },
            indent=1,
        )
    )
    print(f"\nwrote {out}")


def _row(r: Result) -> str:
    return (
        f"{r.server:5} {r.scenario:11} C={r.subscribers:<5} delivered/s={r.delivered_per_s:>9.0f}"
        f" p50={r.p50_ms:7.2f}ms p99={r.p99_ms:8.2f}ms cpu/msg={r.cpu_us_per_delivered:6.1f}us"
        f" cpu={r.server_cpu_pct:5.1f}%"
    )


def table(results: list[Result]) -> str:
    lines = [
        "| scenario | C | raw msgs/s | chatrpc msgs/s | ratio | raw p50/p99 ms | chatrpc p50/p99 ms"
        " | raw us/msg | chatrpc us/msg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(r.scenario, r.subscribers, r.server): r for r in results}
    for (scenario, subs, server), r in by.items():
        if server != "chat" or (scenario, subs, "raw") not in by:
            continue
        b = by[(scenario, subs, "raw")]
        ratio = r.delivered_per_s / b.delivered_per_s if b.delivered_per_s else 0
        lines.append(
            f"| {scenario} | {subs} | {b.delivered_per_s:.0f} | {r.delivered_per_s:.0f}"
            f" | {ratio:.2f}x"
            f" | {b.p50_ms:.1f} / {b.p99_ms:.1f} | {r.p50_ms:.1f} / {r.p99_ms:.1f}"
            f" | {b.cpu_us_per_delivered:.1f} | {r.cpu_us_per_delivered:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
