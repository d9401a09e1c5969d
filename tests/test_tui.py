"""The interactive ``chatrpc-client`` in a real terminal: tmux, against real servers.

Each test starts its own tmux server on a private socket (``tmux -L``, no user
config), runs the client in a pane of a fixed size, types into it with
``send-keys`` and reads the screen with ``capture-pane``. The pane runs the
client under ``sh``, which prints ``[exited N]`` when it ends, so the exit code
can be read off the screen too.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from chatrpc.client import auth_metadata, channel
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import BIN, WAIT, Peers, ServerProcess, start_server_process
from .procs import free_port

CLIENT = str(BIN / "chatrpc-client")
TMUX = shutil.which("tmux") or "/usr/bin/tmux"

pytestmark = pytest.mark.skipif(not os.path.exists(TMUX), reason="tmux is not installed")

WIDTH, HEIGHT = 120, 40
#: Runs the client, then says how it ended and keeps the pane (and its text) open.
WRAPPER = '"$@"; echo "[exited $?]"; exec sleep 120'


class Terminal:
    """A client running in a pane of a private tmux server."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"chatrpc-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # The tmux server started by the first command inherits this environment.
        self.env = {k: v for k, v in env.items() if k not in ("TMUX", "TMUX_PANE")}
        self.started = False

    async def tmux(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            TMUX,
            "-L",
            self.socket,
            "-f",
            "/dev/null",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), WAIT)
        if proc.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {err.decode().strip()}")
        return out.decode()

    async def start(self, *client_args: str) -> None:
        """Runs ``chatrpc-client CLIENT_ARGS`` in a new detached session."""
        await self.tmux(
            "new-session",
            "-d",
            "-s",
            "chat",
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            "sh",
            "-c",
            WRAPPER,
            "sh",
            CLIENT,
            *client_args,
        )
        self.started = True
        await self.tmux("set-option", "-t", "chat", "history-limit", "5000")

    async def kill(self) -> None:
        """Stops the tmux server this terminal started (and the pane's processes)."""
        if self.started:
            self.started = False
            await self.tmux("kill-server")
            # tmux leaves its socket file behind when killed.
            base = self.env.get("TMUX_TMPDIR") or "/tmp"
            remove(Path(base, f"tmux-{os.getuid()}", self.socket))

    async def type(self, text: str) -> None:
        """Types ``text`` literally, without pressing Enter."""
        await self.tmux("send-keys", "-t", "chat", "-l", text)

    async def press(self, *keys: str) -> None:
        await self.tmux("send-keys", "-t", "chat", *keys)

    async def enter(self, line: str) -> None:
        await self.type(line)
        await self.press("Enter")

    async def screen(self, *, escapes: bool = False) -> str:
        """The pane's text, scrollback included, wrapped lines joined."""
        flags = ["-e"] if escapes else []
        return await self.tmux("capture-pane", "-p", "-J", *flags, "-t", "chat", "-S", "-5000")

    async def wait_for(self, predicate: Callable[[str], bool], timeout: float = WAIT) -> str:
        """Polls the screen until ``predicate(screen)`` holds; fails on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            text = await self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s; the screen:\n{text}")
            await asyncio.sleep(0.05)

    async def wait_text(self, fragment: str, timeout: float = WAIT) -> str:
        return await self.wait_for(lambda s: fragment in s, timeout)

    async def wait_input(self, expected: str, timeout: float = WAIT) -> None:
        """Waits until the input line reads ``expected``."""
        await self.wait_for(lambda s: _last_line(s) == expected, timeout)

    async def exit_code(self, timeout: float = WAIT) -> int:
        text = await self.wait_for(lambda s: "[exited " in s, timeout)
        match = re.search(r"\[exited (\d+)\]", text)
        assert match, text
        return int(match.group(1))

    async def client_pid(self) -> int:
        """The pid of the client: the child of the pane's ``sh``."""
        pane = int((await self.tmux("list-panes", "-t", "chat", "-F", "#{pane_pid}")).strip())
        children = children_of(pane)
        assert len(children) == 1, f"expected the client under the pane's shell: {children}"
        return children[0]


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def children_of(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _last_line(screen: str) -> str:
    lines = [ln.rstrip() for ln in screen.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@pytest.fixture
async def terminals(client_env: dict[str, str]) -> AsyncIterator[Callable[..., Terminal]]:
    """Makes terminals (``terminals(env=None)``) and kills their tmux servers afterwards."""
    made: list[Terminal] = []

    def make(env: dict[str, str] | None = None) -> Terminal:
        term = Terminal(env or client_env)
        made.append(term)
        return term

    try:
        yield make
    finally:
        for term in made:
            await term.kill()


@pytest.fixture
async def peers_of(server_process: ServerProcess) -> AsyncIterator[Peers]:
    """Library users on the subprocess server (another person at another terminal)."""
    group = Peers(server_process.address)
    try:
        yield group
    finally:
        await group.close()


def prompt(user: str, room: str) -> str:
    return f"{user} #{room}>"


def count(screen: str, fragment: str) -> int:
    return sum(fragment in line for line in screen.splitlines())


async def history_texts(address: str, token: str, room: str) -> list[str]:
    ch = channel(address)
    try:
        stub = pb_grpc.ChatServiceStub(ch)
        page = await stub.History(
            pb.HistoryRequest(room=room, limit=1000), metadata=auth_metadata(token), timeout=WAIT
        )
        return [m.text for m in page.messages]
    finally:
        await ch.close()


# -- typing while messages arrive ---------------------------------------------------------


async def test_incoming_messages_print_above_the_input_line_and_leave_the_half_typed_text_intact(
    server_process, terminals, peers_of
):
    address = server_process.address
    term = terminals()
    await term.start("--user", "alice", "--server", address)
    await term.wait_input(prompt("alice", "general"))

    bob = await peers_of.open("bob")
    await bob.join("general")
    await term.type("half a li")
    await term.wait_input(prompt("alice", "general") + " half a li")

    await bob.send_and_ack("hello from bob", room="general")
    await bob.send_and_ack("are you there?", room="general")
    await bob.send_and_ack("psst", to_user="alice")
    screen = await term.wait_text("[dm] <bob -> alice> psst")
    assert "#general <bob> hello from bob" in screen
    assert "#general <bob> are you there?" in screen
    assert "-- bob joined #general" in screen
    # The typed text is still there, on the input line, below everything that arrived
    # (polled: the screen is briefly between two states while a line is printed).
    await term.wait_input(prompt("alice", "general") + " half a li")

    await term.type("ne, and the rest")
    await term.press("Enter")
    await bob.wait_for(lambda ev: "half a line, and the rest" in bob.texts())
    screen = await term.wait_text("#general <alice> half a line, and the rest")
    assert count(screen, "<alice> half a line, and the rest") == 1
    assert count(screen, "<bob> hello from bob") == 1
    lines = [ln for ln in screen.splitlines() if ln.strip()]
    # Every message line has its time and its seq (to name it): [HH:MM #12].
    for line in lines:
        if "<bob>" in line or "<alice>" in line:
            assert re.match(r"\[\d\d:\d\d #\d+\] ", line), line
    assert "Traceback" not in screen


async def test_the_input_line_keeps_a_history_of_what_was_typed(server_process, terminals):
    term = terminals()
    await term.start("--user", "alice", "--server", server_process.address)
    await term.wait_input(prompt("alice", "general"))
    await term.enter("first line")
    await term.enter("second line")
    await term.wait_text("<alice> second line")
    await term.press("Up")
    await term.wait_input(prompt("alice", "general") + " second line")
    await term.press("Up")
    await term.wait_input(prompt("alice", "general") + " first line")


# -- commands ------------------------------------------------------------------------------


async def test_every_command_works_at_the_prompt(server_process, terminals, peers_of):
    address = server_process.address
    bob = await peers_of.open("bob")
    await bob.join("dev")
    await bob.send_and_ack("old news", room="dev")
    term = terminals()
    await term.start("--user", "alice", "--server", address)
    await term.wait_input(prompt("alice", "general"))

    # /join joins, shows the room's last messages and switches the prompt to it.
    await term.enter("/join dev")
    await term.wait_input(prompt("alice", "dev"))
    screen = await term.wait_text("-- you joined #dev (online: alice, bob)")
    assert "#dev <bob> old news" in screen.split("-- you joined #dev")[1]

    # A plain line goes to the current room.
    await term.enter("hello dev")
    await bob.wait_for(lambda ev: "hello dev" in bob.texts())
    assert bob.messages()[-1].room == "dev"

    # /me is sent as "/me ..." (readable anywhere) and shown as an action.
    await term.enter("/me waves")
    await bob.wait_for(lambda ev: "/me waves" in bob.texts())
    await term.wait_text("#dev * alice waves")

    # /msg sends a DM, shown as one.
    await term.enter("/msg bob just for you")
    await bob.wait_for(lambda ev: "just for you" in bob.texts())
    dm = next(m for m in bob.messages() if m.text == "just for you")
    assert dm.to_user == "bob" and dm.sender == "alice"
    await term.wait_text("[dm] <alice -> bob> just for you")

    await term.enter("/who")
    await term.wait_text("-- online in #dev: alice, bob")
    await term.enter("/who general")
    await term.wait_text("-- online in #general: alice")

    await term.enter("/rooms")
    screen = await term.wait_text("-- #general (1 online)")
    assert "-- #dev (2 online)" in screen

    await term.enter("/history 2")
    screen = await term.wait_for(lambda s: s.count("#dev * alice waves") == 2)
    after = screen.rsplit("/history 2", 1)[1]
    assert after.index("<alice> hello dev") < after.index("* alice waves")
    assert "old news" not in after, "only the last 2"

    await term.enter("/frobnicate now")
    await term.wait_text("-- unknown command /frobnicate: /help lists the commands")
    await term.enter("/msg bob")
    await term.wait_text("-- usage: /msg USER TEXT")

    await term.enter("/help")
    screen = await term.wait_text("/quit            leave")
    for usage in ("/join ROOM", "/leave [ROOM]", "/switch ROOM", "/msg USER TEXT", "/me TEXT"):
        assert usage in screen
    for usage in ("/who [ROOM]", "/rooms", "/history [N]", "/help"):
        assert usage in screen

    await term.enter("/switch general")
    await term.wait_input(prompt("alice", "general"))
    await term.enter("/switch nowhere")
    await term.wait_text("-- you are not in #nowhere: /join nowhere first")

    await term.enter("/leave dev")
    await term.wait_text("-- you left #dev")
    await bob.wait_for(
        lambda ev: any(p.user == "alice" and p.kind == pb.Presence.LEFT for p in bob.of("presence"))
    )

    await term.enter("/quit")
    assert await term.exit_code() == 0
    assert "Traceback" not in await term.screen()


async def test_joining_a_room_shows_its_last_ten_messages_for_context(
    server_process, terminals, peers_of
):
    bob = await peers_of.open("bob")
    await bob.join("general")
    for i in range(1, 16):
        await bob.send_and_ack(f"msg {i:02d}", room="general")
    term = terminals()
    await term.start("--user", "alice", "--server", server_process.address)
    await term.wait_input(prompt("alice", "general"))
    screen = await term.wait_text("<bob> msg 15")
    shown = re.findall(r"<bob> msg (\d\d)", screen)
    assert shown == [f"{i:02d}" for i in range(6, 16)]
    assert screen.index("-- you joined #general") < screen.index("<bob> msg 06")

    # Live messages come after the context.
    await bob.send_and_ack("msg live", room="general")
    screen = await term.wait_text("<bob> msg live")
    assert screen.index("<bob> msg 15") < screen.index("<bob> msg live")


async def test_context_can_be_set_with_a_flag(server_process, terminals, peers_of):
    bob = await peers_of.open("bob")
    await bob.join("general")
    for i in range(1, 6):
        await bob.send_and_ack(f"msg {i}", room="general")
    term = terminals()
    await term.start("--user", "alice", "--server", server_process.address, "--context", "2")
    await term.wait_input(prompt("alice", "general"))
    screen = await term.wait_text("<bob> msg 5")
    assert re.findall(r"<bob> msg (\d)", screen) == ["4", "5"]


# -- leaving ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["C-c", "C-d"])
async def test_ctrl_c_and_ctrl_d_leave_with_exit_0(server_process, terminals, key):
    term = terminals()
    await term.start("--user", "alice", "--server", server_process.address)
    await term.wait_input(prompt("alice", "general"))
    if key == "C-c":
        await term.type("something half typed")
    await term.press(key)
    assert await term.exit_code() == 0
    screen = await term.screen()
    assert "Traceback" not in screen
    assert "KeyboardInterrupt" not in screen


async def test_sigterm_leaves_the_prompt_with_exit_0(server_process, terminals):
    term = terminals()
    await term.start("--user", "alice", "--server", server_process.address)
    await term.wait_input(prompt("alice", "general"))
    await term.type("typing")
    os.kill(await term.client_pid(), signal.SIGTERM)
    assert await term.exit_code() == 0
    assert "Traceback" not in await term.screen()


# -- reconnecting -----------------------------------------------------------------------


async def test_after_a_server_restart_every_message_sent_meanwhile_is_shown_exactly_once(
    tmp_path, terminals
):
    db = str(tmp_path / "chat.db")
    port = free_port()
    address = f"127.0.0.1:{port}"

    def server(on_port: int) -> ServerProcess:
        return start_server_process(
            "--db", db, "--port", str(on_port), "--log-level", "warning", log_dir=tmp_path
        )

    first = server(port)
    group = Peers(address)
    away: ServerProcess | None = None
    second: ServerProcess | None = None
    try:
        bob = await group.open("bob")
        await bob.join("general")
        carol_token = await group.token("carol")  # carol exists, but never wrote to alice
        term = terminals()
        await term.start("--user", "alice", "--server", address)
        await term.wait_input(prompt("alice", "general"))
        await bob.send_and_ack("before the restart", room="general")
        await term.wait_text("<bob> before the restart")
        await bob.close()

        first.stop(signal.SIGTERM)
        await term.wait_text("-- reconnecting... (UNAVAILABLE")
        await term.wait_input("(reconnecting) " + prompt("alice", "general"))
        # alice types while the server is away: sent once it is back.
        await term.enter("typed while away")

        # Meanwhile others write to the same chat (the same database, another port).
        away = server(0)
        others = Peers(away.address)
        try:
            bob2 = await others.open("bob", bob.token)
            await bob2.join("general")
            await bob2.send_and_ack("away 1", room="general")
            await bob2.send_and_ack("away 2", room="general")
            await bob2.send_and_ack("a dm while away", to_user="alice")
            carol = await others.open("carol", carol_token)
            await carol.send_and_ack("first words from carol", to_user="alice")
        finally:
            await others.close()
            away.stop(signal.SIGTERM)

        second = server(port)
        screen = await term.wait_text("-- reconnected", timeout=20)
        screen = await term.wait_for(
            lambda s: "first words from carol" in s and "<alice> typed while away" in s
        )
        bob3 = await group.open("bob", bob.token)
        await bob3.join("general")
        await bob3.send_and_ack("after the restart", room="general")
        screen = await term.wait_text("<bob> after the restart")

        expected = [
            "#general <bob> before the restart",
            "#general <bob> away 1",
            "#general <bob> away 2",
            "[dm] <bob -> alice> a dm while away",
            "[dm] <carol -> alice> first words from carol",
            "#general <alice> typed while away",
            "#general <bob> after the restart",
        ]
        for line in expected:
            assert count(screen, line) == 1, f"{line!r} is not shown exactly once:\n{screen}"
        assert screen.index("-- reconnecting") < screen.index("-- reconnected")
        assert screen.index("away 1") < screen.index("away 2") < screen.index("after the restart")
        assert screen.count("-- you joined #general") == 1, "a rejoin is quiet"
        await term.wait_input(prompt("alice", "general"))
        texts = await history_texts(address, bob.token, "general")
        assert texts.count("typed while away") == 1
    finally:
        await group.close()
        for sp in (first, away, second):
            if sp is not None:
                sp.stop(signal.SIGKILL)


# -- errors ---------------------------------------------------------------------------------


def _error_lines(screen: str) -> list[str]:
    return [ln for ln in screen.splitlines() if ln.startswith("chatrpc-client")]


async def test_an_unreachable_server_is_one_line_and_exit_1(terminals):
    address = f"127.0.0.1:{free_port()}"
    term = terminals()
    await term.start("--user", "alice", "--server", address)
    assert await term.exit_code() == 1
    screen = await term.screen()
    assert _error_lines(screen) == [f"chatrpc-client: cannot reach {address}: connection refused"]
    assert "Traceback" not in screen


async def test_a_taken_name_is_one_line_and_exit_1(server_process, terminals, client_env, tmp_path):
    owner = terminals()
    await owner.start("--user", "alice", "--server", server_process.address)
    await owner.wait_input(prompt("alice", "general"))
    impostor = terminals({**client_env, "XDG_CONFIG_HOME": str(tmp_path / "impostor")})
    await impostor.start("--user", "alice", "--server", server_process.address)
    assert await impostor.exit_code() == 1
    screen = await impostor.screen()
    (line,) = _error_lines(screen)
    assert line.startswith("chatrpc-client: the name 'alice' is taken"), line
    assert "Traceback" not in screen


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["--user", "alice", "--server", "nocolon"], "HOST:PORT", id="bad-server"),
        pytest.param(["--user", "alice", "--bogus"], "unrecognized", id="unknown-option"),
        pytest.param(["--user", "bad name!"], "bad name!", id="bad-user-name"),
        pytest.param(["--user", "alice", "--room", "bad room!"], "bad room!", id="bad-room-name"),
    ],
)
async def test_bad_arguments_are_one_line_and_exit_2(server_process, terminals, args, fragment):
    term = terminals()
    await term.start(*args, *([] if "nocolon" in args else ["--server", server_process.address]))
    assert await term.exit_code() == 2
    screen = await term.screen()
    lines = _error_lines(screen)
    assert len(lines) == 1 and fragment in lines[0], screen
    assert "Traceback" not in screen


