"""Graceful shutdown of a real ``chatrpc-server`` process, and its start-up errors.

SIGTERM and SIGINT (Ctrl-C) stop accepting, end open sessions with UNAVAILABLE
(the client's cue to reconnect and resume), close the store and exit 0. The
history is still there after a restart on the same database file.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
import subprocess
import sys
import time
import weakref
from pathlib import Path

import grpc
import pytest

from chatrpc.cli_server import collect_after_churn
from chatrpc.client import ChatStream, auth_metadata, channel, login
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import BIN, WAIT, Peers, ServerProcess, start_server_process

#: How long a server may take from the signal to its exit (grace period 5s + slack).
EXIT_BOUND = 10.0

SIGNALS = [
    pytest.param(signal.SIGTERM, id="SIGTERM"),
    pytest.param(signal.SIGINT, id="SIGINT"),
]


class Session:
    """One logged-in user with an open Chat stream on a server process."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.ch = channel(address)
        self.token = ""
        self.stream: ChatStream | None = None
        self.unread: list[pb.ServerEvent] = []

    async def open(self, user: str, token: str = "") -> Session:
        self.token = token or (await login(self.ch, user)).token
        self.stream = ChatStream(self.ch, self.token)
        await asyncio.wait_for(self.stream.call.initial_metadata(), WAIT)
        return self

    async def read(self) -> pb.ServerEvent:
        """The next event; those of a ``batch`` frame one by one (ChatStream asks
        for batches: events that queue up together, presence above all, come in one)."""
        assert self.stream is not None
        if self.unread:
            return self.unread.pop(0)
        event = await asyncio.wait_for(self.stream.call.read(), WAIT)
        assert event is not grpc.aio.EOF, "the stream ended without a status"
        assert isinstance(event, pb.ServerEvent)
        if event.WhichOneof("event") == "batch":
            self.unread.extend(event.batch.events)
            return self.unread.pop(0)
        return event

    async def join(self, room: str) -> pb.Joined:
        assert self.stream is not None
        await self.stream.join(room)
        while True:
            event = await self.read()
            if event.WhichOneof("event") == "joined":
                return event.joined

    async def send(self, text: str, room: str) -> pb.Message:
        assert self.stream is not None
        cid = f"{text.replace(' ', '_')}-{time.monotonic_ns()}"  # printable ASCII
        await self.stream.send(text, room=room, client_msg_id=cid)
        while True:
            event = await self.read()
            if event.WhichOneof("event") == "error":
                raise AssertionError(f"send refused: {event.error}")
            if event.WhichOneof("event") == "message" and event.message.client_msg_id == cid:
                return event.message

    async def end_status(self) -> tuple[grpc.StatusCode, str]:
        """Reads until the stream ends; returns its status code and details."""
        assert self.stream is not None
        try:
            while await self.read():
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        raise AssertionError("unreachable")

    async def history(self, room: str) -> pb.HistoryResponse:
        stub = pb_grpc.ChatServiceStub(self.ch)
        response: pb.HistoryResponse = await stub.History(
            pb.HistoryRequest(room=room), metadata=auth_metadata(self.token), timeout=WAIT
        )
        return response

    async def close(self) -> None:
        if self.stream is not None:
            self.stream.cancel()
        await self.ch.close()


async def wait_exit(sp: ServerProcess, timeout: float = EXIT_BOUND) -> int:
    """Waits (without blocking the loop) for the server process to exit."""
    code: int = await asyncio.to_thread(sp.proc.wait, timeout)
    return code


@pytest.mark.parametrize("sig", SIGNALS)
async def test_a_signal_ends_open_streams_with_unavailable_and_the_server_exits_0(
    server_process, sig
):
    alice = await Session(server_process.address).open("alice")
    bob = await Session(server_process.address).open("bob")
    try:
        await alice.join("general")
        await bob.join("general")
        await alice.send("before the shutdown", "general")

        started = time.monotonic()
        server_process.proc.send_signal(sig)
        for session in (alice, bob):
            code, details = await session.end_status()
            assert code == grpc.StatusCode.UNAVAILABLE, details
            assert details, "the status says why and what to do"
        assert await wait_exit(server_process) == 0
        assert time.monotonic() - started < EXIT_BOUND
    finally:
        await alice.close()
        await bob.close()
    stderr = await asyncio.to_thread(server_process.stderr)
    assert "Traceback" not in stderr, stderr


@pytest.mark.parametrize("sig", SIGNALS)
async def test_an_idle_server_exits_0_at_once_on_a_signal(server_process, sig):
    started = time.monotonic()
    server_process.proc.send_signal(sig)
    assert await wait_exit(server_process) == 0
    assert time.monotonic() - started < 3.0, "nothing to drain: no grace period to wait"
    stderr = await asyncio.to_thread(server_process.stderr)
    assert "Traceback" not in stderr, stderr


async def test_a_new_connection_after_shutdown_is_refused_as_unavailable(server_process):
    address = server_process.address
    server_process.proc.send_signal(signal.SIGTERM)
    assert await wait_exit(server_process) == 0
    ch = channel(address)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await login(ch, "alice", timeout=WAIT)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await ch.close()


