"""Typing notices and read markers over the browser's WebSocket (proto3 JSON)."""

from __future__ import annotations

from . import test_web as web
from .conftest import Peers, target
from .test_signals import mark_read, typing

#: The browser adapter fixtures of tests/test_web.py.
web_server = web.web_server
browsers = web.browsers


async def test_a_browser_types_marks_read_and_hears_both(web_server, browsers):
    alice = web.browser(web_server, browsers)
    await alice.login("alice")
    ws = await alice.open()
    await ws.join("general")
    group = Peers(target(web_server))
    try:
        bob = await group.open("bob")
        await bob.join("general")
        await ws.send({"typing": {"room": "general"}})
        await bob.wait_for(lambda ev: bool(bob.of("typing")))
        assert bob.of("typing")[0].user == "alice"
        await typing(bob, room="general")
        await ws.wait_for(lambda: bool(ws.of("typing")))
        assert ws.of("typing") == [{"room": "general", "user": "bob"}]
        await bob.send_and_ack("psst", to_user="alice")
        await ws.send({"markRead": {"toUser": "bob", "seq": "1"}})
        await bob.wait_for(lambda ev: bool(bob.of("read_marker")))
        assert bob.of("read_marker")[0].seq == 1
        await mark_read(bob, 1, to_user="alice")
        await ws.wait_for(lambda: bool(ws.of("readMarker")))
        assert ws.of("readMarker") == [{"withUser": "bob", "user": "bob", "seq": "1"}]
        await ws.send({"markRead": {"room": "general", "seq": "7"}})
        await ws.wait_for(lambda: bool(ws.of("error")))
        assert ws.of("error")[0]["code"] == "INVALID_ARGUMENT"
    finally:
        await group.close()
