"""Nothing acknowledged is lost, nothing is doubled: kills, resumes, slow readers, retries."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from chatrpc.client import (
    ChatClient,
    ChatStream,
    ClientState,
    State,
    auth_metadata,
    channel,
    conv_of,
    login,
)
from chatrpc.hub import Limits
from chatrpc.server import awaiting
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import Peers, running_server, start_server_process, target
from .faults import FaultProxy


async def _history(address: str, token: str, room: str) -> list[pb.Message]:
    """Every stored message of a room, paging through History."""
    ch = channel(address)
    out: list[pb.Message] = []
    try:
        stub = pb_grpc.ChatServiceStub(ch)
        while True:
            page = await stub.History(
                pb.HistoryRequest(room=room, after_seq=out[-1].seq if out else 0, limit=500),
                metadata=auth_metadata(token),
            )
            out.extend(page.messages)
            if not page.has_more:
                return out
    finally:
        await ch.close()


async def test_every_echoed_message_survives_a_sigkill_of_the_server(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    sp = start_server_process("--db", str(db), "--log-level", "warning", log_dir=tmp_path)
    echoed: list[pb.Message] = []
    try:
        ch = channel(sp.address)
        token = (await login(ch, "writer")).token
        stream = ChatStream(ch, token)
        await stream.join("log")

        async def send_forever() -> None:
            i = 0
            while True:
                await stream.send(f"m{i}", room="log", client_msg_id=f"c{i}")
                i += 1

        async def collect() -> None:
            async for event in stream:
                if event.WhichOneof("event") == "message":
                    echoed.append(event.message)
                    if len(echoed) == 300:
                        sp.proc.send_signal(signal.SIGKILL)

        sender = asyncio.create_task(send_forever())
        with pytest.raises(grpc.aio.AioRpcError):
            await asyncio.wait_for(collect(), 60)
        sender.cancel()
        with pytest.raises(
            (asyncio.CancelledError, asyncio.InvalidStateError, grpc.aio.AioRpcError)
        ):
            await sender
        await ch.close()
        assert sp.proc.wait(10) == -signal.SIGKILL
    finally:
        sp.stop(signal.SIGKILL)
    assert len(echoed) >= 300
    restarted = start_server_process("--db", str(db), "--log-level", "warning", log_dir=tmp_path)
    try:
        stored = await _history(restarted.address, token, "log")
    finally:
        assert restarted.stop() == 0
    # Every echo is stored, once, in order; seqs have no gap.
    assert [m.seq for m in stored] == list(range(1, len(stored) + 1))
    by_id = {m.client_msg_id: m for m in stored}
    assert len(by_id) == len(stored)
    for m in echoed:
        assert by_id[m.client_msg_id].seq == m.seq
        assert by_id[m.client_msg_id].text == m.text
    assert [m.client_msg_id for m in stored] == [f"c{i}" for i in range(len(stored))]


async def test_resume_after_drops_at_random_points_has_no_gap_and_no_duplicate(
    store_url: str,
) -> None:
    """A writer sends messages, edits, reactions and deletes; a reader that drops at
    random points and resumes sees every stored item once, in seq order."""
    rng = random.Random(7)
    async with running_server(store_url) as srv:
        group = Peers(target(srv))
        try:
            writer = await group.open("writer")
            await writer.join("r")
            seen: list[int] = []
            kinds_seen: dict[int, int] = {}
            epoch = ""
            total = 400
            sent = 0
            changes = _Changes(random.Random(8))
            token = await group.token("reader")
            while sent < total or (seen and seen[-1] < total):
                # Connect, resume from the last seq seen, read a random number, drop.
                ch = channel(target(srv))
                stream = ChatStream(ch, token)
                await stream.join("r", seen[-1] if seen else 0, epoch)
                burst = rng.randint(0, 60)
                for _ in range(min(burst, total - sent)):
                    sent += 1
                    await changes.write(writer.stream, sent)
                want = rng.randint(1, 80)
                if seen and seen[-1] >= sent:
                    # Nothing new to read (an empty burst): connect again.
                    stream.cancel()
                    await ch.close()
                    continue
                got = 0
                async for event in stream:
                    kind = event.WhichOneof("event")
                    if kind == "joined":
                        epoch = event.joined.epoch
                    elif kind == "message":
                        seen.append(event.message.seq)
                        kinds_seen[event.message.seq] = event.message.kind
                        got += 1
                        if got >= want or event.message.seq >= sent:
                            break
                stream.cancel()
                await ch.close()
                if sent >= total and seen and seen[-1] >= total:
                    break
            assert seen == list(range(1, total + 1))
            assert kinds_seen == changes.kinds
            assert {pb.Message.EDIT, pb.Message.REACTION, pb.Message.DELETE} < set(
                changes.kinds.values()
            )
            assert not writer.of("error"), writer.of("error")[:3]
        finally:
            await group.close()


class _Changes:
    """What a lone writer of a room writes as seq ``n``: mostly messages, and now
    and then a change of one of its messages (an edit, a reaction added or taken
    back, a delete), always a valid one, so every item is stored."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.live: list[int] = []  # its messages not deleted
        self.reacted: set[int] = set()
        self.kinds: dict[int, int] = {}

    async def write(self, stream: ChatStream, seq: int) -> None:
        cid = f"c{seq}"
        roll = self.rng.random()
        if not self.live or roll < 0.7:
            self.live.append(seq)
            self.kinds[seq] = pb.Message.MESSAGE
            await stream.send(f"m{seq}", room="r", client_msg_id=cid)
            return
        target = self.rng.choice(self.live)
        if roll < 0.8:
            self.kinds[seq] = pb.Message.EDIT
            await stream.edit(target, f"m{target} edited at {seq}", room="r", client_msg_id=cid)
        elif roll < 0.93:
            self.kinds[seq] = pb.Message.REACTION
            remove = target in self.reacted
            self.reacted ^= {target}
            await stream.react(target, "👍", remove=remove, room="r", client_msg_id=cid)
        else:
            self.kinds[seq] = pb.Message.DELETE
            self.live.remove(target)
            self.reacted.discard(target)
            await stream.delete(target, room="r", client_msg_id=cid)


