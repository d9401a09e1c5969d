"""The public contract, driven through the real grpcurl binary against a real server.

grpcurl knows nothing of chatrpc: it learns the API by server reflection, so
these tests show what any scripting user of the published contract sees. It
prints proto field names (``client_msg_id``) and 64-bit integers as strings.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chatrpc.directs_summary import HEADER, summary

from .conftest import BIN, REPO, WAIT, ServerProcess
from .procs import Output

GRPCURL = str(BIN / "grpcurl")
SERVICE = "chatrpc.v1.ChatService"

#: Bounds a whole grpcurl run: a hang fails the test instead of stalling it.
RUN_TIMEOUT = 20.0


def parse_stream(text: str, *, partial: bool = False) -> list[dict[str, Any]]:
    """The JSON objects in grpcurl's output (pretty-printed, one after another).

    With ``partial``, an incomplete object at the end (output still arriving) is
    ignored instead of being an error.
    """
    decoder = json.JSONDecoder()
    objects: list[dict[str, Any]] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return objects
        try:
            obj, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            if partial:
                return objects
            raise
        objects.append(obj)


def grpcurl(
    address: str,
    *args: str,
    data: str | None = None,
    stdin: str | None = None,
    token: str = "",
) -> subprocess.CompletedProcess[str]:
    """Runs ``grpcurl -plaintext [-H auth] [-d DATA | -d @] ADDRESS ARGS`` to its end."""
    cmd = [GRPCURL, "-plaintext"]
    if token:
        cmd += ["-H", f"authorization: Bearer {token}"]
    if data is not None:
        cmd += ["-d", data]
    elif stdin is not None:
        cmd += ["-d", "@"]
    cmd += [address, *args]
    return subprocess.run(
        cmd,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"grpcurl failed ({result.returncode}): {result.stderr}"
    return result.stdout


def call(address: str, method: str, data: str = "{}", token: str = "") -> dict[str, Any]:
    """A unary call that must succeed; returns its response."""
    objects = parse_stream(ok(grpcurl(address, f"{SERVICE}/{method}", data=data, token=token)))
    assert len(objects) == 1, objects
    return objects[0]


def login(address: str, user: str) -> str:
    response = call(address, "Login", json.dumps({"user": user}))
    token: str = response["token"]
    return token


def chat(address: str, token: str, *events: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """A Chat session fed from stdin, like ``grpcurl -d @ ... Chat <<EOF``."""
    script = "".join(json.dumps(e) + "\n" for e in events)
    return grpcurl(address, f"{SERVICE}/Chat", stdin=script, token=token)


def of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o[kind] for o in objects if kind in o]


def error_code(result: subprocess.CompletedProcess[str]) -> str:
    """The status code grpcurl reports for a failed call (``ERROR:\\n  Code: X``)."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.splitlines()
    assert "ERROR:" in lines, result.stderr
    codes = [ln.split(":", 1)[1].strip() for ln in lines if ln.strip().startswith("Code:")]
    assert len(codes) == 1, result.stderr
    return codes[0]


@pytest.fixture
def open_chat(server_process: ServerProcess) -> Iterator[Callable[[str], OpenChat]]:
    """Starts grpcurl Chat sessions whose stdin stays open; ends them all afterwards."""
    started: list[OpenChat] = []

    def start(token: str) -> OpenChat:
        session = OpenChat(server_process.address, token)
        started.append(session)
        return session

    yield start
    for session in started:
        session.close()


