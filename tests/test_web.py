"""The web adapter over real HTTP and WebSockets: a real server on port 0, aiohttp's client."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator

import aiohttp
import pytest

from chatrpc.certs import make_dev_certs
from chatrpc.errors import ChatError, Code
from chatrpc.hub import Limits
from chatrpc.server import ChatServer
from chatrpc.session import ending
from chatrpc.subscriber import EndReason, Presence
from chatrpc.web.closes import CLOSE_CODES, close_code, close_reason
from chatrpc.web.jsonwire import event_json, json_frames
from chatrpc.web.security import COOKIE

from .conftest import BIN, WAIT, Peers, make_config, running_server, target
from .redis_fixture import REDIS_SERVER, redis_server_in
from .web_client import CallFailed, WebUser, web_url


@pytest.fixture
async def web_server() -> AsyncIterator[ChatServer]:
    async with running_server() as srv:
        yield srv


@pytest.fixture
async def browsers(web_server: ChatServer) -> AsyncIterator[list[WebUser]]:
    opened: list[WebUser] = []
    try:
        yield opened
    finally:
        for user in opened:
            await user.close()


def browser(srv: ChatServer, opened: list[WebUser], origin: str | None = "same") -> WebUser:
    user = WebUser(web_url(srv), origin)
    opened.append(user)
    return user


async def test_login_sets_an_httponly_strict_cookie_and_returns_no_token(web_server, browsers):
    alice = browser(web_server, browsers)
    async with alice.http.post(
        f"{alice.base}/chatrpc.v1.ChatService/Login",
        json={"user": "Alice"},
        headers={"Origin": alice.base},
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
        cookie = resp.cookies[COOKIE]
    assert body == {"user": "alice", "created": True}
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie.value
    async with alice.http.get(f"{alice.base}/session") as resp:
        assert await resp.json() == {"user": "alice"}


async def test_a_browser_and_a_terminal_user_share_a_room(web_server, browsers):
    alice = browser(web_server, browsers)
    await alice.login("alice")
    ws = await alice.open()
    joined = await ws.join("general")
    assert joined["room"] == "general"
    group = Peers(target(web_server))
    try:
        bob = await group.open("bob")
        await bob.join("general")
        await ws.wait_for(lambda: any(p.get("user") == "bob" for p in ws.of("presence")))
        await ws.send({"send": {"room": "general", "text": "hi bob", "clientMsgId": "w-1"}})
        await ws.wait_for(lambda: "hi bob" in ws.texts())
        echo = ws.of("message")[-1]
        assert echo == {
            "seq": "1",
            "room": "general",
            "sender": "alice",
            "text": "hi bob",
            "sentAt": echo["sentAt"],
            "clientMsgId": "w-1",
        }
        await bob.wait_for(lambda ev: "hi bob" in bob.texts())
        await bob.send_and_ack("hi alice", room="general")
        await ws.wait_for(lambda: "hi alice" in ws.texts())
        assert ws.texts() == ["hi bob", "hi alice"]
        assert bob.texts() == ["hi bob", "hi alice"]
    finally:
        await group.close()


async def test_a_dm_between_a_browser_and_a_terminal_user(web_server, browsers):
    alice = browser(web_server, browsers)
    await alice.login("alice")
    ws = await alice.open()
    group = Peers(target(web_server))
    try:
        bob = await group.open("bob")
        await ws.send({"send": {"toUser": "bob", "text": "psst", "clientMsgId": "d-1"}})
        await bob.wait_for(lambda ev: bob.texts() == ["psst"])
        await bob.send_and_ack("yes?", to_user="alice")
        await ws.wait_for(lambda: ws.texts() == ["psst", "yes?"])
        page = await alice.call("History", {"withUser": "bob"})
        assert [m["text"] for m in page["messages"]] == ["psst", "yes?"]
        assert page["lastSeq"] == "2"
        directs = await alice.call("ListDirects")
        # Bob's answer is unread for alice (proto3 JSON leaves out the zeros).
        assert directs["directs"] == [{"withUser": "bob", "lastSeq": "2", "unread": 1}]
    finally:
        await group.close()


async def test_a_websocket_from_a_foreign_origin_is_refused_even_with_the_users_cookie(
    web_server, browsers
):
    alice = browser(web_server, browsers)
    await alice.login("alice")
    alice.origin = "http://evil.example"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await alice.open()
    assert refused.value.status == 403
    with pytest.raises(CallFailed) as call:
        await alice.call("ListRooms")
    assert call.value.status == 403
    assert call.value.body == {"code": "permission_denied", "message": "origin not allowed"}
    alice.origin = alice.base
    ws = await alice.open()  # the same cookie from the app's own origin is fine
    await ws.join("general")


async def test_an_origin_on_the_allow_list_may_connect(browsers):
    async with running_server(web_origin="https://chat.example.com, http://other:1") as srv:
        alice = browser(srv, browsers, origin="https://chat.example.com")
        await alice.login("alice")
        ws = await alice.open()
        await ws.join("general")


async def test_a_websocket_without_a_valid_cookie_is_refused_before_the_upgrade(
    web_server, browsers
):
    anon = browser(web_server, browsers)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await anon.open()
    assert refused.value.status == 401


async def test_unary_errors_have_connect_shapes_and_statuses(web_server, browsers):
    alice = browser(web_server, browsers)
    with pytest.raises(CallFailed) as call:
        await alice.call("ListRooms")
    assert call.value.status == 401
    assert call.value.body["code"] == "unauthenticated"
    await alice.login("alice", "secret")
    other = browser(web_server, browsers)
    with pytest.raises(CallFailed) as call:
        await other.login("alice")
    assert (call.value.status, call.value.body["code"]) == (409, "already_exists")
    with pytest.raises(CallFailed) as call:
        await other.login("alice", "wrong")
    assert (call.value.status, call.value.body["code"]) == (401, "unauthenticated")
    with pytest.raises(CallFailed) as call:
        await alice.call("History", {"room": "nowhere"})
    assert (call.value.status, call.value.body["code"]) == (404, "not_found")
    with pytest.raises(CallFailed) as call:
        await alice.call("History", {"room": "x", "limit": "many"})
    assert (call.value.status, call.value.body["code"]) == (400, "invalid_argument")
    with pytest.raises(CallFailed) as call:
        await alice.call("Chat")
    assert call.value.status == 404


async def test_a_script_can_use_a_bearer_token_without_cookies(web_server, browsers):
    group = Peers(target(web_server))
    token = await group.token("carol")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{web_url(web_server)}/chatrpc.v1.ChatService/ListRooms",
            json={},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp,
    ):
        assert resp.status == 200
        assert await resp.json() == {}


async def test_logout_ends_the_browser_session_and_clears_the_cookie(web_server, browsers):
    alice = browser(web_server, browsers)
    await alice.login("alice")
    ws = await alice.open()
    await ws.join("general")
    reply = await alice.call("Logout")
    assert reply == {"revokedTokens": 1, "endedSessions": 1}
    assert await ws.wait_closed() == CLOSE_CODES[Code.UNAUTHENTICATED] == 4016
    assert ws.close_reason == "token revoked: log in again"
    assert not any(c.key == COOKIE and c.value for c in alice.http.cookie_jar)


async def test_shutdown_closes_sessions_with_the_retry_code(browsers):
    srv = ChatServer(make_config("memory://"))
    await srv.start()
    try:
        alice = browser(srv, browsers)
        await alice.login("alice")
        ws = await alice.open()
        await ws.join("general")
    finally:
        await srv.stop()
    assert await ws.wait_closed() == 4014
    assert ws.close_reason == "server shutting down: reconnect and resume"


async def test_a_frame_that_is_not_a_client_event_ends_the_session(web_server, browsers):
    alice = browser(web_server, browsers)
    await alice.login("alice")
    ws = await alice.open()
    await ws.ws.send_str('{"jump": {}}')
    assert await ws.wait_closed() == 4003
    ws = await alice.open()
    await ws.ws.send_bytes(b"\x0a\x00")
    assert await ws.wait_closed() == 4003


async def test_a_frame_past_the_size_limit_ends_the_session_and_hurts_nobody(browsers):
    async with running_server(max_receive_bytes=1024) as srv:
        alice = browser(srv, browsers)
        await alice.login("alice")
        bob = browser(srv, browsers)
        await bob.login("bob")
        ws_bob = await bob.open()
        await ws_bob.join("general")
        ws = await alice.open()
        await ws.send({"send": {"room": "general", "text": "x" * 5000, "clientMsgId": "big"}})
        assert await ws.wait_closed() == 1009
        await ws_bob.send({"send": {"room": "general", "text": "fine", "clientMsgId": "b"}})
        await ws_bob.wait_for(lambda: ws_bob.texts() == ["fine"])


async def test_a_bad_event_gets_an_error_event_and_the_session_goes_on(web_server, browsers):
    alice = browser(web_server, browsers)
    await alice.login("alice")
    ws = await alice.open()
    await ws.send({"send": {"room": "general", "text": "", "clientMsgId": "e-1"}})
    await ws.wait_for(lambda: bool(ws.of("error")))
    assert ws.of("error")[0]["clientMsgId"] == "e-1"
    assert ws.of("error")[0]["code"] in ("INVALID_ARGUMENT", "PERMISSION_DENIED")
    await ws.join("general")


async def test_resume_over_the_websocket_replays_what_was_missed_once(web_server, browsers):
    alice = browser(web_server, browsers)
    await alice.login("alice")
    ws = await alice.open()
    joined = await ws.join("general")
    for i in range(3):
        await ws.send({"send": {"room": "general", "text": f"m{i}", "clientMsgId": f"r-{i}"}})
    await ws.wait_for(lambda: len(ws.texts()) == 3)
    await ws.ws.close()
    ws2 = await alice.open()
    again = await ws2.join("general", afterSeq="1", epoch=joined["epoch"])
    assert again["complete"] is True
    await ws2.wait_for(lambda: len(ws2.texts()) == 2)
    # A retried send with the same client_msg_id is stored once, and this session,
    # which has its original already, gets an ack: seqs never go back on one stream.
    await ws2.send({"send": {"room": "general", "text": "m2", "clientMsgId": "r-2"}})
    await ws2.wait_for(lambda: bool(ws2.of("ack")))
    assert ws2.of("ack") == [{"seq": "3", "room": "general", "clientMsgId": "r-2"}]
    assert [m["seq"] for m in ws2.of("message")] == ["2", "3"]


async def test_events_that_pile_up_go_out_as_batch_frames(web_server, browsers):
    alice = browser(web_server, browsers)
    await alice.login("alice")
    reader_ws = await alice.open()
    await reader_ws.join("general")
    bob = browser(web_server, browsers)
    await bob.login("bob")
    writer = await bob.open()
    await writer.join("general")
    for i in range(200):
        await writer.send({"send": {"room": "general", "text": f"n{i}", "clientMsgId": f"b-{i}"}})
    await reader_ws.wait_for(lambda: len(reader_ws.texts()) == 200)
    assert reader_ws.texts() == [f"n{i}" for i in range(200)]
    assert reader_ws.batches >= 1


def test_a_shared_items_json_is_encoded_once_for_every_session():
    item = Presence("general", "alice", True)
    first = event_json(item)
    assert event_json(item) is first
    assert first == '{"presence":{"room":"general","user":"alice","kind":"JOINED"}}'
    assert list(json_frames([first])) == [first]
    assert list(json_frames([first, first])) == [
        '{"batch":{"events":[' + first + "," + first + "]}}"
    ]


def test_a_close_reason_fits_a_close_frame():
    assert close_reason("short") == b"short"
    long = close_reason("é" * 200)
    assert len(long) <= 123
    long.decode()


async def test_every_response_carries_a_strict_content_security_policy(web_server, browsers):
    anon = browser(web_server, browsers)
    for path in ("/", "/static/js/app.js", "/nothing-here"):
        async with anon.http.get(anon.base + path) as resp:
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert "unsafe-inline" not in csp
    async with anon.http.get(anon.base + "/static/../../server.py") as resp:
        assert resp.status == 404


async def test_no_web_serves_no_web_port():
    async with running_server(no_web=True) as srv:
        assert srv.web is None


async def test_the_web_port_can_be_taken_and_the_server_says_so():
    async with running_server() as srv:
        assert srv.web is not None
        clash = ChatServer(make_config("memory://", web_port=srv.web.port))
        with pytest.raises(ChatError, match="--web-port"):
            await clash.start()


async def test_many_browsers_fan_out_in_order(web_server, browsers):
    users = []
    sockets = []
    for i in range(5):
        u = browser(web_server, browsers)
        await u.login(f"u{i}")
        ws = await u.open()
        await ws.join("fan")
        users.append(u)
        sockets.append(ws)
    tasks = [
        ws.send({"send": {"room": "fan", "text": f"{i}-{k}", "clientMsgId": f"f{k}"}})
        for i, ws in enumerate(sockets)
        for k in range(20)
    ]
    await asyncio.gather(*tasks)
    for ws in sockets:
        await ws.wait_for(functools.partial(lambda w: len(w.texts()) == 100, ws))
        seqs = [int(m["seq"]) for m in ws.of("message")]
        assert seqs == list(range(1, 101))


async def test_a_users_session_limit_counts_browser_sessions_too(browsers):
    async with running_server(limits=Limits(rate_limit=0, max_sessions_per_user=1)) as srv:
        alice = browser(srv, browsers)
        await alice.login("alice")
        ws = await alice.open()
        await ws.join("general")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await alice.open()
        assert refused.value.status == 429


async def test_the_web_port_speaks_tls_with_the_servers_certificate(tmp_path, browsers):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    certs = make_dev_certs(tmp_path / "certs")
    async with running_server(
        tls_cert=str(certs.server_cert), tls_key=str(certs.server_key)
    ) as srv:
        assert srv.web is not None and srv.web.url.startswith("https://")
        base = f"https://localhost:{srv.web.port}"
        trust = ssl.create_default_context(cafile=str(certs.ca))
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=trust), cookie_jar=aiohttp.CookieJar()
        ) as http:
            async with http.post(
                f"{base}/chatrpc.v1.ChatService/Login",
                json={"user": "alice"},
                headers={"Origin": base},
            ) as resp:
                assert resp.status == 200
                assert resp.cookies[COOKIE]["secure"] is True
            ws = await http.ws_connect(
                f"wss://localhost:{srv.web.port}/ws", headers={"Origin": base}
            )
            await ws.send_str('{"join": {"room": "general"}}')
            first = await ws.receive_json(timeout=WAIT)
            assert first["joined"]["room"] == "general"
            await ws.close()
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ClientError):
                await plain.get(f"http://localhost:{srv.web.port}/")


async def test_the_app_shell_is_installable(web_server, browsers):
    anon = browser(web_server, browsers)
    async with anon.http.get(anon.base + "/manifest.webmanifest") as resp:
        assert resp.content_type == "application/manifest+json"
        manifest = json.loads(await resp.text())
    assert manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        async with anon.http.get(anon.base + icon["src"]) as resp:
            assert resp.status == 200, icon
    async with anon.http.get(anon.base + "/sw.js") as resp:
        assert resp.content_type == "text/javascript"
        shell = await resp.text()
    for path in re.findall(r'"(/[^"]*)"', shell):
        async with anon.http.get(anon.base + path) as resp:
            assert resp.status == 200, path


@pytest.mark.skipif(not REDIS_SERVER.exists(), reason=f"{REDIS_SERVER} is not installed")
async def test_a_browser_on_one_server_talks_to_a_terminal_on_another(tmp_path, browsers):
    with redis_server_in(tmp_path / "redis") as redis:
        async with running_server(redis.url) as a, running_server(redis.url) as b:
            alice = browser(a, browsers)
            await alice.login("alice")
            ws = await alice.open()
            await ws.join("general")
            group = Peers(target(b))
            try:
                bob = await group.open("bob")
                await bob.join("general")
                await bob.send_and_ack("from b", room="general")
                await ws.wait_for(lambda: ws.texts() == ["from b"])
                await ws.send({"send": {"room": "general", "text": "from a", "clientMsgId": "x"}})
                await bob.wait_for(lambda ev: bob.texts() == ["from b", "from a"])
            finally:
                await group.close()


def test_a_web_origin_that_is_no_origin_stops_the_server_with_one_line(tmp_path):
    done = subprocess.run(
        [
            str(BIN / "chatrpc-server"),
            "--store",
            "memory://",
            "--port",
            "0",
            "--web-port",
            "0",
            "--web-origin",
            "chat.example.com",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "chatrpc-server: --web-origin 'chat.example.com' is not an origin"
        " like https://chat.example.com"
    )


async def test_the_send_rate_limit_applies_to_browser_sessions(browsers):
    async with running_server(limits=Limits(rate_limit=0.5, rate_burst=2)) as srv:
        alice = browser(srv, browsers)
        await alice.login("alice")
        ws = await alice.open()
        await ws.join("general")
        # The join took a tenth of a send: one send of the burst of 2 is left.
        for i in range(3):
            await ws.send({"send": {"room": "general", "text": f"t{i}", "clientMsgId": f"r{i}"}})
        await ws.wait_for(lambda: len(ws.of("error")) == 2)
        assert {e["code"] for e in ws.of("error")} == {"RESOURCE_EXHAUSTED"}
        assert ws.texts() == ["t0"]


async def test_the_login_throttle_applies_to_the_web_api(browsers):
    async with running_server(login_rate=0.01, login_burst=1) as srv:
        first = browser(srv, browsers)
        await first.login("alice")
        second = browser(srv, browsers)
        with pytest.raises(CallFailed) as call:
            await second.login("bob")
        assert (call.value.status, call.value.body["code"]) == (429, "resource_exhausted")
        assert "too many logins from this address" in call.value.body["message"]


def test_every_session_end_has_a_close_code_and_says_whether_to_retry():
    codes = {reason: close_code(ending(reason).code) for reason in EndReason}
    assert codes == {
        EndReason.DONE: 1000,
        EndReason.GONE: 1000,
        EndReason.SLOW_CONSUMER: 4008,
        EndReason.SHUTDOWN: 4014,
        EndReason.REVOKED: 4016,
        EndReason.DISABLED: 4007,
        EndReason.MALFORMED: 4003,
        EndReason.FAILED: 4013,
    }
    # The page retries all but 4016 (see static/js/protocol.js, afterClose).
    assert {r for r in EndReason if ending(r).retry} == {
        EndReason.SLOW_CONSUMER,
        EndReason.SHUTDOWN,
    }


async def test_edits_deletes_reactions_and_replies_travel_as_proto3_json(web_server, browsers):
    alice = browser(web_server, browsers)
    await alice.login("alice")
    ws = await alice.open()
    await ws.join("general")
    group = Peers(target(web_server))
    try:
        bob = await group.open("bob")
        await bob.join("general")
        await ws.send({"send": {"room": "general", "text": "helo", "clientMsgId": "w-1"}})
        await ws.send(
            {"edit": {"room": "general", "seq": "1", "text": "hello", "clientMsgId": "w-2"}}
        )
        await ws.send({"react": {"room": "general", "seq": 1, "emoji": "👋", "clientMsgId": "w-3"}})
        await ws.send(
            {"send": {"room": "general", "text": "me", "replyTo": "1", "clientMsgId": "w-4"}}
        )
        await ws.send({"delete": {"room": "general", "seq": 4, "clientMsgId": "w-5"}})
        await ws.send({"edit": {"room": "general", "seq": 4, "text": "x", "clientMsgId": "w-6"}})
        await ws.wait_for(lambda: len(ws.of("message")) == 5 and bool(ws.of("error")))
        edit, react, reply, delete = ws.of("message")[1:]
        assert (edit["kind"], edit["targetSeq"], edit["text"]) == ("EDIT", "1", "hello")
        assert (react["kind"], react["emoji"]) == ("REACTION", "👋")
        assert reply["replyTo"] == "1" and "kind" not in reply  # MESSAGE is the default
        assert (delete["kind"], delete["targetSeq"]) == ("DELETE", "4")
        (error,) = ws.of("error")
        assert error["clientMsgId"] == "w-6" and error["code"] == "FAILED_PRECONDITION"
        await bob.wait_for(lambda ev: len(bob.messages()) == 5)
        assert [m.kind for m in bob.messages()] == [0, 1, 3, 0, 2]
    finally:
        await group.close()
