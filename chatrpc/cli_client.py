"""``chatrpc-client``: chat from a terminal or a script.

On a terminal (stdin and stdout both), an interactive prompt (:mod:`chatrpc.tui`):
incoming messages print above the input line, ``/help`` lists the commands, and
the last ``--context`` messages of a room are shown on joining it.

Piped (otherwise, or with ``--json``): every line is a command or text for the
current room, the same commands as on a terminal (``/msg USER TEXT`` sends a DM,
``/join ROOM`` joins and switches room...); lines go out in order at the rate
the server allows; received events print one per line on stdout, problems once
each on stderr; at the end of input the client waits for the echo of each line
it sent, then exits. ``--listen`` stays connected and prints until interrupted,
logging in again if a reconnect finds its token unknown.

Both reconnect by themselves with backoff and resume every room and DM from
the last seq seen, saying so (on stderr when piped).

Exit codes: 0 ok (also when left with /quit, Ctrl-D, Ctrl-C, SIGINT or SIGTERM),
1 server or connection failure (or, piped, a line that could not be sent),
2 usage (also a room name the server refuses, and an unset or empty
``--password-env`` variable). Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import sys
from typing import TextIO

# grpc core logs to stderr on its own (e.g. a TLS handshake failure) and reads
# this when imported; the client reports what matters in one line.
# GRPC_VERBOSITY=debug brings it back.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc
from prompt_toolkit.patch_stdout import patch_stdout

from . import __version__
from .cli_errors import Fatal
from .cli_io import PROG, LineReader, Output
from .cli_io import stderr_line as _stderr
from .cli_login import TokenFile, obtain_token
from .client import (
    ChannelSecurity,
    ChatClient,
    ClientClosed,
    SendError,
)
from .names import canonical
from .tui import (
    CONTEXT_DEFAULT,
    ChatView,
    CommandError,
    Formatter,
    Prompt,
    colors_wanted,
    interact,
    parse_line,
)
from .v1 import chat_pb2 as pb

DEFAULT_SERVER = "localhost:50051"

#: The exit code after Ctrl-C, SIGINT or SIGTERM: leaving is not a failure.
INTERRUPTED = 0

#: How long leaving waits for the echoes of the last lines typed.
QUIT_TIMEOUT = 3.0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _security(args: argparse.Namespace, p: argparse.ArgumentParser) -> ChannelSecurity | None:
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if not (args.tls or args.tls_ca or args.tls_cert or args.tls_server_name):
        return None
    try:
        return ChannelSecurity.from_files(
            args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name
        )
    except OSError as exc:
        p.error(f"cannot read {exc.filename}: {exc.strerror}")


def _add_account_options(p: argparse.ArgumentParser) -> None:
    """The options about the account: its password, a new one, a registration token."""
    p.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the account password from this environment variable: it protects a"
        " new name, proves a taken one, and is set on an account that has none",
    )
    p.add_argument(
        "--new-password-env",
        metavar="VAR",
        help="set or change the account's password to the one in this environment"
        " variable (--password-env gives the current one, if any)",
    )
    p.add_argument(
        "--registration-token",
        metavar="TOKEN",
        default="",
        help="claim a new name on a server that asks for a registration token"
        " (its operator makes them with chatrpc-admin)",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Chat on a chatrpc server. On a terminal, type /help once connected.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--user", "-u", default=os.environ.get("CHATRPC_USER"), help="your name (env CHATRPC_USER)"
    )
    p.add_argument(
        "--server",
        "-s",
        default=os.environ.get("CHATRPC_SERVER", DEFAULT_SERVER),
        help="HOST:PORT (env CHATRPC_SERVER, default %(default)s)",
    )
    p.add_argument("--room", "-r", default="general", help="room to join (default %(default)s)")
    p.add_argument(
        "--context",
        "-n",
        type=_count,
        metavar="N",
        help=f"on joining a room, show its last N messages (default {CONTEXT_DEFAULT} on a"
        " terminal, 0 when piped)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per event")
    p.add_argument(
        "--listen",
        action="store_true",
        help="piped: after the input ends, stay connected and print until interrupted",
    )
    _add_account_options(p)
    tls = p.add_argument_group("TLS (plaintext unless one of these is given)")
    tls.add_argument("--tls", action="store_true", help="TLS, trusting the system's CAs")
    tls.add_argument("--tls-ca", metavar="PEM", help="TLS, trusting this CA (e.g. certs/ca.pem)")
    tls.add_argument("--tls-cert", metavar="PEM", help="client certificate, for mutual TLS")
    tls.add_argument("--tls-key", metavar="PEM", help="its private key")
    tls.add_argument(
        "--tls-server-name", metavar="NAME", help="name to verify in the server's certificate"
    )
    args = p.parse_args(argv)
    args.security = _security(args, p)
    if not args.user:
        p.error("--user is required (or set CHATRPC_USER)")
    if ":" not in args.server:
        p.error(f"--server must be HOST:PORT, not {args.server!r}")
    args.room = canonical(args.room)
    if not args.room:
        p.error("--room must name a room")
    return args


def _password_from(var: str | None, option: str) -> str:
    """The password in environment variable ``var`` (none without the option).

    Raises:
        Fatal: (usage) the variable is unset or empty: never taken as "no password".
    """
    if not var:
        return ""
    value = os.environ.get(var)
    if value is None:
        raise Fatal(f"{option} {var}: the environment variable {var} is not set", 2)
    if not value:
        raise Fatal(f"{option} {var}: {var} is empty, and an empty password is refused", 2)
    return value


async def _start(client: ChatClient, server: str) -> None:
    try:
        await client.start()
    except ClientClosed as exc:
        raise Fatal(f"{server}: {exc.details}") from None


async def _join_first_room(conversation: ChatView, room: str) -> None:
    """Joins the room of ``--room``; a room the server refuses is a usage error."""
    try:
        await conversation.join(room, conversation.context, refusal=True)
    except SendError as exc:
        usage = exc.error.code == pb.Error.INVALID_ARGUMENT
        raise Fatal(f"cannot join #{room}: {exc.error.message}", 2 if usage else 1) from None


async def _obtain(args: argparse.Namespace) -> tuple[str, str]:
    """The user and token to chat with, as the arguments ask (see :func:`obtain_token`)."""
    return await obtain_token(
        args.server,
        args.user,
        args.password,
        TokenFile(),
        args.security,
        new_password=args.new_password,
        registration_token=args.registration_token,
    )


async def run_piped(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    """Sends the lines of ``stdin``, prints events to ``out``; returns the exit code."""
    user, token = await _obtain(args)
    client = ChatClient(args.server, user, token, security=args.security)
    body = asyncio.current_task()

    def stop() -> None:
        # Nobody reads any more (| head): stop as if interrupted.
        if body is not None:
            body.cancel()

    emit = Output(out, stop)
    conversation = ChatView(
        client,
        Formatter(user, color=False, dm_arrows=False),
        emit=emit,
        error=_stderr,
        interactive=False,
        as_json=args.json,
        context=args.context or 0,
    )
    await _start(client, args.server)
    interrupted = False
    try:
        await _join_first_room(conversation, args.room)
        reader = LineReader(stdin)
        number = 0
        while (line := await reader.readline()) is not None:
            number += 1
            try:
                cmd = parse_line(line)
            except CommandError as exc:
                conversation.problem(f"line {number}: {exc}")
                continue
            if cmd is not None and not await conversation.execute(cmd):
                break
        await conversation.finish()
        if args.listen:
            client = await _listen(args, conversation)
    except asyncio.CancelledError:
        interrupted = True
        raise
    except ClientClosed as exc:
        raise Fatal(f"{args.server}: {exc.details}") from None
    finally:
        client = conversation.client
        if interrupted:
            await client.aclose()
        else:
            await client.close()
    if conversation.usage_failures:
        return 2
    return 1 if conversation.failures else 0


#: What a session ended by a Logout says: that token was revoked on purpose.
_REVOKED_LIVE = "token revoked"


async def _listen(args: argparse.Namespace, conversation: ChatView) -> ChatClient:
    """Stays connected until interrupted. A reconnect the server refuses for the
    token (a server whose store was reset no longer knows it) logs in again, as
    the first run did: the name is claimed again if free, or proved with
    --password-env; the new session resumes where the old one stopped. A session
    ended by a Logout (its token revoked) stops."""
    client = conversation.client
    while True:
        try:
            await client.wait_closed()
            return client
        except ClientClosed as exc:
            if exc.code != grpc.StatusCode.UNAUTHENTICATED or exc.details.startswith(_REVOKED_LIVE):
                raise
            _stderr(f"logging in again ({exc.details})")
        user, token = await obtain_token(
            args.server, client.user, args.password, TokenFile(), args.security, stored=False
        )
        state = client.state
        await client.aclose()
        client = ChatClient(args.server, user, token, security=args.security, state=state)
        conversation.attach(client)
        await _start(client, args.server)


async def run_interactive(args: argparse.Namespace) -> int:
    """The prompt on a terminal, until /quit, Ctrl-D or Ctrl-C; returns the exit code."""
    user, token = await _obtain(args)
    color = colors_wanted(sys.stdout)
    client = ChatClient(args.server, user, token, security=args.security)

    def emit(line: str) -> None:
        # sys.stdout as it is now: patch_stdout's proxy, which prints above the prompt.
        print(line, file=sys.stdout, flush=True)

    conversation = ChatView(
        client,
        Formatter(user, color=color, seqs=True),
        emit=emit,
        error=_stderr,
        interactive=True,
        context=CONTEXT_DEFAULT if args.context is None else args.context,
    )
    prompt = Prompt(conversation, color=color)
    conversation.on_change = prompt.redraw
    with patch_stdout(raw=True):
        await _start(client, args.server)
        try:
            conversation.notice(f"connected to {args.server} as {user}: /help lists the commands")
            await _join_first_room(conversation, args.room)
            await interact(conversation, prompt)
        except ClientClosed as exc:
            raise Fatal(f"{args.server}: {exc.details}") from None
        finally:
            # Leaving: wait a little for the echoes of the last lines, not forever.
            try:
                await asyncio.wait_for(client.close(), QUIT_TIMEOUT)
            except TimeoutError:
                await client.aclose()
    return 0


async def _main(args: argparse.Namespace, interactive: bool) -> int:
    """Runs a mode; SIGINT and SIGTERM stop it cleanly."""
    body = asyncio.ensure_future(
        run_interactive(args) if interactive else run_piped(args, sys.stdin, sys.stdout)
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, body.cancel)
    try:
        return await body
    except asyncio.CancelledError:
        if not body.cancelled():
            raise
        return INTERRUPTED
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.json
    if not interactive and isinstance(sys.stdin, io.TextIOWrapper):
        # A stray invalid byte in piped input is not worth dying for.
        sys.stdin.reconfigure(errors="replace")
    try:
        args.password = _password_from(args.password_env, "--password-env")
        args.new_password = _password_from(args.new_password_env, "--new-password-env")
        return asyncio.run(_main(args, interactive))
    except Fatal as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