class OpenChat:
    """``grpcurl -d @ ... Chat`` with stdin kept open, events written one at a time."""

    def __init__(self, address: str, token: str) -> None:
        cmd = [
            GRPCURL,
            "-plaintext",
            "-H",
            f"authorization: Bearer {token}",
            "-d",
            "@",
            address,
            f"{SERVICE}/Chat",
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out = Output(self.proc.stdout)
        self.err = Output(self.proc.stderr)

    def write(self, event: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(event) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        text = self.out.wait_for(lambda t: predicate(parse_stream(t, partial=True)))
        return parse_stream(text, partial=True)

    def end_input(self, timeout: float = RUN_TIMEOUT) -> int:
        """Closes stdin (a half-close) and returns grpcurl's exit code."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        self.out.join()
        self.err.join()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


# -- discovery -------------------------------------------------------------------------


def test_grpcurl_lists_the_chat_service_and_health_by_reflection(server_process):
    services = ok(grpcurl(server_process.address, "list")).split()
    assert "chatrpc.v1.ChatService" in services
    assert "grpc.health.v1.Health" in services


def test_grpcurl_describes_every_chat_rpc(server_process):
    text = ok(grpcurl(server_process.address, "describe", SERVICE))
    assert "chatrpc.v1.ChatService is a service" in text
    for rpc in ("Login", "Chat", "History", "ListRooms", "ListMembers", "ListDirects"):
        assert f"rpc {rpc} (" in text, text
    assert "rpc Chat ( stream .chatrpc.v1.ClientEvent ) returns ( stream" in text


def test_health_check_answers_serving_for_the_server_and_the_chat_service(server_process):
    address = server_process.address
    overall = parse_stream(ok(grpcurl(address, "grpc.health.v1.Health/Check")))
    assert overall == [{"status": "SERVING"}]
    chat_service = parse_stream(
        ok(grpcurl(address, "grpc.health.v1.Health/Check", data=json.dumps({"service": SERVICE})))
    )
    assert chat_service == [{"status": "SERVING"}]


# -- login -----------------------------------------------------------------------------


def test_the_first_login_claims_the_name_and_returns_a_token(server_process):
    address = server_process.address
    response = call(address, "Login", '{"user":"alice"}')
    assert response["user"] == "alice"
    assert response["created"] is True
    assert len(response["token"]) >= 16

    # The name is now taken: without proof the next Login is refused ...
    refused = grpcurl(address, f"{SERVICE}/Login", data='{"user":"alice"}')
    assert error_code(refused) in ("AlreadyExists", "Unauthenticated")
    # ... and with the token as proof it gives a new token for the same name.
    again = call(address, "Login", '{"user":"alice"}', token=response["token"])
    assert again["user"] == "alice"
    assert again.get("created", False) is False
    assert again["token"]


# -- the Chat session -------------------------------------------------------------------


def test_a_chat_fed_from_stdin_prints_the_ack_and_the_echoes_and_ends_by_itself(server_process):
    address = server_process.address
    token = login(address, "alice")
    login(address, "bob")

    result = chat(
        address,
        token,
        {"join": {"room": "general"}},
        {"send": {"room": "general", "text": "hello", "clientMsgId": "c-1"}},
        {"send": {"toUser": "bob", "text": "psst", "clientMsgId": "c-2"}},
        {"send": {"toUser": "alice", "text": "note to self", "clientMsgId": "c-3"}},
        {"send": {"room": "general", "text": "hello again", "clientMsgId": "c-4"}},
    )
    objects = parse_stream(ok(result))
    assert result.stderr == ""

    [joined] = of(objects, "joined")
    assert joined["room"] == "general"
    assert joined["epoch"]
    assert joined["members"] == ["alice"]
    assert "joined" in objects[0], "the join acknowledgement comes first"

    messages = of(objects, "message")
    assert [
        (m["client_msg_id"], m["seq"], m.get("room"), m.get("to_user"), m["sender"], m["text"])
        for m in messages
    ] == [
        ("c-1", "1", "general", None, "alice", "hello"),
        ("c-2", "1", None, "bob", "alice", "psst"),
        ("c-3", "1", None, "alice", "alice", "note to self"),
        ("c-4", "2", "general", None, "alice", "hello again"),
    ]
    for m in messages:
        assert m["sent_at"].endswith("Z"), m
    assert of(objects, "error") == []


def test_a_second_session_continues_the_sequence_of_the_room(server_process):
    address = server_process.address
    token = login(address, "alice")
    first = parse_stream(
        ok(
            chat(
                address,
                token,
                {"join": {"room": "general"}},
                {"send": {"room": "general", "text": "one", "clientMsgId": "m-1"}},
            )
        )
    )
    assert [m["seq"] for m in of(first, "message")] == ["1"]

    second = parse_stream(
        ok(
            chat(
                address,
                token,
                {"join": {"room": "general"}},
                {"send": {"room": "general", "text": "two", "clientMsgId": "m-2"}},
            )
        )
    )
    [joined] = of(second, "joined")
    assert joined["last_seq"] == "1"
    assert [(m["seq"], m["text"]) for m in of(second, "message")] == [("2", "two")]


def test_a_join_with_after_seq_replays_what_was_missed(server_process):
    address = server_process.address
    token = login(address, "alice")
    ok(
        chat(
            address,
            token,
            {"join": {"room": "general"}},
            *(
                {"send": {"room": "general", "text": f"m{i}", "clientMsgId": f"r-{i}"}}
                for i in range(1, 4)
            ),
        )
    )
    objects = parse_stream(ok(chat(address, token, {"join": {"room": "general", "afterSeq": 1}})))
    [joined] = of(objects, "joined")
    assert joined["last_seq"] == "3"
    assert joined["complete"] is True
    assert joined["replayed"] == 2
    assert [(m["seq"], m["text"]) for m in of(objects, "message")] == [("2", "m2"), ("3", "m3")]


def test_a_bad_event_gets_an_error_event_and_the_session_goes_on(server_process):
    address = server_process.address
    token = login(address, "alice")
    result = chat(
        address,
        token,
        {"join": {"room": "general"}},
        {"send": {"room": "general", "text": "", "clientMsgId": "empty"}},
        {"send": {"toUser": "nobody", "text": "hi", "clientMsgId": "nobody"}},
        {"send": {"room": "general", "text": "still here", "clientMsgId": "fine"}},
    )
    objects = parse_stream(ok(result))
    errors = {e["client_msg_id"]: e for e in of(objects, "error")}
    assert errors["empty"]["code"] == "INVALID_ARGUMENT"
    assert errors["empty"]["message"]
    assert errors["nobody"]["code"] in ("NOT_FOUND", "INVALID_ARGUMENT")
    assert [(m["seq"], m["text"]) for m in of(objects, "message")] == [("1", "still here")]


def test_a_retried_client_msg_id_is_stored_once(server_process):
    address = server_process.address
    token = login(address, "alice")
    send = {"send": {"room": "general", "text": "once", "clientMsgId": "same-id"}}
    first = parse_stream(ok(chat(address, token, {"join": {"room": "general"}}, send)))
    retry = parse_stream(ok(chat(address, token, {"join": {"room": "general"}}, send)))
    assert [m["seq"] for m in of(first, "message")] == ["1"]
    assert [m["seq"] for m in of(retry, "message")] == ["1"], "the original is answered"
    history = call(address, "History", '{"room":"general"}', token=token)
    assert [m["text"] for m in history["messages"]] == ["once"]


def test_a_retry_the_session_already_delivered_is_an_ack_not_the_message_again(server_process):
    address = server_process.address
    token = login(address, "alice")
    send = {"send": {"room": "general", "text": "once", "clientMsgId": "c-1"}}
    objects = parse_stream(
        ok(
            chat(
                address,
                token,
                {"join": {"room": "general"}},
                send,
                send,
                {"send": {"room": "general", "text": "twice", "clientMsgId": "c-2"}},
            )
        )
    )
    assert [(m["seq"], m["client_msg_id"]) for m in of(objects, "message")] == [
        ("1", "c-1"),
        ("2", "c-2"),
    ]
    assert of(objects, "ack") == [{"seq": "1", "room": "general", "client_msg_id": "c-1"}]


# -- authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "data"),
    [
        ("Chat", '{"join": {"room": "general"}}'),
        ("History", '{"room": "general"}'),
        ("ListRooms", "{}"),
        ("ListMembers", '{"room": "general"}'),
        ("ListDirects", "{}"),
    ],
)
def test_a_call_without_a_token_is_unauthenticated(server_process, method, data):
    result = grpcurl(server_process.address, f"{SERVICE}/{method}", data=data)
    assert error_code(result) == "Unauthenticated"
    assert "Traceback" not in result.stderr


def test_a_call_with_a_made_up_token_is_unauthenticated(server_process):
    address = server_process.address
    login(address, "alice")
    result = grpcurl(address, f"{SERVICE}/ListRooms", data="{}", token="not-a-real-token")
    assert error_code(result) == "Unauthenticated"
    chat_result = chat(address, "not-a-real-token", {"join": {"room": "general"}})
    assert error_code(chat_result) == "Unauthenticated"
    assert parse_stream(chat_result.stdout) == [], "nothing is sent before authentication"


# -- history and listings -------------------------------------------------------------


def test_history_returns_the_messages_sent_in_a_room_and_in_a_dm(server_process):
    address = server_process.address
    alice = login(address, "alice")
    bob = login(address, "bob")
    ok(
        chat(
            address,
            alice,
            {"join": {"room": "general"}},
            {"send": {"room": "general", "text": "first", "clientMsgId": "h-1"}},
            {"send": {"toUser": "bob", "text": "private", "clientMsgId": "h-2"}},
            {"send": {"room": "general", "text": "second", "clientMsgId": "h-3"}},
        )
    )

    room = call(address, "History", '{"room": "general"}', token=alice)
    assert [
        (m["seq"], m["room"], m["sender"], m["text"], m["client_msg_id"]) for m in room["messages"]
    ] == [("1", "general", "alice", "first", "h-1"), ("2", "general", "alice", "second", "h-3")]
    assert room["last_seq"] == "2"
    assert room["epoch"]
    assert all(m["sent_at"].endswith("Z") for m in room["messages"])

    # The DM, seen from both sides, in the same flat shape.
    for token, peer in ((alice, "bob"), (bob, "alice")):
        dm = call(address, "History", json.dumps({"with_user": peer}), token=token)
        assert [(m["seq"], m["to_user"], m["sender"], m["text"]) for m in dm["messages"]] == [
            ("1", "bob", "alice", "private")
        ]

    newest = call(address, "History", '{"room": "general", "limit": 1, "descending": true}', alice)
    assert [m["text"] for m in newest["messages"]] == ["second"]
    assert newest["has_more"] is True

    directs = call(address, "ListDirects", token=bob)
    assert directs["directs"] == [{"with_user": "alice", "last_seq": "1", "unread": 1}]

    # Asked for, the Chat call's headers summarise the DMs (see chatrpc.directs_summary).
    auth, asked = f"authorization: Bearer {bob}", f"{HEADER}: 1"
    headers = subprocess.run(
        [GRPCURL, "-plaintext", "-v", "-H", auth, "-H", asked, address, f"{SERVICE}/Chat"],
        input="",
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    expected = f"{HEADER}: {summary(directs['epoch'], [('alice', 1)])}"
    assert expected in ok(headers).splitlines()


def test_list_rooms_and_list_members_show_who_is_online(server_process, open_chat):
    address = server_process.address
    alice = login(address, "alice")
    bob = login(address, "bob")

    session = open_chat(alice)
    session.write({"join": {"room": "lobby"}})
    session.wait_for(lambda objs: bool(of(objs, "joined")))
    session.write({"send": {"room": "lobby", "text": "anyone?", "clientMsgId": "l-1"}})
    session.wait_for(lambda objs: bool(of(objs, "message")))

    rooms = call(address, "ListRooms", token=bob)["rooms"]
    assert {"name": "lobby", "online": 1, "last_seq": "1"} in rooms
    members = call(address, "ListMembers", '{"room": "lobby"}', token=bob)
    assert members == {
        "room": "lobby",
        "members": ["alice"],
        "roles": [{"user": "alice", "role": "OWNER"}],
    }

    # stdin ends: the session ends by itself and alice is no longer online.
    assert session.end_input() == 0
    assert call(address, "ListMembers", '{"room": "lobby"}', token=bob) == {"room": "lobby"}
    rooms = call(address, "ListRooms", token=bob)["rooms"]
    assert {"name": "lobby", "last_seq": "1"} in rooms


def test_a_live_message_reaches_another_grpcurl_session_in_the_room(server_process, open_chat):
    address = server_process.address
    alice = login(address, "alice")
    bob = login(address, "bob")
    listener = open_chat(bob)
    listener.write({"join": {"room": "general"}})
    listener.wait_for(lambda objs: bool(of(objs, "joined")))

    ok(
        chat(
            address,
            alice,
            {"join": {"room": "general"}},
            {"send": {"room": "general", "text": "hi bob", "clientMsgId": "x-1"}},
            {"send": {"toUser": "bob", "text": "just you", "clientMsgId": "x-2"}},
        )
    )
    objects = listener.wait_for(lambda objs: len(of(objs, "message")) >= 2)
    assert [(m["sender"], m["text"], m["seq"]) for m in of(objects, "message")] == [
        ("alice", "hi bob", "1"),
        ("alice", "just you", "1"),
    ]
    presence = of(objects, "presence")
    assert {"room": "general", "user": "alice", "kind": "JOINED"} in presence
    assert listener.end_input() == 0


def _readme_grpcurl_block() -> str:
    """The shell block of README's "Driving it with grpcurl", as a user pastes it."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Driving it with grpcurl", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_readme_grpcurl_block_runs_and_runs_again(server_process):
    script = _readme_grpcurl_block().replace(".venv/bin/grpcurl", GRPCURL)
    script = script.replace("localhost:50051", server_process.address)
    runs = []
    for _ in range(2):
        run = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=4 * RUN_TIMEOUT,
        )
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr, run.stderr
        runs.append(run.stdout)
    assert '"text": "hello"' in runs[1], runs[1]
    # The pasted-again sends got their stored originals back: nothing is doubled.
    history = call(
        server_process.address,
        "History",
        '{"room": "general"}',
        token=call(
            server_process.address, "Login", '{"user": "carol", "password": "carols-secret"}'
        )["token"],
    )
    assert [m["text"] for m in history["messages"]] == ["hello"]


def test_the_readme_block_on_replies_edits_deletes_and_reactions_runs(server_process):
    """README's example, after the "Driving it with grpcurl" block (which logs in
    as carol and says hello in #general, seq 1): its message is then seq 2."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Replies, edits, deletes and reactions", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    assert '"seq": "12"' in block
    script = _readme_grpcurl_block() + block.replace('"12"', '"2"')
    script = script.replace(".venv/bin/grpcurl", GRPCURL)
    script = script.replace("localhost:50051", server_process.address)
    run = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=8 * RUN_TIMEOUT,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and '"error"' not in run.stdout, run.stdout
    token = call(server_process.address, "Login", '{"user": "carol", "password": "carols-secret"}')
    history = call(server_process.address, "History", '{"room": "general"}', token["token"])
    # grpcurl prints the proto's field names (target_seq, reply_to).
    items = [(m["seq"], m.get("kind", "MESSAGE"), m.get("target_seq")) for m in history["messages"]]
    assert items == [
        ("1", "MESSAGE", None),
        ("2", "MESSAGE", None),
        ("3", "MESSAGE", None),
        ("4", "EDIT", "2"),
        ("5", "REACTION", "2"),
        ("6", "REACTION", "2"),
        ("7", "DELETE", "2"),
    ]
    message, reply, edit = history["messages"][1:4]
    assert message.get("deleted") and "text" not in message and "reactions" not in message
    assert reply["reply_to"] == "2" and reply["text"] == "an answer"
    assert "text" not in edit  # erased with the message it edited


def test_the_readme_block_on_rooms_and_moderation_runs(server_process):
    """README's "Rooms and moderation" example, after the "Driving it with grpcurl"
    block (which logs in as carol, who creates #general)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Rooms and moderation", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    script = _readme_grpcurl_block() + block
    script = script.replace(".venv/bin/grpcurl", GRPCURL)
    script = script.replace("localhost:50051", server_process.address)
    run = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=12 * RUN_TIMEOUT,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and '"error"' not in run.stdout, run.stdout
    assert "bob sees no #plans" in run.stdout
    assert "no room named #plans" in run.stderr
    assert '"role": "MODERATOR"' in run.stdout and '"users": [\n    "carol"\n  ]' in run.stdout
    token = call(server_process.address, "Login", '{"user": "carol", "password": "carols-secret"}')
    history = call(server_process.address, "History", '{"room": "plans"}', token["token"])
    kinds = [m.get("kind", "MESSAGE") for m in history["messages"]]
    assert kinds == ["PRIVACY", "TOPIC", "INVITE", "ROLE"]
    rooms = call(server_process.address, "ListRooms", token=token["token"])["rooms"]
    (plans,) = [r for r in rooms if r["name"] == "plans"]
    assert plans["topic"] == "the launch" and plans["private"] is True
