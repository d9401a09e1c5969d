"""How things look: one line per event, nick colors, text made safe for a terminal."""

from __future__ import annotations

import os
import re
import time
import zlib
from typing import TextIO

from ..mentions import mentions
from ..v1 import chat_pb2 as pb
from .commands import ACTION

#: Nick colors: ANSI SGR codes and the prompt_toolkit names of the same colors.
PALETTE: tuple[tuple[str, str], ...] = (
    ("31", "ansired"),
    ("32", "ansigreen"),
    ("33", "ansiyellow"),
    ("34", "ansiblue"),
    ("35", "ansimagenta"),
    ("36", "ansicyan"),
    ("91", "ansibrightred"),
    ("92", "ansibrightgreen"),
    ("93", "ansibrightyellow"),
    ("94", "ansibrightblue"),
    ("95", "ansibrightmagenta"),
    ("96", "ansibrightcyan"),
)

# C0/C1 controls (ESC above all) and bidi overrides would let a sender move the
# cursor, recolor or rewrite the reader's screen; they are shown escaped.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters made visible (``^[``, ``\\u202e``)."""

    def escape(m: re.Match[str]) -> str:
        ch = m.group()
        if ch < " ":
            return "^" + chr(ord(ch) + 64)
        return f"\\u{ord(ch):04x}"

    return _UNSAFE.sub(escape, text)


def nick_color(nick: str) -> int:
    """The index in :data:`PALETTE` of a nick's color: the same in every run."""
    return zlib.crc32(nick.encode()) % len(PALETTE)