async def test_a_slow_reader_is_cut_off_and_after_resuming_has_every_message() -> None:
    async with running_server(queue_size=32) as srv:
        group = Peers(target(srv))
        try:
            writer = await group.open("writer")
            await writer.join("busy")
            token = await group.token("slow")
            small_window = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384)]
            ch = channel(target(srv), options=small_window)
            slow = ChatStream(ch, token)
            await slow.join("busy", 0)
            n = 900  # within the default replay window of 1000
            for i in range(n):
                await writer.stream.send(f"{i} " + "y" * 500, room="busy", client_msg_id=f"c{i}")
            seen: list[int] = []
            epoch = ""
            status = None
            try:
                async for event in slow:
                    if event.WhichOneof("event") == "message":
                        seen.append(event.message.seq)
                    elif event.WhichOneof("event") == "joined":
                        epoch = event.joined.epoch
            except grpc.aio.AioRpcError as exc:
                status = exc
            assert status is not None and status.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "slow consumer" in (status.details() or "")
            assert len(seen) < n
            await ch.close()
            # Resume from the last seq seen: the rest arrives, once each.
            ch = channel(target(srv))
            again = ChatStream(ch, token)
            await again.join("busy", seen[-1] if seen else 0, epoch)
            joined = None
            async for event in again:
                if event.WhichOneof("event") == "joined":
                    joined = event.joined
                elif event.WhichOneof("event") == "message":
                    seen.append(event.message.seq)
                    if event.message.seq == n:
                        break
            again.cancel()
            await ch.close()
            assert joined is not None and joined.complete
            assert seen == list(range(1, n + 1))
        finally:
            await group.close()


async def test_a_retried_send_is_stored_once_and_answered_with_the_original(
    store_url: str,
) -> None:
    async with running_server(store_url) as srv:
        group = Peers(target(srv))
        try:
            alice = await group.open("alice")
            await alice.join("r")
            first = await alice.send_and_ack("once", room="r", client_msg_id="same")
            # The same id again on the same stream: an ack, not the message again.
            await alice.stream.send("once", room="r", client_msg_id="same")
            await alice.wait_for(lambda ev: len(alice.of("ack")) == 1)
            [ack] = alice.of("ack")
            assert (ack.seq, ack.room, ack.client_msg_id) == (first.seq, "r", "same")
            assert [m.seq for m in alice.messages()] == [first.seq]
            # On a new stream that has not seen it: the original back.
            other = await group.open("alice")
            await other.join("r")
            await other.stream.send("changed text", room="r", client_msg_id="same")
            await other.wait_for(lambda ev: len(other.messages()) == 1)
            assert other.messages()[0].seq == first.seq
            assert other.messages()[0].text == "once"
            # A DM retried is also stored once.
            await alice.send_and_ack("dm", to_user="alice", client_msg_id="dm-1")
            await alice.stream.send("dm", to_user="alice", client_msg_id="dm-1")
            stored = await _history(target(srv), alice.token, "r")
            assert [(m.seq, m.text) for m in stored] == [(1, "once")]
            # Another user's identical id is their own message.
            bob = await group.open("bob")
            await bob.join("r")
            mine = await bob.send_and_ack("bob's", room="r", client_msg_id="same")
            assert mine.seq == 2
        finally:
            await group.close()


