"""How a session's state looks: icon, colour, short label (shared by tabs and sidebar)."""

from __future__ import annotations

import math
import time

from ccx_tui.engine.sessions.session import SessionInfo, State

_ICONS: dict[State, tuple[str, str]] = {
    State.QUEUED: ("◷", "$text-muted"),
    State.RUNNING: ("▶", "$success"),
    State.PAUSED: ("‖", "$warning"),
    State.KILLED: ("■", "$secondary"),
    State.EXPIRED: ("⊘", "$warning"),
    State.FAILED: ("⚠", "$error"),
    State.INTERRUPTED: ("↯", "$text-muted"),
    State.LOST: ("⇣", "$error"),
    State.CREATED: ("○", "$text-muted"),
}


def state_icon(info: SessionInfo) -> tuple[str, str]:
    """(icon, colour variable) for the session's state; exit 0 and non-zero differ."""
    if info.state is State.EXITED:
        return ("✔", "$success") if info.exit_code == 0 else ("✘", "$error")
    return _ICONS[info.state]


def state_label(info: SessionInfo, now: float | None = None) -> str:
    """A few words: 'running', 'exit 0', 'exit 3', 'killed (SIGKILL)', 'expired',
    'stopping (SIGKILL in 3s)' while a kill waits out its grace period..."""
    if info.kill_at is not None and info.state.live:
        left = math.ceil(max(0.0, info.kill_at - (time.time() if now is None else now)))
        return f"stopping (SIGKILL in {left}s)" if left else "stopping (SIGKILL)"
    if info.state is State.EXITED:
        if info.signal is not None:
            return f"signal {info.signal}"
        return f"exit {info.exit_code}"
    if info.state is State.CREATED:
        return "not started (r to start)"
    return info.state.value


def restart_badge(info: SessionInfo) -> str:
    """'↻3' after three automatic restarts in a row, else ''."""
    return f"↻{info.restarts}" if info.restarts > 0 else ""


def restart_note(info: SessionInfo, now: float) -> str | None:
    """'restart in 4s' while an automatic restart is due, 'gave up after 10 restarts'
    once the policy's maximum is spent, else None."""
    if info.restart_at is not None:
        return f"restart in {duration(math.ceil(max(0.0, info.restart_at - now)))}"
    spec = info.spec
    if info.state.final and spec.restart != "never" and 0 < spec.max_restarts <= info.restarts:
        return f"gave up after {info.restarts} restart{'s' if info.restarts != 1 else ''}"
    return None


def duration(seconds: float) -> str:
    """Compact: 42s, 3m05s, 2h07m."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def size(nbytes: float) -> str:
    for unit in ("B", "K", "M", "G"):
        if nbytes < 1024 or unit == "G":
            return f"{nbytes:.0f}{unit}" if unit == "B" else f"{nbytes:.1f}{unit}"
        nbytes /= 1024
    return f"{nbytes:.1f}T"  # pragma: no cover
