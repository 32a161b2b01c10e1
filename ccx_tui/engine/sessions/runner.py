"""What an engine runs a session with: a local process tree, or a remote command.

`LocalEngine` owns limits, queue, TTLs, transcripts and states; a `Proc` only starts,
stops and reports.  Output arrives through `on_data(stream, bytes)` (0 stdout,
1 stderr) and `on_eof(stream)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ccx_tui.engine.sessions.process import (
    SECRET_ENV,
    ExitProtocol,
    PipeReader,
    kill_tree,
    signal_tree,
    spawn,
)
from ccx_tui.engine.sessions.session import SessionSpec, State

OnData = Callable[[int, bytes], None]
OnEof = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Ending:
    """How a run ended: a return code (negative for a signal), or a state of its own."""

    returncode: int | None
    state: State | None = None  # LOST or FAILED decided by the runner
    reason: str | None = None
    requeue: bool = False  # the far side is full: queue the session again


class Proc(Protocol):
    @property
    def pid(self) -> int | None: ...

    async def wait(self) -> Ending:
        """Wait for the end; all output has been delivered when this returns."""
        ...

    async def terminate(self, *, force: bool, grace: float) -> None:
        """Stop it: TERM, grace, KILL (or at once with `force`)."""
        ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class ProcessTree:
    """Signals for a local process tree: the session leader `pid` (its pid is its
    group's), its descendants, and whatever carries its `marker`."""

    def __init__(self, pid: int | None, marker: str, *, leftover_grace: float) -> None:
        self.pid = pid
        self.marker = marker
        self._leftover_grace = leftover_grace

    async def kill_leftovers(self) -> None:
        """The main process is gone: background jobs left in its group die with it.
        (Only a kill also hunts processes that left the group on purpose: scanning
        every process at each exit made many short sessions slow.)"""
        if self.pid is not None and _group_alive(self.pid):
            await asyncio.shield(
                kill_tree(self.pid, self.pid, self.marker, grace=self._leftover_grace)
            )

    async def terminate(self, *, force: bool, grace: float) -> None:
        await asyncio.shield(kill_tree(self.pid, self.pid, self.marker, grace=grace, force=force))

    async def pause(self) -> None:
        await asyncio.to_thread(signal_tree, self.pid, self.pid, self.marker, signal.SIGSTOP)

    async def resume(self) -> None:
        await asyncio.to_thread(signal_tree, self.pid, self.pid, self.marker, signal.SIGCONT)

    def kill_now(self) -> None:
        signal_tree(self.pid, self.pid, self.marker, signal.SIGKILL)

    def pause_reading(self) -> None:
        """Stop reading the output (the process blocks once its buffer is full)."""
        raise NotImplementedError

    def resume_reading(self) -> None:
        raise NotImplementedError


class LocalProc(ProcessTree):
    """A process tree on this machine with pipes for stdout and stderr (process.py)."""

    def __init__(
        self,
        transport: asyncio.SubprocessTransport,
        proto: ExitProtocol,
        reader: PipeReader,
        marker: str,
        *,
        exit_drain: float,
        leftover_grace: float,
    ) -> None:
        super().__init__(transport.get_pid(), marker, leftover_grace=leftover_grace)
        self.transport = transport
        self.proto = proto
        self.reader = reader
        self._exit_drain = exit_drain

    @classmethod
    async def start(
        cls,
        spec: SessionSpec,
        marker: str,
        on_data: OnData,
        on_eof: OnEof,
        *,
        exit_drain: float,
        leftover_grace: float,
        scrub_env: frozenset[str] = SECRET_ENV,
    ) -> LocalProc:
        """Spawn it; raises OSError if the shell cannot be started.  The variables in
        `scrub_env` are not inherited (the spec's own env may still set them)."""
        transport, proto, reader = await spawn(
            [spec.shell, "-c", spec.command],
            cwd=spec.cwd,
            env=spec.env,
            marker=marker,
            on_data=on_data,
            on_eof=on_eof,
            scrub=scrub_env,
            base=spec.base_env,
        )
        return cls(
            transport,
            proto,
            reader,
            marker,
            exit_drain=exit_drain,
            leftover_grace=leftover_grace,
        )

    async def wait(self) -> Ending:
        closed = self.reader.closed
        try:
            await self.proto.exited
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._exit_drain):
                    await closed
        finally:
            await self.kill_leftovers()
            if not closed.done():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await closed
            self.reader.close()  # a pipe still held open by an escaped process: its end
            self.transport.close()
        return Ending(self.transport.get_returncode())

    def pause_reading(self) -> None:
        """Stop reading stdout and stderr (the process blocks once a pipe is full)."""
        self.reader.pause()

    def resume_reading(self) -> None:
        self.reader.resume()
