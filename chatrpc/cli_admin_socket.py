"""``chatrpc-admin``'s commands that talk to a running server's admin socket.

Each command is one AdminService call (``proto/chatrpc/v1/admin.proto``) over
the Unix socket the server made (``--admin-socket``; by default next to its
SQLite database). Output is a table for people, or with ``--json`` one proto3
JSON object a line; ``export`` always writes JSON lines.

Exit codes: 0 done; 1 failed (no server on the socket, no such user or room,
the server refused); 2 usage (bad arguments, a name or value the server does
not accept).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message

from .cli_errors import Fatal
from .v1 import admin_pb2 as apb
from .v1 import admin_pb2_grpc as apb_grpc
from .v1 import chat_pb2 as pb

#: How long one call may take (an export streams for as long as it needs).
CALL_TIMEOUT_S = 30.0
#: The exit code of a usage error.
USAGE = 2
#: What ``moderate`` does (the ModerateRequest actions), and the roles it gives.
MODERATE_ACTIONS = (
    "topic",
    "private",
    "keep",
    "invite",
    "kick",
    "ban",
    "unban",
    "mute",
    "unmute",
    "role",
)
ROLE_NAMES = {
    "owner": pb.Member.OWNER,
    "moderator": pb.Member.MODERATOR,
    "member": pb.Member.MEMBER,
}

COMMANDS = (
    "users",
    "user",
    "reset-password",
    "disable",
    "enable",
    "revoke-tokens",
    "rooms",
    "delete-room",
    "set-owner",
    "moderate",
    "prune-history",
    "export",
    "stats",
)


def _conversation_options(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--room", metavar="ROOM", help="a room")
    which.add_argument(
        "--direct", nargs=2, metavar=("USER", "USER"), help="the direct conversation of two users"
    )


class _Commands:
    """Makes the subcommand parsers, each also taking ``--json`` after its name."""

    def __init__(self, sub: Any) -> None:
        self.sub = sub

    def add(self, name: str, text: str, *positionals: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = self.sub.add_parser(name, help=text)
        for positional in positionals:
            p.add_argument(positional)
        p.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="as chatrpc-admin --json"
        )
        return p


def add_commands(sub: Any, duration: Callable[[str], float], count: Callable[[str], int]) -> None:
    """Adds the socket commands to ``chatrpc-admin``'s subcommands."""
    c = _Commands(sub)
    users = c.add("users", "accounts, by name (all pages)")
    users.add_argument("prefix", nargs="?", default="", help="only names starting with this")
    c.add("user", "one account", "user")
    reset = c.add(
        "reset-password", "set or remove a password; the user's sessions end everywhere", "user"
    )
    how = reset.add_mutually_exclusive_group(required=True)
    how.add_argument("--password-env", metavar="VAR", help="the new password, from variable VAR")
    how.add_argument(
        "--password-stdin", action="store_true", help="the new password: stdin's first line"
    )
    how.add_argument("--clear", action="store_true", help="remove the password")
    c.add("disable", "end every session of an account and refuse its logins and tokens", "user")
    c.add("enable", "let a disabled account log in again", "user")
    c.add("revoke-tokens", "revoke every token of a user; their sessions end everywhere", "user")
    rooms = c.add("rooms", "rooms with their sizes, by name (all pages)")
    rooms.add_argument("prefix", nargs="?", default="", help="only names starting with this")
    c.add("delete-room", "delete a room, its messages and memberships", "room")
    c.add("set-owner", "give a room to a user", "room", "user")
    mod = c.add("moderate", "a moderation action in any room, as its owner", "room")
    mod.add_argument("action", choices=MODERATE_ACTIONS)
    mod.add_argument("value", help="the user; for topic the topic, for private and keep on or off")
    mod.add_argument("--reason", default="", help="why (stored with the action)")
    mod.add_argument("--duration", type=duration, help="how long a ban lasts: 3600, 30d, 2w")
    mod.add_argument("--role", choices=ROLE_NAMES, default="moderator", help="for role")
    prune = c.add(
        "prune-history", "remove older messages of a conversation (seqs are never reused)"
    )
    _conversation_options(prune)
    prune.add_argument(
        "--older-than", type=duration, metavar="DURATION", help="sent longer ago: 3600, 30d, 2w"
    )
    prune.add_argument("--keep-last", type=count, metavar="N", help="keep only the N newest")
    _conversation_options(c.add("export", "a conversation as JSON lines (proto3 JSON Message)"))
    c.add("stats", "what the server is and does now")


