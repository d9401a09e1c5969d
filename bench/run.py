"""``make bench``: chatrpc against a raw grpcio fan-out baseline, in the same run.

Starts both servers and the load generators as separate processes on
127.0.0.1, runs each scenario for a bounded time, measures delivered messages
per second, end-to-end latency (a timestamp in each payload) and server CPU
(from /proc), prints a table and writes JSON. Ratios between chatrpc and the
baseline in one run are the headline: absolute numbers depend on the machine.

chatrpc runs with the SQLite store (synchronous=FULL) in a temporary
directory and ``--rate-limit 0``: the per-user send rate limit is lifted so it
does not cap the figures.

Idle populations (``--population``, ``--storm``) run on fresh servers of their
own: idle subscribers connect at ``--connect-rate`` from several load processes;
server RSS per subscriber at each stage and server CPU over an idle window with
everyone connected, for chatrpc and the raw baseline.

Both servers run with the same GRPC_EXPERIMENTS (``--grpc-experiments``; by
default what ``chatrpc-server`` uses), so the baseline is the same transport;
the load generators keep grpc's defaults, as the client library does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chatrpc import SERVER_GRPC_EXPERIMENTS

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
#: Extra environment of every server process this run starts (set in main()).
SERVER_ENV: dict[str, str] = {}
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
            env={**os.environ, **SERVER_ENV, **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            self.proc.kill()
            raise SystemExit(f"server did not start: {cmd}: {line!r}")
        self.address = m.group(1)
        web = re.search(r"web app at (\S+)", line)
        #: The web app's URL (chatrpc-server), for WebSocket subscribers.
        self.web = web.group(1) if web else ""

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
    """A load generator: on grpc's defaults, as the client library is, whatever
    GRPC_EXPERIMENTS this run gives the servers."""
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    return subprocess.Popen(
        [sys.executable, str(HERE / "load.py"), *args],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def read_json(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
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
    sub_processes: int = 1,
) -> Result:
    """Subscribers on ``server``, spread over ``sub_processes`` load processes;
    publishers there too, or on ``pub_server`` (two nodes). CPU is the subscribers'
    server's (plus the publishers' when it is another)."""
    pub_server = pub_server or server
    if kind == "web":
        prefix += "w"  # the chat run's users are on the same server
    pids = {server.proc.pid, pub_server.proc.pid}
    procs = max(1, min(sub_processes, subs))
    counts = [subs // procs + (j < subs % procs) for j in range(procs)]
    subs_procs = [
        load(
            "sub",
            "--kind",
            kind,
            "--target",
            server.address,
            "--count",
            str(count),
            "--prefix",
            f"{prefix}s{j}x",
            "--channels",
            str(channels_for(count)),
            "--batch",
            str(batch),
            *(["--web", server.web] if kind == "web" else []),
        )
        for j, count in enumerate(counts)
    ]
    children = list(subs_procs)
    try:
        for sub in subs_procs:
            assert sub.stdout is not None
            line = sub.stdout.readline().strip()
            if line != "ready":
                raise SystemExit(f"{kind}: {subs} subscribers did not get ready: {line}")
        pub = load(
            "pub",
            "--kind",
            "chat" if kind == "web" else kind,  # the same publishers for web subscribers
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
        children.append(pub)
        time.sleep(0.5)  # let publishers connect and ramp up before the window opens
        cpu0, t0 = sum(cpu_seconds(p) for p in pids), time.perf_counter()
        _tell(subs_procs, "start")
        time.sleep(max(1.0, duration - 1.5))
        _tell(subs_procs, "stop")
        cpu1, t1 = sum(cpu_seconds(p) for p in pids), time.perf_counter()
        reports = [read_json(sub) for sub in subs_procs]
        read_json(pub)
    finally:
        for child in children:  # whatever failed, no load process outlives the scenario
            if child.poll() is None:
                child.kill()
                child.wait()
    delivered = sum(r["delivered"] / r["window_s"] for r in reports if r["window_s"])
    latencies = sorted(x for r in reports for x in r["latencies_ms"])
    cpu = cpu1 - cpu0
    return Result(
        server=kind,
        scenario=scenario,
        subscribers=subs,
        publish_rate=rate,
        delivered_per_s=delivered,
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
        cpu_us_per_delivered=(cpu / (delivered * (t1 - t0)) * 1e6) if delivered else 0.0,
        server_cpu_pct=100 * cpu / (t1 - t0),
    )


def _tell(procs: list[subprocess.Popen[str]], line: str) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(line + "\n")
        proc.stdin.flush()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


@dataclass
class Stage:
    subscribers: int
    live: int
    failed: int
    #: attempts refused (or timed out) and retried
    refused: int
    #: streams that ended after they were live
    dropped: int
    #: from the command to the last subscriber of the stage live (slowest load process)
    connect_s: float
    rss_kib: int
    #: (RSS now - RSS before any subscriber) / subscribers
    kib_per_subscriber: float
    #: CPU time per subscriber added in this stage: the server's, and the load processes'
    server_cpu_ms: float
    load_cpu_ms: float


@dataclass
class Population:
    server: str
    scenario: str
    connect_rate: float
    load_processes: int
    per_connection: int
    room_size: int
    baseline_rss_kib: int
    stages: list[Stage]
    #: server CPU (user+system, % of one core) over the idle window after the last stage
    idle_cpu_pct: float
    idle_window_s: float
    #: seconds between keepalive pings (0: the defaults, server 75 s, clients 60 s)
    keepalive_s: float
    #: the load processes' CPU over the same window, all together
    load_idle_cpu_pct: float
    #: RSS growth per subscriber between the last two stages (no fixed costs)
    marginal_kib_per_subscriber: float
    refusals: dict[str, int]


def settled_rss(pid: int, limit: float = 6.0) -> int:
    """RSS once it stops moving (two samples 0.5 s apart within 0.5%), or after ``limit`` s."""
    time.sleep(1.0)
    prev = rss_kib(pid)
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        time.sleep(0.5)
        now = rss_kib(pid)
        if abs(now - prev) <= 0.005 * prev:
            return now
        prev = now
    return prev


def population(
    kind: str,
    cmd: list[str],
    stages: list[int],
    scenario: str,
    args: argparse.Namespace,
    room_size: int,
) -> Population:
    """Idle subscribers on a fresh server, connected in ``stages`` (cumulative counts),
    each stage at ``--connect-rate`` a second over several load processes; chatrpc
    subscribers join rooms of ``room_size`` (0: all one room)."""
    server = Server(cmd)
    n = stages[-1]
    procs = max(1, -(-n // args.per_load_process))
    loads = [
        load(
            "idle",
            "--kind",
            kind,
            "--target",
            server.address,
            "--prefix",
            f"{scenario[:2]}{j}u",
            "--room",
            f"{scenario[:2]}{j}",
            "--room-size",
            str(room_size),
            "--connect-rate",
            str(args.connect_rate / procs),
            "--per-channel",
            str(args.per_connection),
            "--max-seconds",
            "600",
            *(["--keepalive", str(args.keepalive)] if args.keepalive else []),
        )
        for j in range(procs)
    ]
    pid = server.proc.pid
    out: list[Stage] = []
    refusals: dict[str, int] = {}
    try:
        base = settled_rss(pid)  # the load processes start meanwhile
        have = 0
        lpids = [p.pid for p in loads]
        for target in stages:
            add = target - have
            cpu0, lcpu0 = cpu_seconds(pid), sum(cpu_seconds(p) for p in lpids)
            for j, proc in enumerate(loads):
                assert proc.stdin is not None
                proc.stdin.write(f"connect {add // procs + (j < add % procs)}\n")
                proc.stdin.flush()
            reports = []
            for proc in loads:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                if not line:
                    raise SystemExit(f"{kind} {scenario}: a load process ended early")
                reports.append(json.loads(line))
            cpu1, lcpu1 = cpu_seconds(pid), sum(cpu_seconds(p) for p in lpids)
            have = target
            rss = settled_rss(pid)
            stage = Stage(
                subscribers=target,
                live=sum(r["live"] for r in reports),
                failed=sum(r["failed"] for r in reports),
                refused=sum(r["refused"] for r in reports),
                dropped=sum(r["dropped"] for r in reports),
                connect_s=max(r["connect_s"] for r in reports),
                rss_kib=rss,
                kib_per_subscriber=(rss - base) / target,
                server_cpu_ms=1000 * (cpu1 - cpu0) / add,
                load_cpu_ms=1000 * (lcpu1 - lcpu0) / add,
            )
            for r in reports:
                for what, count in r["refusals"].items():
                    refusals[what] = refusals.get(what, 0) + count
                if r["opening"]:
                    print(f"  {kind} {scenario}: still opening {r['opening']}", flush=True)
            out.append(stage)
            print(_stage_row(kind, scenario, stage), flush=True)
        # Keepalive pings are most of what an idle chatrpc server does, and they bunch:
        # a window of one ping period holds one ping of every connection.
        window = args.idle_window or args.keepalive or client_keepalive_s()
        cpu0, lcpu0, t0 = cpu_seconds(pid), sum(cpu_seconds(p) for p in lpids), time.perf_counter()
        time.sleep(window)
        cpu1, lcpu1, t1 = cpu_seconds(pid), sum(cpu_seconds(p) for p in lpids), time.perf_counter()
    finally:
        for proc in loads:
            try:
                assert proc.stdin is not None
                proc.stdin.write("exit\n")
                proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        for proc in loads:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
        server.stop()
    marginal = 0.0
    if len(out) > 1:
        a, b = out[-2], out[-1]
        marginal = (b.rss_kib - a.rss_kib) / (b.subscribers - a.subscribers)
    result = Population(
        server=kind,
        scenario=scenario,
        connect_rate=args.connect_rate,
        load_processes=procs,
        per_connection=args.per_connection,
        room_size=room_size if kind == "chat" else 0,
        baseline_rss_kib=base,
        stages=out,
        idle_cpu_pct=100 * (cpu1 - cpu0) / (t1 - t0),
        idle_window_s=t1 - t0,
        keepalive_s=args.keepalive if kind == "chat" else 0,
        load_idle_cpu_pct=100 * (lcpu1 - lcpu0) / (t1 - t0),
        marginal_kib_per_subscriber=marginal,
        refusals=refusals,
    )
    print(
        f"{kind:5} {scenario:11} idle {window:.0f} s with {n} connected:"
        f" server CPU {result.idle_cpu_pct:.2f}%, load processes {result.load_idle_cpu_pct:.2f}%"
        + (
            f"; {marginal:.1f} KiB per subscriber from {a.subscribers} to {b.subscribers}"
            if len(out) > 1
            else ""
        ),
        flush=True,
    )
    return result


def client_keepalive_s() -> float:
    """How often a chatrpc client (chatrpc.client.channel) pings an idle connection."""
    from chatrpc.client import CHANNEL_OPTIONS

    return float(dict(CHANNEL_OPTIONS).get("grpc.keepalive_time_ms", 0)) / 1000


def _stage_row(kind: str, scenario: str, s: Stage) -> str:
    return (
        f"{kind:5} {scenario:11} N={s.subscribers:<6} live={s.live:<6} failed={s.failed}"
        f" refused={s.refused} dropped={s.dropped} connect={s.connect_s:6.1f}s"
        f" rss={s.rss_kib / 1024:7.1f}MiB {s.kib_per_subscriber:5.1f} KiB/subscriber"
        f" cpu/subscriber: server {s.server_cpu_ms:.2f} ms, load {s.load_cpu_ms:.2f} ms"
    )


def chat_cmd(
    tmp: str, name: str, subscribers: int = 0, keepalive: float = 0, store: str = ""
) -> list[str]:
    """chatrpc-server for the benchmarks: SQLite in ``tmp`` (or ``store``, a URL),
    send and login rates lifted; session and connection caps above ``subscribers``
    (and no admission control) so capacity, not a cap, is measured;
    ``keepalive``: seconds between the server's pings (0: its default)."""
    cmd = [
        str(BIN / "chatrpc-server"),
        "--port",
        "0",
        "--web-port",
        "0",
        "--store",
        store or f"sqlite://{tmp}/{name}.db",
        "--rate-limit",
        "0",
        "--login-rate",
        "0",
        "--log-level",
        "warning",
    ]
    if subscribers:
        cap = str(max(10_000, 2 * subscribers))
        cmd += ["--max-sessions", cap, "--max-connections", cap]
        # Populations measure what connecting costs; admission control (which
        # bench/load.py does not honour) is measured by the reconnect storm.
        cmd += ["--max-opening", "0"]
    if keepalive:
        cmd += ["--keepalive", str(keepalive)]
    return cmd


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
                    nodes.append(Server(chat_cmd(tmp, "", store=f"redis://127.0.0.1:{port}/0")))
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
    p.add_argument("--subscribers", default="10,100,1000", help="fan-out scenarios' C ('': none)")
    p.add_argument(
        "--population",
        default="1000,5000,10000",
        metavar="N,N,...",
        help="idle subscribers connected in these stages (cumulative) on fresh servers, chatrpc"
        " and raw: RSS per subscriber at each, idle CPU at the last ('' or 0: skip)",
    )
    p.add_argument(
        "--storm",
        type=int,
        default=10_000,
        metavar="N",
        help="N chatrpc subscribers connecting in one go at --connect-rate (0: skip)",
    )
    p.add_argument(
        "--connect-rate",
        type=float,
        default=1000.0,
        help="idle subscribers connecting per second, over all load processes",
    )
    p.add_argument(
        "--per-load-process", type=int, default=2500, help="idle subscribers per load process"
    )
    p.add_argument(
        "--per-connection",
        type=int,
        default=1,
        help="idle subscribers sharing one connection (default: a connection each, as"
        " users' clients have)",
    )
    p.add_argument(
        "--room-size",
        type=int,
        default=100,
        help="idle chatrpc subscribers per room (0: all in one room)",
    )
    p.add_argument(
        "--one-room",
        type=int,
        default=5000,
        metavar="N",
        help="N chatrpc subscribers connecting in one go at --connect-rate, all into"
        " one room (0: skip)",
    )
    p.add_argument(
        "--reconnect-storm",
        type=int,
        default=10_000,
        metavar="N",
        help="N client-library clients in three rooms of 100 each, across a SIGTERM restart"
        " of their server (bench/storm.py; 0: skip)",
    )
    p.add_argument(
        "--raw-storm",
        type=int,
        default=1,
        metavar="0|1",
        help="after --reconnect-storm, the same storm with raw grpcio (bench/raw_storm.py)",
    )
    p.add_argument(
        "--storm-processes", type=int, default=4, help="worker processes of --reconnect-storm"
    )
    p.add_argument(
        "--keepalive",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="idle populations: seconds between pings, of the chatrpc server and of its"
        " clients alike (0: their defaults, 75 s of silence and 60 s)",
    )
    p.add_argument(
        "--idle-window",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="idle CPU is measured over this long (default: one keepalive period of the"
        " clients, 60 s, which holds one ping of every connection; pings bunch, so"
        " shorter windows vary more)",
    )
    p.add_argument(
        "--target-rates",
        default="10:5000,100:10000,1000:10000",
        metavar="C:MSGS,...",
        help="also run steady load at these delivered msgs/s for these C (the issue's"
        " latency targets; '' to skip)",
    )
    p.add_argument(
        "--grpc-experiments",
        metavar="LIST",
        help="GRPC_EXPERIMENTS of both servers (default: $GRPC_EXPERIMENTS if set, else"
        " chatrpc-server's own, grpc core's iomgr TCP; '' for grpc's defaults)",
    )
    p.add_argument(
        "--sub-processes",
        type=int,
        default=1,
        help="load processes the fan-out scenarios' subscribers are spread over",
    )
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
    p.add_argument(
        "--metrics-cost",
        type=int,
        default=1000,
        metavar="C",
        help="fan-out to C subscribers with Prometheus metrics on (--metrics-port, scraped"
        " every --scrape-interval s) against off, alternating servers (0: skip)",
    )
    p.add_argument(
        "--metrics-delivered",
        type=float,
        default=20_000,
        metavar="MSGS",
        help="delivered msgs/s of the metrics on/off runs: a steady load, so the server"
        " CPU it takes is the figure (a blast's rate swings with the shared machine)",
    )
    p.add_argument("--metrics-rounds", type=int, default=3, help="runs of each, metrics on and off")
    p.add_argument("--scrape-interval", type=float, default=1.0, metavar="SECONDS")
    p.add_argument(
        "--search",
        type=int,
        default=100_000,
        metavar="N",
        help="Search timed at N stored messages, SQLite and (with redis-server) Redis,"
        " by bench/search.py (0: skip)",
    )
    args = p.parse_args()
    experiments = args.grpc_experiments
    if experiments is None:
        experiments = os.environ.get("GRPC_EXPERIMENTS", SERVER_GRPC_EXPERIMENTS)
    SERVER_ENV["GRPC_EXPERIMENTS"] = experiments
    print(f"servers' GRPC_EXPERIMENTS={experiments!r}", flush=True)
    # Thousands of connections: every process started from here inherits the raised limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stages = [int(x) for x in args.population.split(",") if x.strip() and int(x)]
    targets = {
        int(c): float(rate)
        for c, rate in (pair.split(":") for pair in args.target_rates.split(",") if pair.strip())
    }
    most = max([*stages, args.storm, args.one_room])
    if (
        most
        and hard != resource.RLIM_INFINITY
        and most // max(1, args.per_connection) + 1000 > hard
    ):
        print(
            f"warning: {most} subscribers on {most // max(1, args.per_connection)} connections,"
            f" but at most {hard} open files per process (ulimit -Hn)",
            flush=True,
        )
    tmp = tempfile.mkdtemp(prefix="chatrpc-bench-")
    chat = Server(chat_cmd(tmp, "chat"))
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
    extra: dict[str, Any] = {}
    try:
        fanouts = [int(x) for x in args.subscribers.split(",") if x.strip() and int(x)]
        for n, subs in enumerate(fanouts):
            blast = {}
            # web: the same chatrpc server and publishers, subscribers on WebSockets.
            for kind, server in (("raw", raw), ("chat", chat), ("web", chat)):
                r = fanout(
                    server,
                    kind,
                    subs,
                    0,
                    args.duration,
                    "blast",
                    f"b{n}",
                    args.batch,
                    sub_processes=args.sub_processes,
                )
                results.append(r)
                blast[kind] = r.delivered_per_s / subs
                print(_row(r), flush=True)
            rate = 0.5 * min(blast["raw"], blast["chat"])
            steady = [("steady 50%", rate)]
            if subs in targets:
                # The latency targets are set at these delivered rates, whatever the blast.
                steady.append((f"steady {targets[subs] / 1000:g}k/s", targets[subs] / subs))
            for k, (scenario, rate) in enumerate(steady):
                for kind, server in (("raw", raw), ("chat", chat), ("web", chat)):
                    r = fanout(
                        server,
                        kind,
                        subs,
                        rate,
                        args.duration,
                        scenario,
                        f"s{n}{k}",
                        args.batch,
                        sub_processes=args.sub_processes,
                    )
                    results.append(r)
                    print(_row(r), flush=True)
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
    if args.metrics_cost:
        extra["metrics_cost"] = metrics_cost(tmp, args)
    # Idle populations last, each on a fresh server, so earlier runs' memory does not count.
    populations: list[Population] = []
    if stages:
        raw_cmd = [sys.executable, str(HERE / "raw_server.py"), "--port", "0"]
        populations.append(population("raw", raw_cmd, stages, "population", args, 0))
        # The shape of a chat session in raw grpcio: a bidirectional stream.
        populations.append(population("raw-bidi", raw_cmd, stages, "population", args, 0))
        chat_pop = chat_cmd(tmp, "population", stages[-1], args.keepalive)
        populations.append(population("chat", chat_pop, stages, "population", args, args.room_size))
    if args.storm:
        chat_storm = chat_cmd(tmp, "storm", args.storm, args.keepalive)
        populations.append(
            population("chat", chat_storm, [args.storm], "storm", args, args.room_size)
        )
    if args.one_room:
        one = chat_cmd(tmp, "one-room", args.one_room, args.keepalive)
        populations.append(population("chat", one, [args.one_room], "one room", args, 0))
    if args.search:
        extra["search"] = search_figures(tmp, args.search)
    storm: dict[str, Any] | None = None
    if args.reconnect_storm:
        storm = reconnect_storm(args, tmp)
        if args.raw_storm:
            storm["raw"] = raw_storm(args)
    print()
    print(table(results))
    if populations:
        print()
        print(population_table(populations))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "servers_grpc_experiments": SERVER_ENV["GRPC_EXPERIMENTS"],
                },
                "results": [asdict(r) for r in results],
                "populations": [asdict(p) for p in populations],
                "reconnect_storm": storm,
                **extra,
            },
            indent=1,
        )
    )
    print(f"\nwrote {out}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Scraper(threading.Thread):
    """GETs a metrics URL every ``interval`` s until stopped, as Prometheus would."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.stopped = threading.Event()
        self.scrapes = 0
        self.bytes = 0

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            with urllib.request.urlopen(self.url, timeout=10) as resp:
                body = resp.read()
            if b"chatrpc_sessions_open" not in body:
                raise SystemExit(f"{self.url} did not answer chatrpc's metrics")
            self.scrapes += 1
            self.bytes = len(body)


def metrics_cost(tmp: str, args: argparse.Namespace) -> dict[str, Any]:
    """The same steady fan-out on two fresh chatrpc servers, one with ``--metrics-port``
    scraped throughout, one without; ``--metrics-rounds`` runs of each, alternating
    (and which goes first alternating too), so drifts of a shared machine hit both."""
    subs, port = args.metrics_cost, free_port()
    off = Server(chat_cmd(tmp, "metrics-off"))
    on = Server([*chat_cmd(tmp, "metrics-on"), "--metrics-port", str(port)])
    url = f"http://127.0.0.1:{port}/metrics"
    runs: dict[str, list[Result]] = {"off": [], "on": []}
    scrapes = size = 0
    try:
        for n in range(args.metrics_rounds):
            order = ("off", "on") if n % 2 == 0 else ("on", "off")
            for label in order:
                scraper = Scraper(url, args.scrape_interval) if label == "on" else None
                if scraper:
                    scraper.start()
                try:
                    server = on if label == "on" else off
                    r = fanout(
                        server,
                        "chat",
                        subs,
                        args.metrics_delivered / subs,
                        args.duration,
                        f"metrics {label}",
                        f"m{label}{n}",
                        args.batch,
                        sub_processes=args.sub_processes,
                    )
                finally:
                    if scraper:
                        scraper.stopped.set()
                        scraper.join(15)
                        scrapes, size = scrapes + scraper.scrapes, scraper.bytes
                runs[label].append(r)
                print(_row(r), flush=True)
    finally:
        off.stop()
        on.stop()
    if not scrapes:
        raise SystemExit("metrics cost: no scrape succeeded")
    mean = {k: _mean(v) for k, v in runs.items()}
    out = {
        "subscribers": subs,
        "rounds": args.metrics_rounds,
        "scrape_interval_s": args.scrape_interval,
        "scrapes": scrapes,
        "scrape_bytes": size,
        **{f"{k}_{field}": value for k, m in mean.items() for field, value in m.items()},
        "delivered_ratio_on_off": mean["on"]["delivered_per_s"] / mean["off"]["delivered_per_s"],
        "cpu_ratio_on_off": mean["on"]["cpu_us_per_delivered"]
        / mean["off"]["cpu_us_per_delivered"],
    }
    print(
        f"metrics on/off, steady C={subs}, {args.metrics_rounds} runs each, {scrapes} scrapes"
        f" of {size} B, {args.metrics_delivered:.0f} msgs/s offered: delivered/s"
        f" {out['delivered_ratio_on_off']:.3f}x, server CPU per delivered"
        f" {out['cpu_ratio_on_off']:.3f}x ({out['off_server_cpu_pct']:.1f}% ->"
        f" {out['on_server_cpu_pct']:.1f}% of a core)",
        flush=True,
    )
    return out


def _mean(results: list[Result]) -> dict[str, float]:
    fields = ("delivered_per_s", "p50_ms", "p99_ms", "cpu_us_per_delivered", "server_cpu_pct")
    return {f: sum(getattr(r, f) for r in results) / len(results) for f in fields}


def search_figures(tmp: str, messages: int) -> dict[str, Any]:
    """bench/search.py's report for each store it can run (see its docstring)."""
    stores = ["sqlite"] + (["redis"] if shutil.which("redis-server") else [])
    out: dict[str, Any] = {}
    for store in stores:
        path = Path(tmp) / f"search-{store}.json"
        cmd = [sys.executable, str(HERE / "search.py"), "--messages", str(messages)]
        cmd += ["--store", store, "--calls", "10", "--json", str(path)]
        print(f"search, {messages} messages, {store}:", flush=True)
        subprocess.run(cmd, check=True, timeout=1800)
        out[store] = json.loads(path.read_text())
    return out


def raw_storm(args: argparse.Namespace) -> dict[str, Any]:
    """bench/raw_storm.py with the reconnect storm's size: raw grpcio's floor for it."""
    sys.path.insert(0, str(HERE))
    import raw_storm as raw

    try:
        return raw.run_raw_storm(args.reconnect_storm, args.storm_processes, 150.0, 180.0)
    except SystemExit as exc:
        print(f"raw storm failed: {exc}", flush=True)
        return {"failed": str(exc)}


def reconnect_storm(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    """bench/storm.py's reconnect storm, with this run's server environment."""
    sys.path.insert(0, str(HERE))
    import storm

    opts = argparse.Namespace(
        connect_rate=150.0, sample=5, senders=2, max_seconds=180.0, server_args="", profile=""
    )
    env = {**os.environ, **SERVER_ENV}
    try:
        return storm.run_storm(args.reconnect_storm, args.storm_processes, tmp, env, opts)
    except SystemExit as exc:
        # The figures of the other scenarios are still worth printing.
        print(f"reconnect storm failed: {exc}", flush=True)
        return {"failed": str(exc)}


def _row(r: Result) -> str:
    return (
        f"{r.server:5} {r.scenario:11} C={r.subscribers:<5} delivered/s={r.delivered_per_s:>9.0f}"
        f" p50={r.p50_ms:7.2f}ms p99={r.p99_ms:8.2f}ms cpu/msg={r.cpu_us_per_delivered:6.1f}us"
        f" cpu={r.server_cpu_pct:5.1f}%"
    )


def table(results: list[Result]) -> str:
    lines = [
        "| scenario | C | raw msgs/s | chatrpc msgs/s | ratio | raw p50/p99 ms | chatrpc p50/p99 ms"
        " | raw us/msg | chatrpc us/msg | web msgs/s | web p50/p99 ms | web us/msg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
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
            + _web_cells(by.get((scenario, subs, "web")))
        )
    return "\n".join(lines)


def _web_cells(w: Result | None) -> str:
    """The WebSocket subscribers' columns (the same server and publishers as chatrpc's)."""
    if w is None:
        return " - | - | - |"
    return (
        f" {w.delivered_per_s:.0f} | {w.p50_ms:.1f} / {w.p99_ms:.1f}"
        f" | {w.cpu_us_per_delivered:.1f} |"
    )


def population_table(pops: list[Population]) -> str:
    lines = [
        "| server | scenario | N | live | failed | refused | connect s | RSS MiB"
        " | KiB/subscriber | server / load CPU ms per connect |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in pops:
        for s in p.stages:
            lines.append(
                f"| {p.server} | {p.scenario} | {s.subscribers} | {s.live} | {s.failed}"
                f" | {s.refused} | {s.connect_s:.1f} | {s.rss_kib / 1024:.1f}"
                f" | {s.kib_per_subscriber:.1f} | {s.server_cpu_ms:.2f} / {s.load_cpu_ms:.2f} |"
            )
    lines.append("")
    lines.append(
        "| server | scenario | N | room size | idle server CPU % | marginal KiB/subscriber |"
    )
    lines.append("|---|---|---|---|---|---|")
    for p in pops:
        marginal = f"{p.marginal_kib_per_subscriber:.1f}" if len(p.stages) > 1 else "-"
        lines.append(
            f"| {p.server} | {p.scenario} | {p.stages[-1].subscribers}"
            f" | {p.room_size or ('-' if p.server.startswith('raw') else 'all')}"
            f" | {p.idle_cpu_pct:.2f} | {marginal} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
