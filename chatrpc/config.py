"""Server settings, with the defaults documented in README.md."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .hub import Limits
from .store import StoreOptions


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/chatrpc/chat.db`` (``~/.local/share/chatrpc/chat.db``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "chatrpc" / "chat.db"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    #: A store URL (memory://, sqlite:///PATH, redis://...) or an SQLite file path.
    store: str = ""
    limits: Limits = field(default_factory=Limits)
    store_options: StoreOptions = field(default_factory=StoreOptions)
    #: Per-session queue bound, in events; a session past it is cut off as a slow consumer.
    queue_size: int = 2048
    #: The server pings a connection it has heard nothing from for this long, and
    #: drops it when the ping is not answered within the timeout, so a vanished
    #: client's presence clears. Longer than the client library's own pings (60 s):
    #: grpc core restarts this timer on every read, so the server never pings a
    #: client that pings, and an idle connection costs one ping a minute, the
    #: cheaper kind (an answer; see docs/BENCHMARKS.md).
    keepalive_s: float = 75.0
    keepalive_timeout_s: float = 10.0
    #: A session that overflowed (or was ended) while its client stopped reading is
    #: cancelled after this many seconds, freeing its slot and its presence.
    stall_timeout_s: float = 10.0
    #: Seconds in-flight calls get to finish on shutdown.
    shutdown_grace_s: float = 5.0
    #: Largest gRPC message the server accepts from a client, in bytes.
    max_receive_bytes: int = 64 * 1024
    #: Calls one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS);
    #: more wait in the client until one ends.
    max_streams_per_connection: int = 100
    #: Client connections the server accepts at once; more are closed at once.
    max_connections: int = 10_000
    #: Calls that arrived but the event loop has not taken up yet (it is busy, e.g.
    #: in a connection storm); more are refused (the client sees CANCELLED). grpc
    #: core's own default refuses some from 1,000 and all past 3,000: a storm of
    #: 1,000 logins a second lost hundreds.
    max_pending_calls: int = 10_000
    #: Logins a client address may make per second, averaged (0: no limit) ...
    login_rate: float = 2.0
    #: ... and at once. A failed proof costs ten (see chatrpc.auth).
    login_burst: int = 50
    #: How new names are claimed: open, token (a registration token from the
    #: operator) or closed (see chatrpc.auth.REGISTRATION_MODES).
    registration: str = "open"
    #: A room with no members and no stored messages disappears after this many
    #: seconds without activity (0: rooms are never pruned).
    empty_room_ttl_s: float = 24 * 3600.0
    #: PEM files of the server's certificate chain and key: TLS instead of plaintext.
    tls_cert: str = ""
    tls_key: str = ""
    #: PEM file of the CA that signs client certificates: with it, every client
    #: must present a certificate it signed (mutual TLS).
    tls_client_ca: str = ""

    def store_url(self) -> str:
        return self.store or f"sqlite://{default_db_path()}"
