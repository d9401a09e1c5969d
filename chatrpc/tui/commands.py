"""The commands of ``chatrpc-client``: :func:`parse_line` turns a typed line into a
:class:`Command`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..names import canonical
from .moderation_commands import MODERATION, moderation_fields

#: A message whose text starts with this is an action: ``* nick rest``.
ACTION = "/me "

#: Messages shown by ``/history`` without a count.
HISTORY_DEFAULT = 20
#: The most ``/history`` asks for (the server's largest History page).
HISTORY_MAX = 1000
#: Messages of a room shown on joining it, in interactive mode.
CONTEXT_DEFAULT = 10
#: How long a one-off call (``/who``, ``/rooms``, ``/history``) may take.
CALL_TIMEOUT = 10.0


#: name -> (usage, what it does), in the order ``/help`` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "join": ("/join ROOM", "join ROOM and talk there"),
    "leave": ("/leave [ROOM]", "leave ROOM (default: the current room)"),
    "switch": ("/switch ROOM", "talk in ROOM, one you have joined"),
    "msg": ("/msg USER TEXT", "send a direct message to USER"),
    "me": ("/me TEXT", "say what you are doing: * you TEXT"),
    "reply": ("/reply SEQ TEXT", "answer message #SEQ of this room"),
    "edit": ("/edit [SEQ] TEXT", "replace your message #SEQ (default: your last one)"),
    "subst": ("s/OLD/NEW/", "fix your last message: its first OLD becomes NEW"),
    "delete": ("/delete [SEQ]", "delete your message #SEQ (default: your last one)"),
    "react": ("/react SEQ EMOJI", "react to message #SEQ; /react -SEQ EMOJI takes it back"),
    "unreact": ("/unreact SEQ EMOJI", "take back your EMOJI reaction to #SEQ"),
    "who": ("/who [ROOM]", "who is online in ROOM (default: the current room)"),
    "rooms": ("/rooms [PREFIX]", "the most active rooms, or those named PREFIX...; /rooms more"),
    "history": ("/history [N]", f"the last N messages of this room (default {HISTORY_DEFAULT})"),
    "search": (
        "/search [-a] WORDS",
        "messages with all of WORDS (word* for a prefix) in this room; -a: everywhere;"
        " /search -m: more",
    ),
    "topic": ("/topic [TEXT]", "set this room's topic (/topic - clears it; alone: shows it)"),
    "private": ("/private on|off", "make this room invite-only, or public again (owners)"),
    "keep": ("/keep on|off", "keep this room even when it is empty, or let it be pruned (owners)"),
    "invite": ("/invite USER [REASON]", "let USER into this private room"),
    "kick": ("/kick USER [REASON]", "put USER out of this room (they may come back)"),
    "ban": (
        "/ban USER [DURATION] [REASON]",
        "keep USER out (DURATION: 30m, 2h, 7d; none: for ever)",
    ),
    "unban": ("/unban USER", "let a banned USER back in"),
    "mute": ("/mute USER [REASON]", "USER may read this room but not write"),
    "unmute": ("/unmute USER", "USER may write again"),
    "op": ("/op USER [ROLE]", "give USER a role here: moderator (default), owner or member"),
    "block": ("/block USER", "stop USER's direct messages and hide their room messages"),
    "unblock": ("/unblock USER", "undo /block; /unblock alone lists whom you blocked"),
    "password": ("/password", "set or change your password (asked for, not shown)"),
    "help": ("/help", "this list"),
    "quit": ("/quit", "leave (Ctrl-D and Ctrl-C too)"),
}

#: IRC names for the same commands.
ALIASES = {
    "part": "leave",
    "names": "who",
    "list": "rooms",
    "exit": "quit",
    "query": "msg",
    "re": "reply",
    "del": "delete",
}

#: The commands that change a stored message of the current room.
CHANGES = frozenset({"edit", "subst", "delete", "react", "unreact"})

#: ``s/old/new/`` (the last slash optional), as IRC users fix a typo.
_SUBST = re.compile(r"s/((?:[^/\\]|\\.)+)/((?:[^/\\]|\\.)*)/?")

HELP = [
    *(f"{usage:<16} {what}" for usage, what in COMMANDS.values()),
    "Any other line goes to the current room; start it with // to send a leading /.",
]


class CommandError(ValueError):
    """A line that is not a valid command; the message is a one-line hint."""


@dataclass(frozen=True)
class Command:
    """One parsed input line.

    Attributes:
        name: ``say`` for plain text, else a key of :data:`COMMANDS`.
        target: the room (without ``#``) or user the command names, if any.
        text: the text to send (``say``, ``msg``, ``me``, ``reply``, ``edit``;
            ``subst``: the new part).
        count: how many messages (``history``).
        flag: an option of the command (``search``: ``all`` or ``more``).
        seq: the message a change or a reply names (0: your last one).
        old: what ``subst`` replaces.
        emoji: the reaction (``react``; ``remove`` takes it back).
    """

    name: str
    target: str = ""
    text: str = ""
    count: int = 0
    flag: str = ""
    seq: int = 0
    old: str = ""
    emoji: str = ""
    remove: bool = False


def parse_line(line: str) -> Command | None:
    """Parses one input line; returns ``None`` for a blank line.

    Raises:
        CommandError: an unknown command or wrong arguments, with a hint.
    """
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    subst = _SUBST.fullmatch(text)
    if subst is not None:
        old, new = (re.sub(r"\\(.)", r"\1", part) for part in subst.groups())
        return Command("subst", old=old, text=new)
    if not text.startswith("/"):
        return Command("say", text=text)
    if text.startswith("//"):
        return Command("say", text=text[1:])
    head, *more = text[1:].split(None, 1)
    rest = more[0] if more else ""
    name = ALIASES.get(head.lower(), head.lower())
    if name not in COMMANDS or name == "subst":
        raise CommandError(f"unknown command /{head}: /help lists the commands")
    usage = f"usage: {COMMANDS[name][0]}"
    words = rest.split()
    if name in ("join", "switch"):
        if len(words) != 1 or not canonical(words[0]):
            raise CommandError(usage)
        return Command(name, target=canonical(words[0]))
    if name in ("leave", "who"):
        if len(words) > 1:
            raise CommandError(usage)
        return Command(name, target=canonical(words[0]) if words else "")
    if name == "msg":
        peer, _, body = rest.partition(" ")
        body = body.lstrip()
        if not canonical(peer) or not body.strip():
            raise CommandError(usage)
        return Command("msg", target=canonical(peer), text=body)
    if name == "me":
        if not rest.strip():
            raise CommandError(usage)
        return Command("me", text=rest)
    if name in ("reply", "edit", "delete", "react", "unreact"):
        return _change(name, rest, usage)
    if name == "history":
        if not words:
            return Command("history", count=HISTORY_DEFAULT)
        if len(words) == 1 and words[0].isdigit() and 1 <= int(words[0]) <= HISTORY_MAX:
            return Command("history", count=int(words[0]))
        raise CommandError(f"{usage} (N from 1 to {HISTORY_MAX})")
    if name == "rooms":
        if len(words) > 1 or (words and words[0] != "more" and not canonical(words[0])):
            raise CommandError(usage)
        return Command("rooms", target=canonical(words[0]) if words else "")
    if name == "search":
        return _search(words, usage)
    if name in MODERATION:
        return _moderation(name, rest, usage)
    return Command(name)  # help, quit: arguments are ignored


def _moderation(name: str, rest: str, usage: str) -> Command:
    fields = moderation_fields(name, rest)
    if fields is None:
        raise CommandError(usage)
    return Command(name, **fields)


#: The options of ``/search``.
_SEARCH_FLAGS = {"-a": "all", "--all": "all", "-m": "more", "--more": "more"}


def _search(words: list[str], usage: str) -> Command:
    flag = _SEARCH_FLAGS.get(words[0], "") if words else ""
    query = " ".join(words[1:] if flag else words)
    if flag == "more":
        if query:
            raise CommandError("usage: /search -m (goes on with the last search)")
        return Command("search", flag="more")
    if not query:
        raise CommandError(usage)
    return Command("search", text=query, flag=flag)


def _seq(word: str) -> int:
    """The seq a word names (``12`` or ``#12``), 0 if it names none."""
    digits = word.removeprefix("#")
    return int(digits) if digits.isdigit() and 0 < len(digits) <= 19 else 0


def _change(name: str, rest: str, usage: str) -> Command:
    """A reply, edit, delete or reaction command, from what follows its name."""
    first, _, tail = rest.strip().partition(" ")
    tail = tail.strip()
    if name == "delete":
        if not first:
            return Command("delete")
        if tail or not _seq(first):
            raise CommandError(usage)
        return Command("delete", seq=_seq(first))
    if name == "edit":
        if _seq(first) and tail:
            return Command("edit", seq=_seq(first), text=tail)
        if not rest.strip():
            raise CommandError(usage)
        return Command("edit", text=rest.strip())
    if name == "reply":
        if not _seq(first) or not tail:
            raise CommandError(usage)
        return Command("reply", seq=_seq(first), text=tail)
    remove = name == "unreact" or first.startswith("-")
    seq = _seq(first.removeprefix("-"))
    if not seq or not tail or " " in tail:
        raise CommandError(usage)
    return Command("react", seq=seq, emoji=tail, remove=remove)
