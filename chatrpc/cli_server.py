"""``chatrpc-server``: run the chat server until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable

from . import SERVER_GRPC_EXPERIMENTS, __version__

# grpc core logs to stderr on its own (e.g. a second line when the port is taken);
# the server reports what matters itself. GRPC_VERBOSITY=debug brings it back.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
# grpc core's older TCP code (iomgr) instead of its EventEngine endpoints. On this
# server's load it answers a keepalive ping for about half the CPU, which is most
# of what an idle server does, and takes connections and unbatched writes for
# less (docs/BENCHMARKS.md). A GRPC_EXPERIMENTS set by the operator, even empty
# (grpc's own defaults), is kept. grpc reads it when it is imported, so this comes
# before grpc; a process that imported grpc already (a test run) is left alone.
if "grpc" not in sys.modules:
    os.environ.setdefault("GRPC_EXPERIMENTS", SERVER_GRPC_EXPERIMENTS)

from .auth import REGISTRATION_MODES
from .config import ServerConfig, default_db_path
from .errors import ChatError
from .hub import Limits
from .server import ChatServer
from .store import StoreOptions

log = logging.getLogger("chatrpc.server")


def _positive(kind: type[int] | type[float]) -> argparse._ActionType:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    d = ServerConfig()
    lim = Limits()
    so = StoreOptions()
    p = argparse.ArgumentParser(
        prog="chatrpc-server",
        description="Real-time chat over gRPC bidirectional streaming.",
        epilog="environment: GRPC_EXPERIMENTS (default: grpc core's iomgr TCP code;"
        " set it, even empty for grpc's own defaults, to choose), GRPC_VERBOSITY"
        " (default NONE: the server logs what matters itself; debug shows grpc's).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--host", default=d.host, help="address to listen on (default %(default)s)")
    p.add_argument(
        "--port", type=int, default=d.port, help="port; 0 picks a free one (default %(default)s)"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--db", metavar="PATH", help=f"SQLite database file (default {default_db_path()})"
    )
    where.add_argument(
        "--store",
        metavar="URL",
        help="store URL: sqlite:///PATH, memory:// (nothing kept), redis://HOST:PORT/DB"
        " (shared by several servers; needs chatrpc[redis])",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="(default %(default)s)",
    )
    g = p.add_argument_group("limits")
    g.add_argument(
        "--max-text-bytes",
        type=_positive(int),
        default=lim.max_text_bytes,
        help="largest message text in UTF-8 bytes (default %(default)s)",
    )
    g.add_argument(
        "--queue-size",
        type=_positive(int),
        default=d.queue_size,
        help="events queued per session before it is cut off as a slow consumer"
        " (default %(default)s)",
    )
    g.add_argument(
        "--max-replay",
        type=_positive(int),
        default=lim.max_replay,
        help="resume gap always replayed in full, in messages (default %(default)s)",
    )
    g.add_argument(
        "--idempotency-window",
        type=_positive(float),
        default=so.idempotency_window_s,
        metavar="SECONDS",
        help="how long a client_msg_id is remembered (default %(default)s)",
    )
    g.add_argument(
        "--retention-max-messages",
        type=_positive(int),
        default=0,
        metavar="N",
        help="keep at most N messages per conversation (default: all)",
    )
    g.add_argument(
        "--retention-max-age",
        type=_positive(float),
        default=0,
        metavar="SECONDS",
        help="drop messages older than this (default: never)",
    )
    g.add_argument(
        "--keepalive",
        type=_positive(float),
        default=d.keepalive_s,
        metavar="SECONDS",
        help="ping a client not heard from for this long, to notice vanished ones"
        " (default %(default)s)",
    )
    g.add_argument(
        "--keepalive-timeout",
        type=_positive(float),
        default=d.keepalive_timeout_s,
        metavar="SECONDS",
        help="drop a client that does not answer a ping in time (default %(default)s)",
    )
    g.add_argument(
        "--presence-ttl",
        type=_positive(float),
        default=so.presence_ttl_s,
        metavar="SECONDS",
        help="with a shared (Redis) store: a server's online users are forgotten this"
        " long after its last heartbeat (default %(default)s)",
    )
    g.add_argument(
        "--presence-max-sessions",
        type=_positive(int),
        default=lim.presence_max_sessions,
        metavar="N",
        help="rooms with more sessions here, or users on all servers, stop announcing"
        " joins and leaves, and their joins name nobody, only the number online"
        " (0: always announce and name; default %(default)s)",
    )
    g.add_argument(
        "--stall-timeout",
        type=_positive(float),
        default=d.stall_timeout_s,
        metavar="SECONDS",
        help="end a slow consumer that stopped reading after this long (default %(default)s)",
    )
    g.add_argument(
        "--shutdown-grace",
        type=_positive(float),
        default=d.shutdown_grace_s,
        metavar="SECONDS",
        help="time running calls get on shutdown (default %(default)s)",
    )
    g.add_argument(
        "--max-receive-bytes",
        type=_positive(int),
        default=d.max_receive_bytes,
        metavar="BYTES",
        help="largest message the server accepts from a client (default %(default)s)",
    )
    g.add_argument(
        "--rooms-per-session",
        type=_positive(int),
        default=lim.max_rooms_per_session,
        metavar="N",
        help="rooms one session may be in at once (default %(default)s)",
    )
    g.add_argument(
        "--sessions-per-user",
        type=_positive(int),
        default=lim.max_sessions_per_user,
        metavar="N",
        help="Chat sessions one user may have open at once (default %(default)s)",
    )
    g.add_argument(
        "--max-sessions",
        type=_positive(int),
        default=lim.max_sessions,
        metavar="N",
        help="Chat sessions open on the server at once (default %(default)s)",
    )
    g.add_argument(
        "--max-connections",
        type=_positive(int),
        default=d.max_connections,
        metavar="N",
        help="client connections accepted at once (default %(default)s)",
    )
    g.add_argument(
        "--max-pending-calls",
        type=_positive(int),
        default=d.max_pending_calls,
        metavar="N",
        help="calls queued while the server is busy (e.g. a connection storm) before"
        " new ones are refused (default %(default)s)",
    )
    g.add_argument(
        "--streams-per-connection",
        type=_positive(int),
        default=d.max_streams_per_connection,
        metavar="N",
        help="calls one connection may have open at once (default %(default)s)",
    )
    g.add_argument(
        "--rate-limit",
        type=_positive(float),
        default=lim.rate_limit,
        metavar="PER_SECOND",
        help="sends per second per user, averaged; 0 lifts the limit (default %(default)s)",
    )
    g.add_argument(
        "--rate-burst",
        type=_positive(int),
        default=lim.rate_burst,
        metavar="N",
        help="sends a user may make at once before the rate applies (default %(default)s)",
    )
    g.add_argument(
        "--login-rate",
        type=_positive(float),
        default=d.login_rate,
        metavar="PER_SECOND",
        help="logins per second per client address; a failed one counts 10;"
        " 0 lifts the limit (default %(default)s)",
    )
    g.add_argument(
        "--login-burst",
        type=_positive(int),
        default=d.login_burst,
        metavar="N",
        help="logins a client address may make at once (default %(default)s)",
    )
    a = p.add_argument_group("abuse and quotas (see README)")
    a.add_argument(
        "--registration",
        choices=REGISTRATION_MODES,
        default=d.registration,
        help="who may claim a new name: anyone (open), holders of a registration token"
        " made with chatrpc-admin (token), nobody (closed); existing accounts always"
        " log in (default %(default)s)",
    )
    a.add_argument(
        "--rooms-per-user-per-day",
        type=_positive(int),
        default=lim.rooms_per_user_per_day,
        metavar="N",
        help="rooms one user may create over a rolling day; joining an existing room"
        " is free; 0 lifts the limit (default %(default)s)",
    )
    a.add_argument(
        "--empty-room-ttl",
        type=_positive(float),
        default=d.empty_room_ttl_s,
        metavar="SECONDS",
        help="a room with no members and no stored messages disappears after this long"
        " without activity; 0 keeps every room (default %(default)s: a day)",
    )
    a.add_argument(
        "--list-page-max",
        type=_positive(int),
        default=lim.max_list_page,
        metavar="N",
        help="largest page of ListRooms, ListMembers and ListDirects (default %(default)s)",
    )
    t = p.add_argument_group("TLS (plaintext without --tls-cert)")
    t.add_argument("--tls-cert", metavar="PEM", help="the server's certificate chain")
    t.add_argument("--tls-key", metavar="PEM", help="the server certificate's private key")
    t.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="require client certificates signed by this CA (mutual TLS)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    store = args.store or (f"sqlite://{args.db}" if args.db else "")
    if args.db and not args.db.startswith("/"):
        store = args.db  # a relative path is taken as a file path as is
    return ServerConfig(
        host=args.host,
        port=args.port,
        store=store,
        limits=Limits(
            max_text_bytes=int(args.max_text_bytes),
            max_replay=int(args.max_replay),
            max_rooms_per_session=int(args.rooms_per_session),
            max_sessions_per_user=int(args.sessions_per_user),
            max_sessions=int(args.max_sessions),
            rate_limit=float(args.rate_limit),
            rate_burst=max(1, int(args.rate_burst)),
            presence_max_sessions=int(args.presence_max_sessions),
            rooms_per_user_per_day=int(args.rooms_per_user_per_day),
            max_list_page=max(1, int(args.list_page_max)),
            default_list_page=min(Limits().default_list_page, max(1, int(args.list_page_max))),
        ),
        store_options=StoreOptions(
            idempotency_window_s=float(args.idempotency_window),
            retention_max_messages=int(args.retention_max_messages),
            retention_max_age_s=float(args.retention_max_age),
            presence_ttl_s=max(0.5, float(args.presence_ttl)),
        ),
        queue_size=max(1, int(args.queue_size)),
        keepalive_s=float(args.keepalive),
        keepalive_timeout_s=float(args.keepalive_timeout),
        shutdown_grace_s=float(args.shutdown_grace),
        stall_timeout_s=float(args.stall_timeout),
        max_receive_bytes=max(1024, int(args.max_receive_bytes)),
        max_connections=max(1, int(args.max_connections)),
        max_streams_per_connection=max(1, int(args.streams_per_connection)),
        max_pending_calls=max(1, int(args.max_pending_calls)),
        login_rate=float(args.login_rate),
        login_burst=max(1, int(args.login_burst)),
        registration=args.registration,
        empty_room_ttl_s=float(args.empty_room_ttl),
        tls_cert=args.tls_cert or "",
        tls_key=args.tls_key or "",
        tls_client_ca=args.tls_client_ca or "",
    )


def tune_gc() -> None:
    """Makes the garbage collector's full passes rare, and startup's objects exempt.

    A full pass walks every object the process holds and stops every stream while
    it runs: with 1,000 sessions they took 25-75 ms of CPU each, a few times a
    minute under load, which set the fan-out's p99 latency. Young passes stay as
    they are (about 1 ms); a full one now comes after 1,000 of the middle
    generation's instead of 10, or from :func:`collect_after_churn`. What exists
    once the server is up (modules, grpc, the store) is never garbage, so it
    leaves the collector's view for good. (Python 3.14's incremental collector
    ignores the third threshold; freezing still helps there.)
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, GC_FULL_EVERY)


