"""``chatrpc-client``: chat from a terminal or a script.

On a terminal (stdin and stdout both), an interactive prompt (:mod:`chatrpc.tui`):
incoming messages print above the input line, ``/help`` lists the commands, and
the last ``--context`` messages of a room are shown on joining it.

Piped (otherwise, or with ``--json``): every line is a command or text for the
current room, the same commands as on a terminal (``/msg USER TEXT`` sends a DM,
``/join ROOM`` joins and switches room...); received events print one per line;
at the end of input the client waits for the echo of each line it sent, then
exits. ``--listen`` stays connected and prints until interrupted.

Both reconnect by themselves with backoff and resume every room and DM from
the last seq seen, saying so (on stderr when piped).

Exit codes: 0 ok (also when left with /quit, Ctrl-D, Ctrl-C, SIGINT or SIGTERM),
1 server or connection failure (or, piped, a line that could not be sent),
2 usage. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import io
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

# grpc core logs to stderr on its own (e.g. a TLS handshake failure) and reads
# this when imported; the client reports what matters in one line.
# GRPC_VERBOSITY=debug brings it back.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc
from prompt_toolkit.patch_stdout import patch_stdout

from . import __version__
from .client import ChannelSecurity, ChatClient, ClientClosed, SendError, channel, login
from .tui import (
    CONTEXT_DEFAULT,
    CommandError,
    Conversation,
    Formatter,
    Prompt,
    canonical,
    colors_wanted,
    interact,
    parse_line,
)

PROG = "chatrpc-client"
DEFAULT_SERVER = "localhost:50051"

#: The exit code after Ctrl-C, SIGINT or SIGTERM: leaving is not a failure.
INTERRUPTED = 0

#: How long leaving waits for the echoes of the last lines typed.
QUIT_TIMEOUT = 3.0


class Fatal(Exception):
    """A one-line error for stderr and the exit code to leave with."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "chatrpc"


