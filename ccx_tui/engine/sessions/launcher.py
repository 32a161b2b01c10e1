"""Where a LocalEngine's sessions run: a Launcher starts one run of a session.

The engine owns everything about sessions (limits, queue, TTL, kill escalation,
restarts, transcripts, events); a launcher only starts a run and gives back its Proc.
ProcessLauncher runs local processes (on pipes or a pseudo-terminal); ServerLauncher
(wire/remote_engine.py) runs them on a cc_executor server.  Engines are composed, not
subclassed: `LocalEngine(config, launcher=...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ccx_tui.engine.sessions.pty_proc import PtyProc
from ccx_tui.engine.sessions.runner import LocalProc, OnData, OnEof, Proc
from ccx_tui.engine.sessions.session import SessionInfo, SessionSpec
from ccx_tui.errors import InvalidTransition


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One run to start: the spec, the marker its processes carry, the terminal size,
    where its output goes, and who hears of a process id known only later."""

    spec: SessionSpec
    marker: str
    size: tuple[int, int]
    on_data: OnData
    on_eof: OnEof
    on_pid: Callable[[int | None], None]


class Launcher(Protocol):
    """Starts runs somewhere; says how that place is doing."""

    location: str
    name: str
    status: str

    def validate(self, spec: SessionSpec) -> SessionSpec:
        """Check the spec where it will run; raises InvalidCommand."""
        ...

    async def launch(self, request: RunRequest) -> Proc:
        """Start the run; raises OSError if it cannot start at all."""
        ...

    async def send_input(self, proc: Proc | None, info: SessionInfo, data: bytes) -> None:
        """Type into the run's terminal; raises InvalidTransition where it cannot be."""
        ...

    async def resize(self, proc: Proc | None, cols: int, rows: int) -> None: ...

    async def open(self, room: Callable[[], None]) -> None:
        """Get ready; `room()` says the far side has room again (retry the queue)."""
        ...

    async def aclose(self) -> None: ...


class ProcessLauncher:
    """Local processes: a pseudo-terminal for a `tty` spec, else pipes."""

    location = "local"
    name = "local"
    status = "running"

    def __init__(self, *, exit_drain: float, leftover_grace: float, scrub_env: frozenset[str]):
        self.exit_drain = exit_drain
        self.leftover_grace = leftover_grace
        self.scrub_env = scrub_env

    def validate(self, spec: SessionSpec) -> SessionSpec:
        """Here the cwd must exist (and the rest of SessionSpec.validated)."""
        return spec.validated()

    async def launch(self, request: RunRequest) -> Proc:
        spec = request.spec
        if spec.tty:
            cols, rows = request.size
            return await PtyProc.start(
                spec,
                request.marker,
                request.on_data,
                request.on_eof,
                cols=cols,
                rows=rows,
                exit_drain=self.exit_drain,
                leftover_grace=self.leftover_grace,
                scrub_env=self.scrub_env,
            )
        return await LocalProc.start(
            spec,
            request.marker,
            request.on_data,
            request.on_eof,
            exit_drain=self.exit_drain,
            leftover_grace=self.leftover_grace,
            scrub_env=self.scrub_env,  # spawn adds SECRET_ENV whatever this says
        )

    async def send_input(self, proc: Proc | None, info: SessionInfo, data: bytes) -> None:
        if not info.spec.tty:
            raise InvalidTransition(
                "it runs on pipes with no input (start it as a terminal session to type into it)"
            )
        if not info.state.live or not isinstance(proc, PtyProc):
            raise InvalidTransition(f"cannot type into a {info.state.value} session")
        proc.write(data)

    async def resize(self, proc: Proc | None, cols: int, rows: int) -> None:
        if isinstance(proc, PtyProc):
            proc.resize(cols, rows)

    async def open(self, room: Callable[[], None]) -> None:
        """Nothing to get ready: processes start here."""

    async def aclose(self) -> None:
        """Nothing to let go of: the engine kills its sessions itself."""
