"""Security: nobody posts as someone else or reads what is not theirs; limits hold.

Impersonation (taken names, revoked tokens, a token only ever sends as its
owner), privacy (DMs and History of rooms not joined), name rules, the per-user
send rate limit, Login throttling per address, and the session, room,
connection and stream limits, each triggering as documented.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from typing import Any

import grpc
import pytest

from chatrpc.auth import Auth
from chatrpc.cli_server import build_parser, config_from_args
from chatrpc.client import ChatStream, auth_metadata, channel, login, logout
from chatrpc.config import ServerConfig
from chatrpc.errors import ChatError, Code
from chatrpc.hub import Hub, Limits
from chatrpc.model import normalize_name
from chatrpc.ratelimit import Buckets, retry_hint
from chatrpc.server import ChatServer, _client_address
from chatrpc.store.memory import MemoryStore
from chatrpc.subscriber import Session
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import Peer, Peers, running_server, target

E = pb.Error
Status = grpc.StatusCode

#: A channel of its own (its own TCP connection): channels with the same
#: arguments otherwise share one connection.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


async def _code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    code: grpc.StatusCode = info.value.code()
    return code


def _stub(ch: grpc.aio.Channel) -> pb_grpc.ChatServiceStub:
    return pb_grpc.ChatServiceStub(ch)


# -- impersonation ------------------------------------------------------------------------


async def test_a_taken_name_cannot_be_claimed_in_any_spelling_without_proof() -> None:
    async with running_server() as srv:
        ch = channel(target(srv))
        try:
            await login(ch, "alice", password="pw")
            for spelling in ("alice", "ALICE", " Alice ", "\uff41\uff4c\uff49\uff43\uff45"):
                assert await _code_of(login(ch, spelling)) == Status.ALREADY_EXISTS, spelling
            assert await _code_of(login(ch, "alice", password="nope")) == Status.UNAUTHENTICATED
            assert await _code_of(login(ch, "alice", token="made-up")) == Status.UNAUTHENTICATED
        finally:
            await ch.close()


async def test_a_message_is_sent_as_the_tokens_owner_whatever_the_event_says() -> None:
    async with running_server() as srv:
        group = Peers(target(srv))
        try:
            alice = await group.open("alice")
            bob = await group.open("bob")
            await alice.join("general")
            await bob.join("general")
            # A Send with an unknown field 15 holding "bob" (as a newer client
            # might send a 'sender' field): ignored, the sender is the token's user.
            send = pb.Send(room="general", text="who am i", client_msg_id="spoof")
            raw = pb.ClientEvent(send=send).SerializeToString()
            extra = b"z\x03bob"  # field 15, length 3, "bob"
            forged = pb.ClientEvent.FromString(raw[:1] + bytes([raw[1] + 5]) + raw[2:] + extra)
            await alice.stream.write(forged)
            await bob.wait_for(lambda ev: "who am i" in bob.texts())
            assert [(m.sender, m.text) for m in bob.messages()] == [("alice", "who am i")]
            # A DM "to bob" from alice's token is from alice, and in alice's conversation.
            dm = await alice.send_and_ack("psst", to_user="bob")
            assert dm.sender == "alice" and dm.to_user == "bob"
        finally:
            await group.close()


async def test_a_revoked_token_is_refused_everywhere_and_the_others_still_work(
    store_url: str,
) -> None:
    # Login throttling off: this test presents a revoked token many times on purpose.
    async with running_server(store_url, login_rate=0) as srv:
        ch = channel(target(srv))
        stub = _stub(ch)
        try:
            first = await login(ch, "alice")
            second = await login(ch, "alice", token=first.token)
            out = await logout(ch, first.token)
            assert (out.revoked_tokens, out.ended_sessions) == (1, 0)
            md = auth_metadata(first.token)
            for call in (
                stub.History(pb.HistoryRequest(with_user="bob"), metadata=md),
                stub.ListRooms(pb.ListRoomsRequest(), metadata=md),
                stub.Logout(pb.LogoutRequest(), metadata=md),
            ):
                assert await _code_of(call) == Status.UNAUTHENTICATED
            # Not as proof of the name either, and not for a Chat stream.
            assert await _code_of(login(ch, "alice", token=first.token)) == Status.UNAUTHENTICATED
            stream = ChatStream(ch, first.token)
            assert await _code_of(stream.call.read()) == Status.UNAUTHENTICATED
            # The other token of alice is untouched.
            await stub.ListRooms(pb.ListRoomsRequest(), metadata=auth_metadata(second.token))
        finally:
            await ch.close()


async def test_logout_ends_the_live_sessions_of_that_token_only(store_url: str) -> None:
    async with running_server(store_url) as srv:
        group = Peers(target(srv))
        ch = channel(target(srv))
        try:
            t1 = await group.token("alice")
            t2 = (await login(ch, "alice", token=t1)).token
            phone = await group.open("alice", token=t1)
            laptop = await group.open("alice", token=t2)
            await phone.join("general")
            await laptop.join("general")
            out = await logout(ch, t1)
            assert (out.revoked_tokens, out.ended_sessions) == (1, 1)
            assert await phone.wait_end() == Status.UNAUTHENTICATED
            assert "token revoked" in phone.details
            # The session of the other token goes on.
            await laptop.send_and_ack("still here", room="general")
        finally:
            await ch.close()
            await group.close()


async def test_logout_everywhere_revokes_every_token_and_ends_every_session(
    store_url: str,
) -> None:
    async with running_server(store_url) as srv:
        group = Peers(target(srv))
        ch = channel(target(srv))
        try:
            t1 = await group.token("alice")
            t2 = (await login(ch, "alice", token=t1)).token
            sessions = [await group.open("alice", token=t) for t in (t1, t2, t2)]
            bob = await group.open("bob")
            out = await logout(ch, t2, all_sessions=True)
            assert (out.revoked_tokens, out.ended_sessions) == (2, 3)
            for s in sessions:
                assert await s.wait_end() == Status.UNAUTHENTICATED
            for t in (t1, t2):
                assert await _code_of(login(ch, "alice", token=t)) == Status.UNAUTHENTICATED
            # Nobody else is affected, and the name is still alice's (needs proof).
            await bob.join("general")
            assert await _code_of(login(ch, "alice")) == Status.ALREADY_EXISTS
        finally:
            await ch.close()
            await group.close()


async def _logins_racing_logout_everywhere(login_at: str, logout_at: str, user: str) -> list[str]:
    """Four tasks Login with a stolen token back to back while its owner logs out
    everywhere; returns the minted tokens that still work afterwards."""
    attacker, owner = channel(login_at), channel(logout_at)
    try:
        stolen = (await login(attacker, user)).token
        minted: list[str] = []
        racing = asyncio.Event()

        async def mint() -> None:
            while True:
                try:
                    minted.append((await login(attacker, user, token=stolen)).token)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == Status.UNAUTHENTICATED, exc.details()
                    return
                if len(minted) >= 8:
                    racing.set()

        tasks = [asyncio.create_task(mint()) for _ in range(4)]
        try:
            await asyncio.wait_for(racing.wait(), 10)
            await logout(owner, stolen, all_sessions=True)
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
        finally:
            for task in tasks:
                task.cancel()
        stub = _stub(owner)
        alive = []
        for token in minted:
            try:
                await stub.ListRooms(pb.ListRoomsRequest(), metadata=auth_metadata(token))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == Status.UNAUTHENTICATED
            else:
                alive.append(token)
        return alive
    finally:
        await attacker.close()
        await owner.close()


async def test_no_login_racing_a_logout_everywhere_leaves_a_working_token(
    store_url: str,
) -> None:
    # Login throttling off: the attackers present a revoked token on purpose.
    async with running_server(store_url, login_rate=0) as srv:
        for trial in range(6):
            alive = await _logins_racing_logout_everywhere(
                target(srv), target(srv), f"victim{trial}"
            )
            assert alive == [], f"trial {trial}: {len(alive)} tokens outlived the logout"


async def test_no_login_on_one_server_outlives_a_logout_everywhere_on_another(
    redis_server: Any,
) -> None:
    redis_server.flush()
    url = redis_server.url_for(0)
    async with (
        running_server(url, login_rate=0) as a,
        running_server(url, login_rate=0) as b,
    ):
        for trial in range(6):
            alive = await _logins_racing_logout_everywhere(target(a), target(b), f"victim{trial}")
            assert alive == [], f"trial {trial}: {len(alive)} tokens outlived the logout"


async def test_a_revoked_session_can_do_nothing_even_before_its_stream_ends() -> None:
    """A client that never reads never sees its End(REVOKED); its events are refused anyway."""
    store = MemoryStore()
    await store.open()
    hub = Hub(store, Limits(rate_limit=0))
    await store.create_account("alice", None, "h1")
    await store.add_token("alice", "h2")
    phone, laptop = Session("alice"), Session("alice")
    hub.connect(phone, "h1")
    hub.connect(laptop, "h2")
    await hub.join(phone, "general")
    await hub.join(laptop, "general")
    assert hub.revoke("alice", "h1") == 1
    assert hub.online("general") == ["alice"] and phone.rooms == set()
    for attempt in (
        hub.prepare(phone, "hi", room="general"),
        hub.prepare(phone, "psst", to_user="alice"),
        hub.join(phone, "general"),
        hub.resume_direct(phone, "alice", 0),
        hub.leave(phone, "general"),
    ):
        with pytest.raises(ChatError) as info:
            await attempt
        assert info.value.code is Code.UNAUTHENTICATED
    # The other session goes on; revoking every token ends it too.
    await hub.commit(laptop, [await hub.prepare(laptop, "still here", room="general")])
    assert hub.revoke("alice") == 1 and hub.sessions() == []
    await store.close()


# -- privacy ------------------------------------------------------------------------------


async def test_a_third_user_reads_no_dm_on_any_path(store_url: str) -> None:
    async with running_server(store_url) as srv:
        group = Peers(target(srv))
        ch = channel(target(srv))
        try:
            alice = await group.open("alice")
            bob = await group.open("bob")
            carol = await group.open("carol")
            await alice.send_and_ack("for bob only", to_user="bob")
            await bob.wait_for(lambda ev: "for bob only" in bob.texts())
            md = auth_metadata(carol.token)
            stub = _stub(ch)
            for peer in ("alice", "bob"):
                page = await stub.History(pb.HistoryRequest(with_user=peer), metadata=md)
                assert list(page.messages) == [] and page.last_seq == 0
                # Resuming "the DM with alice" from 0 is carol's own DM with alice: empty.
                await carol.stream.resume_direct(peer, 0)
            await carol.wait_for(lambda ev: len(carol.of("joined")) == 2)
            assert [j.replayed for j in carol.of("joined")] == [0, 0]
            # A conversation key cannot be smuggled in as a name.
            for forged in ("alice@bob", "@alice@bob", "#general"):
                req = pb.HistoryRequest(with_user=forged)
                assert await _code_of(stub.History(req, metadata=md)) == Status.INVALID_ARGUMENT
            directs = await stub.ListDirects(pb.ListDirectsRequest(), metadata=md)
            assert list(directs.directs) == []
            # A later live DM still reaches only its two users.
            await bob.send_and_ack("reply", to_user="alice")
            await alice.wait_for(lambda ev: "reply" in alice.texts())
            await carol.send_and_ack("note to self", to_user="carol")
            assert carol.texts() == ["note to self"]
        finally:
            await ch.close()
            await group.close()


async def test_room_history_is_for_members_only_before_joining_and_after_leaving(
    store_url: str,
) -> None:
    async with running_server(store_url) as srv:
        group = Peers(target(srv))
        ch = channel(target(srv))
        try:
            alice = await group.open("alice")
            await alice.join("secret")
            await alice.send_and_ack("inside", room="secret")
            carol = await group.open("carol")
            stub = _stub(ch)
            md = auth_metadata(carol.token)
            req = pb.HistoryRequest(room="secret")
            assert await _code_of(stub.History(req, metadata=md)) == Status.PERMISSION_DENIED
            # Rooms are public to join; a member reads the history.
            await carol.join("secret")
            page = await stub.History(req, metadata=md)
            assert [m.text for m in page.messages] == ["inside"]
            await carol.stream.leave("secret")
            await carol.wait_for(lambda ev: bool(carol.of("left")))
            assert await _code_of(stub.History(req, metadata=md)) == Status.PERMISSION_DENIED
            # Sending to a room one has left is refused.
            await carol.stream.send("sneak", room="secret", client_msg_id="s")
            assert (await carol.error_for("s")).code == E.FAILED_PRECONDITION
        finally:
            await ch.close()
            await group.close()


# -- names --------------------------------------------------------------------------------

HIDDEN = [
    "al\x00ice",
    "alice\n",
    "\talice",
    "al\x1bice",
    "ali\x7fce",
    "ali\x85ce",
    "al\u200bice",  # zero-width space
    "al\u200dice",  # zero-width joiner
    "alice\u200e",  # left-to-right mark
    "\u202ealice",  # right-to-left override
    "al\u2066ice",  # left-to-right isolate
    "\ufeffalice",  # byte order mark
    "al\u00adice",  # soft hyphen
    "ali\u2028ce",  # line separator
]


@pytest.mark.parametrize("raw", HIDDEN, ids=lambda r: unicodedata.name(r[-1], hex(ord(r[-1]))))
def test_names_with_control_bidi_or_zero_width_characters_are_refused(raw: str) -> None:
    with pytest.raises(ChatError) as info:
        normalize_name(raw, "user")
    assert info.value.code is Code.INVALID_ARGUMENT
    assert "control or invisible" in info.value.message


async def test_hidden_characters_are_refused_over_the_wire_with_invalid_argument() -> None:
    async with running_server() as srv:
        group = Peers(target(srv))
        ch = channel(target(srv))
        try:
            for raw in HIDDEN:
                assert await _code_of(login(ch, raw)) == Status.INVALID_ARGUMENT, repr(raw)
            alice = await group.open("alice")
            for i, raw in enumerate(HIDDEN):
                await alice.stream.send("hi", to_user=raw, client_msg_id=f"dm{i}")
                assert (await alice.error_for(f"dm{i}")).code == E.INVALID_ARGUMENT
                await alice.stream.join(raw)
            await alice.wait_for(lambda ev: len(alice.of("error")) == 2 * len(HIDDEN))
            assert {e.code for e in alice.of("error")} == {E.INVALID_ARGUMENT}
            # Terminal escapes in message text (ESC, the one-byte CSI) are refused too.
            await alice.join("general")
            for i, text in enumerate(("\x1b[2Jgone", "\x9b2J")):
                await alice.stream.send(text, room="general", client_msg_id=f"esc{i}")
                assert (await alice.error_for(f"esc{i}")).code == E.INVALID_ARGUMENT
        finally:
            await ch.close()
            await group.close()


# -- the send rate limit ------------------------------------------------------------------


class _Peer:
    def __init__(self, peer: str) -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:127.0.0.1:50123", "127.0.0.1"),
        ("ipv6:[::1]:50123", "::1"),
        ("ipv6:[2001:db8::7]:443", "2001:db8::7"),
        ("unix:/run/chat.sock", "unix:/run/chat.sock"),
        ("", ""),
    ],
)
def test_logins_are_throttled_by_ip_address_whatever_the_port(peer: str, address: str) -> None:
    assert _client_address(_Peer(peer)) == address


def test_the_documented_defaults_are_what_the_server_runs_with() -> None:
    config = config_from_args(build_parser().parse_args([]))
    lim = config.limits
    assert (lim.rate_limit, lim.rate_burst) == (5.0, 20)
    assert (lim.max_rooms_per_session, lim.max_sessions_per_user, lim.max_sessions) == (
        100,
        20,
        10_000,
    )
    assert (config.max_connections, config.max_streams_per_connection) == (10_000, 100)
    assert (config.max_receive_bytes, config.login_rate, config.login_burst) == (65536, 2.0, 50)
    assert config == ServerConfig(store="")  # the flags' defaults are ServerConfig's
    flags = config_from_args(
        build_parser().parse_args(
            [
                *("--rate-limit", "0", "--rate-burst", "7", "--rooms-per-session", "3"),
                *("--sessions-per-user", "4", "--max-sessions", "5", "--max-connections", "6"),
                *("--streams-per-connection", "8", "--max-receive-bytes", "4096"),
                *("--login-rate", "0.5", "--login-burst", "9"),
            ]
        )
    )
    assert flags.limits.rate_limit == 0 and flags.limits.rate_burst == 7
    assert flags.limits.max_rooms_per_session == 3 and flags.limits.max_sessions_per_user == 4
    assert flags.limits.max_sessions == 5 and flags.max_connections == 6
    assert flags.max_streams_per_connection == 8 and flags.max_receive_bytes == 4096
    assert (flags.login_rate, flags.login_burst) == (0.5, 9)


def test_a_token_bucket_refills_at_its_rate_and_stays_bounded() -> None:
    now = [0.0]
    buckets = Buckets(2.0, 3, max_keys=10, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] = 0.5
    assert buckets.take("a") == 0
    buckets.charge("a", 10)  # debt is capped at one burst
    assert buckets.debt("a") == pytest.approx(1.5)
    for i in range(100):
        buckets.take(f"user{i}")
    assert len(buckets) <= 10
    assert retry_hint(0.001) == "0.1 s" and retry_hint(0.25) == "0.3 s"
    assert Buckets(0, 1).take("x", 1e9) == 0  # rate 0: no limit


async def test_sends_over_the_rate_limit_get_an_error_with_a_retry_hint_and_stay_open() -> None:
    # Two joins cost 0.2 of the burst of 4: three sends pass, the fourth does not.
    async with running_server(limits=Limits(rate_limit=0.1, rate_burst=4)) as srv:
        group = Peers(target(srv))
        try:
            alice = await group.open("alice")
            alice_too = await group.open("alice")
            bob = await group.open("bob")
            for p in (alice, alice_too, bob):
                await p.join("general")
            # The budget is per user, shared by all their sessions.
            await alice.send_and_ack("one", room="general")
            await alice.send_and_ack("two", room="general")
            await alice_too.send_and_ack("three", room="general")
            await alice_too.stream.send("four", room="general", client_msg_id="c4")
            err = await alice_too.error_for("c4")
            assert err.code == E.RESOURCE_EXHAUSTED
            match = re.fullmatch(r"rate limit: retry in (\d+\.\d) s", err.message)
            assert match and 0 < float(match.group(1)) <= 10.0, err.message
            # Other users are not limited by alice's sends.
            for i in range(3):
                await bob.send_and_ack(f"bob {i}", room="general")
            # The stream stays open: alice still gets everything, leaves, and rejoins.
            await alice_too.wait_for(lambda ev: "bob 2" in alice_too.texts())
            await alice_too.stream.leave("general")
            await alice_too.wait_for(lambda ev: bool(alice_too.of("left")))
            assert alice_too.status is None
            assert "four" not in bob.texts()
        finally:
            await group.close()


async def test_rate_limit_zero_lifts_it() -> None:
    async with running_server(limits=Limits(rate_limit=0, rate_burst=1)) as srv:
        group = Peers(target(srv))
        try:
            alice = await group.open("alice")
            await alice.join("general")
            for i in range(200):
                await alice.stream.send(f"m{i}", room="general", client_msg_id=f"c{i}")
            await alice.wait_for(lambda ev: len(alice.messages()) == 200)
            assert not alice.of("error")
        finally:
            await group.close()


# -- login throttling ---------------------------------------------------------------------


async def test_password_guessing_from_one_address_is_throttled() -> None:
    async with running_server(login_rate=0.1, login_burst=20) as srv:
        ch = channel(target(srv))
        try:
            await login(ch, "alice", password="right")
            await login(ch, "bob", password="bobs")
            # Each wrong guess costs ten logins' worth: three, and alice's name is in
            # debt from this address.
            codes = [(await _code_of(login(ch, "alice", password=f"g{i}"))) for i in range(4)]
            assert codes == [Status.UNAUTHENTICATED] * 3 + [Status.RESOURCE_EXHAUSTED]
            # Refused before the credential is looked at: the right one too.
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await login(ch, "alice", password="right")
            assert info.value.code() == Status.RESOURCE_EXHAUSTED
            assert re.search(r"retry in \d+\.\d s", info.value.details() or "")
            # Another name behind the same address is not locked out.
            await login(ch, "bob", password="bobs")
        finally:
            await ch.close()


async def test_wrong_passwords_are_throttled_per_name_across_addresses_and_per_address() -> None:
    store = MemoryStore()
    await store.open()
    auth = Auth(store, login_rate=0.1, login_burst=20)
    await auth.login("alice", "right", client="10.0.0.1")
    await auth.login("bob", "bobs", client="10.0.0.1")

    async def code(user: str, password: str, client: str) -> Code | None:
        try:
            await auth.login(user, password, client=client)
        except ChatError as exc:
            return exc.code
        return None

    # Spread over many addresses, a guesser gets the name's budget (five
    # addresses' worth), then every address is refused for that name.
    codes = [await code("alice", f"g{i}", f"10.1.0.{i}") for i in range(11)]
    assert codes == [Code.UNAUTHENTICATED] * 11
    assert await code("alice", "g-next", "10.2.0.1") is Code.RESOURCE_EXHAUSTED
    assert await code("alice", "right", "10.0.0.1") is Code.RESOURCE_EXHAUSTED
    # bob, on the guesser's first address, is not affected.
    assert await code("bob", "bobs", "10.1.0.0") is None
    await store.close()


async def test_a_valid_user_keeps_working_while_another_on_its_address_floods_bad_tokens() -> None:
    async with running_server(login_rate=0.1, login_burst=15) as srv:
        group = Peers(target(srv))
        flooder = channel(target(srv), options=OWN_CONNECTION)
        alice_ch = channel(target(srv), options=OWN_CONNECTION)
        try:
            alice = await group.open("alice")
            await alice.join("general")
            stub = _stub(alice_ch)
            md = auth_metadata(alice.token)
            bad = _stub(flooder)
            codes = set()
            for i in range(12):
                history = await stub.History(pb.HistoryRequest(room="general"), metadata=md)
                assert history.last_seq >= i
                call = bad.ListRooms(pb.ListRoomsRequest(), metadata=auth_metadata(f"bogus-{i}"))
                codes.add(await _code_of(call))
                await alice.send_and_ack(f"still here {i}", room="general")
            # The flooder is throttled (it is in debt), alice never was.
            assert codes == {Status.UNAUTHENTICATED, Status.RESOURCE_EXHAUSTED}
            assert alice.status is None
            # A new Chat session with alice's token opens and works too.
            second = await group.open("alice", token=alice.token)
            await second.join("general")
            await second.send_and_ack("from the second session", room="general")
            assert (await login(alice_ch, "alice", token=alice.token)).token
        finally:
            await flooder.close()
            await alice_ch.close()
            await group.close()


async def test_token_guessing_on_any_call_is_throttled() -> None:
    async with running_server(login_rate=0.1, login_burst=15) as srv:
        ch = channel(target(srv))
        stub = _stub(ch)
        try:
            codes = []
            for i in range(4):
                md = auth_metadata(f"guess-{i}")
                codes.append(await _code_of(stub.ListRooms(pb.ListRoomsRequest(), metadata=md)))
            assert codes[:2] == [Status.UNAUTHENTICATED] * 2
            assert codes[2:] == [Status.RESOURCE_EXHAUSTED] * 2
            stream = ChatStream(ch, "guess-chat")
            assert await _code_of(stream.call.read()) == Status.RESOURCE_EXHAUSTED
        finally:
            await ch.close()


async def test_logins_past_the_burst_are_refused_until_the_bucket_refills() -> None:
    async with running_server(login_rate=0.01, login_burst=3) as srv:
        ch = channel(target(srv))
        try:
            for i in range(3):
                await login(ch, f"user{i}")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await login(ch, "user3")
            assert info.value.code() == Status.RESOURCE_EXHAUSTED
            assert "too many logins" in (info.value.details() or "")
        finally:
            await ch.close()


# -- session, room, connection and stream limits -----------------------------------------


async def _open_refused(group: Peers, user: str) -> Peer:
    peer = await group.open(user)
    await peer.wait_end()
    return peer


async def test_sessions_per_user_are_limited_and_a_closed_one_frees_its_place() -> None:
    async with running_server(limits=Limits(rate_limit=0, max_sessions_per_user=2)) as srv:
        group = Peers(target(srv))
        try:
            first = await group.open("alice")
            await group.open("alice")
            third = await _open_refused(group, "alice")
            assert third.status == Status.RESOURCE_EXHAUSTED
            assert "2 sessions open" in third.details
            await group.open("bob")  # other users are not affected
            # A half-closed session ends (and is gone from the hub) before its OK arrives.
            await first.stream.done_writing()
            assert await first.wait_end() == Status.OK
            again = await group.open("alice")
            await again.join("general")
        finally:
            await group.close()


async def test_sessions_on_the_server_are_limited() -> None:
    async with running_server(limits=Limits(rate_limit=0, max_sessions=2)) as srv:
        group = Peers(target(srv))
        try:
            await group.open("alice")
            await group.open("bob")
            carol = await _open_refused(group, "carol")
            assert carol.status == Status.RESOURCE_EXHAUSTED
            assert "retry later" in carol.details
        finally:
            await group.close()


async def test_rooms_per_session_are_limited() -> None:
    async with running_server(limits=Limits(rate_limit=0, max_rooms_per_session=3)) as srv:
        group = Peers(target(srv))
        try:
            alice = await group.open("alice")
            for room in ("a", "b", "c"):
                await alice.join(room)
            await alice.stream.join("d")
            await alice.wait_for(lambda ev: bool(alice.of("error")))
            err = alice.of("error")[0]
            assert err.code == E.RESOURCE_EXHAUSTED and "3 rooms" in err.message
            # Rejoining a room it is in is fine; after leaving one, a new one is too.
            await alice.join("a")
            await alice.stream.leave("b")
            await alice.join("d")
            assert srv.hub.sessions()[0].rooms == {"a", "c", "d"}
            # Another session of the same user has its own count.
            other = await group.open("alice")
            await other.join("e")
        finally:
            await group.close()


async def test_a_thousand_joins_of_new_rooms_leave_the_session_bounded() -> None:
    async with running_server(limits=Limits(rate_limit=0, max_rooms_per_session=10)) as srv:
        group = Peers(target(srv))
        try:
            alice = await group.open("alice")
            bob = await group.open("bob")
            await bob.join("lobby")
            for i in range(1000):
                await alice.stream.join(f"room{i}")
            await alice.wait_for(
                lambda ev: len(alice.of("joined")) + len(alice.of("error")) == 1000
            )
            assert len(alice.of("joined")) == 10
            assert {e.code for e in alice.of("error")} == {E.RESOURCE_EXHAUSTED}
            assert len(srv.hub.sessions()[0].rooms) == 10
            await bob.send_and_ack("unaffected", room="lobby")
        finally:
            await group.close()


async def test_connections_past_the_limit_are_refused_and_the_others_go_on() -> None:
    async with running_server(max_connections=2) as srv:
        channels = [channel(target(srv), OWN_CONNECTION) for _ in range(3)]
        try:
            await login(channels[0], "alice")
            await login(channels[1], "bob")
            assert await _code_of(login(channels[2], "carol", timeout=5)) == Status.UNAVAILABLE
            await login(channels[0], "dave")
        finally:
            for ch in channels:
                await ch.close()


async def test_streams_per_connection_are_limited_and_the_next_waits_for_a_free_one() -> None:
    async with running_server(max_streams_per_connection=2) as srv:
        ch = channel(target(srv), OWN_CONNECTION)
        try:
            token = (await login(ch, "alice")).token
            first, second = ChatStream(ch, token), ChatStream(ch, token)
            await first.call.initial_metadata()
            await second.call.initial_metadata()
            third = ChatStream(ch, token)
            waiting = asyncio.ensure_future(third.call.initial_metadata())
            done, _ = await asyncio.wait({waiting}, timeout=0.5)
            assert not done, "the third stream should wait for a free one"
            first.cancel()
            await asyncio.wait_for(waiting, 10)
            third.cancel()
            second.cancel()
        finally:
            await ch.close()


async def test_a_frame_over_the_receive_limit_ends_only_its_stream() -> None:
    async with running_server(max_receive_bytes=8192) as srv:
        group = Peers(target(srv))
        ch = channel(target(srv), OWN_CONNECTION)
        try:
            bystander = await group.open("bob")
            await bystander.join("general")
            token = (await login(ch, "mallory")).token
            raw = ch.stream_stream(
                "/chatrpc.v1.ChatService/Chat",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )(metadata=auth_metadata(token))
            await raw.write(b"\x1a\x82\x80\x01" + b"x" * 16386)  # a Send of 16 KiB
            assert await _code_of(raw.read()) == Status.RESOURCE_EXHAUSTED
            await bystander.send_and_ack("still fine", room="general")
        finally:
            await ch.close()
            await group.close()


async def test_tls_settings_that_cannot_work_are_refused_at_startup(tmp_path: Any) -> None:
    for config, words in (
        (ServerConfig(store="memory://", tls_cert="x.pem"), "both a certificate and its key"),
        (
            ServerConfig(store="memory://", tls_cert=str(tmp_path / "no.pem"), tls_key="k"),
            "cannot read the TLS",
        ),
    ):
        with pytest.raises(ChatError) as info:
            ChatServer(config)
        assert info.value.code is Code.INVALID_ARGUMENT and words in info.value.message
