"""The server's log lines: text for people, JSON for machines.

Fields a line carries beyond its message (a session's id, user, transport, peer,
end reason) are passed as ``extra`` and become keys of the JSON object. Nothing
that a user wrote or could log in with is ever logged: no message text, no
password, no token (tests grep the logs at debug level for them).
"""

from __future__ import annotations

import json
import logging
import sys
import time

#: ``extra`` keys a JSON line carries when a record has them.
FIELDS = ("session", "user", "transport", "peer", "reason")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the known fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "text") -> None:
    """Logs to stderr at ``level`` (debug, info, warning, error) as ``fmt`` (text, json)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
