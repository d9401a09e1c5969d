"""The Redis watch feed's lag, as a Prometheus histogram on the server that reads it."""

from __future__ import annotations

from pathlib import Path

from .conftest import Peers, start_server_process
from .redis_fixture import RedisServer, free_port
from .test_operations import _samples, _scrape


async def test_the_feed_lag_of_messages_from_another_server_is_measured_per_batch(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    redis_server.flush()
    port = free_port()
    common = ("--store", redis_server.url, "--log-level", "warning", "--admin-socket", "")
    a = start_server_process(*common, log_dir=tmp_path)
    b = start_server_process(*common, "--metrics-port", str(port), log_dir=tmp_path)
    peers_a, peers_b = Peers(a.address), Peers(b.address)
    try:
        _, body = await _scrape("127.0.0.1", port)
        assert _samples(body)[("chatrpc_redis_feed_lag_seconds_count", ())] == 0
        alice, bob = await peers_a.open("alice"), await peers_b.open("bob")
        await alice.join("general")
        await bob.join("general")
        for i in range(20):
            await alice.send_and_ack(f"m{i}", room="general")
        await bob.wait_for(lambda ev: len(bob.texts()) == 20)
        _, body = await _scrape("127.0.0.1", port)
        lag = _samples(body)
    finally:
        await peers_a.close()
        await peers_b.close()
        a.stop()
        b.stop()
    count = lag[("chatrpc_redis_feed_lag_seconds_count", ())]
    assert 1 <= count <= 20  # one observation per batch read, never more than per message
    assert lag[("chatrpc_redis_feed_lag_seconds_bucket", (("le", "+Inf"),))] == count
    assert 0 <= lag[("chatrpc_redis_feed_lag_seconds_sum", ())] < 10 * count
