"""Where each server setting comes from: flags > ``CHATRPC_*`` environment > TOML file > defaults.

Every key is a declared setting (chatrpc.settings) or one of the few the command
line adds (``db``, ``store``, ``log-level``, ``log-format``). A key is named as its
flag without the dashes in front (``queue-size``); its variable is
``CHATRPC_`` and the key in capitals with underscores (``CHATRPC_QUEUE_SIZE``).
A file's unknown keys and every bad value are :class:`ConfigError`, naming the
key and where it came from.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ServerConfig
from .limits import Limits
from .settings import ConfigError, Option, options
from .store import StoreOptions

ENV_PREFIX = "CHATRPC_"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True, slots=True)
class Key:
    """One setting that a flag, a variable or a file can give."""

    name: str
    kind: type[Any]
    default: Any
    #: Checks a value of the right type (bounds, choices); raises ConfigError.
    check: Callable[[Any], None]

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper().replace("-", "_")

    def from_text(self, text: str) -> Any:
        """A value from a flag or a variable."""
        if self.kind is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ConfigError(f"not true or false: {text!r}")
        try:
            value = self.kind(text)
        except ValueError:
            raise ConfigError(f"not a number: {text!r}") from None
        self.check(value)
        return value

    def from_toml(self, value: Any) -> Any:
        """A value from the TOML file, whose types are already parsed."""
        ok = (
            isinstance(value, bool)
            if self.kind is bool
            else isinstance(value, str)
            if self.kind is str
            else isinstance(value, int | float) and not isinstance(value, bool)
        )
        if not ok or (self.kind is int and isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"expected {_kind_name(self.kind)}, not {value!r}")
        value = self.kind(value)
        self.check(value)
        return value


def _kind_name(kind: type[Any]) -> str:
    return {bool: "true or false", str: "a string", int: "a whole number"}.get(kind, "a number")


def _declared(option: Option) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        try:
            option.check(value)
        except ConfigError as exc:
            raise ConfigError(str(exc).removeprefix(option.flag + " ")) from None

    return check


def _choice(choices: tuple[str, ...]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in choices:
            raise ConfigError(f"must be one of {', '.join(choices)}, not {value!r}")

    return check


def _any(value: Any) -> None:
    del value


def keys() -> dict[str, Key]:
    """Every key, by name: the declared settings, then the command line's own."""
    out: dict[str, Key] = {}
    for cls in (ServerConfig, Limits, StoreOptions):
        for f, option in options(cls):
            name = option.flag.removeprefix("--")
            out[name] = Key(name, type(f.default), f.default, _declared(option))
    out["db"] = Key("db", str, "", _any)
    out["store"] = Key("store", str, "", _any)
    out["log-level"] = Key("log-level", str, "info", _choice(LOG_LEVELS))
    out["log-format"] = Key("log-format", str, "text", _choice(LOG_FORMATS))
    return out


def read_file(path: str, known: Mapping[str, Key]) -> dict[str, Any]:
    """The settings a TOML file gives (flat ``key = value`` pairs)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    values = {}
    for name, value in data.items():
        key = known.get(name) or known.get(name.replace("_", "-"))
        if key is None:
            raise ConfigError(f"{path}: unknown setting {name!r}")
        try:
            values[key.name] = key.from_toml(value)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {key.name}: {exc}") from None
    return values


def read_env(environ: Mapping[str, str], known: Mapping[str, Key]) -> dict[str, Any]:
    """The settings ``CHATRPC_*`` variables give (the client's own are not keys here)."""
    values = {}
    for key in known.values():
        text = environ.get(key.env)
        if text is not None:
            try:
                values[key.name] = key.from_text(text)
            except ConfigError as exc:
                raise ConfigError(f"{key.env}: {exc}") from None
    return values


@dataclass(frozen=True, slots=True)
class Resolved:
    """Every key's value, and where it came from (default, file, env, flag)."""

    values: dict[str, Any]
    sources: dict[str, str]


def resolve(
    flags: Mapping[str, Any], environ: Mapping[str, str], config_file: str | None
) -> Resolved:
    """Merges the layers; ``flags`` holds only the options given on the command line."""
    known = keys()
    layers: list[tuple[str, dict[str, Any]]] = [
        ("default", {name: key.default for name, key in known.items()})
    ]
    if config_file:
        layers.append((f"file {config_file}", read_file(config_file, known)))
    layers.append(("env", read_env(environ, known)))
    layers.append(("flag", {k.replace("_", "-"): v for k, v in flags.items()}))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        if "db" in layer and "store" in layer and layer["db"] and layer["store"]:
            raise ConfigError(f"{source}: give either db or store, not both")
        if layer.get("db") or layer.get("store"):
            # The store is named once, by the highest layer that names it.
            for where in ("db", "store"):
                values[where], sources[where] = "", source
        for name, value in layer.items():
            if name in known:
                values[name] = value
                sources[name] = source if source == "default" else _where(source, known[name])
    return Resolved(values, sources)


def _where(source: str, key: Key) -> str:
    return key.env if source == "env" else source


def config_from(values: Mapping[str, Any]) -> ServerConfig:
    """The ServerConfig the resolved values describe."""
    known = keys()

    def of(cls: type[Any]) -> dict[str, Any]:
        return {f.name: values[opt.flag.removeprefix("--")] for f, opt in options(cls)}

    db, store = values["db"], values["store"]
    if db:
        store = db if not db.startswith("/") else f"sqlite://{db}"
    del known
    return ServerConfig(
        store=store,
        limits=Limits(**of(Limits)),
        store_options=StoreOptions(**of(StoreOptions)),
        **of(ServerConfig),
    )


def render(resolved: Resolved) -> str:
    """The effective settings as a TOML file, each with where it came from."""
    lines = []
    for name, value in resolved.values.items():
        if isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, str):
            shown = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            shown = repr(value)
        lines.append(f"{name} = {shown}  # {resolved.sources[name]}")
    return "\n".join(lines) + "\n"


def file_from(argv_config: str | None, environ: Mapping[str, str]) -> str | None:
    """The config file: ``--config``, else ``CHATRPC_CONFIG``, else none."""
    path = argv_config or environ.get(ENV_PREFIX + "CONFIG") or None
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"no config file at {path!r}")
    return path