def _moderation(args: argparse.Namespace) -> pb.ModerateRequest:
    """The ModerateRequest of ``chatrpc-admin moderate``."""
    request = pb.ModerateRequest(room=args.room, reason=args.reason)
    action, value = args.action, args.value
    if action == "topic":
        request.set_topic = value
    elif action in ("private", "keep"):
        if value not in ("on", "off"):
            raise Fatal(f"moderate ROOM {action} takes on or off", USAGE)
        if action == "private":
            request.set_private = value == "on"
        else:
            request.set_kept = value == "on"
    elif action == "ban":
        request.ban.CopyFrom(pb.Ban(user=value, duration_s=int(args.duration or 0)))
    elif action == "role":
        request.set_role.CopyFrom(pb.SetRole(user=value, role=ROLE_NAMES[args.role]))
    else:
        setattr(request, action, value)
    return request


def _ref(args: argparse.Namespace) -> apb.ConversationRef:
    if args.room:
        return apb.ConversationRef(room=args.room)
    a, b = args.direct
    return apb.ConversationRef(direct=apb.DirectPair(user_a=a, user_b=b))


def _new_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        what = "stdin"
    else:
        password = os.environ.get(args.password_env, "")
        what = f"the variable {args.password_env}"
    if not password:
        raise Fatal(f"no password in {what} (use --clear to remove the password)", USAGE)
    return password


def _json(message: Message) -> str:
    return MessageToJson(message, indent=None, ensure_ascii=False)


def _when(ms: int) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


class Console:
    """Runs the commands against one socket and prints what they return."""

    def __init__(self, stub: apb_grpc.AdminServiceStub, *, json: bool) -> None:
        self.stub = stub
        self.json = json

    def show(self, message: Message, text: str) -> None:
        print(_json(message) if self.json else text)

    async def users(self, args: argparse.Namespace) -> None:
        token, first = "", True
        while first or token:
            page = await self.stub.ListUsers(
                apb.ListUsersRequest(prefix=args.prefix, page_token=token), timeout=CALL_TIMEOUT_S
            )
            if first and not self.json:
                print(f"{'USER':<32} {'PASSWORD':<8} {'DISABLED':<8} {'LAST SEEN':<16} SESSIONS")
            for u in page.users:
                self.show(u, _user_line(u))
            token, first = page.next_page_token, False

    async def user(self, args: argparse.Namespace) -> None:
        u = await self.stub.GetUser(apb.GetUserRequest(user=args.user), timeout=CALL_TIMEOUT_S)
        created = _when(u.created_ms)
        self.show(u, f"{_user_line(u)}\ncreated {created}")

    async def rooms(self, args: argparse.Namespace) -> None:
        token, first = "", True
        while first or token:
            request = apb.AdminListRoomsRequest(prefix=args.prefix, page_token=token)
            page = await self.stub.ListRooms(request, timeout=CALL_TIMEOUT_S)
            if first and not self.json:
                print(
                    f"{'ROOM':<33} {'OWNER':<32} {'MEMBERS':>7} {'STORED':>8} {'LAST SEQ':>8}"
                    f" {'ONLINE':>6}"
                )
            for r in page.rooms:
                line = (
                    f"#{r.name:<32} {r.owner or '-':<32} {r.members:>7} {r.stored:>8}"
                    f" {r.last_seq:>8} {r.online:>6}"
                )
                self.show(r, line)
            token, first = page.next_page_token, False

    async def reset_password(self, args: argparse.Namespace) -> None:
        request = apb.ResetPasswordRequest(user=args.user, clear=args.clear)
        request.password = args.new_password
        r = await self.stub.ResetPassword(request, timeout=CALL_TIMEOUT_S)
        done = "removed" if args.clear else "set"
        self.show(r, f"password of {args.user} {done}; {r.tokens_revoked} token(s) revoked")

    async def disable(self, args: argparse.Namespace) -> None:
        r = await self.stub.DisableUser(
            apb.DisableUserRequest(user=args.user), timeout=CALL_TIMEOUT_S
        )
        self.show(
            r,
            f"{args.user} disabled; {r.sessions_ended_here} session(s) ended here"
            " (and theirs on other servers)",
        )

    async def enable(self, args: argparse.Namespace) -> None:
        r = await self.stub.EnableUser(
            apb.EnableUserRequest(user=args.user), timeout=CALL_TIMEOUT_S
        )
        self.show(r, f"{args.user} enabled")

    async def revoke_tokens(self, args: argparse.Namespace) -> None:
        request = apb.RevokeTokensRequest(user=args.user)
        r = await self.stub.RevokeTokens(request, timeout=CALL_TIMEOUT_S)
        self.show(r, f"{r.tokens_revoked} token(s) of {args.user} revoked")

    async def delete_room(self, args: argparse.Namespace) -> None:
        request = apb.DeleteRoomRequest(room=args.room)
        r = await self.stub.DeleteRoom(request, timeout=CALL_TIMEOUT_S)
        self.show(
            r,
            f"deleted #{args.room.removeprefix('#')}: {r.messages_deleted} message(s),"
            f" {r.members_removed} member(s)",
        )

    async def set_owner(self, args: argparse.Namespace) -> None:
        request = apb.SetRoomOwnerRequest(room=args.room, owner=args.user)
        r = await self.stub.SetRoomOwner(request, timeout=CALL_TIMEOUT_S)
        before = r.previous_owner or "nobody"
        self.show(r, f"#{args.room.removeprefix('#')} now owned by {args.user} (was {before})")

    async def moderate(self, args: argparse.Namespace) -> None:
        r = await self.stub.ModerateRoom(_moderation(args), timeout=CALL_TIMEOUT_S)
        self.show(r, f"#{r.event.room} {args.action} {args.value}: done (#{r.event.seq})")

    async def prune_history(self, args: argparse.Namespace) -> None:
        request = apb.PruneHistoryRequest(
            conversation=_ref(args),
            older_than_s=int(args.older_than or 0),
            keep_last=args.keep_last or 0,
        )
        r = await self.stub.PruneHistory(request, timeout=CALL_TIMEOUT_S)
        self.show(r, f"{r.messages_deleted} message(s) removed")

    async def export(self, args: argparse.Namespace) -> None:
        call = self.stub.ExportConversation(apb.ExportConversationRequest(conversation=_ref(args)))
        async for message in call:
            sys.stdout.write(_json(message) + "\n")

    async def stats(self, args: argparse.Namespace) -> None:
        del args
        r = await self.stub.ServerStats(apb.ServerStatsRequest(), timeout=CALL_TIMEOUT_S)
        transports = ", ".join(f"{k} {v}" for k, v in sorted(r.sessions_by_transport.items()))
        lines = [
            f"version   {r.version}",
            f"store     {r.store} (epoch {r.epoch})",
            f"uptime    {r.uptime_s:.0f} s",
            f"sessions  {r.sessions}" + (f" ({transports})" if transports else ""),
            f"rooms     {r.rooms}",
            f"users     {r.users}",
            f"committed {r.messages_committed} message(s) since start",
        ]
        self.show(r, "\n".join(lines))


