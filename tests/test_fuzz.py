"""Fuzzing the Chat stream: whatever a client sends, it gets a clear answer and hurts nobody.

Generated ClientEvent sequences (odd unicode, huge and empty fields, unknown
fields and oneof members in raw bytes, thousands of joins) and raw garbage are
sent to a real server subprocess through a generic bytes-in, bytes-out call.
Each gets a clear status or error events, never INTERNAL; a bystander keeps
chatting after every example; and a flood of all of it leaves the server's
memory (RSS from /proc) within a generous bound.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatrpc.client import ChatStream, auth_metadata, channel, login
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.wire import varint as encode_varint

from .conftest import WAIT, Peer, Peers, ServerProcess, end_status, start_server_process

E = pb.Error
Status = grpc.StatusCode

#: Statuses a Chat call may end with, whatever the client sent (while it reads).
CALL_STATUSES = {Status.OK, Status.INVALID_ARGUMENT, Status.RESOURCE_EXHAUSTED}
#: Codes of error events about one bad event; never INTERNAL.
EVENT_CODES = {E.INVALID_ARGUMENT, E.NOT_FOUND, E.FAILED_PRECONDITION, E.RESOURCE_EXHAUSTED}

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: A channel of its own (its own TCP connection), so a flood shares nothing with bystanders.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


# -- the server, a bystander, raw calls ------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server subprocess with the default limits, but no send or login rate limit."""
    logs = tmp_path_factory.mktemp("fuzz")
    sp = start_server_process(
        *("--store", "memory://", "--log-level", "warning", "--login-rate", "0"),
        log_dir=logs,
    )
    try:
        yield sp
    finally:
        sp.stop(signal.SIGKILL)
    assert "Traceback" not in sp.stderr(), sp.stderr()[-3000:]


@pytest.fixture
async def bystander(fuzz_server: ServerProcess) -> AsyncIterator[Peer]:
    """Someone else chatting on the same server (the fuzzed calls use other connections)."""
    group = Peers(fuzz_server.address)
    try:
        peer = await group.open(f"bystander{next(_bystanders)}")
        await peer.join("lobby")
        yield peer
    finally:
        await group.close()


_bystanders = itertools.count(1)


def _raw_chat(ch: grpc.aio.Channel, token: str | None) -> Any:
    call = ch.stream_stream(
        "/chatrpc.v1.ChatService/Chat",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    return call(metadata=auth_metadata(token) if token else None)


def _unpack(data: bytes) -> list[pb.ServerEvent]:
    event = pb.ServerEvent.FromString(data)
    if event.WhichOneof("event") == "batch":
        return list(event.batch.events)
    return [event]


async def exchange(
    ch: grpc.aio.Channel, token: str | None, frames: Sequence[bytes]
) -> tuple[grpc.StatusCode, str, list[pb.ServerEvent]]:
    """Sends ``frames`` on one Chat call, half-closes and reads to the end.

    Returns (status, details, events).
    """
    call = _raw_chat(ch, token)

    async def write_all() -> None:
        try:
            for frame in frames:
                await call.write(frame)
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the server ended the call first; the reader sees why

    async def read_all() -> tuple[grpc.StatusCode, str, list[pb.ServerEvent]]:
        events: list[pb.ServerEvent] = []
        try:
            async for data in call:
                events.extend(_unpack(data))
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or "", events
        return Status.OK, "", events

    writer = asyncio.create_task(write_all())
    try:
        return await asyncio.wait_for(read_all(), WAIT * 3)
    finally:
        call.cancel()
        await writer


#: What grpcio's asyncio client reports, instead of the server's status, when one of its
#: writes fails because the server already ended the call (grpc/grpc#36066). The
#: server's own INTERNAL says "internal error; it has been logged" and is never allowed.
CLIENT_WRITE_RACE = (Status.INTERNAL, "Internal error from Core")


def check_answers(code: grpc.StatusCode, details: str, events: list[pb.ServerEvent]) -> None:
    if (code, details) == CLIENT_WRITE_RACE:
        return
    assert code in CALL_STATUSES, (code, details)
    if code != Status.OK:
        assert details and "internal" not in details.lower(), details
    for event in events:
        if event.WhichOneof("event") == "error":
            assert event.error.code in EVENT_CODES, event.error
            assert event.error.message and len(event.error.message) < 2000


_tokens: dict[tuple[str, str], str] = {}


async def token_for(ch: grpc.aio.Channel, address: str, user: str) -> str:
    """Logs ``user`` in once per server; later examples reuse the token."""
    if (address, user) not in _tokens:
        _tokens[address, user] = (await login(ch, user)).token
    return _tokens[address, user]


_pings = [0]


async def still_serves(bystander: Peer, n: list[int]) -> None:
    n[0] += 1
    await bystander.send_and_ack(f"ping {n[0]}", room="lobby")


# -- strategies -------------------------------------------------------------------------

odd_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
names = st.one_of(
    st.sampled_from(
        [
            *("general", "#General", "ALICE", "bystander", "fuzzer", "a" * 32, "a" * 33, "", " "),
            *("\u0430lice", "al\u200bice", "\u202egeneral", "\ufb00", "r\x00", "x" * 300),
        ]
    ),
    odd_text,
)
texts = st.one_of(
    odd_text,
    st.sampled_from(["", " \n\t", "x" * 4096, "x" * 4097, "\u00e9" * 2049, "\x1b[2J", "\x9b"]),
    st.just("y" * 60_000),
    st.text(max_size=2000, alphabet=st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF)),
)
seqs = st.one_of(st.none(), st.integers(0, 2**64 - 1))


