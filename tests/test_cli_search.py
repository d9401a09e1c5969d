"""``/search`` in ``chatrpc-client``: parsed like every command, run as a user runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chatrpc.tui import Command, CommandError, parse_line

from . import test_tui
from .test_cli_commands import other, run_client
from .test_tui import count, prompt

#: The interactive client's fixtures: a tmux terminal, users on its server.
terminals = test_tui.terminals
peers_of = test_tui.peers_of

#: ``#room [seq] YYYY-MM-DD HH:MM sender: snippet``
HIT = re.compile(r"^([#@][\w.-]+) \[(\d+)\] \d{4}-\d\d-\d\d \d\d:\d\d (\S+): (.*)$")


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("/search deploy friday", Command("search", text="deploy friday")),
        ("/search   deploy*  ", Command("search", text="deploy*")),
        ("/search -a deploy", Command("search", text="deploy", flag="all")),
        ("/search --all a b", Command("search", text="a b", flag="all")),
        ("/search -m", Command("search", flag="more")),
        ("/SEARCH x", Command("search", text="x")),
    ],
)
def test_search_lines_are_parsed_into_their_command(line, command):
    assert parse_line(line) == command


@pytest.mark.parametrize("line", ["/search", "/search   ", "/search -a", "/search -m more words"])
def test_a_search_without_words_gets_a_one_line_hint(line):
    with pytest.raises(CommandError, match="usage: /search"):
        parse_line(line)


def hits(stdout: str) -> list[tuple[str, str, str, str]]:
    return [m.groups() for ln in stdout.splitlines() if (m := HIT.match(ln))]  # type: ignore[misc]


def test_piped_search_prints_hits_of_the_room_or_everywhere(
    server_process, client_env, tmp_path: Path
):
    address = server_process.address
    bob_env = other(client_env, tmp_path, "bob")
    assert run_client(bob_env, "--user", "bob", "--server", address).returncode == 0
    script = [
        "the build is green",
        "/msg bob is the build green for you?",
        "/join dev",
        "build broke in dev",
        "/switch general",
        "/search build",
        "/search -a BUILD green",
        "/search nothing-like-this",
        "/search -m",
    ]
    result = run_client(
        client_env, "--user", "alice", "--server", address, stdin="\n".join(script) + "\n"
    )
    assert result.returncode == 1, result.stderr  # the /search -m with nothing more
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip() == "chatrpc-client: no more hits: /search WORDS starts a new search"
    )
    assert hits(result.stdout) == [
        ("#general", "1", "alice", "the build is green"),
        ("@bob", "1", "alice", "is the build green for you?"),
        ("#general", "1", "alice", "the build is green"),
    ]
    assert "-- no messages found in #general (yet)" in result.stdout.splitlines()


def test_a_refused_search_is_one_line_and_the_rest_goes_on(server_process, client_env):
    address = server_process.address
    result = run_client(
        client_env,
        "--user",
        "alice",
        "--server",
        address,
        stdin="/search !!!\nstill sent\n",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("chatrpc-client: /search failed:") and "at least one word" in line
    assert "#general <alice> still sent" in result.stdout


def test_json_mode_prints_the_hits(server_process, client_env):
    address = server_process.address
    result = run_client(
        client_env,
        "--user",
        "alice",
        "--server",
        address,
        "--json",
        stdin="find the needle\n/search needle\n",
    )
    assert result.returncode == 0, result.stderr
    found = [json.loads(ln)["search"] for ln in result.stdout.splitlines() if '"search"' in ln]
    assert len(found) == 1
    (hit,) = found[0]["hits"]
    assert hit["message"]["text"] == "find the needle"
    assert hit["message"]["room"] == "general"
    assert hit["snippet"] == "find the needle"


async def test_search_at_the_prompt_shows_hit_lines_and_goes_on_with_more(
    server_process,
    terminals,
    peers_of,
):
    bob = await peers_of.open("bob")
    await bob.join("general")
    for i in range(25):
        await bob.send_and_ack(f"needle {i:02d}", room="general")
    await bob.send_and_ack("haystack", room="general")
    term = terminals()
    await term.start("--user", "alice", "--server", server_process.address, "--context", "0")
    await term.wait_input(prompt("alice", "general"))
    await term.enter("/search NEEDLE")
    screen = await term.wait_text("more: /search -m")
    assert re.search(r"#general \[25\] \d{4}-\d\d-\d\d \d\d:\d\d bob: needle 24", screen)
    assert count(screen, "bob: needle") == 20
    await term.enter("/search -m")
    screen = await term.wait_text("bob: needle 00")
    assert count(screen, "bob: needle") == 25
    await term.enter("/search -a ha*")
    await term.wait_text("bob: haystack")
    await term.enter("/search")
    await term.wait_text("usage: /search [-a] WORDS")
