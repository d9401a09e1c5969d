"""The browser client's pure modules (protocol, cursors, backoff, commands) under node --test."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS = Path(__file__).resolve().parent / "js"


@pytest.mark.skipif(
    shutil.which("node") is None, reason="node is not installed (make test installs it)"
)
def test_the_browser_clients_protocol_modules_pass_their_node_tests() -> None:
    done = subprocess.run(
        ["node", "--test", str(JS_TESTS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


STATIC = Path(__file__).resolve().parent.parent / "chatrpc" / "web" / "static"


def test_every_module_of_the_page_is_in_the_offline_shell() -> None:
    shell = set(re.findall(r'"(/static/js/[^"]+)"', (STATIC / "sw.js").read_text()))
    modules = {f"/static/js/{p.name}" for p in (STATIC / "js").glob("*.js")}
    assert modules == shell