# -- colors --------------------------------------------------------------------------------


async def test_nicks_are_colored_on_a_terminal_unless_no_color_is_set(
    server_process, terminals, peers_of, client_env, tmp_path
):
    bob = await peers_of.open("bob")
    await bob.join("general")
    colored_env = {k: v for k, v in client_env.items() if k != "NO_COLOR"}
    colored_env["XDG_CONFIG_HOME"] = str(tmp_path / "colored")
    colored = terminals(colored_env)
    await colored.start("--user", "carol", "--server", server_process.address)
    await colored.wait_input(prompt("carol", "general"))
    plain = terminals()
    await plain.start("--user", "alice", "--server", server_process.address)
    await plain.wait_input(prompt("alice", "general"))

    await bob.send_and_ack("in color?", room="general")
    await colored.wait_text("<bob> in color?")
    await plain.wait_text("<bob> in color?")
    colored_line = next(
        ln for ln in (await colored.screen(escapes=True)).splitlines() if "in color?" in ln
    )
    plain_line = next(
        ln for ln in (await plain.screen(escapes=True)).splitlines() if "in color?" in ln
    )
    assert re.search(r"\x1b\[[0-9;]*m\s*bob", colored_line), repr(colored_line)
    assert "\x1b[" not in plain_line, repr(plain_line)