async def test_a_dm_to_an_offline_user_waits_in_history_and_is_resumable(store_url: str) -> None:
    async with running_server(store_url) as srv:
        group = Peers(target(srv))
        try:
            await group.token("bob")  # bob exists but is offline
            alice = await group.open("alice")
            await alice.send_and_ack("while you were out", to_user="bob")
            await alice.send_and_ack("and this", to_user="bob")
            ch = channel(target(srv))
            try:
                stub = pb_grpc.ChatServiceStub(ch)
                md = auth_metadata(await group.token("bob"))
                directs = await stub.ListDirects(pb.ListDirectsRequest(), metadata=md)
                assert [(d.with_user, d.last_seq) for d in directs.directs] == [("alice", 2)]
            finally:
                await ch.close()
            bob = await group.open("bob")
            await bob.stream.resume_direct("alice", 0, directs.epoch)
            await bob.wait_for(lambda ev: len(bob.messages()) == 2)
            assert bob.texts() == ["while you were out", "and this"]
            joined = bob.of("joined")[0]
            assert joined.with_user == "alice" and joined.complete and joined.replayed == 2
        finally:
            await group.close()


async def test_a_join_says_when_the_resume_cannot_be_complete() -> None:
    async with running_server(limits=Limits(max_replay=10, rate_limit=0)) as srv:
        group = Peers(target(srv))
        try:
            alice = await group.open("alice")
            first = await alice.join("r")
            for i in range(30):
                await alice.send_and_ack(f"m{i}", room="r")
            bob = await group.open("bob")
            # Within the replay window: complete.
            ok = await bob.join("r", 25, first.epoch)
            assert ok.complete and ok.replayed == 5 and ok.last_seq == 30
            # Too far behind: the newest 10 and complete=false (page History for the rest).
            carol = await group.open("carol")
            far = await carol.join("r", 2, first.epoch)
            assert not far.complete and far.replayed == 10
            await carol.wait_for(lambda ev: len(carol.messages()) == 10)
            assert [m.seq for m in carol.messages()] == list(range(21, 31))
            # Another history's epoch: not complete either.
            dave = await group.open("dave")
            other = await dave.join("r", 28, "not-this-epoch")
            assert not other.complete
            # Up to date: complete with nothing to replay.
            eve = await group.open("eve")
            current = await eve.join("r", 30, first.epoch)
            assert current.complete and current.replayed == 0
        finally:
            await group.close()


async def test_resuming_on_a_new_database_reports_a_new_epoch(tmp_path: Path) -> None:
    async with running_server(f"sqlite://{tmp_path / 'a.db'}") as srv:
        group = Peers(target(srv))
        alice = await group.open("alice")
        old = await alice.join("r")
        await alice.send_and_ack("hi", room="r")
        await group.close()
    async with running_server(f"sqlite://{tmp_path / 'b.db'}") as srv:
        group = Peers(target(srv))
        try:
            alice = await group.open("alice")
            new = await alice.join("r", 1, old.epoch)
            assert new.epoch != old.epoch and not new.complete
        finally:
            await group.close()


@pytest.mark.timeout(600)
async def test_loss_checker_under_dropped_connections_and_stalled_readers(tmp_path: Path) -> None:
    """20 clients in 3 rooms send and receive while connections drop and readers stall.

    At the end, every client's view of every room equals History exactly: each
    acknowledged message once, in seq order, nothing missing; and on every session's
    raw stream each room's seqs strictly increased, resends and resumes included.
    """
    async with running_server(f"sqlite://{tmp_path / 'chat.db'}", queue_size=16) as srv:
        await check_for_loss([srv.port])


class _Mine:
    """One loss-checker client's own messages, which it now and then changes: an
    edit, a reaction added or taken back, a delete. Its changes are written in
    order after the sends they name were answered, so each is valid and stored
    (once, across resends), and counts as one acknowledged item."""

    def __init__(self) -> None:
        self.live: dict[str, list[int]] = {}
        self.reacted: set[tuple[str, int]] = set()

    async def change(self, c: ChatClient, room: str, rng: random.Random) -> bool:
        """Makes a change in ``room`` (True), or nothing (False: send a message)."""
        own = self.live.get(room, [])
        roll = rng.random()
        if not own or roll < 0.75:
            return False
        seq = rng.choice(own)
        if roll < 0.85:
            await c.edit(seq, f"{c.user} edited {seq}", room=room)
        elif roll < 0.95:
            remove = (room, seq) in self.reacted
            self.reacted ^= {(room, seq)}
            await c.react(seq, "🎉", remove=remove, room=room)
        else:
            own.remove(seq)
            await c.delete(seq, room=room)
        return True