def _event(**kw: Any) -> bytes:
    return pb.ClientEvent(**kw).SerializeToString()


def _join(room: str, after: int | None, epoch: str) -> bytes:
    join = pb.Join(room=room, epoch=epoch)
    if after is not None:
        join.after_seq = after
    return _event(join=join)


def _resume(user: str, after: int | None) -> bytes:
    join = pb.Join(with_user=user)
    if after is not None:
        join.after_seq = after
    return _event(join=join)


def _send(target: str, name: str, text: str, cid: str) -> bytes:
    send = pb.Send(text=text, client_msg_id=cid)
    if target == "room":
        send.room = name
    elif target == "to_user":
        send.to_user = name
    return _event(send=send)


def _unknown_field(number: int, payload: bytes, varint: bool) -> bytes:
    """A field the schema does not have: a future oneof member or a new field."""
    if varint:
        return encode_varint(number << 3) + encode_varint(len(payload))
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


unknown = st.builds(
    _unknown_field,
    st.integers(4, 2**29 - 1).filter(lambda n: not 19000 <= n <= 19999),
    st.binary(max_size=40),
    st.booleans(),
)

events = st.one_of(
    st.builds(_join, names, seqs, odd_text),
    st.builds(_resume, names, seqs),
    st.builds(lambda room: _event(leave=pb.Leave(room=room)), names),
    st.builds(_send, st.sampled_from(["room", "to_user", "none"]), names, texts, odd_text),
    st.just(b""),  # an empty ClientEvent
    st.builds(lambda a, b: a + b, st.builds(_join, names, seqs, odd_text), unknown),
    unknown,  # only an unknown field: a oneof member this server does not know
)


@st.composite
def sessions(draw: st.DrawFn) -> list[bytes]:
    frames = [_join("general", None, "")]
    frames += draw(st.lists(events, max_size=25))
    if draw(st.booleans()):
        # Thousands of joins of new rooms: all but the first 100 are refused.
        frames += [_join(f"room{i}", None, "") for i in range(draw(st.integers(100, 3000)))]
    if draw(st.booleans()):
        frames.append(draw(st.binary(min_size=1, max_size=300)))  # garbage, perhaps valid
    return frames


# -- the tests --------------------------------------------------------------------------


@FUZZ
@given(frames=sessions())
async def test_generated_event_sequences_get_clear_answers_and_spare_the_bystander(
    fuzz_server: ServerProcess, bystander: Peer, frames: list[bytes]
) -> None:
    ch = channel(fuzz_server.address, OWN_CONNECTION)
    try:
        token = await token_for(ch, fuzz_server.address, "fuzzer")
        code, details, got = await exchange(ch, token, frames)
        check_answers(code, details, got)
        assert got and got[0].WhichOneof("event") == "joined"
        if code == Status.INVALID_ARGUMENT:
            assert "malformed" in details
    finally:
        await ch.close()
    await still_serves(bystander, _pings)