class TokenFile:
    """Tokens per server and user, in a file only its owner can read (mode 0600)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "tokens.json"

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def get(self, server: str, user: str) -> str:
        return self._load().get(f"{user}@{server}", "")

    def put(self, server: str, user: str, token: str) -> None:
        data = self._load()
        data[f"{user}@{server}"] = token
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


def describe_rpc_error(exc: grpc.aio.AioRpcError, server: str) -> str:
    details = exc.details() or ""
    low = details.lower()
    if "certificate_verify_failed" in low or "handshake failed" in low:
        return (
            f"cannot reach {server}: TLS handshake failed (is the server's certificate"
            " trusted? --tls-ca names its CA)"
        )
    if exc.code() == grpc.StatusCode.UNAVAILABLE and (
        "connect" in details.lower() or "refused" in details.lower() or "dns" in details.lower()
    ):
        reason = "connection refused" if "refused" in details.lower() else details
        return f"cannot reach {server}: {reason}"
    return f"{server}: {details or exc.code().name}"


async def obtain_token(
    server: str,
    user: str,
    password: str,
    tokens: TokenFile,
    security: ChannelSecurity | None = None,
    *,
    registration_token: str = "",
) -> tuple[str, str]:
    """Logs in with the stored token, or claims the name; returns (user, token).

    ``registration_token`` lets a new name be claimed on a server that asks for one.
    """
    stored = tokens.get(server, user.lower())
    ch = channel(server, security=security)
    try:
        try:
            response = await login(
                ch, user, password=password, token=stored, registration_token=registration_token
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (
                grpc.StatusCode.ALREADY_EXISTS,
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.PERMISSION_DENIED,
            ):
                raise Fatal(exc.details() or "login refused") from None
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise Fatal(exc.details() or "invalid name", 2) from None
            raise Fatal(describe_rpc_error(exc, server)) from None
    finally:
        await ch.close()
    tokens.put(server, response.user, response.token)
    return response.user, response.token


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
    p.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the account password from this environment variable",
    )
    p.add_argument(
        "--registration-token",
        metavar="TOKEN",
        default="",
        help="claim a new name on a server that asks for a registration token"
        " (its operator makes them with chatrpc-admin)",
    )
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


class LineReader:
    """The lines of a blocking stream (stdin), read by a daemon thread.

    A daemon thread, not the loop's executor: a read that never returns (a pipe
    nobody closes) must not keep the program from exiting when interrupted.
    """

    def __init__(self, stream: TextIO) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)
        thread = threading.Thread(target=self._pump, args=(stream,), daemon=True, name="stdin")
        thread.start()

    def _put(self, line: str | None) -> None:
        # Waits while the queue is full, so a huge input is read as it is used.
        asyncio.run_coroutine_threadsafe(self._queue.put(line), self._loop).result()

    def _pump(self, stream: TextIO) -> None:
        # The loop is gone (RuntimeError), or it ended while a line waited for room
        # in the queue (the waiting put is cancelled): nobody reads any more.
        with contextlib.suppress(RuntimeError, concurrent.futures.CancelledError):
            try:
                for line in iter(stream.readline, ""):
                    self._put(line)
            except (OSError, ValueError):
                pass  # stdin closed under us: that is its end
            self._put(None)

    async def readline(self) -> str | None:
        """The next line, or ``None`` at the end of input."""
        return await self._queue.get()


class Output:
    """Prints lines to a stream; if its reader goes away (``| head``), calls ``on_gone``.

    SIGPIPE stays ignored, as Python sets it. At its default, any write to a
    closed pipe or socket in the process kills it without a word: that was seen
    while shutting down after SIGTERM (exit status 141), not only on stdout.
    """

    def __init__(self, stream: TextIO, on_gone: Callable[[], None]) -> None:
        self.stream = stream
        self.on_gone = on_gone
        self.gone = False

    def __call__(self, line: str) -> None:
        if self.gone:
            return
        try:
            print(line, file=self.stream, flush=True)
        except BrokenPipeError:
            self.gone = True
            # Python would fail again flushing the stream at exit: point it nowhere.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
                os.close(devnull)
            self.on_gone()


def _stderr(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def _password(args: argparse.Namespace) -> str:
    return os.environ.get(args.password_env, "") if args.password_env else ""


async def _start(client: ChatClient, server: str) -> None:
    try:
        await client.start()
    except ClientClosed as exc:
        raise Fatal(f"{server}: {exc.details}") from None


async def _join_first_room(conversation: Conversation, room: str) -> None:
    """Joins the room of ``--room``; a room the server refuses is a usage error."""
    try:
        await conversation.join(room, conversation.context, refusal=True)
    except SendError as exc:
        raise Fatal(f"cannot join #{room}: {exc.error.message}", 2) from None


async def run_piped(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    """Sends the lines of ``stdin``, prints events to ``out``; returns the exit code."""
    user, token = await obtain_token(
        args.server,
        args.user,
        _password(args),
        TokenFile(),
        args.security,
        registration_token=args.registration_token,
    )
    client = ChatClient(args.server, user, token, security=args.security)
    body = asyncio.current_task()

    def stop() -> None:
        # Nobody reads any more (| head): stop as if interrupted.
        if body is not None:
            body.cancel()

    emit = Output(out, stop)
    conversation = Conversation(
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
            await client.wait_closed()
    except asyncio.CancelledError:
        interrupted = True
        raise
    except ClientClosed as exc:
        raise Fatal(f"{args.server}: {exc.details}") from None
    finally:
        if interrupted:
            await client.aclose()
        else:
            await client.close()
    return 1 if conversation.failures else 0


async def run_interactive(args: argparse.Namespace) -> int:
    """The prompt on a terminal, until /quit, Ctrl-D or Ctrl-C; returns the exit code."""
    user, token = await obtain_token(
        args.server,
        args.user,
        _password(args),
        TokenFile(),
        args.security,
        registration_token=args.registration_token,
    )
    color = colors_wanted(sys.stdout)
    client = ChatClient(args.server, user, token, security=args.security)

    def emit(line: str) -> None:
        # sys.stdout as it is now: patch_stdout's proxy, which prints above the prompt.
        print(line, file=sys.stdout, flush=True)

    conversation = Conversation(
        client,
        Formatter(user, color=color),
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
        return asyncio.run(_main(args, interactive))
    except Fatal as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
