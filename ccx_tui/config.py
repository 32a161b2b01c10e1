"""Settings from flags, the environment (CCX_TUI_*) and ccx.toml; no Textual here."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from ccx_tui.engine.sessions.env_names import SECRET_ENV
from ccx_tui.engine.sessions.session import SessionSpec
from ccx_tui.engine.transcripts.store import DEFAULT_RETENTION, default_data_dir
from ccx_tui.errors import ConfigError

# EngineConfig and engine/wire/auth.py load where they are used: every command reads its
# settings, few run the whole local engine in this process or talk to a server.
if TYPE_CHECKING:
    from ccx_tui.config_file import FileDefaults, ServerEntry  # it imports this module
    from ccx_tui.engine.sessions.local import EngineConfig


def parse_seconds(text: str, what: str = "TTL", *, allow_zero: bool = False) -> float | None:
    """Parse '90', '1.5', '90s', '5m', '2h' into seconds; 0 means none if allowed."""
    raw = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}.get(raw[-1:] if raw else "", None)
    number = raw[:-1] if scale is not None else raw
    try:
        value = float(number) * (scale or 1.0)
    except ValueError:
        raise ConfigError(f"bad {what}: {text!r} (use seconds, or e.g. 90s, 5m, 2h)") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"bad {what}: {text!r} (must be a positive number of seconds)")
    return value or None


def parse_env(pairs: list[str]) -> dict[str, str]:
    """Turn ['K=V', ...] into a dict; raise ConfigError for a malformed pair."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if (
            not sep
            or not key
            or not (key[0].isalpha() or key[0] == "_")
            or not all(c.isalnum() or c == "_" for c in key)
        ):
            raise ConfigError(f"bad --env {pair!r} (expected NAME=VALUE)")
        env[key] = value
    return env


def parse_positive_int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"bad {what}: {text!r} (expected a whole number)") from None
    if value < 1:
        raise ConfigError(f"bad {what}: {text!r} (must be at least 1)")
    return value


T = TypeVar("T")


def _layer(raw: str | None, parse: Callable[[str], T], from_file: T | None, default: T) -> T:
    """A flag's or variable's text (parsed), else the config file's value, else `default`."""
    if raw:
        return parse(raw)
    return default if from_file is None else from_file


def _on_exit(text: str) -> str:
    choices = ("ask", "kill", "detach")
    value = text.strip().lower()
    if value not in choices:
        raise ConfigError(f"bad on_exit: {text!r} (use {', '.join(choices)})")
    return value


def _tty(text: str) -> bool:
    return _switch(text, "CCX_TUI_TTY")


def _switch(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"bad {name}: {text!r} (use 1 or 0)")


@dataclass(frozen=True, slots=True)
class ServerTarget:
    """A cc_executor server to run sessions on (from --connect or a [[server]] table)."""

    url: str
    token: str | None = None
    name: str | None = None
    ca_file: Path | None = None
    """CA certificates (PEM) that verify a wss:// server; None: the system's."""


