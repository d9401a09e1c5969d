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
from .cli_errors import transport_problem
from .client import (
    ChannelSecurity,
    ChatClient,
    ClientClosed,
    SendError,
    channel,
    login,
    set_password,
)
from .names import canonical
from .tui import (
    CONTEXT_DEFAULT,
    CommandError,
    Conversation,
    Formatter,
    Prompt,
    colors_wanted,
    interact,
    parse_line,
)
from .v1 import chat_pb2 as pb

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


def describe_rpc_error(exc: grpc.aio.AioRpcError, server: str, *, tls: bool = False) -> str:
    """One line for a failed call to ``server``: what went wrong, and what to do."""
    details = exc.details() or ""
    problem = (
        transport_problem(details, tls=tls)
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN)
        else None
    )
    if problem is not None:
        return f"cannot reach {server}: {problem}"
    return f"{server}: {details or exc.code().name}"


async def obtain_token(
    server: str,
    user: str,
    password: str,
    tokens: TokenFile,
    security: ChannelSecurity | None = None,
    *,
    new_password: str = "",
    stored: bool = True,
    registration_token: str = "",
) -> tuple[str, str]:
    """Logs in with the stored token, or claims the name; returns (user, token).

    With ``password`` and a stored token, the token logs in and the password is
    then made sure of: set if the account had none (said on stderr), refused as
    wrong if it has another. ``new_password`` sets or changes the password
    afterwards (``password`` is the current one). ``stored=False`` ignores the
    stored token (it is known to be refused). ``registration_token`` lets a new
    name be claimed on a server that asks for one.
    """
    token = tokens.get(server, user.lower()) if stored else ""
    ch = channel(server, security=security)
    tls = security is not None
    try:
        try:
            response = await login(
                ch, user, password=password, token=token, registration_token=registration_token
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
            raise Fatal(describe_rpc_error(exc, server, tls=tls)) from None
        tokens.put(server, response.user, response.token)
        if password and token and not response.created:
            await _ensure_password(ch, response, password, password, server, tls)
        if new_password:
            await _ensure_password(ch, response, password, new_password, server, tls)
    finally:
        await ch.close()
    return response.user, response.token


async def _ensure_password(
    ch: grpc.aio.Channel,
    account: pb.LoginResponse,
    current: str,
    new: str,
    server: str,
    tls: bool,
) -> None:
    """Sets the account's password to ``new``, proving ``current``; says what changed."""
    try:
        change = await set_password(ch, account.token, current, new)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise Fatal(
                f"wrong password for {account.user!r}: --password-env must give its current"
                " password"
            ) from None
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise Fatal(exc.details() or "password refused", 2) from None
        raise Fatal(describe_rpc_error(exc, server, tls=tls)) from None
    if change.changed:
        what = "changed" if change.had_password else "set"
        _stderr(f"password {what} for {account.user}")


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


async def _listen(args: argparse.Namespace, conversation: Conversation) -> ChatClient:
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
