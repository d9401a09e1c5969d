"""The client library never hangs waiting for a connection or a stream, and comes
back soon after its server does."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from pathlib import Path

import grpc
import pytest

from chatrpc.client import ChatClient, ClientClosed, State
from chatrpc.client.retry import Backoff
from chatrpc.server import ChatServer

from .conftest import WAIT, Peers, make_config, running_server, start_server_process, target
from .test_cli import one_line_error, run_client

#: A program with more ChatClients than a connection may carry streams (100).
MANY = 150


async def test_150_chat_clients_in_one_process_all_connect_and_join() -> None:
    async with running_server(login_rate=0) as srv:
        group = Peers(target(srv))
        tokens = [await group.token(f"bot{i}") for i in range(MANY)]
        clients = [ChatClient(target(srv), f"bot{i}", tokens[i]) for i in range(MANY)]
        try:
            async with asyncio.timeout(60):
                await asyncio.gather(*(c.start() for c in clients))
                joined = await asyncio.gather(
                    *(c.join(f"bots{i % 3}") for i, c in enumerate(clients))
                )
            assert [j.room for j in joined] == [f"bots{i % 3}" for i in range(MANY)]
            assert all(c.status is State.CONNECTED for c in clients)
            # The last one can talk: its stream is not queued behind others.
            echo = await asyncio.wait_for(clients[-1].send("hi", room="bots2"), WAIT)
            assert echo.seq == 1
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))


async def test_a_stream_waiting_for_a_slot_ends_start_with_unavailable_naming_the_target() -> None:
    # Two clients made to share one connection (the opposite of the library's
    # default) on a server that allows one stream per connection: the second
    # client's Chat call waits for a slot that never frees.
    shared = [("grpc.use_local_subchannel_pool", 0)]
    async with running_server(max_streams_per_connection=1) as srv:
        token = await Peers(target(srv)).token("alice")
        clients = [
            ChatClient(
                target(srv),
                "alice",
                token,
                connect_timeout=1.0,
                resume_directs=False,
                channel_options=shared,
            )
            for _ in range(2)
        ]
        try:
            await asyncio.wait_for(clients[0].start(), WAIT)
            began = time.monotonic()
            with pytest.raises(ClientClosed) as failure:
                await asyncio.wait_for(clients[1].start(), WAIT)
            assert time.monotonic() - began < 5
            assert failure.value.code == grpc.StatusCode.UNAVAILABLE
            assert failure.value.details.startswith(
                f"could not open a session with {target(srv)} within 1 s"
            )
            assert clients[1].status is State.CLOSED
            assert clients[0].status is State.CONNECTED
        finally:
            for client in clients:
                await client.aclose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_start_against_nothing_listening_fails_with_unavailable_and_the_last_error() -> None:
    address = f"127.0.0.1:{_free_port()}"
    states: list[State] = []
    client = ChatClient(
        address, "alice", "token", connect_timeout=1.0, on_state=lambda s, d: states.append(s)
    )
    with pytest.raises(ClientClosed) as failure:
        await asyncio.wait_for(client.start(), WAIT)
    assert failure.value.code == grpc.StatusCode.UNAVAILABLE
    assert failure.value.details.startswith(f"could not open a session with {address} within 1 s")
    assert "(UNAVAILABLE: " in failure.value.details
    assert states[-1] is State.CLOSED
    # A send made now fails at once instead of waiting for a session.
    with pytest.raises(ClientClosed):
        await asyncio.wait_for(client.send("hi", room="general"), WAIT)


def test_backoff_draws_each_delay_below_the_capped_exponential() -> None:
    backoff = Backoff(0.2, 5.0)
    assert [backoff.delay(a) for a in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff.delay(10_000) == 5.0
    draws = [backoff.jittered(6) for _ in range(2000)]
    assert all(0.0 <= d <= 5.0 for d in draws)
    # Spread over the whole range (full jitter), not clustered around the delay.
    assert min(draws) < 0.5 and max(draws) > 4.5


async def test_a_client_is_back_soon_after_its_server_although_its_backoff_is_long(
    tmp_path: Path,
) -> None:
    db = f"sqlite://{tmp_path / 'chat.db'}"
    states: list[tuple[State, str]] = []
    changed = asyncio.Event()

    def on_state(state: State, detail: str) -> None:
        states.append((state, detail))
        changed.set()

    async def until(state: State) -> None:
        while not states or states[-1][0] is not state:
            changed.clear()
            await changed.wait()

    first = ChatServer(make_config(db))
    await first.start()
    port = first.port
    token = await Peers(target(first)).token("alice")
    # Every pause after a failure would be up to a minute.
    client = ChatClient(
        target(first), "alice", token, on_state=on_state, backoff_initial=60, backoff_max=60
    )
    second: ChatServer | None = None
    try:
        await client.start()
        await client.join("general")
        await first.stop()
        await asyncio.wait_for(until(State.RECONNECTING), WAIT)
        second = ChatServer(dataclasses.replace(make_config(db), port=port))
        await second.start()
        up = time.monotonic()
        await asyncio.wait_for(until(State.CONNECTED), WAIT)
        assert time.monotonic() - up < 5
        await asyncio.wait_for(client.wait_resumed(), WAIT)
        echo = await asyncio.wait_for(client.send("back", room="general"), WAIT)
        assert echo.seq == 1
    finally:
        await client.aclose()
        if second is not None:
            await second.stop()
        with contextlib.suppress(Exception):
            await first.stop()


async def test_the_terminal_client_that_gets_no_session_says_so_in_one_line(
    tmp_path: Path, client_env: dict[str, str]
) -> None:
    # The server's one session is taken: every Chat call of the client is refused
    # (RESOURCE_EXHAUSTED, which it retries) until it gives up.
    sp = start_server_process(
        "--db", str(tmp_path / "chat.db"), "--max-sessions", "1", log_dir=tmp_path
    )
    group = Peers(sp.address)
    try:
        await group.open("alice")
        result = await asyncio.to_thread(
            run_client,
            client_env,
            *("--user", "bob", "--server", sp.address, "--connect-timeout", "1"),
            stdin="hello\n",
        )
        line = one_line_error(result, 1)
        assert line.startswith(
            f"chatrpc-client: could not open a session with {sp.address} within 1 s"
            " (RESOURCE_EXHAUSTED: "
        ), line
        assert result.stdout == ""
    finally:
        await group.close()
        sp.stop()