@dataclass(frozen=True, slots=True)
class DeclaredSession:
    """A session declared in a config file or Procfile; started at once if `autostart`."""

    spec: SessionSpec
    autostart: bool = True
    server: str | None = None  # a [[server]] name to run it on; None: locally
    tty: bool | None = None
    """Its own `tty` setting; None: the app's (Settings.tty)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings: flag, else CCX_TUI_* variable, else config file, else default."""

    data_dir: Path = field(default_factory=default_data_dir)
    max_sessions: int = 16
    ttl: float | None = None
    kill_grace: float = 3.0
    retention_bytes: int = DEFAULT_RETENTION
    scrub_env: frozenset[str] = SECRET_ENV
    """Variables no session inherits: $CCX_TUI_TOKEN and every [[server]]'s token_env."""
    on_exit: str = "ask"
    """What quitting does to running sessions: ask, kill or detach (leave them running
    in the engine process)."""
    tty: bool = True
    """Sessions the app starts run on a pseudo-terminal unless they say otherwise."""
    wrap: bool = False
    """Transcript views soft-wrap long lines (`W` switches it in the app)."""

    @classmethod
    def resolve(
        cls,
        *,
        data_dir: str | None = None,
        max_sessions: str | None = None,
        ttl: str | None = None,
        kill_grace: str | None = None,
        on_exit: str | None = None,
        no_tty: bool = False,
        wrap: bool = False,
        file: FileDefaults | None = None,
        servers: Sequence[ServerEntry] = (),
    ) -> Settings:
        """Each setting from its flag, else its CCX_TUI_* variable, else `file`, else default.

        The token_env variables of `servers` are kept from every session (`scrub_env`).
        Raises ConfigError for a bad flag or variable value (the file was checked on load).
        """
        env = os.environ
        max_raw = max_sessions or env.get("CCX_TUI_MAX_SESSIONS")
        ttl_raw = ttl or env.get("CCX_TUI_TTL")
        grace_raw = kill_grace or env.get("CCX_TUI_KILL_GRACE")
        retention_raw = env.get("CCX_TUI_RETENTION_BYTES")
        on_exit_raw = on_exit or env.get("CCX_TUI_ON_EXIT")
        tty_raw = "0" if no_tty else env.get("CCX_TUI_TTY")
        wrap_raw = "1" if wrap else env.get("CCX_TUI_WRAP")
        defaults = cls()
        if data_dir:
            directory = Path(data_dir).expanduser()
        elif file is not None and file.data_dir is not None and not env.get("CCX_TUI_DATA_DIR"):
            directory = file.data_dir
        else:
            directory = default_data_dir()  # $CCX_TUI_DATA_DIR, else the XDG place
        max_value = _layer(
            max_raw,
            lambda t: parse_positive_int(t, "max sessions"),
            file.max_sessions if file else None,
            defaults.max_sessions,
        )
        ttl_value = _layer(  # 0 means no TTL, from the environment and in the file alike
            ttl_raw,
            lambda t: parse_seconds(t, allow_zero=True),
            (file.ttl or None) if file else None,
            defaults.ttl,
        )
        grace = _layer(
            grace_raw,
            lambda t: parse_seconds(t, "kill grace", allow_zero=True) or 0.0,
            file.kill_grace if file else None,
            defaults.kill_grace,
        )
        retention = _layer(
            retention_raw,
            lambda t: parse_positive_int(t, "retention bytes"),
            file.retention_bytes if file else None,
            defaults.retention_bytes,
        )
        exit_choice = _layer(
            on_exit_raw, _on_exit, file.on_exit if file else None, defaults.on_exit
        )
        tty = _layer(tty_raw, _tty, file.tty if file else None, defaults.tty)
        wrapped = _layer(
            wrap_raw,
            lambda t: _switch(t, "CCX_TUI_WRAP"),
            file.wrap if file else None,
            defaults.wrap,
        )
        return cls(
            on_exit=exit_choice,
            tty=tty,
            wrap=wrapped,
            data_dir=directory,
            max_sessions=max_value,
            ttl=ttl_value,
            kill_grace=grace,
            retention_bytes=retention,
            scrub_env=SECRET_ENV | {s.token_env for s in servers if s.token_env},
        )

    def engine_args(self) -> tuple[str, ...]:
        """These settings as options of `ccx-tui engine` (for an engine process the
        app starts; variable names only, never a value)."""
        args = ["--max-sessions", str(self.max_sessions), "--kill-grace", repr(self.kill_grace)]
        args += ["--ttl", repr(self.ttl or 0.0), "--retention-bytes", str(self.retention_bytes)]
        for name in sorted(self.scrub_env - SECRET_ENV):
            args += ["--scrub", name]
        return tuple(args)

    def engine_config(self, **overrides: object) -> EngineConfig:
        from ccx_tui.engine.sessions.local import EngineConfig

        config = EngineConfig(
            data_dir=self.data_dir,
            max_sessions=self.max_sessions,
            default_ttl=self.ttl,
            kill_grace=self.kill_grace,
            retention_bytes=self.retention_bytes,
            scrub_env=self.scrub_env,
        )
        if overrides:
            config = replace(config, **overrides)  # type: ignore[arg-type]
        return config


def server_token(
    entry: ServerEntry, environ: Mapping[str, str] | None = None, data_dir: Path | None = None
) -> str | None:
    """The token of a [[server]], read from its token_env variable.

    Without token_env, a loopback server's token is read from the file a `serve` of
    `data_dir` keeps (see engine/auth.py), else None.  Raises ConfigError naming the
    server and the variable if that variable is unset or empty: a server that wants a
    token would only refuse us later, less clearly.
    """
    from ccx_tui.engine.wire.auth import local_token

    if entry.token_env is None:
        return local_token(data_dir, entry.url) if data_dir is not None else None
    value = (os.environ if environ is None else environ).get(entry.token_env)
    if not value:
        state = "empty" if value == "" else "not set"
        raise ConfigError(
            f"{entry.where} key 'token_env': ${entry.token_env} is {state} "
            "(export the token in it, or remove token_env)"
        )
    return value


def given_token(token: str | None, token_file: str | None) -> str | None:
    """The token of --token-file (read from it), else of --token.  Raises ConfigError."""
    if token_file:
        from ccx_tui.engine.wire.auth import read_token_file

        return read_token_file(Path(token_file).expanduser())
    return token or None


def check_server_url(url: str) -> None:
    """ConfigError unless `url` is a WebSocket URL a server can be reached at."""
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https"):
        ws = "wss" if parts.scheme == "https" else "ws"
        raise ConfigError(
            f"{url!r}: a server is reached over WebSocket: {ws}://{parts.netloc}/ws/mcp, "
            "not an http URL"
        )
    if parts.scheme not in ("ws", "wss") or not parts.netloc or len(url.split()) != 1:
        raise ConfigError(
            f"{url!r}: not a server URL (expected ws://HOST:PORT/ws/mcp or wss://...)"
        )


def resolve_servers(
    connect: Sequence[str],
    token: str | None = None,
    declared: Sequence[ServerEntry] = (),
    environ: Mapping[str, str] | None = None,
    *,
    data_dir: Path | None = None,
    ca_file: Path | None = None,
) -> list[ServerTarget]:
    """Servers to connect to: `--connect` URLs, then the config file's [[server]] tables.

    The URLs share `token` (--token-file or --token, else $CCX_TUI_TOKEN, else for a
    loopback URL the token file of a `serve` of `data_dir`) and `ca_file`; each
    [[server]] reads its own token from its token_env variable (see `server_token`).
    """
    from ccx_tui.engine.wire.auth import TOKEN_ENV, local_token

    env = os.environ if environ is None else environ
    shared = token or env.get(TOKEN_ENV) or None

    def own(url: str) -> str | None:
        return shared or (local_token(data_dir, url) if data_dir is not None else None)

    for url in connect:
        check_server_url(url)
    targets = [ServerTarget(url, own(url), None, ca_file) for url in connect]
    targets += [
        ServerTarget(s.url, server_token(s, env, data_dir), s.name, s.ca_file) for s in declared
    ]
    return targets
