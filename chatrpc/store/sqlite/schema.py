"""The SQLite store's schema, its migrations, and how a connection is opened."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

#: Schema versions, applied in order; ``PRAGMA user_version`` records the last
#: one applied, so a newer release opens an older file by running the rest.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        last_seq INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        conv_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        sent_at_ms INTEGER NOT NULL,
        client_msg_id TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (conv_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE directs (
        user TEXT NOT NULL,
        conv_id INTEGER NOT NULL,
        PRIMARY KEY (user, conv_id)
    ) WITHOUT ROWID;
    CREATE TABLE dedup (
        sender TEXT NOT NULL,
        client_msg_id TEXT NOT NULL,
        conv_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (sender, client_msg_id)
    ) WITHOUT ROWID;
    CREATE INDEX dedup_by_age ON dedup (created_ms);
    CREATE TABLE members (
        room TEXT NOT NULL,
        user TEXT NOT NULL,
        joined_ms INTEGER NOT NULL,
        PRIMARY KEY (room, user)
    ) WITHOUT ROWID;
    CREATE TABLE accounts (
        user TEXT PRIMARY KEY,
        password_hash TEXT,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE tokens (
        token_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX tokens_by_user ON tokens (user);
    """,
    # How many times every token of the user was revoked: a Login that checked a
    # password before a revoke-all must not mint a token after it.
    """
    ALTER TABLE accounts ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
    """,
    # Rooms listed a page at a time by latest activity, the room creation quota
    # and registration tokens. Existing rooms were last active at their newest
    # message (or now, if they have none).
    """
    CREATE TABLE rooms (
        name TEXT PRIMARY KEY,
        created_ms INTEGER NOT NULL,
        active_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX rooms_by_activity ON rooms (active_ms, name);
    INSERT INTO rooms (name, created_ms, active_ms)
        SELECT c.key, CAST(strftime('%s', 'now') AS INTEGER) * 1000,
            COALESCE(
                (SELECT MAX(m.sent_at_ms) FROM messages m WHERE m.conv_id = c.id),
                CAST(strftime('%s', 'now') AS INTEGER) * 1000)
        FROM conversations c WHERE c.key LIKE '#%';
    CREATE TABLE room_creations (
        user TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        room TEXT NOT NULL
    );
    CREATE INDEX room_creations_by_user ON room_creations (user, created_ms);
    CREATE INDEX room_creations_by_age ON room_creations (created_ms);
    CREATE TABLE registration_tokens (
        token_hash TEXT PRIMARY KEY,
        uses_left INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # The conversation features: change items (edits, deletes, reactions) are rows
    # of messages naming their message in target_seq; a message row keeps its
    # current state (text, edited, deleted) and its reactions are in reactions.
    # Read markers: how far each user has read each conversation.
    """
    ALTER TABLE messages ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN target_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN reply_to INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN emoji TEXT NOT NULL DEFAULT '';
    ALTER TABLE messages ADD COLUMN remove INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN edited INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE reactions (
        conv_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        emoji TEXT NOT NULL,
        user TEXT NOT NULL,
        PRIMARY KEY (conv_id, seq, emoji, user)
    ) WITHOUT ROWID;
    CREATE TABLE read_markers (
        user TEXT NOT NULL,
        conv_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (user, conv_id)
    ) WITHOUT ROWID;
    """,
    # Search: an FTS5 index of the current text of every message (kind 0, not
    # deleted), kept by triggers whatever writes the text (sends, edits, deletes,
    # retention). Contentless: the index holds no copy of the text. A row's rowid
    # is conv_id * 2^32 + seq (see chatrpc.store.sqlite.search). Erasing a
    # message's text (deleted becomes 1) rewrites the index into one segment
    # ('optimize'), so no old segment keeps its words; with secure_delete the
    # freed pages are zeroed.
    """
    CREATE VIRTUAL TABLE message_words USING fts5(
        text, content='', tokenize='unicode61 remove_diacritics 2'
    );
    INSERT INTO message_words (rowid, text)
        SELECT conv_id * 4294967296 + seq, text FROM messages
        WHERE kind = 0 AND deleted = 0 AND text != '' AND seq < 4294967296;
    CREATE TRIGGER message_words_insert AFTER INSERT ON messages
    WHEN new.kind = 0 AND new.deleted = 0 AND new.text != '' AND new.seq < 4294967296
    BEGIN
        INSERT INTO message_words (rowid, text)
            VALUES (new.conv_id * 4294967296 + new.seq, new.text);
    END;
    CREATE TRIGGER message_words_delete AFTER DELETE ON messages
    WHEN old.kind = 0 AND old.deleted = 0 AND old.text != '' AND old.seq < 4294967296
    BEGIN
        INSERT INTO message_words (message_words, rowid, text)
            VALUES ('delete', old.conv_id * 4294967296 + old.seq, old.text);
    END;
    CREATE TRIGGER message_words_update AFTER UPDATE OF text, deleted, kind ON messages
    BEGIN
        INSERT INTO message_words (message_words, rowid, text)
            SELECT 'delete', old.conv_id * 4294967296 + old.seq, old.text
            WHERE old.kind = 0 AND old.deleted = 0 AND old.text != '' AND old.seq < 4294967296;
        INSERT INTO message_words (rowid, text)
            SELECT new.conv_id * 4294967296 + new.seq, new.text
            WHERE new.kind = 0 AND new.deleted = 0 AND new.text != '' AND new.seq < 4294967296;
        INSERT INTO message_words (message_words)
            SELECT 'optimize' WHERE new.deleted != 0 AND old.deleted = 0;
    END;
    """,
    # Operations: disabled accounts, each account's last-seen time (idle
    # accounts expire by it; existing ones were last seen when created), and
    # each room's owner (its creator, as far as the quota's records tell).
    """
    ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN last_seen_ms INTEGER NOT NULL DEFAULT 0;
    UPDATE accounts SET last_seen_ms = created_ms;
    CREATE INDEX accounts_by_seen ON accounts (last_seen_ms, user);
    ALTER TABLE rooms ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    UPDATE rooms SET owner = COALESCE(
        (SELECT c.user FROM room_creations c WHERE c.room = rooms.name
            ORDER BY c.created_ms LIMIT 1), '');
    CREATE INDEX rooms_by_owner ON rooms (owner);
    """,
    # Private rooms and moderation: room settings (topic, privacy), roles,
    # invitations, bans, mutes and blocks, each a mark (see
    # chatrpc.store.moderation).
    """
    CREATE TABLE marks (
        scope TEXT NOT NULL,
        user TEXT NOT NULL,
        what TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (scope, user, what)
    ) WITHOUT ROWID;
    CREATE INDEX marks_by_user ON marks (user, what);
    """,
]


def connect(path: Path, synchronous: str, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    # What a delete or an edit frees or overwrites is zeroed, not left in free
    # space: once the WAL is checkpointed, no page of the files keeps it.
    conn.execute("PRAGMA secure_delete = ON")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return conn


def statements(script: str) -> list[str]:
    """The SQL statements of a migration script (a trigger's body holds ``;`` too)."""
    out: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending)
            pending = ""
    return out


def migrate(conn: sqlite3.Connection, path: Path) -> str:
    """Brings the file's schema up to date and returns its epoch (made on first use)."""
    # The list the package exports, looked up at each open: what callers see
    # (and what a test replaces) is what is applied.
    from . import MIGRATIONS as migrations

    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > len(migrations):
            raise RuntimeError(
                f"{path} has schema version {version}, newer than this release"
                f" understands ({len(migrations)}); upgrade chatrpc"
            )
        for number, script in enumerate(migrations[version:], start=version + 1):
            for statement in statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        if row is None:
            epoch = secrets.token_hex(8)
            conn.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", (epoch,))
        else:
            epoch = row[0]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return str(epoch)