#: Full collections come after this many middle-generation ones (Python: 10).
GC_FULL_EVERY = 1000
#: How often the churn of sessions is looked at (seconds).
GC_CHECK_S = 30.0


async def collect_after_churn(
    sessions: Callable[[], tuple[int, int]], period: float = GC_CHECK_S
) -> None:
    """Runs a full collection once many sessions closed since the last one: at
    least 1,000, and a quarter of those open. ``sessions()`` gives (closed so far,
    open now); it is looked at every ``period`` seconds.

    With full passes rare, the garbage in cycles that lived long enough to be old
    (a closed session's grpc call objects, ~2 KiB each) would wait for one; that
    garbage comes from sessions that ended, so their count says when a pass pays.
    A server whose sessions stay, idle or busy, is not paused; one that churns
    keeps its old garbage to a quarter of its live sessions' share.
    """
    last, _ = sessions()
    while True:
        await asyncio.sleep(period)
        closed, open_now = sessions()
        if closed - last >= max(1000, open_now // 4):
            gc.collect()
            last = closed


async def run(config: ServerConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = ChatServer(config)
    # kill -USR1 <pid> logs what every session and task is doing.
    loop.add_signal_handler(signal.SIGUSR1, lambda: log.warning("state:\n%s", server.describe()))
    port = await server.start()
    tune_gc()
    hub = server.hub
    collector = asyncio.create_task(
        collect_after_churn(lambda: (hub.sessions_closed, hub.sessions_open))
    )
    try:
        # One line on stdout when ready: scripts and tests wait for it.
        security = ""
        if config.tls_cert:
            security = ", TLS with client certificates" if config.tls_client_ca else ", TLS"
        print(
            f"chatrpc-server listening on {config.host}:{port}"
            f" (store {config.store_url()}{security})",
            flush=True,
        )
        await stop.wait()
        log.info("shutting down")
    finally:
        collector.cancel()
        await server.stop()
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(run(config_from_args(args)))
    except ChatError as exc:
        print(f"chatrpc-server: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"chatrpc-server: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