# -- what waits, and for what ---------------------------------------------------------------


def _pending_lines(screen: str) -> list[str]:
    """The lines listed under the input line as waiting."""
    return [ln.strip() for ln in screen.splitlines() if ln.startswith("…")]


def _has_line(screen: str, expected: str) -> bool:
    return any(ln.rstrip() == expected for ln in screen.splitlines())


async def test_a_rate_limited_line_shows_as_waiting_then_goes_out_in_order(tmp_path, terminals):
    sp = start_server_process(
        "--store", "memory://", "--rate-limit", "2", "--rate-burst", "1", log_dir=tmp_path
    )
    try:
        term = terminals()
        await term.start("--user", "alice", "--server", sp.address)
        await term.wait_input(prompt("alice", "general"))
        for i in range(1, 5):
            await term.enter(f"line {i}")
        await term.wait_text("… waiting for the rate limit: #general line 2")
        screen = await term.wait_text("<alice> line 4", timeout=20)
        bodies = [ln.split("] ", 1)[1] for ln in screen.splitlines() if "<alice> line" in ln]
        assert bodies == [f"#general <alice> line {i}" for i in range(1, 5)], screen
        screen = await term.wait_for(lambda s: not _pending_lines(s))
        await term.wait_input(prompt("alice", "general"))
        assert "-- error" not in screen and "RESOURCE_EXHAUSTED" not in screen, screen
    finally:
        sp.stop(signal.SIGKILL)