def colors_wanted(stream: TextIO) -> bool:
    """Colors only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Formatter:
    """Turns server events into lines of text.

    Args:
        me: the user's own (normalised) name.
        color: add ANSI colors.
        dm_arrows: show DMs as ``[dm] <alice -> bob>`` (interactive); without it
            as ``@peer <sender>`` (piped mode, as scripts read it).
        seqs: put each message's seq in its stamp, ``[HH:MM #12]``, so that the
            user can name it in ``/reply``, ``/edit``, ``/react`` (interactive).
    """

    def __init__(
        self, me: str, *, color: bool = False, dm_arrows: bool = True, seqs: bool = False
    ) -> None:
        self.me = me
        self.color = color
        self.dm_arrows = dm_arrows
        self.seqs = seqs

    def _sgr(self, codes: str, text: str) -> str:
        return f"\x1b[{codes}m{text}\x1b[0m" if self.color else text

    def nick(self, nick: str) -> str:
        """A nick in its own color (bold for the user's own)."""
        code = PALETTE[nick_color(nick)][0]
        return self._sgr(f"1;{code}" if nick == self.me else code, nick)

    def message(self, m: pb.Message) -> str:
        """``[HH:MM] #room <nick> text``, ``* nick action``, DMs marked as such; a
        change as an IRC-style notice (``* alice edited #12: new text``)."""
        clock = time.strftime("%H:%M", time.localtime(m.sent_at.seconds))
        stamp = self._sgr("2", f"[{clock} #{m.seq}]" if self.seqs else f"[{clock}]")
        if m.kind in ROOM_EVENT_KINDS:  # the server's operator acts with no sender
            who = self.nick(m.sender) if m.sender else "the operator"
            return f"{stamp} {self._where(m)} * {who} {room_event_words(m)}"
        if m.kind != pb.Message.MESSAGE:
            return f"{stamp} {self._where(m)} * {self.nick(m.sender)} {change_words(m)}"
        if m.hidden:
            return f"{stamp} {self._where(m)} <{self.nick(m.sender)}> (hidden: you blocked them)"
        text = printable(m.text)
        action = text.startswith(ACTION) and not m.deleted
        if action:
            text = text[len(ACTION) :]
        if m.deleted:
            text = self._sgr("2", "(deleted)")
        else:
            if m.sender != self.me and mentions(m.text, self.me):
                # A mention of the reader stands out.
                text = self._sgr("1;33", text)
            if m.edited:
                text += self._sgr("2", " (edited)")
        if m.reply_to:
            text = self._sgr("2", f"(re #{m.reply_to})") + " " + text
        if m.reactions:
            text += "  " + " ".join(f"{printable(r.emoji)}{len(r.users)}" for r in m.reactions)
        body = f"* {self.nick(m.sender)} {text}" if action else text
        if m.WhichOneof("target") == "room":
            where = f"#{m.room}"
            return f"{stamp} {where} {body if action else f'<{self.nick(m.sender)}> {body}'}"
        peer = m.to_user if m.sender == self.me else m.sender
        if not self.dm_arrows:
            return f"{stamp} @{peer} {body if action else f'<{self.nick(m.sender)}> {body}'}"
        mark = self._sgr("1;35", "[dm]")
        if action:
            return f"{stamp} {mark} {body} (to {self.nick(m.to_user)})"
        return f"{stamp} {mark} <{self.nick(m.sender)} -> {self.nick(m.to_user)}> {body}"

    def _where(self, m: pb.Message) -> str:
        """``#room``, or the DM as this user sees it (``@peer``, ``[dm]`` interactive)."""
        if m.WhichOneof("target") == "room":
            return f"#{m.room}"
        peer = m.to_user if m.sender == self.me else m.sender
        return f"{self._sgr('1;35', '[dm]')} @{peer}" if self.dm_arrows else f"@{peer}"

    def info(self, text: str) -> str:
        """A dimmed ``-- text`` line: presence, joins, command output."""
        return self._sgr("2", f"-- {text}")

    def warning(self, text: str) -> str:
        """A ``-- text`` line that needs attention (errors)."""
        return self._sgr("31", f"-- {text}")

    def event(self, event: pb.ServerEvent) -> str | None:
        """One line for an event, or ``None`` for an event not worth a line."""
        kind = event.WhichOneof("event")
        if kind == "message":
            return self.message(event.message)
        if kind == "presence":
            p = event.presence
            verb = "joined" if p.kind == pb.Presence.JOINED else "left"
            return self.info(f"{p.user} {verb} #{p.room}")
        if kind == "joined":
            j = event.joined
            if j.WhichOneof("target") != "room":
                return None
            about = (" (private)" if j.private else "") + (
                f" topic: {printable(j.topic)}" if j.topic else ""
            )
            if j.members or not j.online:
                return self.info(f"you joined #{j.room}{about} (online: {', '.join(j.members)})")
            # A big room: the server gives the number, /who the names.
            return self.info(f"you joined #{j.room}{about} ({j.online} online; /who lists them)")
        if kind == "left":
            why = f" ({printable(event.left.reason)})" if event.left.reason else ""
            return self.info(f"you left #{event.left.room}{why}")
        if kind == "invitation":
            i = event.invitation
            why = f": {printable(i.reason)}" if i.reason else ""
            return self.info(f"{i.by} invited you to #{i.room}{why} (/join {i.room})")
        if kind == "error":
            e = event.error
            return self.warning(f"error: {pb.Error.Code.Name(e.code)}: {printable(e.message)}")
        return None


#: The kinds of room events (moderation) and what each did, after its actor's name.
ROOM_EVENT_KINDS = {
    pb.Message.TOPIC: "set the topic",
    pb.Message.PRIVACY: "made the room",
    pb.Message.INVITE: "invited",
    pb.Message.KICK: "kicked",
    pb.Message.BAN: "banned",
    pb.Message.UNBAN: "unbanned",
    pb.Message.MUTE: "muted",
    pb.Message.UNMUTE: "unmuted",
    pb.Message.ROLE: "made",
    pb.Message.KEEP: "kept the room",
}


def room_event_words(m: pb.Message) -> str:
    """What a room event did: ``kicked bob (spam)``, ``set the topic: plans``."""
    verb = ROOM_EVENT_KINDS[m.kind]
    if m.kind == pb.Message.TOPIC:
        return f"{verb}: {printable(m.text)}" if m.text else "cleared the topic"
    if m.kind == pb.Message.PRIVACY:
        return f"{verb} {'private (invite-only)' if m.private else 'public'}"
    if m.kind == pb.Message.KEEP:
        words = verb if m.kept else "let the room be pruned when empty"
        return words + (f" ({printable(m.text)})" if m.text else "")
    if m.kind == pb.Message.ROLE:
        return f"{verb} {m.target_user} {pb.Member.Role.Name(m.role).lower()}"
    words = f"{verb} {m.target_user}"
    if m.kind == pb.Message.BAN:
        words += " until " + _clock(m.ban_until.seconds) if m.HasField("ban_until") else " for good"
    return words + (f" ({printable(m.text)})" if m.text else "")


def _clock(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def change_words(m: pb.Message) -> str:
    """What a change item did, after its sender's name: ``edited #12: new text``."""
    if m.kind == pb.Message.EDIT:
        # A deleted message's edits come back from History without their text.
        return (
            f"edited #{m.target_seq}: {printable(m.text)}" if m.text else f"edited #{m.target_seq}"
        )
    if m.kind == pb.Message.DELETE:
        return f"deleted #{m.target_seq}"
    if m.kind == pb.Message.REACTION:
        if m.remove:
            return f"took back {printable(m.emoji)} on #{m.target_seq}"
        return f"reacted {printable(m.emoji)} to #{m.target_seq}"
    return f"changed #{m.target_seq}"


def conv_of_event(event: pb.ServerEvent, me: str) -> str:
    """The conversation key (``#room``/``@peer``) an event belongs to, or ``""``."""
    kind = event.WhichOneof("event")
    if kind == "message":
        m = event.message
        if m.WhichOneof("target") == "room":
            return "#" + m.room
        return "@" + (m.to_user if m.sender == me else m.sender)
    if kind == "joined" and event.joined.WhichOneof("target") == "room":
        return "#" + event.joined.room
    if kind == "presence":
        return "#" + event.presence.room
    return ""
