"""Online backups of the SQLite store, and restores that keep clients correct.

A backup is SQLite's online backup API: a consistent copy taken while a server
writes. A restore puts a copy back with the server stopped, and gives it a new
epoch: the seqs after the backup point will be handed out again to new
messages, so a client that saw the old ones must not take the new ones for
them. With a new epoch, every resuming client is told its resume was not
complete (``joined.complete`` false) and reads the conversation again.

Accounts and tokens come back as they were at the backup too: a token revoked
after it works again, so users who logged out everywhere since should do it
again (README says so).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from . import dblock
from .errors import ChatError, Code


def _fail(message: str) -> ChatError:
    return ChatError(Code.FAILED_PRECONDITION, message)


def _read_only(path: Path) -> sqlite3.Connection:
    # A URI, so that the file is opened read-only; quoted, so that a name with
    # '?' or '#' names the file and not URI parameters.
    return sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=ro", uri=True, timeout=30.0)


def backup(db: Path, dest: Path) -> int:
    """Copies the database ``db`` to ``dest`` (consistent, while servers write);
    returns the copy's size in bytes. ``dest`` appears only once complete."""
    if not db.is_file():
        raise _fail(f"no database at {db}")
    if dest.exists():
        raise _fail(f"{dest} exists already: give the backup a new name")
    partial = dest.with_name(dest.name + ".partial")
    try:
        _copy(db, partial)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise _fail(f"cannot back up {db}: {exc}") from exc
    _fsync(partial)
    os.replace(partial, dest)
    return dest.stat().st_size


def restore(copy: Path, db: Path) -> str:
    """Replaces the database ``db`` with the backup ``copy`` under a new epoch,
    which it returns. Refused while a server runs on ``db``."""
    if not copy.is_file():
        raise _fail(f"no backup at {copy}")
    if dblock.claim(db) is not None:
        raise _fail(f"a chatrpc-server is running on {db}: stop it before restoring")
    epoch = secrets.token_hex(8)
    partial = db.with_name(db.name + ".restoring")
    try:
        _copy(copy, partial, lambda target: _new_epoch(target, copy, epoch))
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise _fail(f"{copy} is not a chatrpc database: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _fsync(partial)
    # The old file's write-ahead log belongs to the old file: left beside the
    # restored one, SQLite would replay it into it.
    for leftover in ("-wal", "-shm"):
        Path(str(db) + leftover).unlink(missing_ok=True)
    os.replace(partial, db)
    return epoch


def _copy(
    source_path: Path, dest: Path, then: Callable[[sqlite3.Connection], None] | None = None
) -> None:
    """Copies ``source_path`` into ``dest`` with SQLite's online backup, then runs
    ``then`` on the copy before closing it."""
    source = _read_only(source_path)
    try:
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
            if then is not None:
                then(target)
        finally:
            target.close()
    finally:
        source.close()


def _new_epoch(conn: sqlite3.Connection, copy: Path, epoch: str) -> None:
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    with conn:
        updated = (
            conn.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (epoch,)).rowcount
            if has_meta
            else 0
        )
    if updated != 1:
        raise _fail(f"{copy} is not a chatrpc database (it holds no epoch)")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
