"""Admission control (chatrpc.session.admission) against a real server: past
``--max-opening`` sessions being opened, a new Chat call (gRPC or WebSocket) is
refused at once with UNAVAILABLE "server busy ... retry in N s", and the client
library waits about N seconds instead of its own backoff."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import grpc

from chatrpc.client import ChatClient, State
from chatrpc.hub import Limits
from chatrpc.session.admission import MAX_RETRY_S, WAITING_S, Admission

from .conftest import Peers, running_server, target
from .web_client import WebUser, web_url

BUSY = re.compile(r"^server busy: 1 sessions are being opened; retry in (\d+) s$")


async def test_a_session_past_the_bound_is_refused_until_one_opening_has_handled_its_joins() -> (
    None
):
    async with running_server(limits=Limits(rate_limit=0, max_opening=1)) as srv:
        peers = Peers(target(srv))
        try:
            opening = await peers.open("alice")  # no event yet: it holds the one slot
            refused = await peers.open("bob")
            assert await refused.wait_end() == grpc.StatusCode.UNAVAILABLE
            match = BUSY.match(refused.details)
            assert match, refused.details
            assert 1 <= int(match.group(1)) <= MAX_RETRY_S
            assert srv.hub.stats.calls["Chat", "UNAVAILABLE"] == 1
            await opening.join("red")  # its events handled: the slot is free
            carol = await peers.open("carol")
            await carol.join("red")
            assert opening.status is None  # the one opening was never disturbed
        finally:
            await peers.close()


async def test_the_client_library_waits_the_servers_hint_not_its_own_backoff() -> None:
    async with running_server(limits=Limits(rate_limit=0, max_opening=1)) as srv:
        peers = Peers(target(srv))
        # Its own backoff would wait up to 10 minutes after a refusal.
        client = ChatClient(
            target(srv), "bob", await peers.token("bob"), backoff_initial=600, backoff_max=600
        )
        try:
            # Holds the one slot for OPENING_HOLD_S (it sends nothing), so the
            # client's first attempt, made now, is refused with a hint of a few s.
            await peers.open("alice")
            async with asyncio.timeout(20):
                await client.start()
            assert client.failures == 1 and "server busy" in client._last_failure
            assert client.status is State.CONNECTED
            assert (await client.join("red")).room == "red"
        finally:
            await client.close()
            await peers.close()


async def test_a_websocket_session_past_the_bound_is_refused_with_503() -> None:
    async with running_server(limits=Limits(rate_limit=0, max_opening=1)) as srv:
        peers = Peers(target(srv))
        web = WebUser(web_url(srv))
        try:
            await web.login("bob")
            await peers.open("alice")
            try:
                await web.open()
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 503
            else:
                raise AssertionError("a WebSocket past the bound was accepted")
        finally:
            await web.close()
            await peers.close()


async def test_the_hint_is_the_time_to_open_who_waits_at_the_pace_sessions_opened() -> None:
    now = [1000.0]
    admission = Admission(2, clock=lambda: now[0])
    for _ in range(10):  # ten sessions opened in the window: two a second
        admission.enter()()
    admission.enter()
    admission.enter()
    for _ in range(8):
        try:
            admission.enter()
        except Exception as exc:
            last = str(exc)
    # 2 opening and 8 refused, at 2 a second: 5 s.
    assert last.endswith("retry in 5 s") and admission.refused == 8
    now[0] += WAITING_S + 1  # all forgotten: at least 1 s, at most MAX_RETRY_S
    assert admission.retry_after(now[0]) == 2
    assert Admission(1).retry_after(now[0]) == 1


async def test_a_caller_refused_again_is_counted_once_and_no_more_once_admitted() -> None:
    now = [1000.0]
    admission = Admission(1, clock=lambda: now[0])
    slot = admission.enter("a")
    for who in ("b", "c", "b", "b", "c"):
        try:
            admission.enter(who)
        except Exception as exc:
            last = str(exc)
    assert admission.refused == 5
    assert last.endswith("retry in 3 s")  # 1 opening, b and c waiting, at 1 a second
    slot()
    admission.enter("b")  # b is in: 1 opening, c waiting
    assert admission.retry_after(now[0]) == 2
