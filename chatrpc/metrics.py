"""Prometheus metrics at ``/metrics`` (``--metrics-port``), read at scrape time.

The server counts in plain numbers (chatrpc.stats); a scrape turns them and the
hub's live state (sessions by transport) into Prometheus families, so serving
traffic costs nothing extra for metrics. Needs the ``metrics`` extra
(prometheus-client). The HTTP endpoint runs on the server's event loop, so a
scrape reads the state between two events, never in the middle of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import ChatError, Code

if TYPE_CHECKING:
    from .auth import Auth
    from .hub import Hub

log = logging.getLogger(__name__)

#: The most bytes of a request line and headers read before answering.
MAX_REQUEST = 8192


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ChatError(
            Code.INVALID_ARGUMENT,
            f"--metrics-port needs prometheus-client ({exc}): pip install 'chatrpc[metrics]'",
        ) from exc
    return prometheus_client


class StatsCollector:
    """Exports a hub's and an auth's counters as Prometheus metric families."""

    def __init__(self, hub: Hub, auth: Auth) -> None:
        self.hub = hub
        self.auth = auth

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        s = self.hub.stats
        open_by = Counter(session.transport or "unknown" for session in self.hub.sessions())
        yield _labelled(
            GaugeMetricFamily("chatrpc_sessions_open", "Chat sessions open", labels=["transport"]),
            open_by,
        )
        yield _labelled(
            CounterMetricFamily(
                "chatrpc_logins",
                "Logins by outcome (created, ok, or the refusal's code)",
                labels=["outcome"],
            ),
            self.auth.stats.logins,
        )
        yield _labelled(
            CounterMetricFamily("chatrpc_events_received", "Client events", labels=["kind"]),
            s.received,
        )
        yield CounterMetricFamily(
            "chatrpc_messages_committed", "Messages stored by this server", value=s.committed
        )
        yield CounterMetricFamily(
            "chatrpc_messages_fanned_out",
            "Messages fanned out to this server's sessions (also those stored elsewhere)",
            value=s.fanned_out,
        )
        yield CounterMetricFamily(
            "chatrpc_deliveries", "Events written to clients", value=s.deliveries
        )
        yield CounterMetricFamily("chatrpc_writes", "Writes to clients", value=s.writes)
        yield CounterMetricFamily("chatrpc_frames_written", "Frames on the wire", value=s.frames)
        yield from self._latencies()

    def _latencies(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        s = self.hub.stats
        yield HistogramMetricFamily(
            "chatrpc_events_per_write",
            "Events per write: a session's queue depth when its writer drained it",
            buckets=s.write_batch.cumulative(),
            sum_value=s.write_batch.sum,
        )
        yield _labelled(
            CounterMetricFamily("chatrpc_sessions_ended", "Sessions ended", labels=["reason"]),
            s.ended,
        )
        yield CounterMetricFamily(
            "chatrpc_rate_limited",
            "Sends and joins refused by the rate limit",
            value=s.rate_limited,
        )
        calls = CounterMetricFamily(
            "chatrpc_calls", "Calls by method and status code", labels=["method", "code"]
        )
        for (method, code), n in sorted(s.calls.items()):
            calls.add_metric([method, code], n)
        yield calls
        yield HistogramMetricFamily(
            "chatrpc_store_append_seconds",
            "Seconds a batch of appends took in the store",
            buckets=s.append_seconds.cumulative(),
            sum_value=s.append_seconds.sum,
        )
        lag = self.hub.store.feed_lag
        if lag is not None:
            yield HistogramMetricFamily(
                "chatrpc_redis_feed_lag_seconds",
                "Seconds from another server's commit to its delivery here (Redis watch"
                " feed), per batch read",
                buckets=lag.cumulative(),
                sum_value=lag.sum,
            )


def _labelled(family: Any, counts: Counter[str]) -> Any:
    for label, n in sorted(counts.items()):
        family.add_metric([label], n)
    return family


class MetricsServer:
    """``GET /metrics`` over plain HTTP on the event loop."""

    def __init__(self, hub: Hub, auth: Auth) -> None:
        prometheus = _prometheus()
        self._prometheus = prometheus
        self.registry = prometheus.CollectorRegistry()
        self.registry.register(StatsCollector(hub, auth))
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            method, path, *_ = [*head[:MAX_REQUEST].decode("latin-1").split(" ", 2), "", ""]
            if method != "GET":
                status, body, kind = "405 Method Not Allowed", b"GET only\n", "text/plain"
            elif path.split("?")[0] != "/metrics":
                status, body, kind = "404 Not Found", b"see /metrics\n", "text/plain"
            else:
                status = "200 OK"
                body = self._prometheus.generate_latest(self.registry)
                kind = self._prometheus.CONTENT_TYPE_LATEST
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a scraper that went away or sent nonsense: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