class _StreamChecker(ChatClient):
    """A ChatClient that checks each of its sessions' raw streams (before the client's
    own filtering): per conversation, message seqs strictly increase, and an ``ack``
    names a seq the stream is already past."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._newest: dict[tuple[int, str], int] = {}
        self.sessions: set[int] = set()
        self.acks = 0
        self.violations: list[str] = []

    def _received(self, event: pb.ServerEvent) -> None:
        session = id(self._stream)  # the stream of one session, alive while it runs
        self.sessions.add(session)
        kind = event.WhichOneof("event")
        if kind == "message":
            msg = event.message
            key = (session, conv_of(msg, self.user))
            if msg.seq <= self._newest.get(key, 0):
                self.violations.append(
                    f"{self.user}: {key[1]} seq {msg.seq} after {self._newest[key]} on one stream"
                )
            self._newest[key] = max(msg.seq, self._newest.get(key, 0))
        elif kind == "ack":
            self.acks += 1
            ack = event.ack
            conv = "#" + ack.room if ack.WhichOneof("target") == "room" else "@" + ack.to_user
            if ack.seq > self._newest.get((session, conv), 0):
                self.violations.append(
                    f"{self.user}: ack of {conv} seq {ack.seq} ahead of the stream"
                )
        super()._received(event)


async def check_for_loss(
    ports: list[int],
    seed: int = 2026,
    kill_last: Callable[[], object] | None = None,
    server_state: Callable[[], Awaitable[str]] | None = None,
) -> None:
    """The loss checker over one or several servers of one chat, on ``ports``.

    Clients are spread over the servers, each through a fault-injecting proxy,
    and know every server: the channel target lists them all, their own first,
    so gRPC fails over to the next when one is gone. ``kill_last``, if given,
    kills the server on the last port in the middle of the run. ``server_state``
    says what the servers are doing, for the report of a send left unacknowledged.
    """
    rng = random.Random(seed)
    rooms = ["alpha", "beta", "gamma"]
    n_clients = 20
    # `make soak` runs it longer.
    min_seconds = float(os.environ.get("CHATRPC_SOAK_SECONDS", "3"))
    proxies = [FaultProxy(port, rng) for port in ports]
    audit = f"127.0.0.1:{ports[0]}"  # a server that stays up
    for proxy in proxies:
        await proxy.start()
    views: dict[str, dict[str, list[tuple[int, str]]]] = {}
    clients: list[_StreamChecker] = []
    reasons: list[str] = []
    progress = asyncio.Event()  # set on every received message and reconnect
    ch = channel(audit)

    async def until(condition: Callable[[], bool]) -> None:
        while not condition():
            progress.clear()
            await progress.wait()

    try:
        for i in range(n_clients):
            user = f"user{i}"
            token = (await login(ch, user)).token
            view: dict[str, list[tuple[int, str]]] = {r: [] for r in rooms}
            views[user] = view

            def on_event(event: pb.ServerEvent, view=view) -> None:
                if event.WhichOneof("event") == "message" and event.message.room:
                    view[event.message.room].append(
                        (event.message.seq, event.message.client_msg_id)
                    )
                    progress.set()

            def on_state(state: State, detail: str) -> None:
                if state is State.RECONNECTING:
                    reasons.append(detail)
                    progress.set()

            home = i % len(proxies)
            order = proxies[home:] + proxies[:home]
            client = _StreamChecker(
                order[0].address
                if len(order) == 1
                else "ipv4:" + ",".join(p.address for p in order),
                user,
                token,
                on_event=on_event,
                on_state=on_state,
                backoff_initial=0.05,
                backoff_max=0.5,
                channel_options=[
                    # A connection of its own (grpc shares one per target by default),
                    # and a small window so a stalled link backs up to the server.
                    ("grpc.use_local_subchannel_pool", 1),
                    ("grpc.http2.bdp_probe", 0),
                    ("grpc.http2.lookahead_bytes", 8192),
                ],
            )
            await client.start()
            clients.append(client)
        my_rooms = {c.user: rng.sample(rooms, 2) for c in clients}
        for c in clients:
            for room in my_rooms[c.user]:
                await c.join(room)

        sending = True
        acked = 0

        async def chatter(c: ChatClient) -> None:
            nonlocal acked
            k = 0
            mine = _Mine()
            while sending:
                room = rng.choice(my_rooms[c.user])
                if not await mine.change(c, room, rng):
                    echo = await c.send(f"{c.user} {k} " + "z" * 200, room=room)
                    mine.live.setdefault(room, []).append(echo.seq)
                acked += 1
                k += 1
                if rng.random() < 0.3:
                    await asyncio.sleep(rng.random() * 0.02)

        async def inject() -> None:
            while sending:
                await asyncio.sleep(rng.uniform(0.05, 0.3))
                proxy = rng.choice(proxies)
                if rng.random() < 0.5:
                    proxy.drop_random()
                else:
                    stalls.add(asyncio.create_task(proxy.stall_random(rng.uniform(0.5, 2.0))))

        async def enough_faults() -> None:
            # Run a few seconds, and on until both kinds of fault have cut sessions off.
            await asyncio.sleep(min_seconds)
            await until(
                lambda: (
                    any("RESOURCE_EXHAUSTED" in r for r in reasons)
                    and any("UNAVAILABLE" in r for r in reasons)
                    and sum(p.drops for p in proxies) > 0
                    and sum(p.stalls for p in proxies) > 0
                )
            )

        async def kill_one() -> None:
            assert kill_last is not None
            await asyncio.sleep(min_seconds / 3)
            kill_last()
            await proxies[-1].close()  # connections to it are refused: clients fail over

        stalls: set[asyncio.Task[None]] = set()
        workers = [asyncio.create_task(chatter(c)) for c in clients]
        injector = asyncio.create_task(inject())
        killer = asyncio.create_task(kill_one()) if kill_last else None
        try:
            await asyncio.wait_for(enough_faults(), min_seconds + 40)
        except TimeoutError:
            kinds = sorted({r.split(":", 1)[0] for r in reasons})
            raise AssertionError(
                f"not both kinds of fault in time: {acked} sent, reconnect reasons {kinds}, "
                f"{sum(p.drops for p in proxies)} drops, {sum(p.stalls for p in proxies)} stalls, "
                f"clients {sorted(c.status.name for c in clients)}"
            ) from None
        finally:
            sending = False
        await injector
        if killer is not None:
            await killer
        await asyncio.gather(*stalls)
        try:
            await asyncio.wait_for(asyncio.gather(*workers), 30)
        except TimeoutError:
            report = await _stuck_sends(audit, clients, views)
            if server_state is not None:
                report += "\n" + await server_state()
            raise AssertionError(report) from None
        # Everything acknowledged; let every client catch up to the newest seq.
        stored: dict[str, list[tuple[int, str]]] = {}
        group = Peers(audit)
        auditor = await group.open("auditor")
        for room in rooms:
            await auditor.join(room)
            page = await _history(audit, auditor.token, room)
            stored[room] = [(m.seq, m.client_msg_id) for m in page]

        await asyncio.wait_for(
            until(
                lambda: all(
                    views[c.user][room][-1:] == stored[room][-1:]
                    for c in clients
                    for room in my_rooms[c.user]
                )
            ),
            30,
        )
        await group.close()
    finally:
        for c in clients:
            await c.aclose()
        await ch.close()
        for proxy in proxies:
            await proxy.close()
    assert sum(len(v) for v in stored.values()) == acked
    for room in rooms:
        assert [s for s, _ in stored[room]] == list(range(1, len(stored[room]) + 1))
        assert len({cid for _, cid in stored[room]}) == len(stored[room])
    for c in clients:
        for room in my_rooms[c.user]:
            assert views[c.user][room] == stored[room], (c.user, room)
    # Per session, not only per client view: no stream repeated a seq or went back.
    violations = [v for c in clients for v in c.violations]
    assert not violations, violations[:10]
    drops = sum(p.drops for p in proxies)
    stalls_done = sum(p.stalls for p in proxies)
    assert drops > 0 and stalls_done > 0
    assert sum(c.reconnects for c in clients) > 0
    # Both kinds of fault hit sessions: dropped links and slow consumers cut off.
    assert any("RESOURCE_EXHAUSTED" in r for r in reasons)
    assert any("UNAVAILABLE" in r for r in reasons)
    sessions = sum(len(c.sessions) for c in clients)
    answered = sum(c.acks for c in clients)
    print(
        f"loss checker: {acked} messages, {drops} drops, {stalls_done} stalls,"
        f" {sessions} sessions checked, {answered} resends acked"
    )


async def _stuck_sends(
    address: str, clients: Sequence[ChatClient], views: dict[str, dict[str, list[tuple[int, str]]]]
) -> str:
    """What the sends still waiting for their echo are, whether History has them,
    and what their sender saw around them."""
    lines = []
    for c in clients:
        for cid, p in list(c._pending.items()):
            room = p.send.room
            page = await _history(address, c.token, room)
            stored = [m.seq for m in page if m.client_msg_id == cid]
            seen = [seq for seq, _ in views[c.user][room]]
            near = [s for s in seen if stored and abs(s - stored[0]) <= 5]
            lines.append(
                f"{c.user} {c.status.name} after {c.reconnects} reconnects: {cid} #{room}"
                f" stored as {stored}; {len(seen)} seen, near it {near}, the last {seen[-3:]};"
                f" filling {sorted(c._cursor.filling)}"
            )
            if c._runner is not None:
                lines.append("  awaiting: " + " > ".join(awaiting(c._runner.get_coro())))
    return "sends without an echo:\n" + "\n".join(lines)


async def test_the_client_library_fills_a_gap_longer_than_the_replay_from_history() -> None:
    """A resume gap over --max-replay is filled with History pages, in order, once."""
    async with running_server(limits=Limits(max_replay=10, rate_limit=0)) as srv:
        proxy = FaultProxy(srv.port)
        await proxy.start()
        group = Peers(target(srv))
        seen: list[int] = []
        acks: list[pb.Joined] = []
        progress = asyncio.Event()

        def on_event(event: pb.ServerEvent) -> None:
            if event.WhichOneof("event") == "message":
                seen.append(event.message.seq)
                progress.set()
            elif event.WhichOneof("event") == "joined":
                acks.append(event.joined)

        async def until_seen(n: int) -> None:
            while len(seen) < n:
                progress.clear()
                await asyncio.wait_for(progress.wait(), 10)

        ch = channel(target(srv))
        client = ChatClient(
            proxy.address,
            "reader",
            (await login(ch, "reader")).token,
            on_event=on_event,
            backoff_initial=0.5,
            backoff_max=0.5,
        )
        try:
            writer = await group.open("writer")
            await writer.join("r")
            await client.start()
            await client.join("r")
            await writer.send_and_ack("first", room="r")
            await until_seen(1)
            # The reader is away (its connections refused) while 200 more are sent.
            proxy.refusing = True
            proxy.drop_all()
            for i in range(200):
                await writer.stream.send(f"m{i}", room="r", client_msg_id=f"c{i}")
            await writer.wait_for(lambda ev: len(writer.messages()) == 201)
            proxy.refusing = False
            await until_seen(201)
            assert seen == list(range(1, 202))
            assert client.reconnects == 1
            # The resume was over the replay window, so the gap came from History.
            assert [(a.complete, a.replayed) for a in acks] == [(False, 0), (False, 10)]
        finally:
            await client.aclose()
            await ch.close()
            await group.close()
            await proxy.close()


class _ResumeRacer(ChatClient):
    """A ChatClient that runs ``before_resume`` after its session is up but before it
    writes its DM resumes: what a DM committed at that moment does."""

    before_resume: Callable[[], Awaitable[None]] | None = None

    async def _direct_resume_points(self, stream: ChatStream) -> dict[str, int]:
        points = await super()._direct_resume_points(stream)
        if self.before_resume is not None:
            await self.before_resume()
        return points


async def test_a_live_dm_before_its_resume_keeps_the_older_ones_it_fills_in() -> None:
    """A DM sent while a session resumes arrives live before the DM resume replays the
    ones sent while the client was away: each is shown once, and the next session
    resumes from the newest."""
    async with running_server() as srv:
        group = Peers(target(srv))
        bob = await group.open("bob")
        token = await group.token("alice")
        seen: list[int] = []
        progress = asyncio.Event()

        def on_event(event: pb.ServerEvent) -> None:
            if event.WhichOneof("event") == "message":
                seen.append(event.message.seq)
                progress.set()

        async def until_seen(n: int) -> None:
            while len(seen) < n:
                progress.clear()
                await asyncio.wait_for(progress.wait(), 10)

        first = ChatClient(target(srv), "alice", token, on_event=on_event)
        await first.start()
        await bob.send_and_ack("d1", to_user="alice")
        await until_seen(1)
        await first.aclose()
        await bob.send_and_ack("d2", to_user="alice")  # alice is away

        second = _ResumeRacer(target(srv), "alice", token, on_event=on_event, state=first.state)

        async def send_live() -> None:
            assert second._stream is not None
            await second._stream.call.initial_metadata()  # the session is up
            await bob.send_and_ack("d3", to_user="alice")  # queued live on it

        second.before_resume = send_live
        try:
            await second.start()
            await until_seen(3)
            # d3 came live, then the resume filled in d2 below it.
            assert seen == [1, 3, 2]
            assert second.state.cursors == {"@bob": 3}
            assert second.state.ahead == {}
        finally:
            await second.aclose()
        await bob.send_and_ack("d4", to_user="alice")
        third = ChatClient(target(srv), "alice", token, on_event=on_event, state=second.state)
        try:
            await third.start()
            await until_seen(4)
            assert seen == [1, 3, 2, 4]
        finally:
            await third.aclose()
            await group.close()


def test_a_session_lost_inside_a_dm_gap_resumes_from_below_it() -> None:
    """The client's side of the rule above when the session fails between the live DM
    and the resume's fill-in: the cursor stays below the gap, the next resume fills
    it, and the live one is not shown twice."""
    shown: list[int] = []

    def on_event(event: pb.ServerEvent) -> None:
        if event.WhichOneof("event") == "message":
            shown.append(event.message.seq)

    client = ChatClient("127.0.0.1:1", "alice", "token", on_event=on_event)
    client.state = ClientState(epoch="e", cursors={"@bob": 1})

    def dm(seq: int) -> pb.ServerEvent:
        return pb.ServerEvent(message=pb.Message(seq=seq, sender="bob", to_user="alice"))

    def resumed() -> pb.ServerEvent:
        return pb.ServerEvent(joined=pb.Joined(with_user="bob", epoch="e", complete=True))

    client._cursor.resuming = {"@bob": 1}  # a session resuming @bob from 1
    client._handle(dm(3))  # live before the resume
    assert (client.state.cursors, client.state.ahead) == ({"@bob": 1}, {"@bob": {3}})
    client._cursor.resuming.clear()  # the session failed before the replay

    client._cursor.resuming = {"@bob": 1}  # the next one resumes from 1 again
    client._handle(dm(3))  # live again? no: already shown
    client._handle(dm(4))  # a newer live one
    client._handle(resumed())
    client._handle(dm(2))  # filled in below (from History: the replay never goes below)
    assert (client.state.cursors, client.state.ahead) == ({"@bob": 4}, {})
    client._handle(dm(5))
    client._handle(dm(3))  # a late duplicate
    assert shown == [3, 4, 2, 5]
    assert client.state.cursors == {"@bob": 5}


class _Seen:
    """What a ChatClient showed: (sender, seq, text) per message, and a way to wait."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, int, str]] = []
        self.errors: list[pb.Error] = []
        self._progress = asyncio.Event()

    def on_event(self, event: pb.ServerEvent) -> None:
        if event.WhichOneof("event") == "message":
            m = event.message
            self.messages.append((m.sender, m.seq, m.text))
            self._progress.set()
        elif event.WhichOneof("event") == "error":
            self.errors.append(event.error)

    def texts(self, sender: str = "") -> list[str]:
        return [t for s, _, t in self.messages if not sender or s == sender]

    async def until(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        async def wait() -> None:
            while not predicate():
                self._progress.clear()
                await self._progress.wait()

        await asyncio.wait_for(wait(), timeout)


async def _alice_through(
    proxy: FaultProxy, group: Peers, seen: _Seen, backoff_max: float
) -> ChatClient:
    """alice's ChatClient through ``proxy``, reconnecting quickly."""
    token = await group.token("alice")
    return ChatClient(
        proxy.address,
        "alice",
        token,
        on_event=seen.on_event,
        backoff_initial=0.1,
        backoff_max=backoff_max,
    )


async def test_a_client_whose_server_lost_its_history_shows_every_new_dm() -> None:
    """A new epoch (a fresh database): the DM resumes start from 0, so the first
    messages of the new history are not mistaken for ones seen before."""
    seen = _Seen()
    async with running_server() as old:
        group = Peers(target(old))
        bob = await group.open("bob")
        first = ChatClient(target(old), "alice", await group.token("alice"), on_event=seen.on_event)
        await first.start()
        for i in range(3):
            await bob.send_and_ack(f"old{i}", to_user="alice")
        await seen.until(lambda: len(seen.messages) == 3)
        await first.aclose()
        await group.close()
    async with running_server() as new:  # memory://: a new history, seqs from 1
        group = Peers(target(new))
        bob = await group.open("bob")
        token = await group.token("alice")
        for i in range(5):
            await bob.send_and_ack(f"new{i}", to_user="alice")
        second = ChatClient(
            target(new),
            "alice",
            token,
            on_event=seen.on_event,
            state=first.state,
        )
        try:
            await second.start()
            await seen.until(lambda: len(seen.messages) == 8)
            assert seen.texts()[3:] == [f"new{i}" for i in range(5)]
            assert second.state.cursors == {"@bob": 5}
        finally:
            await second.aclose()
            await group.close()


async def test_a_dm_conversation_begun_while_away_is_filled_from_history_past_the_replay() -> None:
    """A DM conversation that began while the client was away is resumed from 0; a gap
    longer than --max-replay is filled from History like any other."""
    async with running_server(limits=Limits(rate_limit=0, max_replay=5)) as srv:
        proxy = FaultProxy(srv.port)
        await proxy.start()
        group = Peers(target(srv))
        carol = await group.open("carol")
        seen = _Seen()
        client = await _alice_through(proxy, group, seen, backoff_max=0.2)
        try:
            await client.start()
            proxy.refusing = True
            proxy.drop_all()
            for i in range(12):
                await carol.send_and_ack(f"c{i}", to_user="alice")
            proxy.refusing = False
            await seen.until(lambda: len(seen.messages) >= 12)
            assert seen.texts() == [f"c{i}" for i in range(12)]
        finally:
            await client.aclose()
            await group.close()
            await proxy.close()


async def test_a_reconnect_lists_the_dm_conversations_only_when_one_changed_while_away() -> None:
    """The Chat call's headers summarise the user's DM conversations: a client that
    knows them all does not call ListDirects on reconnecting; a DM while it was
    away, in a known conversation or a new one, makes it list them and resume it."""
    async with running_server(limits=Limits(rate_limit=0)) as srv:
        proxy = FaultProxy(srv.port)
        await proxy.start()
        group = Peers(target(srv))
        bob, carol = await group.open("bob"), await group.open("carol")
        seen = _Seen()
        away = asyncio.Event()

        def on_state(state: State, detail: str) -> None:
            if state is State.RECONNECTING:
                away.set()

        client = ChatClient(
            proxy.address,
            "alice",
            await group.token("alice"),
            on_event=seen.on_event,
            on_state=on_state,
            backoff_initial=0.1,
            backoff_max=0.2,
        )

        def listed() -> int:
            return srv.hub.stats.calls["ListDirects", "OK"]

        async def reconnect(while_away: Callable[[], Awaitable[object]] | None = None) -> None:
            away.clear()
            proxy.refusing = True
            proxy.drop_all()
            await asyncio.wait_for(away.wait(), 10)
            if while_away is not None:
                await while_away()
            proxy.refusing = False
            await asyncio.wait_for(client.wait_resumed(), 10)

        try:
            await client.start()
            await bob.send_and_ack("b1", to_user="alice")
            await seen.until(lambda: seen.texts() == ["b1"])
            assert listed() == 1  # the first session lists them
            await reconnect()
            assert listed() == 1
            await reconnect(lambda: bob.send_and_ack("b2", to_user="alice"))
            await seen.until(lambda: seen.texts() == ["b1", "b2"])
            assert listed() == 2
            await reconnect(lambda: carol.send_and_ack("c1", to_user="alice"))
            await seen.until(lambda: seen.texts() == ["b1", "b2", "c1"])
            assert listed() == 3
            await reconnect()
            assert listed() == 3 and client.reconnects == 4
        finally:
            await client.aclose()
            await group.close()
            await proxy.close()


async def test_a_failed_history_fill_resumes_again_instead_of_stopping_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server refuses the first History page of a gap fill: the client starts a
    new session, fills the gap then, and goes on."""
    from chatrpc.server import ChatServicer

    history = ChatServicer.History
    calls = 0

    async def failing_once(
        self: ChatServicer, request: pb.HistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.HistoryResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: try again")
        response: pb.HistoryResponse = await history(self, request, context)
        return response

    monkeypatch.setattr(ChatServicer, "History", failing_once)
    async with running_server(limits=Limits(rate_limit=0, max_replay=5)) as srv:
        group = Peers(target(srv))
        bob = await group.open("bob")
        token = await group.token("alice")
        seen = _Seen()
        first = ChatClient(target(srv), "alice", token, on_event=seen.on_event)
        await first.start()
        await bob.send_and_ack("d0", to_user="alice")
        await seen.until(lambda: len(seen.messages) == 1)
        await first.aclose()
        for i in range(1, 13):
            await bob.send_and_ack(f"d{i}", to_user="alice")
        second = ChatClient(
            target(srv),
            "alice",
            token,
            on_event=seen.on_event,
            state=first.state,
            backoff_initial=0.1,
        )
        try:
            await second.start()
            await seen.until(lambda: len(seen.messages) == 13)
            await bob.send_and_ack("after", to_user="alice")
            await seen.until(lambda: len(seen.messages) == 14)
            assert seen.texts() == [f"d{i}" for i in range(13)] + ["after"]
            assert calls >= 2 and second.reconnects == 1
        finally:
            await second.aclose()
            await group.close()


async def test_a_dm_resume_refused_by_the_rate_limit_is_asked_again() -> None:
    """34 DM conversations to resume, a burst of 30 joins: the last ones are refused
    and asked for again after a backoff, so what was sent meanwhile still arrives."""
    # A burst of 3 sends: 30 joins or DM resumes (0.1 each), and a peer's 3 messages,
    # refilled slowly (one send a second) so that a loaded machine, slow to resume
    # all 34, still runs out; a refused resume is asked again after the hinted wait.
    async with running_server(limits=Limits(rate_limit=1, rate_burst=3)) as srv:
        proxy = FaultProxy(srv.port)
        await proxy.start()
        group = Peers(target(srv))
        peers = [await group.open(f"p{i:02d}") for i in range(34)]
        seen = _Seen()
        client = await _alice_through(proxy, group, seen, backoff_max=0.5)
        try:
            await client.start()
            for p in peers:
                await p.send_and_ack("hello", to_user="alice")
            await seen.until(lambda: len(seen.messages) == 34)
            proxy.refusing = True
            proxy.drop_all()
            last = peers[-1]
            await last.send_and_ack("while away", to_user="alice")
            proxy.refusing = False
            await seen.until(lambda: "while away" in seen.texts(), 60)
            await last.send_and_ack("live", to_user="alice")
            await seen.until(lambda: "live" in seen.texts())
            assert seen.texts("p33") == ["hello", "while away", "live"]
            assert any(e.code == pb.Error.RESOURCE_EXHAUSTED for e in seen.errors)
            assert client.state.cursors["@p33"] == 3 and client.state.ahead == {}
        finally:
            await client.aclose()
            await group.close()
            await proxy.close()
