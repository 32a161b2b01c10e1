"""Settings from flags and the environment (CCX_TUI_*); no Textual here."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from ccx_tui.engine.local import EngineConfig
from ccx_tui.engine.session import SessionSpec
from ccx_tui.engine.store import DEFAULT_RETENTION, default_data_dir
from ccx_tui.errors import ConfigError


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


@dataclass(frozen=True, slots=True)
class ServerTarget:
    """A cc_executor server to run sessions on (from --connect or a [[server]] table)."""

    url: str
    token: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class DeclaredSession:
    """A session declared in a config file or Procfile; started at once if `autostart`."""

    spec: SessionSpec
    autostart: bool = True
    server: str | None = None  # a [[server]] name to run it on; None: locally


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings: flag, else CCX_TUI_* variable, else default."""

    data_dir: Path = field(default_factory=default_data_dir)
    max_sessions: int = 16
    ttl: float | None = None
    kill_grace: float = 3.0
    retention_bytes: int = DEFAULT_RETENTION

    @classmethod
    def resolve(
        cls,
        *,
        data_dir: str | None = None,
        max_sessions: str | None = None,
        ttl: str | None = None,
        kill_grace: str | None = None,
    ) -> Settings:
        env = os.environ
        max_raw = max_sessions or env.get("CCX_TUI_MAX_SESSIONS")
        ttl_raw = ttl or env.get("CCX_TUI_TTL")
        grace_raw = kill_grace or env.get("CCX_TUI_KILL_GRACE")
        retention_raw = env.get("CCX_TUI_RETENTION_BYTES")
        return cls(
            data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(),
            max_sessions=parse_positive_int(max_raw, "max sessions") if max_raw else 16,
            ttl=parse_seconds(ttl_raw, allow_zero=True) if ttl_raw else None,
            kill_grace=(parse_seconds(grace_raw, "kill grace", allow_zero=True) or 0.0)
            if grace_raw
            else 3.0,
            retention_bytes=parse_positive_int(retention_raw, "retention bytes")
            if retention_raw
            else DEFAULT_RETENTION,
        )

    def engine_config(self, **overrides: object) -> EngineConfig:
        config = EngineConfig(
            data_dir=self.data_dir,
            max_sessions=self.max_sessions,
            default_ttl=self.ttl,
            kill_grace=self.kill_grace,
            retention_bytes=self.retention_bytes,
        )
        if overrides:
            config = replace(config, **overrides)  # type: ignore[arg-type]
        return config