@pytest.mark.parametrize(
    "sig",
    [
        pytest.param(signal.SIGTERM, id="after-SIGTERM"),
        pytest.param(signal.SIGKILL, id="after-SIGKILL"),
    ],
)
async def test_history_and_accounts_survive_a_restart_on_the_same_db_file(
    server_process, tmp_path, sig
):
    db = tmp_path / "chat.db"
    assert str(db) in server_process.args, "the fixture's database file"
    alice = await Session(server_process.address).open("alice")
    try:
        joined = await alice.join("general")
        sent = [await alice.send(f"message {i}", "general") for i in range(1, 4)]
    finally:
        await alice.close()
    assert [m.seq for m in sent] == [1, 2, 3]

    server_process.proc.send_signal(sig)
    code = await wait_exit(server_process)
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL)

    restarted = start_server_process("--db", str(db), "--log-level", "warning", log_dir=tmp_path)
    try:
        # The old token still works: accounts live in the store.
        again = Session(restarted.address)
        try:
            await again.open("alice", token=alice.token)
            history = await again.history("general")
            assert [(m.seq, m.sender, m.text) for m in history.messages] == [
                (1, "alice", "message 1"),
                (2, "alice", "message 2"),
                (3, "alice", "message 3"),
            ]
            assert [m.client_msg_id for m in history.messages] == [m.client_msg_id for m in sent]
            assert history.epoch == joined.epoch, "the same history, not a new one"
            # New messages go on from where the history ends.
            await again.join("general")
            assert (await again.send("after the restart", "general")).seq == 4
            # And the name is still taken.
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await login(again.ch, "alice")
            assert caught.value.code() in (
                grpc.StatusCode.ALREADY_EXISTS,
                grpc.StatusCode.UNAUTHENTICATED,
            )
        finally:
            await again.close()
        restarted.proc.send_signal(signal.SIGTERM)
        assert await wait_exit(restarted) == 0
    finally:
        restarted.stop(signal.SIGKILL)  # only if still running
        stderr = restarted.stderr()
    assert "Traceback" not in stderr, stderr


# -- start-up ------------------------------------------------------------------------------


def test_a_port_in_use_makes_the_server_exit_1_with_a_one_line_error(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                str(BIN / "chatrpc-server"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--db",
                str(tmp_path / "chat.db"),
                "--log-level",
                "warning",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1, result.stderr
    assert result.stdout == "", "it never said it was listening"
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith(f"chatrpc-server: cannot listen on 127.0.0.1:{port}"), lines[0]


def test_python_m_chatrpc_help_prints_the_server_usage():
    result = subprocess.run(
        [sys.executable, "-m", "chatrpc", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: chatrpc-server")
    for option in ("--port", "--db", "--store", "--shutdown-grace", "--log-level"):
        assert option in result.stdout
    assert result.stderr == ""


def test_a_bad_server_argument_exits_2_without_a_traceback(tmp_path: Path):
    result = subprocess.run(
        [str(BIN / "chatrpc-server"), "--port", "not-a-port", "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("chatrpc-server: error: ")


async def test_sigusr1_logs_every_session_and_task_and_the_server_goes_on(
    server_process: ServerProcess,
) -> None:
    """An operator's view of a running server: what each session holds and where
    each task waits, logged on SIGUSR1, with nothing interrupted."""
    group = Peers(server_process.address)
    try:
        alice = await group.open("alice")
        await alice.join("lobby")
        server_process.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + WAIT
        while "alice live: rooms ['lobby']" not in server_process.stderr_path.read_text():
            assert time.monotonic() < deadline, server_process.stderr_path.read_text()
            await asyncio.sleep(0.05)
        log = server_process.stderr_path.read_text()
        assert "1 sessions" in log
        # The session's reader, waiting for events (an idle session has no processor).
        assert "_read" in log and "_process" not in log
        await alice.send_and_ack("still here", room="lobby")
    finally:
        await group.close()


class _Node:
    other: _Node | None = None


async def test_old_garbage_is_collected_once_enough_sessions_closed() -> None:
    """The server runs full collections rarely; garbage in cycles that grew old is
    freed once many sessions closed (1,000 and a quarter of those open), not before."""
    freed = asyncio.Event()
    closed, open_now = 0, 8000
    checked = asyncio.Event()

    def sessions() -> tuple[int, int]:
        checked.set()
        return closed, open_now

    async def looked_at(times: int) -> None:
        for _ in range(times):
            checked.clear()
            await checked.wait()

    gc.disable()  # only the watcher may collect here
    watcher = asyncio.create_task(collect_after_churn(sessions, period=0.01))
    try:
        await looked_at(1)  # its starting point: none closed
        keep = [_Node() for _ in range(1000)]
        for a, b in zip(keep[::2], keep[1::2], strict=True):
            a.other, b.other = b, a
        probe = weakref.ref(keep[0], lambda _: freed.set())
        gc.collect()  # alive: they move to the oldest generation
        del keep, a, b  # now garbage there, in cycles
        closed = 1999  # fewer than a quarter of those open
        await looked_at(3)
        assert probe() is not None, "collected too early"
        closed = 2000
        await asyncio.wait_for(freed.wait(), 10)
    finally:
        watcher.cancel()
        gc.enable()