def _user_line(u: apb.User) -> str:
    return (
        f"{u.name:<32} {'yes' if u.has_password else 'no':<8} {'yes' if u.disabled else 'no':<8}"
        f" {_when(u.last_seen_ms):<16} {u.sessions_here}"
    )


def no_server(path: str) -> str:
    return f"no chatrpc server answers on {path}: is it running?"


def failure(exc: grpc.aio.AioRpcError, path: str) -> Fatal:
    """The one line (and exit code) for a failed call on the socket ``path``."""
    details = exc.details() or exc.code().name
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        if "permission denied" in details.lower():
            return Fatal(
                f"cannot open {path}: permission denied (run as the user the server runs as)"
            )
        return Fatal(no_server(path))
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return Fatal(details, USAGE)
    if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
        return Fatal(f"the server on {path} has no admin service (an older version?)")
    return Fatal(details)


def target(path: str) -> str:
    """The channel target of the socket ``path``; a :class:`Fatal` if there is none."""
    if not path:
        raise Fatal(
            "no admin socket: give --socket PATH (the server's --admin-socket); a server"
            " on a memory or Redis store has one only if given --admin-socket",
            USAGE,
        )
    if not os.path.exists(path):
        raise Fatal(no_server(path))
    return f"unix:{os.path.abspath(path)}"


def check(args: argparse.Namespace) -> None:
    """Usage errors the parser cannot see, found before the server is asked."""
    if args.what == "prune-history" and not (args.older_than or args.keep_last):
        raise Fatal("say what to prune: --older-than DURATION, --keep-last N, or both", USAGE)
    if args.what == "reset-password":
        args.new_password = "" if args.clear else _new_password(args)


async def run(args: argparse.Namespace, path: str) -> int:
    """Runs the socket command of ``args`` against the server on ``path``."""
    check(args)
    async with grpc.aio.insecure_channel(target(path)) as channel:
        console = Console(apb_grpc.AdminServiceStub(channel), json=args.json)
        try:
            await getattr(console, args.what.replace("-", "_"))(args)
        except grpc.aio.AioRpcError as exc:
            raise failure(exc, path) from None
    return 0
