"""Server settings, with the defaults documented in README.md."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .dblock import sqlite_path
from .limits import Limits
from .settings import check, setting
from .store import StoreOptions


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/chatrpc/chat.db`` (``~/.local/share/chatrpc/chat.db``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "chatrpc" / "chat.db"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a server runs with (see chatrpc.settings: each setting once)."""

    host: str = setting("127.0.0.1", "--host", "address to listen on")
    port: int = setting(50051, "--port", "port; 0 picks a free one", low=0, high=65535)
    web_port: int = setting(
        8080,
        "--web-port",
        "port of the browser app and its JSON/WebSocket API, on --host; 0 picks a free one",
        low=0,
        high=65535,
    )
    web_origin: str = setting(
        "",
        "--web-origin",
        "other origins allowed to use the web API, comma-separated"
        " (e.g. https://chat.example.com); the app's own always is",
        metavar="ORIGINS",
    )
    no_web: bool = setting(False, "--no-web", "do not serve the browser app")
    #: A store URL (memory://, sqlite:///PATH, redis://...) or an SQLite file path;
    #: empty: the default SQLite file. (--db and --store, see cli_server.)
    store: str = ""
    limits: Limits = field(default_factory=Limits)
    store_options: StoreOptions = field(default_factory=StoreOptions)
    queue_size: int = setting(
        2048,
        "--queue-size",
        "events queued per session before it is cut off as a slow consumer",
        low=1,
        high=1_000_000,
    )
    #: grpc core restarts this timer on every read, so the server never pings a
    #: client that pings (the client library pings once a minute): an idle
    #: connection costs one ping a minute, the cheaper kind (docs/BENCHMARKS.md).
    keepalive_s: float = setting(
        75.0,
        "--keepalive",
        "ping a client not heard from for this long, to notice vanished ones",
        low=0.1,
        metavar="SECONDS",
    )
    keepalive_timeout_s: float = setting(
        10.0,
        "--keepalive-timeout",
        "drop a client that does not answer a ping in time",
        low=0.1,
        metavar="SECONDS",
    )
    #: Its call stays open, holding its session slot, until the client reads its
    #: end status or its connection dies.
    stall_timeout_s: float = setting(
        10.0,
        "--stall-timeout",
        "a slow consumer that stopped reading leaves its rooms after this long",
        low=0,
        metavar="SECONDS",
    )
    shutdown_grace_s: float = setting(
        5.0, "--shutdown-grace", "time running calls get on shutdown", low=0, metavar="SECONDS"
    )
    max_receive_bytes: int = setting(
        64 * 1024,
        "--max-receive-bytes",
        "largest message the server accepts from a client",
        low=1024,
        high=64 << 20,
        metavar="BYTES",
    )
    #: HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: more wait in the client until one ends.
    max_streams_per_connection: int = setting(
        100,
        "--streams-per-connection",
        "calls one connection may have open at once",
        low=1,
        metavar="N",
    )
    max_connections: int = setting(
        10_000, "--max-connections", "client connections accepted at once", low=1, metavar="N"
    )
    #: grpc core's own default refuses some from 1,000 and all past 3,000: a
    #: storm of 1,000 logins a second lost hundreds.
    max_pending_calls: int = setting(
        10_000,
        "--max-pending-calls",
        "calls queued while the server is busy (e.g. a connection storm) before"
        " new ones are refused",
        low=1,
        metavar="N",
    )
    login_rate: float = setting(
        2.0,
        "--login-rate",
        "logins per second per client address; a failed one counts 10; 0 lifts the limit",
        low=0,
        metavar="PER_SECOND",
    )
    login_burst: int = setting(
        50, "--login-burst", "logins a client address may make at once", low=1, metavar="N"
    )
    registration: str = setting(
        "open",
        "--registration",
        "who may claim a new name: anyone (open), holders of a registration token"
        " made with chatrpc-admin (token), nobody (closed); existing accounts always"
        " log in",
        choices=("open", "token", "closed"),
    )
    empty_room_ttl_s: float = setting(
        24 * 3600.0,
        "--empty-room-ttl",
        "a room with no members and no stored messages disappears after this long"
        " without activity; 0 keeps every room",
        low=0,
        metavar="SECONDS",
    )
    idle_account_ttl_s: float = setting(
        0.0,
        "--idle-account-ttl",
        "an account with no password, not seen (no login, token use or session) for"
        " this long, in no direct conversation and owning no room, expires and its"
        " name is free again; 0 keeps every account",
        low=0,
        metavar="SECONDS",
    )
    admin_socket: str = setting(
        "auto",
        "--admin-socket",
        "Unix socket of the admin service (chatrpc-admin), mode 0600; auto: next to"
        " the SQLite database (DB.admin.sock), none for other stores; '' turns it off",
        metavar="PATH",
    )
    metrics_port: int = setting(
        0,
        "--metrics-port",
        "serve Prometheus metrics at /metrics on this port of --host (0: off;"
        " needs chatrpc[metrics])",
        low=0,
        high=65535,
    )
    tls_cert: str = setting("", "--tls-cert", "the server's certificate chain", metavar="PEM")
    tls_key: str = setting("", "--tls-key", "the server certificate's private key", metavar="PEM")
    tls_client_ca: str = setting(
        "",
        "--tls-client-ca",
        "require client certificates signed by this CA (mutual TLS)",
        metavar="PEM",
    )

    def __post_init__(self) -> None:
        check(self)

    def store_url(self) -> str:
        return self.store or f"sqlite://{default_db_path()}"

    def admin_socket_path(self) -> str:
        """Where the admin service listens ("" for nowhere): ``--admin-socket``, or
        for ``auto`` the SQLite database's path with ``.admin.sock`` added."""
        return (
            default_admin_socket(self.store_url())
            if self.admin_socket == "auto"
            else self.admin_socket
        )


def default_admin_socket(store_url: str) -> str:
    """The admin socket of ``--admin-socket auto`` for a store ("" if none)."""
    db = sqlite_path(store_url)
    return "" if db is None else f"{db.expanduser()}.admin.sock"
