"""Reconnect storm: clients of the client library come back after a server restart.

``bench/storm.py --clients N --processes P`` (also ``bench/run.py --reconnect-storm N``)
starts ``chatrpc-server`` (SQLite, rate limits lifted) on a fixed port of 127.0.0.1
and P worker processes (``storm.py worker``) holding N :class:`ChatClient` s in
all, each in three rooms of 100 (N/100 rooms in each of three layers). A few
clients per worker send a message into each of their rooms. Then the server is
stopped with SIGTERM and started again on the same port and database; each
client reconnects with the library's own backoff and jitter and resumes its
three rooms from its last seq (its saved token: no Login). A few senders send
again as soon as they are back, so the others' resumes have something to fill
in. Measured: when each client is back and resumed, counted from the moment the
new server printed its ready line; server and worker CPU over the storm; and a
sample of clients (``--sample`` per worker) checks every room it is in against
History: each stored message delivered once, in order, none missing.

Everything is bounded in time (``--max-seconds``) and talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc

if os.environ.get("CHATRPC_STORM_CLIENT_FROM"):
    # Workers measure the client library of another checkout (an older commit, say):
    # its directory goes first, and the editable install's finder steps aside.
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
    sys.path.insert(0, os.environ["CHATRPC_STORM_CLIENT_FROM"])

from chatrpc.client import ChatClient, State, channel, login
from chatrpc.v1 import chat_pb2 as pb

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
#: Each room has this many members: three layers of rooms, every client in one of each.
ROOM = 100


def rooms_of(i: int, n: int) -> list[str]:
    """The three rooms of client ``i`` of ``n``: each room of each layer gets 100."""
    r = max(1, n // ROOM)
    return [f"a{i // ROOM}", f"b{i % r}", f"c{(i * 7919) % r}"]


#: Runs chatrpc-server from the package in the directory argv[1] (``--server-from``),
#: with the editable install's finder out of the way.
FROM_DIR = (
    "import sys; d = sys.argv.pop(1);"
    " sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)];"
    " sys.path.insert(0, d); from chatrpc.cli_server import main; main()"
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


# -- the worker: N/P library clients --------------------------------------------------


class Member:
    """One library client and what the storm measures of it."""

    def __init__(self, i: int, n: int, sampled: bool) -> None:
        self.i = i
        self.rooms = rooms_of(i, n)
        self.sampled = sampled
        #: Seqs delivered per room (sampled clients only).
        self.seqs: dict[str, list[int]] = {r: [] for r in self.rooms}
        self.back = asyncio.Event()
        #: Whether it is back and resumed after the restart.
        self.resumed = False
        #: Set when a sampled client receives a message.
        self.changed = asyncio.Event()
        self.client: ChatClient | None = None

    def on_event(self, event: pb.ServerEvent | None) -> None:
        if self.sampled and event is not None and event.WhichOneof("event") == "message":
            m = event.message
            if m.room in self.seqs:
                self.seqs[m.room].append(m.seq)
                self.changed.set()

    def on_state(self, state: State, detail: str) -> None:
        if state is State.CONNECTED and detail == "reconnected":
            self.back.set()


async def _login(ch: grpc.aio.Channel, user: str) -> str:
    for attempt in range(30):
        try:
            return (await login(ch, user, timeout=30)).token
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ):
                raise
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.0))
    raise RuntimeError(f"login of {user} kept failing")


async def _setup(args: argparse.Namespace, members: list[Member]) -> dict[str, Any]:
    """Logs every member in, starts its client and joins its three rooms, paced."""
    t0 = time.perf_counter()
    ch = channel(args.target)
    failed = 0

    async def one(k: int, m: Member) -> None:
        nonlocal failed
        delay = t0 + k / args.connect_rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            token = await _login(ch, f"s{m.i}")
            m.client = ChatClient(
                args.target,
                f"s{m.i}",
                token,
                on_event=m.on_event,
                on_state=m.on_state,
                # The library's default since it stopped sharing connections; said
                # here too so that older versions of it can be measured the same way.
                channel_options=[("grpc.use_local_subchannel_pool", 1)],
            )
            await m.client.start()
            for room in m.rooms:
                await m.client.join(room)
        except Exception as exc:  # a setup failure is counted and reported
            failed += 1
            print(f"worker: setup of s{m.i} failed: {exc!r}", file=sys.stderr, flush=True)

    await asyncio.gather(*(one(k, m) for k, m in enumerate(members)))
    await ch.close()
    return {"ready": len(members) - failed, "failed": failed, "setup_s": time.perf_counter() - t0}


async def _send_before(args: argparse.Namespace, members: list[Member]) -> dict[str, Any]:
    """The senders send into each of their rooms (once every worker's clients joined)."""
    senders = [m for m in members[: args.senders] if m.client is not None]
    await asyncio.gather(
        *(m.client.send(f"before {m.i}", room=r) for m in senders if m.client for r in m.rooms)
    )
    return {"sent": len(senders) * 3}


async def _history_seqs(client: ChatClient, room: str) -> list[int]:
    out: list[int] = []
    while True:
        page = await client.history(room=room, after_seq=out[-1] if out else 0, limit=500)
        out.extend(msg.seq for msg in page.messages)
        if not page.has_more:
            return out


async def _check(members: list[Member], timeout: float) -> dict[str, Any]:
    """Each sampled client's rooms against History: every seq once, in order."""
    rooms = ok = 0
    bad: list[str] = []
    for m in members:
        # Only clients that are back: one still away has not resumed yet.
        if not m.sampled or m.client is None or not m.resumed:
            continue
        for room in m.rooms:
            rooms += 1
            want = await _history_seqs(m.client, room)
            # Live messages may still be on their way: wait for the last one.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while want and m.seqs[room][-1:] != want[-1:]:
                        m.changed.clear()
                        await m.changed.wait()
            # What arrived after History was read (senders send again) is not compared.
            got = [s for s in m.seqs[room] if not want or s <= want[-1]]
            if got == want:
                ok += 1
            elif len(bad) < 5:
                lost = sorted(set(want) - set(got))[:5]
                twice = sorted({s for s in got if got.count(s) > 1})[:5]
                bad.append(f"s{m.i} #{room}: {len(got)} of {len(want)}, lost {lost}, twice {twice}")
    return {"rooms": rooms, "ok": ok, "bad": bad}


async def _storm(args: argparse.Namespace, members: list[Member], limit: float) -> dict[str, Any]:
    """Waits until every member is back and resumed (or ``limit`` s); senders send again."""
    times: list[float] = []

    async def one(m: Member) -> None:
        assert m.client is not None
        await m.back.wait()
        await m.client.wait_resumed()
        times.append(time.time())
        m.resumed = True
        if m.i < members[0].i + args.senders:
            for r in m.rooms:
                await m.client.send(f"after {m.i}", room=r)

    live = [m for m in members if m.client is not None]
    done, pending = await asyncio.wait([asyncio.create_task(one(m)) for m in live], timeout=limit)
    for t in pending:
        t.cancel()
    errors = [repr(t.exception()) for t in done if t.exception() is not None][:3]
    check = await _check(members, 20.0)
    reconnects = sum(m.client.reconnects for m in live if m.client is not None)
    failures: dict[str, int] = {}
    for m in live:
        # getattr: an older client library (--client-from) does not count failures.
        if m.client is not None and getattr(m.client, "failures", 0) > 1:
            last = getattr(m.client, "_last_failure", "")
            why = last.split(":")[0] + ":" + last[-40:]
            failures[why] = failures.get(why, 0) + 1
    return {
        "back": len(times),
        "missing": len(live) - len(times),
        "times": sorted(times),
        "reconnects": reconnects,
        "failures": sum(getattr(m.client, "failures", 0) for m in live if m.client is not None),
        "failed_again": failures,
        "errors": errors,
        "check": check,
    }


async def worker(args: argparse.Namespace) -> None:
    members = [
        Member(i, args.total, sampled=(k < args.sample))
        for k, i in enumerate(range(args.first, args.first + args.count))
    ]
    # A sample spread over the worker's clients, not only its first ones.
    step = max(1, args.count // max(1, args.sample))
    for k, m in enumerate(members):
        m.sampled = k % step == 0 and k // step < args.sample
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "exit":
            break
        if line[0] == "setup":
            report = await _setup(args, members)
        elif line[0] == "send":
            report = await _send_before(args, members)
        elif line[0] == "wait":
            report = await _storm(args, members, float(line[1]))
        else:
            continue
        print(json.dumps(report), flush=True)
    await asyncio.gather(*(m.client.aclose() for m in members if m.client is not None))


# -- the controller ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Starts a server (chatrpc-server or bench/raw_server.py) and waits for its
    ready line; returns it and the address it listens on."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.split("listening on ")[1].split()[0]


class Sampler(threading.Thread):
    """Samples the CPU seconds of some processes every 0.1 s."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.samples: list[tuple[float, list[float]]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                self.samples.append((time.time(), [cpu_seconds(p) for p in self.pids]))
            self.stopped.wait(0.1)

    def at(self, t: float) -> list[float]:
        """The CPU seconds of the last sample at or before ``t``."""
        before = [s for s in self.samples if s[0] <= t]
        return (before[-1] if before else self.samples[0])[1]


def profile(pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` (raw stacks for a .txt, else a flame graph) until SIGINT.

    Without pausing it: py-spy's default stops the process for each sample,
    which slows a busy server enough to turn a storm into a collapse."""
    fmt = "raw" if out.endswith(".txt") else "flamegraph"
    return subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--nonblocking",
            "--rate",
            "100",
            "--pid",
            str(pid),
            "-o",
            out,
            "--format",
            fmt,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def tell_workers(
    workers: list[subprocess.Popen[str]], line: str, what: str
) -> list[dict[str, Any]]:
    """Sends ``line`` to every worker and returns each one's JSON answer."""
    for w in workers:
        assert w.stdin is not None
        w.stdin.write(line + "\n")
        w.stdin.flush()
    out = []
    for w in workers:
        assert w.stdout is not None
        got = w.stdout.readline()
        if not got:
            raise SystemExit(f"{what}: a worker ended early")
        out.append(json.loads(got))
    return out


def stop_workers(workers: list[subprocess.Popen[str]]) -> None:
    """Tells every worker to exit and waits for it (kills one that does not)."""
    for w in workers:
        try:
            assert w.stdin is not None
            w.stdin.write("exit\n")
            w.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
    for w in workers:
        try:
            w.wait(120)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def _summed(counts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + v
    return out


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run_storm(
    clients: int, processes: int, tmp: str, env: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """One reconnect storm (see the module docstring); returns its figures."""
    port = _free_port()
    cap = str(max(10_000, 2 * clients))
    server_from = getattr(args, "server_from", None)
    cmd = [
        *(
            [sys.executable, "-c", FROM_DIR, str(Path(server_from).resolve())]
            if server_from
            else [str(BIN / "chatrpc-server")]
        ),
        *("--host", "127.0.0.1", "--port", str(port), "--web-port", "0"),
        *("--store", f"sqlite://{tmp}/reconnect-storm.db"),
        *("--rate-limit", "0", "--login-rate", "0", "--log-level", "warning"),
        *("--max-sessions", cap, "--max-connections", cap),
        *(getattr(args, "server_args", "") or "").split(),
    ]
    server, _ = start_server(cmd, env)
    per = -(-clients // processes)
    load_env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    if getattr(args, "client_from", None):
        load_env["CHATRPC_STORM_CLIENT_FROM"] = str(Path(args.client_from).resolve())
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "storm.py"),
                "worker",
                *("--target", f"127.0.0.1:{port}", "--total", str(clients)),
                *("--first", str(j * per), "--count", str(min(per, clients - j * per))),
                *("--connect-rate", str(args.connect_rate / processes)),
                *("--sample", str(args.sample), "--senders", str(args.senders)),
            ],
            env=load_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for j in range(processes)
        if j * per < clients
    ]

    def tell(line: str) -> list[dict[str, Any]]:
        return tell_workers(workers, line, "reconnect storm")

    try:
        setup = tell("setup")
        tell("send")
        ready = sum(r["ready"] for r in setup)
        print(
            f"reconnect storm: {ready} of {clients} clients in three rooms each after"
            f" {max(r['setup_s'] for r in setup):.1f} s",
            flush=True,
        )
        stop_out = getattr(args, "profile_stop", None)
        stop_spy = profile(server.pid, stop_out) if stop_out else None
        t_term = time.time()
        server.terminate()
        server.wait(60)
        t_down = time.time()
        if stop_spy is not None:
            stop_spy.wait(60)  # py-spy ends with the process it records
        time.sleep(getattr(args, "down", 0.0))
        server, _ = start_server(cmd, env)
        t_up = time.time()
        sampler = Sampler([server.pid, *(w.pid for w in workers)])
        sampler.start()
        spy = profile(server.pid, args.profile) if getattr(args, "profile", None) else None
        worker_out = getattr(args, "profile_worker", None)
        worker_spy = profile(workers[0].pid, worker_out) if worker_out else None
        reports = tell(f"wait {args.max_seconds}")
        sampler.stopped.set()
        sampler.join()
        for recording in (spy, worker_spy):
            if recording is not None:
                recording.send_signal(signal.SIGINT)
                recording.wait(60)
    finally:
        stop_workers(workers)
        server.terminate()
        server.wait(60)
    times = sorted(t - t_up for r in reports for t in r["times"])
    back = len(times)
    last = times[-1] if times else float("nan")
    cpu_up, cpu_last = sampler.at(t_up), sampler.at(t_up + last)
    server_cpu = cpu_last[0] - cpu_up[0]
    load_cpu = sum(cpu_last[1:]) - sum(cpu_up[1:])
    check = {
        "rooms": sum(r["check"]["rooms"] for r in reports),
        "ok": sum(r["check"]["ok"] for r in reports),
        "bad": [b for r in reports for b in r["check"]["bad"]],
    }
    result = {
        "clients": clients,
        "ready": ready,
        "processes": len(workers),
        "stop_s": t_down - t_term,
        "back": back,
        "missing": sum(r["missing"] for r in reports),
        "first_back_s": times[0] if times else float("nan"),
        "p50_back_s": _pct(times, 0.5),
        "p90_back_s": _pct(times, 0.9),
        "last_back_s": last,
        "reconnect_attempts": sum(r["reconnects"] for r in reports),
        "failed_attempts": sum(r["failures"] for r in reports),
        "failed_again": _summed([r["failed_again"] for r in reports]),
        "server_cpu_s": server_cpu,
        "server_cpu_ms_per_client": 1000 * server_cpu / max(1, back),
        "server_cpu_pct": 100 * server_cpu / last if last == last and last > 0 else 0.0,
        "load_cpu_s": load_cpu,
        "load_cpu_ms_per_client": 1000 * load_cpu / max(1, back),
        "errors": [e for r in reports for e in r["errors"]][:5],
        "check": check,
        "loadavg": os.getloadavg(),
    }
    print(
        f"reconnect storm: {back} of {ready} back and resumed, the last {last:.1f} s after the"
        f" server was up (p50 {result['p50_back_s']:.1f} s, p90 {result['p90_back_s']:.1f} s;"
        f" SIGTERM to exit {result['stop_s']:.1f} s); server CPU {server_cpu:.1f} s"
        f" ({result['server_cpu_ms_per_client']:.2f} ms a client, {result['server_cpu_pct']:.0f}%"
        f" of a core), workers {load_cpu:.1f} s; History check: {check['ok']} of"
        f" {check['rooms']} rooms exact {check['bad'] or ''}",
        flush=True,
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", nargs="?", default="run", choices=["run", "worker"])
    p.add_argument("--clients", type=int, default=2000, help="library clients in all")
    p.add_argument("--processes", type=int, default=4, help="worker processes")
    p.add_argument("--connect-rate", type=float, default=150.0, help="first connects a second")
    p.add_argument("--sample", type=int, default=5, help="clients per worker checked")
    p.add_argument("--senders", type=int, default=2, help="clients per worker that send")
    p.add_argument("--max-seconds", type=float, default=120.0, help="longest storm waited for")
    p.add_argument("--out", default="", help="write the figures as JSON here")
    p.add_argument(
        "--down", type=float, default=0.0, help="seconds the server stays down before its restart"
    )
    p.add_argument("--server-args", default="", metavar="ARGS", help="more chatrpc-server options")
    p.add_argument(
        "--server-from",
        metavar="DIR",
        help="run the server from the chatrpc package in DIR (`git archive COMMIT chatrpc`)",
    )
    p.add_argument(
        "--profile-worker",
        metavar="FILE",
        help="record the first worker (the client library) with py-spy over the storm",
    )
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="record the restarted server with py-spy over the storm (raw stacks for .txt)",
    )
    p.add_argument(
        "--profile-stop",
        metavar="FILE",
        help="record the first server with py-spy from its SIGTERM to its exit",
    )
    p.add_argument(
        "--client-from",
        metavar="DIR",
        help="workers use the chatrpc package in DIR (e.g. `git archive COMMIT chatrpc`"
        " unpacked there) instead of this checkout's; the server stays this one",
    )
    # worker
    p.add_argument("--target", default="")
    p.add_argument("--total", type=int, default=0)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, default=0)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.mode == "worker":
        asyncio.run(worker(args))
        return
    import tempfile

    from chatrpc import SERVER_GRPC_EXPERIMENTS

    env = {
        **os.environ,
        "GRPC_EXPERIMENTS": os.environ.get("GRPC_EXPERIMENTS", SERVER_GRPC_EXPERIMENTS),
    }
    with tempfile.TemporaryDirectory(prefix="chatrpc-storm-") as tmp:
        result = run_storm(args.clients, args.processes, tmp, env, args)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
