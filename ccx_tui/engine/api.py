"""The one engine interface the app talks to: an engine process's client, or an
engine of our own for a remote server; the app never asks which."""

from __future__ import annotations

from typing import Protocol

from ccx_tui.engine.sessions.events import Subscriber
from ccx_tui.engine.sessions.local import EngineStats
from ccx_tui.engine.sessions.session import SessionInfo, SessionSpec
from ccx_tui.engine.sessions.tap import OutputTap


class Engine(Protocol):
    """Sessions somewhere: a table of them, their events, and actions on them."""

    @property
    def location(self) -> str:
        """Where its sessions run (the `location` of their SessionInfo)."""
        ...

    @property
    def name(self) -> str:
        """How the user names it (a [[server]] name, a URL, "local")."""
        ...

    @property
    def status(self) -> str:
        """One line on how it is doing (connected, unreachable: why...)."""
        ...

    survives_detach: bool
    """Whether its sessions go on after `aclose()` (an engine process)."""

    @property
    def reattach(self) -> str:
        """The command that shows its sessions again after a detach ("" if none)."""
        ...

    async def open(self) -> None:
        """Get ready (connect, load the table); raises CcxError if it cannot."""

    async def aclose(self) -> None:
        """Let go: an engine process keeps its sessions, others kill theirs."""

    def kill_all_now(self) -> None:
        """SIGKILL what runs in this process, synchronously (the last resort)."""

    def sessions(self) -> list[SessionInfo]:
        """Every session, oldest first."""

    def current(self) -> list[SessionInfo]:
        """The sessions it has had since it started (not its history)."""

    def get(self, session_id: str) -> SessionInfo:
        """Raises UnknownSession."""

    @property
    def stats(self) -> EngineStats: ...

    def subscribe(self) -> Subscriber: ...

    def unsubscribe(self, sub: Subscriber) -> None: ...

    def tap(self, session_id: str, *, window: int, unkept_only: bool) -> OutputTap | None:
        """The session's live output, where the engine is in this process."""

    async def start(self, spec: SessionSpec, *, autostart: bool = True) -> SessionInfo: ...

    async def kill(
        self, session_id: str, *, force: bool = False, reason: str = "killed"
    ) -> None: ...

    async def restart(self, session_id: str) -> SessionInfo: ...

    async def pause(self, session_id: str) -> None: ...

    async def resume(self, session_id: str) -> None: ...

    async def rename(self, session_id: str, name: str) -> SessionInfo:
        """Name the session ("": its title comes from its command again)."""

    async def send_input(self, session_id: str, data: bytes) -> None:
        """Type into the session's terminal; raises InvalidTransition where it cannot
        take input (pipes, not running, a server that cannot)."""

    async def resize(self, session_id: str, cols: int, rows: int) -> None:
        """Size the session's terminal (nothing for a session on pipes)."""

    async def kill_all(self, reason: str = "killed") -> None:
        """Kill every session; returns once they have ended."""
