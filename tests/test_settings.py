"""Each setting is declared once: the parser, the README and every constructor agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chatrpc.cli_server import build_parser, config_from_args
from chatrpc.config import ServerConfig
from chatrpc.hub import Limits
from chatrpc.settings import ConfigError, options
from chatrpc.store import StoreOptions

README = Path(__file__).resolve().parent.parent / "README.md"
DECLARED: dict[str, Any] = {
    opt.flag: f.default for cls in (ServerConfig, Limits, StoreOptions) for f, opt in options(cls)
}


def _readme_rows() -> list[tuple[list[str], str]]:
    """The README's option table rows: (the flags of the first column, the default cell)."""
    rows = []
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`--"):
            rows.append((re.findall(r"`(--[a-z0-9-]+)", cells[0]), cells[1]))
    return rows


def test_every_option_is_in_the_readme_with_its_declared_default() -> None:
    rows = _readme_rows()
    documented = {flag for flags, _ in rows for flag in flags}
    assert sorted(set(DECLARED) - documented) == []
    for flags, cell in rows:
        numeric = [
            DECLARED[f] for f in flags if f in DECLARED and not isinstance(DECLARED[f], str | bool)
        ]
        numbers = [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", cell)]
        if flags == ["--host", "--port"]:
            numbers = numbers[-1:]  # the address's digits are not a number of its own
        assert numbers[: len(numeric)] == [float(v) for v in numeric], (flags, cell)


def test_the_parsers_defaults_are_the_declared_ones() -> None:
    assert config_from_args(build_parser().parse_args([])) == ServerConfig()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ServerConfig(queue_size=0), "--queue-size must be at least 1, not 0"),
        (lambda: ServerConfig(port=70000), "--port must be at most 65535, not 70000"),
        (lambda: Limits(rate_burst=0), "--rate-burst must be at least 1"),
        (lambda: Limits(rate_limit=-1), "--rate-limit must be at least 0"),
        (lambda: StoreOptions(presence_ttl_s=0.1), "--presence-ttl must be at least 0.5"),
        (
            lambda: Limits(default_history_page=50, max_history_page=10),
            "--default-history-page must be at most --max-history-page",
        ),
    ],
)
def test_code_cannot_build_a_setting_out_of_its_bounds(make, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        make()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--queue-size", "0"], "argument --queue-size: must be at least 1, not 0"),
        (["--max-receive-bytes", "10"], "argument --max-receive-bytes: must be at least 1024"),
        (["--rate-burst", "abc"], "argument --rate-burst: not a number: 'abc'"),
        (["--keepalive", "inf"], "argument --keepalive: must be a finite number, not inf"),
        (["--rate-limit", "nan"], "argument --rate-limit: must be a finite number, not nan"),
        (
            ["--max-history-page", "10"],
            "--default-history-page must be at most --max-history-page",
        ),
    ],
)
def test_an_option_out_of_bounds_is_one_line_and_exit_code_2(args: list[str], error: str) -> None:
    server = Path(sys.executable).parent / "chatrpc-server"
    result = subprocess.run(
        [str(server), *args, "--store", "memory://"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and error in lines[0], result.stderr
    assert "Traceback" not in result.stderr
