"""``chatrpc-server``: run the chat server until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from . import SERVER_GRPC_EXPERIMENTS, __version__, dblock

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

from .config import ServerConfig, default_db_path
from .config_sources import (
    LOG_FORMATS,
    LOG_LEVELS,
    Key,
    Resolved,
    config_from,
    file_from,
    keys,
    render,
    resolve,
)
from .errors import ChatError
from .limits import Limits
from .logs import setup_logging
from .server import ChatServer
from .settings import ConfigError, options
from .store import StoreOptions
from .urls import redact

log = logging.getLogger("chatrpc.server")


class _Parser(argparse.ArgumentParser):
    """Reports a bad argument in one line (the usage of every option would bury it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parse(key: Key) -> Callable[[str], Any]:
    """Parses and checks one option's value as its declaration says."""

    def parse(text: str) -> Any:
        try:
            return key.from_text(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _add_options(
    group: argparse._ActionsContainer, cls: type[Any], which: Callable[[str], bool]
) -> None:
    known = keys()
    for f, option in options(cls):
        if not which(f.name):
            continue
        key = known[option.flag.removeprefix("--")]
        if key.kind is bool:  # a switch, off unless given
            group.add_argument(option.flag, action="store_true", help=option.help)
            continue
        metavar = option.metavar or (None if key.kind is str else "N")
        shown = f" (default {f.default})" if f.default != "" else ""
        group.add_argument(option.flag, type=_parse(key), metavar=metavar, help=option.help + shown)


def _is_web(name: str) -> bool:
    return name.startswith("web_") or name == "no_web"


def build_parser() -> argparse.ArgumentParser:
    """The options of chatrpc-server, built from the settings' declarations.

    Only the options given are in what it parses (the others are left to the
    environment, the config file and the defaults: see chatrpc.config_sources).
    """
    p = _Parser(
        prog="chatrpc-server",
        description="Real-time chat over gRPC bidirectional streaming.",
        argument_default=argparse.SUPPRESS,
        epilog="Every option can also be set by a CHATRPC_* environment variable"
        " (--queue-size: CHATRPC_QUEUE_SIZE) or in the TOML file of --config"
        " (queue-size = 2048); flags win over variables, variables over the file."
        " Also read: GRPC_EXPERIMENTS (default: grpc core's iomgr TCP code;"
        " set it, even empty for grpc's own defaults, to choose), GRPC_VERBOSITY"
        " (default NONE: the server logs what matters itself; debug shows grpc's).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--config", metavar="FILE", help="TOML file of settings (env CHATRPC_CONFIG)")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings, and where each came from, as TOML; then exit",
    )
    _add_options(p, ServerConfig, lambda name: name in ("host", "port"))
    _add_options(p, ServerConfig, _is_web)
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
    p.add_argument("--log-level", choices=LOG_LEVELS, help="(default info)")
    p.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="text for people, json (one object a line) for machines (default text)",
    )
    g = p.add_argument_group("limits")
    for cls in (Limits, StoreOptions):
        _add_options(g, cls, lambda name: True)
    _add_options(
        g,
        ServerConfig,
        lambda name: name not in ("host", "port") and "tls" not in name and not _is_web(name),
    )
    t = p.add_argument_group("TLS (plaintext without --tls-cert)")
    _add_options(t, ServerConfig, lambda name: name.startswith("tls_"))
    return p


def resolve_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Resolved:
    """Every setting's value from the flags given, the environment and the config file."""
    given = {k: v for k, v in vars(args).items() if k not in ("config", "print_config")}
    return resolve(given, environ, file_from(getattr(args, "config", None), environ))


def config_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """The configuration the parsed arguments describe (with ``environ``'s
    ``CHATRPC_*`` variables and the config file); ConfigError if inconsistent."""
    return config_from(resolve_args(args, environ or {}).values)


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
    db = dblock.sqlite_path(config.store_url())
    if db is not None and (warning := dblock.claim(db)) is not None:
        log.warning("%s", warning)
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
            f" (store {redact(config.store_url())}{security})"
            + ("" if server.web is None else f"; web app at {server.web.url}"),
            flush=True,
        )
        if server.metrics is not None:
            log.info("metrics at http://%s:%d/metrics", config.host, server.metrics.port)
        await stop.wait()
        log.info("shutting down")
    finally:
        collector.cancel()
        await server.stop()
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        resolved = resolve_args(args, os.environ)
        config = config_from(resolved.values)
    except ConfigError as exc:
        parser.error(str(exc))
    if getattr(args, "print_config", False):
        sys.stdout.write(render(resolved))
        return 0
    setup_logging(resolved.values["log-level"], resolved.values["log-format"])
    try:
        asyncio.run(run(config))
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
