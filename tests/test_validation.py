"""Bad input gets a clear status or error event, and never hurts anyone else."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest

from chatrpc.client import ChatStream, auth_metadata, channel, login
from chatrpc.server import ChatServer
from chatrpc.store import RoomClaim
from chatrpc.store.memory import MemoryStore
from chatrpc.text import contain_bidi, has_visible
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import Peer, Peers, make_config, target

E = pb.Error


async def _refused(peer: Peer, cid: str, **send: Any) -> pb.Error:
    await peer.stream.send(client_msg_id=cid, **send)
    return await peer.error_for(cid)


async def test_each_bad_send_gets_an_error_event_and_the_stream_goes_on(peers: Peers) -> None:
    alice = await peers.open("alice")
    bob = await peers.open("bob")
    await alice.join("general")
    await bob.join("general")
    cases = [
        ("empty", dict(text="", room="general"), E.INVALID_ARGUMENT, "empty"),
        ("blank", dict(text="  \n ", room="general"), E.INVALID_ARGUMENT, "empty"),
        ("huge", dict(text="x" * 4097, room="general"), E.INVALID_ARGUMENT, "limit is 4096"),
        ("wide", dict(text="é" * 2049, room="general"), E.INVALID_ARGUMENT, "4098 bytes"),
        ("ctrl", dict(text="bell\x07", room="general"), E.INVALID_ARGUMENT, "control"),
        ("badroom", dict(text="hi", room="no spaces!"), E.INVALID_ARGUMENT, "room name"),
        ("notjoined", dict(text="hi", room="elsewhere"), E.FAILED_PRECONDITION, "join #elsewhere"),
        ("nouser", dict(text="hi", to_user="nobody"), E.NOT_FOUND, "no user named 'nobody'"),
        ("baduser", dict(text="hi", to_user="bad name"), E.INVALID_ARGUMENT, "user name"),
        ("notarget", dict(text="hi"), E.INVALID_ARGUMENT, "room or a to_user"),
    ]
    for cid, send, code, words in cases:
        err = await _refused(alice, cid, **send)
        assert err.code == code, (cid, err)
        assert words in err.message, (cid, err.message)
    too_long_id = "i" * 129
    err = await _refused(alice, too_long_id, text="hi", room="general")
    assert err.code == E.INVALID_ARGUMENT and "client_msg_id" in err.message
    # A text of exactly the limit is fine, and everyone still chats.
    ok = await alice.send_and_ack("y" * 4096, room="general")
    assert ok.seq == 1
    await bob.send_and_ack("still here", room="general")
    await alice.wait_for(lambda ev: "still here" in alice.texts())
    assert bob.texts() == ["y" * 4096, "still here"]
    assert alice.of("error") and not bob.of("error")


#: Texts that draw nothing: each is refused as empty.
INVISIBLE_TEXTS = [
    "\u200b",  # zero-width space
    "\u2800",  # Braille blank
    "\ufeff",  # byte order mark
    "\u3164",  # Hangul filler
    "\u115f\u1160\uffa0",  # more Hangul fillers
    "\u00a0\u3000\u2028\u2029",  # no-break and ideographic spaces, separators
    "\u200c\u200d\u2060\u00ad",  # joiners, word joiner, soft hyphen
    "\u0301\u20dd",  # combining marks with nothing to combine with
    "\u202e\u2066\u2069\u202c",  # bidi controls only
    "\ufe0f\U000e0041\U000e007f",  # variation selector, tags
    "\u17b4\U0001d159\U0001d173",  # Khmer inherent vowel, musical null notehead
    " \u200b\t\n\u2800 ",
]


@pytest.mark.parametrize("text", INVISIBLE_TEXTS)
def test_texts_with_no_visible_character_are_invisible(text: str) -> None:
    assert not has_visible(text)


@pytest.mark.parametrize("text", ["x", "e\u0301", "\u200bhi", "\U0001f44d", "\ud55c", "\u3164x"])
def test_texts_with_a_visible_character_are_visible(text: str) -> None:
    assert has_visible(text)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("plain", "plain"),
        ("hi \u202egnp.exe", "hi \u202egnp.exe\u202c"),  # an open override is closed
        ("\u202c\u2069tail", "tail"),  # closers without an opener are dropped
        ("a\u2067b\nc\u202bd", "a\u2067b\u2069\nc\u202bd\u202c"),  # per line
        ("\u202b\u2066x\u202c", "\u202b\u2066x\u2069\u202c"),  # PDF inside an isolate
        ("\u2067\u202ax\u2069y", "\u2067\u202ax\u2069y"),  # PDI closes what is inside
        ("\u202d\u202ex\u202c\u202c", "\u202d\u202ex\u202c\u202c"),  # balanced: as sent
    ],
)
def test_bidi_controls_are_closed_within_each_line(sent: str, stored: str) -> None:
    assert contain_bidi(sent) == stored


async def test_invisible_text_bidi_and_odd_client_msg_ids_over_the_wire(peers: Peers) -> None:
    alice = await peers.open("alice")
    bob = await peers.open("bob")
    await alice.join("general")
    await bob.join("general")
    for i, text in enumerate(INVISIBLE_TEXTS):
        err = await _refused(alice, f"blank-{i}", text=text, room="general")
        assert err.code == E.INVALID_ARGUMENT and "empty" in err.message, (text, err)
    for i, cid in enumerate(["esc\x1b[2J", "with space", "caf\u00e9", "del\x7f", "\u200b"]):
        await alice.stream.send("hi", room="general", client_msg_id=cid)
        err = await alice.error_for(cid)
        assert err.code == E.INVALID_ARGUMENT and "printable ASCII" in err.message, (i, err)
    # The override is closed in what is stored, echoed and delivered.
    echo = await alice.send_and_ack("hi \u202egnp.exe", room="general", client_msg_id="c-1")
    assert echo.text == "hi \u202egnp.exe\u202c"
    await bob.wait_for(lambda ev: len(bob.messages()) == 1)
    assert [m.text for m in bob.messages()] == [echo.text]
    page = await pb_grpc.ChatServiceStub(alice.ch).History(
        pb.HistoryRequest(room="general"), metadata=auth_metadata(alice.token)
    )
    assert [m.text for m in page.messages] == [echo.text]
    assert not bob.of("error")


async def test_bad_joins_leaves_and_empty_events_get_error_events(peers: Peers) -> None:
    alice = await peers.open("alice")
    await alice.stream.join("#Bad Room")
    await alice.stream.leave("general")
    await alice.stream.write(pb.ClientEvent())
    await alice.stream.join("x" * 33)
    await alice.wait_for(lambda ev: len(alice.of("error")) >= 4)
    codes = [(e.code, e.message) for e in alice.of("error")]
    assert codes[0][0] == E.INVALID_ARGUMENT and "room name" in codes[0][1]
    assert codes[1] == (E.FAILED_PRECONDITION, "you are not in #general")
    assert codes[2][0] == E.INVALID_ARGUMENT and "empty event" in codes[2][1]
    assert codes[3][0] == E.INVALID_ARGUMENT and "longer than 32" in codes[3][1]
    joined = await alice.join("#General")  # names are case-insensitive, '#' optional
    assert joined.room == "general"


async def test_calls_without_a_valid_token_are_unauthenticated(server: ChatServer) -> None:
    ch = channel(target(server))
    stub = pb_grpc.ChatServiceStub(ch)
    try:
        for metadata in (None, auth_metadata("not-a-token"), (("authorization", "Basic xyz"),)):
            for call in (
                stub.History(pb.HistoryRequest(room="general"), metadata=metadata),
                stub.ListRooms(pb.ListRoomsRequest(), metadata=metadata),
                stub.ListMembers(pb.ListMembersRequest(room="general"), metadata=metadata),
                stub.ListDirects(pb.ListDirectsRequest(), metadata=metadata),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            chat = stub.Chat(metadata=metadata)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await chat.read()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "token" in (info.value.details() or "")
    finally:
        await ch.close()


async def test_names_are_owned_by_whoever_claimed_them_first(server: ChatServer) -> None:
    ch = channel(target(server))
    try:
        first = await login(ch, "alice", password="s3cret")
        assert first.created and first.user == "alice"
        # No proof: refused. Wrong password: refused.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await login(ch, "alice")
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await login(ch, "ALICE", password="guess")
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Bob's token does not make anyone alice.
        bob = await login(ch, "bob")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await login(ch, "alice", token=bob.token)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # The password, or alice's own token, proves it.
        again = await login(ch, "Alice", password="s3cret")
        assert not again.created and again.user == "alice"
        via_token = await login(ch, "alice", token=first.token)
        assert via_token.user == "alice" and via_token.token != first.token
        # Lookalike and malformed names are refused outright.
        for bad in ("\u0430lice", "", "a b", "x" * 33, "-dash"):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await login(ch, bad)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
    finally:
        await ch.close()


async def test_a_token_sends_only_as_its_own_user(peers: Peers) -> None:
    alice = await peers.open("alice")
    bob = await peers.open("bob", token=await peers.token("bob"))
    await alice.join("general")
    await bob.join("general")
    sent = await bob.send_and_ack("from bob", room="general")
    assert sent.sender == "bob"
    await alice.wait_for(lambda ev: [m.sender for m in alice.messages()] == ["bob"])


async def test_history_is_only_for_members_and_dm_participants(server: ChatServer) -> None:
    group = Peers(target(server))
    ch = channel(target(server))
    try:
        alice = await group.open("alice")
        bob = await group.open("bob")
        await alice.join("secret")
        await alice.send_and_ack("room text", room="secret")
        await alice.send_and_ack("for bob only", to_user="bob")
        await bob.wait_for(lambda ev: "for bob only" in bob.texts())
        stub = pb_grpc.ChatServiceStub(ch)
        carol = auth_metadata(await group.token("carol"))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.History(pb.HistoryRequest(room="secret"), metadata=carol)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # carol can only name her own DM conversations: with bob it is empty.
        page = await stub.History(pb.HistoryRequest(with_user="bob"), metadata=carol)
        assert list(page.messages) == []
        mine = await stub.History(
            pb.HistoryRequest(with_user="alice"), metadata=auth_metadata(bob.token)
        )
        assert [m.text for m in mine.messages] == ["for bob only"]
        directs = await stub.ListDirects(pb.ListDirectsRequest(), metadata=carol)
        assert list(directs.directs) == []
        # Resuming someone else's DM is impossible for the same reason.
        await (carol_peer := await group.open("carol")).stream.resume_direct("bob", 0)
        joined = (await carol_peer.wait_for(lambda ev: bool(carol_peer.of("joined"))))[0].joined
        assert joined.with_user == "bob" and joined.replayed == 0
        assert carol_peer.messages() == []
    finally:
        await ch.close()
        await group.close()


class _FailingStore(MemoryStore):
    """A real memory store that breaks on one room, to exercise the INTERNAL path."""

    async def claim_room(self, room: str, user: str, *, per_day: int = 0) -> RoomClaim:
        if room == "boom":
            raise RuntimeError("disk on fire")
        return await super().claim_room(room, user, per_day=per_day)

    async def is_member(self, room: str, user: str) -> bool:
        if room == "boom":
            raise RuntimeError("disk on fire")
        return await super().is_member(room, user)


async def test_unexpected_errors_are_logged_and_surface_as_internal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="chatrpc")
    srv = ChatServer(make_config("memory://"), store=_FailingStore())
    await srv.start()
    group = Peers(target(srv))
    ch = channel(target(srv))
    try:
        alice = await group.open("alice")
        await alice.stream.join("boom")
        err = (await alice.wait_for(lambda ev: bool(alice.of("error"))))[0].error
        assert err.code == E.INTERNAL and "disk on fire" not in err.message
        stub = pb_grpc.ChatServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.History(pb.HistoryRequest(room="boom"), metadata=auth_metadata(alice.token))
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert "disk on fire" not in (info.value.details() or "")
        # Logged with the traceback; the server and the stream carry on.
        assert any(r.exc_info and "disk on fire" in str(r.exc_info[1]) for r in caplog.records)
        await alice.join("fine")
        await alice.send_and_ack("still works", room="fine")
    finally:
        await ch.close()
        await group.close()
        await srv.stop()


async def test_a_half_closed_stream_ends_after_the_echoes(server: ChatServer) -> None:
    ch = channel(target(server))
    try:
        token = (await login(ch, "alice")).token
        stream = ChatStream(ch, token)
        await stream.join("general")
        for i in range(50):
            await stream.send(f"m{i}", room="general", client_msg_id=f"c{i}")
        await stream.done_writing()
        events = [e async for e in stream]
        texts = [e.message.text for e in events if e.WhichOneof("event") == "message"]
        assert texts == [f"m{i}" for i in range(50)]
        assert await stream.call.code() == grpc.StatusCode.OK
    finally:
        await ch.close()
