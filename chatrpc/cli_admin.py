"""``chatrpc-admin``: operator tasks, on a running server or on the store itself.

Accounts, rooms, history and the server's figures go through the running
server's admin socket (see chatrpc.cli_admin_socket)::

    chatrpc-admin --db PATH users             # the socket next to the database
    chatrpc-admin --socket PATH disable alice

Registration tokens for ``chatrpc-server --registration token``::

    chatrpc-admin --store URL registration-token create --uses 5 --expires 7d
    chatrpc-admin --store URL registration-token list
    chatrpc-admin --store URL registration-token revoke ID

It opens the server's store directly (the same ``--store`` URL or ``--db`` file),
so it needs no running server, and is safe while servers run: SQLite serialises
writers (WAL, with a busy timeout) and each Redis change is one atomic step.
The token is printed once; the store keeps only its hash.

Backups of the SQLite store (see chatrpc.backup)::

    chatrpc-admin --db PATH backup FILE      # while the server runs
    chatrpc-admin --db PATH restore FILE     # with the server stopped: a new epoch
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import __version__, backup, cli_admin_socket, dblock
from .auth import hash_token, new_registration_token
from .cli_errors import Fatal
from .config import ServerConfig, default_db_path
from .config_sources import config_from, file_from, resolve
from .errors import ChatError, Code
from .settings import ConfigError
from .store import Store, open_store, token_id

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``"90"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"``: seconds (more than 0)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 3600, 30m, 12h, 7d, 2w)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1: {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chatrpc-admin",
        description="Operator tasks: on a running server through its admin socket, or on"
        " its store directly (registration tokens, backups; safe while servers run).",
        epilog="Exit codes: 0 done; 1 failed (no server on the socket, no such user or"
        " room, a refusal); 2 usage (bad arguments, a name the server does not allow).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--db", metavar="PATH", help=f"SQLite database file (default {default_db_path()})"
    )
    where.add_argument("--store", metavar="URL", help="store URL, as chatrpc-server's --store")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="the server's TOML settings, for its db or store (env CHATRPC_CONFIG);"
        " CHATRPC_DB and CHATRPC_STORE are read as the server reads them",
    )
    p.add_argument(
        "--socket",
        metavar="PATH",
        help="the server's admin socket (its --admin-socket; default: next to the SQLite"
        " database of --db, --store or --config)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    sub = p.add_subparsers(dest="what", required=True, metavar="COMMAND")
    cli_admin_socket.add_commands(sub, parse_duration, _count)
    reg = sub.add_parser(
        "registration-token", help="tokens that let a new name be claimed (--registration token)"
    )
    ops = reg.add_subparsers(dest="op", required=True, metavar="ACTION")
    create = ops.add_parser("create", help="make a token and print it (once)")
    create.add_argument(
        "--uses", type=_count, default=1, metavar="N", help="new names it may claim (default 1)"
    )
    create.add_argument(
        "--expires",
        type=parse_duration,
        default=7 * 86400.0,
        metavar="DURATION",
        help="how long it stays valid: 3600, 30m, 12h, 7d, 2w (default 7d)",
    )
    ops.add_parser("list", help="the stored tokens: id, uses left, expiry (never the token)")
    revoke = ops.add_parser("revoke", help="remove a token by its id (from list)")
    revoke.add_argument("id", help="the token's id, as list shows it")
    copy = sub.add_parser(
        "backup", help="a consistent copy of the SQLite database, while the server runs"
    )
    copy.add_argument("file", help="where to write the copy (must not exist)")
    back = sub.add_parser(
        "restore",
        help="put a backup back, with the server stopped; it gets a new epoch, so resuming"
        " clients read their conversations again instead of skipping messages",
    )
    back.add_argument("file", help="the backup to restore")
    return p


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


async def _registration_token(store: Store, args: argparse.Namespace) -> int:
    if args.op == "create":
        token = new_registration_token()
        expires_ms = int((time.time() + args.expires) * 1000)
        await store.create_registration_token(
            hash_token(token), uses=args.uses, expires_ms=expires_ms
        )
        print(token)
        print(
            f"id {token_id(hash_token(token))}: {args.uses} use(s), expires {_when(expires_ms)}",
            file=sys.stderr,
        )
        return 0
    if args.op == "list":
        now = int(time.time() * 1000)
        print(f"{'ID':<12}  {'USES LEFT':>9}  {'EXPIRES':<20}  CREATED")
        for t in await store.list_registration_tokens():
            state = " (expired)" if t.expires_ms <= now else ""
            print(
                f"{t.id:<12}  {t.uses_left:>9}  {_when(t.expires_ms):<20}  {_when(t.created_ms)}"
                f"{state}"
            )
        return 0
    if await store.revoke_registration_token(args.id.strip()):
        print(f"revoked {args.id.strip()}")
        return 0
    print(f"chatrpc-admin: no registration token with id {args.id!r}", file=sys.stderr)
    return 1


def _sqlite_file(url: str) -> Path:
    db = dblock.sqlite_path(url)
    if db is None:
        raise ChatError(
            Code.INVALID_ARGUMENT,
            f"backup and restore work on an SQLite store, not {url}: use the store's own"
            " backups (for Redis, its RDB or AOF files)",
        )
    return db


def _backup_or_restore(url: str, args: argparse.Namespace) -> int:
    db = _sqlite_file(url)
    if args.what == "backup":
        size = backup.backup(db, Path(args.file))
        print(f"backed up {db} to {args.file} ({size} bytes)")
    else:
        epoch = backup.restore(Path(args.file), db)
        print(f"restored {args.file} to {db} as epoch {epoch}: clients will read again")
    return 0


def _server_config(args: argparse.Namespace) -> ServerConfig:
    """The server's settings as far as given: --db or --store, its variables and file."""
    given = {k: getattr(args, k) for k in ("db", "store") if getattr(args, k)}
    try:
        resolved = resolve(given, os.environ, file_from(args.config, os.environ))
        return config_from(resolved.values)
    except ConfigError as exc:
        raise ChatError(Code.INVALID_ARGUMENT, str(exc)) from exc


async def run(args: argparse.Namespace) -> int:
    config = _server_config(args)
    if args.what in cli_admin_socket.COMMANDS:
        path = args.socket if args.socket is not None else config.admin_socket_path()
        return await cli_admin_socket.run(args, path)
    url = config.store_url()
    if args.what in ("backup", "restore"):
        return _backup_or_restore(url, args)
    store = open_store(url)
    await store.open()
    try:
        return await _registration_token(store, args)
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except ChatError as exc:
        print(f"chatrpc-admin: {exc.message}", file=sys.stderr)
        return 1
    except Fatal as exc:
        print(f"chatrpc-admin: {exc}", file=sys.stderr)
        return exc.code
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"chatrpc-admin: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