async def test_while_disconnected_lines_show_as_queued_and_the_prompt_follows_a_join(
    tmp_path, terminals
):
    db = str(tmp_path / "chat.db")
    port = free_port()

    def server() -> ServerProcess:
        return start_server_process(
            "--db", db, "--port", str(port), "--log-level", "warning", log_dir=tmp_path
        )

    first = server()
    second: ServerProcess | None = None
    try:
        term = terminals()
        await term.start("--user", "alice", "--server", f"127.0.0.1:{port}")
        await term.wait_input(prompt("alice", "general"))
        first.stop(signal.SIGTERM)
        await term.wait_input("(reconnecting) " + prompt("alice", "general"))
        await term.enter("typed while away")
        await term.wait_text("… queued: #general typed while away")
        await term.enter("/who")
        await term.wait_text("-- /who waits for the connection to come back")
        await term.enter("/join ops")
        await term.enter("said in ops")
        await term.wait_for(lambda s: _has_line(s, "(reconnecting) alice #ops (joining)>"))
        await term.wait_text("… queued: #ops said in ops")

        second = server()
        screen = await term.wait_text("#ops <alice> said in ops", timeout=20)
        await term.wait_input(prompt("alice", "ops"))
        screen = await term.screen()
        assert count(screen, "#general <alice> typed while away") == 1, screen
        assert "-- online in #general: alice" in screen, screen
        assert not _pending_lines(screen), screen
        assert "cannot reach" not in screen, screen
    finally:
        for sp in (first, second):
            if sp is not None:
                sp.stop(signal.SIGKILL)