@FUZZ
@given(data=st.binary(max_size=2048))
async def test_raw_garbage_on_the_chat_method_gets_a_clear_status(
    fuzz_server: ServerProcess, bystander: Peer, data: bytes
) -> None:
    ch = channel(fuzz_server.address, OWN_CONNECTION)
    try:
        token = await token_for(ch, fuzz_server.address, "garbage")
        code, details, got = await exchange(ch, token, [data])
        check_answers(code, details, got)
        # Without a token, the payload is never even read.
        code, details, got = await exchange(ch, None, [data])
        assert got == []
        assert code == Status.UNAUTHENTICATED or (code, details) == CLIENT_WRITE_RACE, details
    finally:
        await ch.close()
    await still_serves(bystander, _pings)


# -- every numeric field at its extremes ---------------------------------------------------

_F = FieldDescriptor
#: The range of each integer type protobuf can carry.
_INT_RANGES = {
    **dict.fromkeys((_F.TYPE_UINT64, _F.TYPE_FIXED64), (0, 2**64 - 1)),
    **dict.fromkeys((_F.TYPE_UINT32, _F.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((_F.TYPE_INT64, _F.TYPE_SINT64, _F.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
    **dict.fromkeys(
        (_F.TYPE_INT32, _F.TYPE_SINT32, _F.TYPE_SFIXED32, _F.TYPE_ENUM), (-(2**31), 2**31 - 1)
    ),
}
_PIVOTS = (-1, 0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**63)


def _extremes(low: int, high: int) -> list[int]:
    return sorted({v for v in (low, high, *_PIVOTS) if low <= v <= high})


def _numeric_fields(
    desc: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], int, int]]:
    """Every integer or enum field reachable in a request message: (path, low, high)."""
    for field in desc.fields:
        if field.type == _F.TYPE_MESSAGE:
            if not field.message_type.full_name.startswith("google.protobuf.") and len(path) < 4:
                yield from _numeric_fields(field.message_type, (*path, field.name))
        elif field.type in _INT_RANGES:
            yield (*path, field.name), *_INT_RANGES[field.type]


#: What each request holds besides the fuzzed field, so the value reaches the store.
_BASE: dict[str, dict[str, Any]] = {
    "HistoryRequest": {"room": "numbers"},
    "ListMembersRequest": {"room": "numbers"},
    "SearchRequest": {"query": "one", "room": "numbers"},
    "ClientEvent": {"join": pb.Join(room="numbers")},
}
#: A ModerateRequest's field: a valid action around it, on the user "target".
_MODERATE_BASE: dict[str, dict[str, Any]] = {
    "ban": {"room": "numbers", "ban": pb.Ban(user="target")},
    "set_role": {"room": "numbers", "set_role": pb.SetRole(user="target")},
}


#: For a field of a stored event (a send or a change): a valid event around it,
#: naming the room's message 1.
_EVENT_BASE: dict[str, dict[str, Any]] = {
    "send": {"send": pb.Send(room="numbers", text="x")},
    "edit": {"edit": pb.Edit(room="numbers", seq=1, text="x")},
    "delete": {"delete": pb.Delete(room="numbers", seq=1)},
    "react": {"react": pb.React(room="numbers", seq=1, emoji="👍")},
    "mark_read": {"mark_read": pb.MarkRead(room="numbers", seq=1)},
}


def _with(type_name: str, path: tuple[str, ...], value: int) -> Any:
    base = _BASE.get(type_name, {})
    if type_name == "ClientEvent" and path[0] in _EVENT_BASE:
        base = _EVENT_BASE[path[0]]
    if type_name == "ModerateRequest":
        base = _MODERATE_BASE[path[0]]
    msg = getattr(pb, type_name)(**base)
    holder = msg
    for name in path[:-1]:
        holder = getattr(holder, name)
    setattr(holder, path[-1], value)
    return msg


#: What a stored event naming a seq in range may get: nothing internal.
_CLEAN = {E.INVALID_ARGUMENT, E.NOT_FOUND, E.FAILED_PRECONDITION}


async def test_every_numeric_field_of_every_request_at_its_extremes_gets_a_clean_status(
    tmp_path: Path,
) -> None:
    """History after_seq/before_seq at or above 2**63 once failed INTERNAL with a traceback."""
    sp = start_server_process(
        *("--store", f"sqlite://{tmp_path / 'chat.db'}", "--log-level", "warning"),
        *("--login-rate", "0"),
        log_dir=tmp_path,
    )
    ch = channel(sp.address, OWN_CONNECTION)
    try:
        peers = Peers(sp.address)
        try:
            peer = await peers.open("numbers")
            await peer.join("numbers")
            await peer.send_and_ack("one", room="numbers")
            await peers.token("target")  # whom moderation requests act on
        finally:
            await peers.close()
        md = auth_metadata(peer.token)
        cases = []
        for method in pb.DESCRIPTOR.services_by_name["ChatService"].methods:
            for path, low, high in _numeric_fields(method.input_type):
                cases += [(method, path, v) for v in _extremes(low, high)]
        fuzzed = {(m.input_type.name, *p) for m, p, _ in cases}
        assert {
            ("HistoryRequest", "after_seq"),
            ("HistoryRequest", "before_seq"),
            ("HistoryRequest", "limit"),
            ("ClientEvent", "join", "after_seq"),
            ("ClientEvent", "edit", "seq"),
            ("ClientEvent", "send", "reply_to"),
            ("ClientEvent", "mark_read", "seq"),
        } <= fuzzed
        for method, path, value in cases:
            request = _with(method.input_type.name, path, value)
            case = (method.name, path, value)
            if method.client_streaming:
                code, details, got = await exchange(ch, peer.token, [request.SerializeToString()])
                assert code == Status.OK, (case, code, details)
                for event in got:
                    if event.WhichOneof("event") == "error" and value > 2**63 - 1:
                        assert event.error.code == E.INVALID_ARGUMENT, (case, event.error)
                        assert "out of range" in event.error.message, (case, event.error)
                    elif event.WhichOneof("event") == "error":
                        # A seq in range that names no message (or a deleted one).
                        assert event.error.code in _CLEAN, (case, event.error)
                    else:
                        assert event.WhichOneof("event") in {"joined", "message"}, (case, event)
                continue
            call = ch.unary_unary(
                f"/chatrpc.v1.ChatService/{method.name}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=lambda b: b,
            )
            try:
                await call(request, metadata=md, timeout=WAIT)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == Status.INVALID_ARGUMENT, (case, exc.code(), exc.details())
                assert "out of range" in (exc.details() or ""), (case, exc.details())
    finally:
        await ch.close()
        sp.stop()
    assert "Traceback" not in sp.stderr(), sp.stderr()[-3000:]


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


async def _flood(address: str, round_no: int, stuck: list[ChatStream]) -> None:
    """One flood from one client, over connections of its own.

    Its member that never reads is left in ``stuck``, still connected.
    """
    chs = [channel(address, OWN_CONNECTION) for _ in range(3)]
    try:
        token = (await login(chs[0], f"flooder{round_no}")).token
        # Garbage and frames over the receive limit, on many concurrent calls.
        junk = [os.urandom(1024) for _ in range(100)]
        huge = b"\x1a\x83\x80\x06" + b"x" * 100_000
        calls = [exchange(chs[i % 3], token, [data]) for i, data in enumerate(junk)]
        calls += [exchange(chs[i % 3], token, [huge]) for i in range(50)]
        # (Past 20 at once, the user's sessions are refused: RESOURCE_EXHAUSTED too.)
        for code, details, got in await asyncio.gather(*calls):
            check_answers(code, details, got)
        # Thousands of joins of new rooms on one session: the day's room creation
        # quota (20) is created, the rest refused, each with its own error event.
        code, details, got = await exchange(
            chs[1], token, [_join(f"flood{round_no}-{i}", None, "") for i in range(5000)]
        )
        assert code == Status.OK, details
        assert len([e for e in got if e.WhichOneof("event") == "joined"]) == 20
        # More sessions than a user may have, one after the other: the 21st and
        # later are refused. (A user of its own: the flooder's refused calls above
        # may still be ending on the server.)
        crowd = (await login(chs[2], f"crowd{round_no}")).token
        streams = []
        for _ in range(30):
            streams.append(ChatStream(chs[2], crowd))
            await streams[-1].call.initial_metadata()
        ends = [await asyncio.wait_for(s.call.code(), WAIT) for s in streams[20:]]
        assert ends == [Status.RESOURCE_EXHAUSTED] * 10
        assert not any(s.call.done() for s in streams[:20])
        for s in streams[:20]:
            s.cancel()
        # A member that never reads while the room is flooded with 12 MB: the
        # server's writes to it block, its queue reaches its bound and is dropped.
        never = stuck[-1]
        await never.join("busy")
        await never.call.initial_metadata()
        writer = ChatStream(chs[2], (await login(chs[2], f"writer{round_no}")).token)
        await writer.join("busy")
        echoes = 0

        async def read_echoes() -> None:
            nonlocal echoes
            async for event in writer:
                echoes += event.WhichOneof("event") == "message"

        reading = asyncio.create_task(read_echoes())
        for i in range(3000):
            await writer.send(f"{i} " + "z" * 4000, room="busy", client_msg_id=f"c{i}")
        await writer.done_writing()
        await asyncio.wait_for(reading, WAIT * 3)
        assert echoes == 3000
    finally:
        for ch in chs:
            await ch.close()


async def _never_reader(address: str, user: str) -> tuple[grpc.aio.Channel, ChatStream]:
    # A small receive window, so the server's writes to it block soon.
    small_window = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384)]
    ch = channel(address, OWN_CONNECTION + small_window)
    return ch, ChatStream(ch, (await login(ch, user)).token)