async def test_a_refused_room_is_said_once(server_process, terminals):
    term = terminals()
    await term.start("--user", "alice", "--server", server_process.address, "--room", "Bad!")
    assert await term.exit_code() == 2
    screen = await term.screen()
    assert len(_error_lines(screen)) == 1, screen
    assert "-- error" not in screen and "-- cannot join" not in screen, screen


async def test_password_sets_a_password_typed_unseen(
    server_process, terminals, client_env, tmp_path
):
    term = terminals()
    await term.start("--user", "alice", "--server", server_process.address)
    await term.wait_input(prompt("alice", "general"))
    await term.enter("/password")
    await term.wait_input("current password (empty if none):")
    await term.press("Enter")
    await term.wait_input("new password:")
    await term.enter("s3cret-pw")
    await term.wait_input("new password again:")
    await term.enter("s3cret-pw")
    screen = await term.wait_text("-- password set")
    await term.wait_input(prompt("alice", "general"))
    assert "s3cret-pw" not in screen, screen
    # Another machine proves the name with it.
    env = {**client_env, "XDG_CONFIG_HOME": str(tmp_path / "laptop"), "PW": "s3cret-pw"}
    proc = await asyncio.create_subprocess_exec(
        CLIENT,
        "--user",
        "alice",
        "--server",
        server_process.address,
        "--password-env",
        "PW",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    _, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 0, err.decode()


async def test_edits_deletes_and_reactions_at_the_prompt_show_as_notices(
    server_process, terminals, peers_of
):
    term = terminals()
    await term.start("--user", "alice", "--server", server_process.address)
    await term.wait_input(prompt("alice", "general"))
    bob = await peers_of.open("bob")
    await bob.join("general")
    await term.enter("helo wrld")
    screen = await term.wait_text("#general <alice> helo wrld")
    assert re.search(r"\[\d\d:\d\d #1\] #general <alice> helo wrld", screen), screen
    await term.enter("s/helo/hello/")
    await term.wait_text("#general * alice edited #1: hello wrld")
    await term.enter("/edit 1 hello world")
    await term.wait_text("#general * alice edited #1: hello world")
    await bob.stream.react(1, "👍", room="general", client_msg_id="r-1")
    await term.wait_text("#general * bob reacted 👍 to #1")
    await bob.send_and_ack("nice", room="general")
    await term.enter("/reply 5 thanks")
    await term.wait_text("#general <alice> (re #5) thanks")
    await term.enter("/delete 1")
    await term.wait_text("#general * alice deleted #1")
    await term.enter("/react 5 ok")
    screen = await term.wait_text("not changed: INVALID_ARGUMENT")
    await term.enter("/history 7")
    screen = await term.wait_text("<alice> (deleted)")
    assert "Traceback" not in screen
    await bob.wait_for(lambda ev: any(m.kind == pb.Message.DELETE for m in bob.messages()))
    assert [m.kind for m in bob.messages()][-2:] == [pb.Message.MESSAGE, pb.Message.DELETE]