# About a minute on an idle 2-core machine; the bound leaves room for a busy one.
@pytest.mark.timeout(240)
async def test_a_flood_from_one_client_leaves_memory_bounded_and_others_served(
    tmp_path: Path,
) -> None:
    sp = start_server_process(
        *("--db", str(tmp_path / "chat.db"), "--log-level", "warning", "--login-rate", "0"),
        log_dir=tmp_path,
    )
    group = Peers(sp.address)
    channels: list[grpc.aio.Channel] = []
    stuck: list[ChatStream] = []
    try:
        bystander = await group.open("bystander")
        await bystander.join("lobby")
        loop = asyncio.get_running_loop()
        slowest = 0.0
        pings = 0

        async def flood_while_bystander_chats(round_no: int) -> None:
            nonlocal slowest, pings
            ch, never = await _never_reader(sp.address, f"never{round_no}")
            channels.append(ch)
            stuck.append(never)
            flood = asyncio.create_task(_flood(sp.address, round_no, stuck))
            try:
                for _ in range(100):
                    if flood.done():
                        break
                    start = loop.time()
                    await bystander.send_and_ack(f"ping {pings}", room="lobby")
                    slowest = max(slowest, loop.time() - start)
                    pings += 1
                    bystander.events.clear()
            finally:
                await flood

        # Warm up every path once, so the baseline includes what any server allocates.
        await flood_while_bystander_chats(0)
        baseline = _rss_kib(sp.proc.pid)
        for round_no in (1, 2):
            await flood_while_bystander_chats(round_no)
        after = _rss_kib(sp.proc.pid)
        # The bystander was answered throughout, each time within the stated bound...
        assert pings >= 3 and slowest < 2.0, (pings, slowest)
        # ... and two more floods, their never-reading members still connected,
        # left the server's memory where the first one had taken it (generously).
        grown_mib = (after - baseline) / 1024
        assert grown_mib < 64, f"RSS grew {grown_mib:.1f} MiB ({baseline} -> {after} KiB)"
        # A never-reading member learns it was cut off as soon as it reads.
        for never in stuck:
            code, details = await asyncio.wait_for(end_status(never), WAIT * 3)
            assert code == Status.RESOURCE_EXHAUSTED and "slow consumer" in details, details
    finally:
        for ch in channels:
            await ch.close()
        await group.close()
        assert sp.stop() == 0
    assert "Traceback" not in sp.stderr(), sp.stderr()[-3000:]
