"""Spawning one session's process and killing its whole tree.

A child runs in a new session (so its own process group) with stdin from /dev/null
and both pipes drained by an asyncio protocol.  Every child carries the environment
variable `MARKER_ENV` naming its session run, so descendants that left the group
(`setsid`, double forks) are still found and killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable

import psutil

MARKER_ENV = "CCX_TUI_SESSION"
PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class OutputProtocol(asyncio.SubprocessProtocol):
    """Hands pipe data to `on_data(fd, data)`; tracks pipe EOFs and process exit."""

    def __init__(self, on_data: Callable[[int, bytes], None], on_eof: Callable[[int], None]):
        self._on_data = on_data
        self._on_eof = on_eof
        self.exited = asyncio.get_running_loop().create_future()
        self.pipes_closed = asyncio.get_running_loop().create_future()
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self._on_data(fd, data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in self._open:
            self._open.discard(fd)
            self._on_eof(fd)
            if not self._open and not self.pipes_closed.done():
                self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


async def spawn(
    argv: list[str],
    *,
    cwd: str | None,
    env: dict[str, str],
    marker: str,
    protocol: Callable[[], OutputProtocol],
) -> tuple[asyncio.SubprocessTransport, OutputProtocol]:
    """Start `argv` in its own session; raises OSError if it cannot be started."""
    full_env = dict(os.environ)
    full_env.update(env)
    full_env[MARKER_ENV] = marker
    loop = asyncio.get_running_loop()
    transport, proto = await loop.subprocess_exec(
        protocol,
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=full_env,
        start_new_session=True,
    )
    for fd in (1, 2):
        pipe = transport.get_pipe_transport(fd)
        raw = pipe.get_extra_info("pipe") if pipe is not None else None
        if raw is not None:
            with contextlib.suppress(OSError, ValueError):  # bigger pipes mean fewer wake-ups
                fcntl.fcntl(raw.fileno(), _F_SETPIPE_SZ, PIPE_SIZE)
    return transport, proto


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def find_tree(pid: int | None, marker: str) -> list[psutil.Process]:
    """The process `pid`, its descendants, and every process carrying `marker`."""
    found: dict[int, psutil.Process] = {}
    if pid is not None:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            found[root.pid] = root
            for child in root.children(recursive=True):
                found[child.pid] = child
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid in found or proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(MARKER_ENV) == marker:
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
    return [p for p in found.values() if _alive(p)]


def _signal_all(pgid: int | None, procs: list[psutil.Process], sig: int) -> None:
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def signal_tree(pid: int | None, pgid: int | None, marker: str, sig: int) -> None:
    """Send `sig` to the group and every descendant (used for pause/resume)."""
    _signal_all(pgid, find_tree(pid, marker), sig)


async def kill_tree(
    pid: int | None, pgid: int | None, marker: str, *, grace: float, force: bool = False
) -> int:
    """TERM the whole tree, wait up to `grace` seconds, then KILL what is left.

    Returns the signal that finished the job (SIGTERM or SIGKILL).  Safe to cancel
    only in the sense that signals already sent stay sent; callers shield it.
    """
    procs = await asyncio.to_thread(find_tree, pid, marker)
    if not force:
        _signal_all(pgid, procs, signal.SIGTERM)
        _signal_all(pgid, procs, signal.SIGCONT)  # a stopped process must see its TERM
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            procs = [p for p in procs if _alive(p)]
            if not procs:
                # Anything that forked meanwhile still carries the marker.
                procs = await asyncio.to_thread(find_tree, None, marker)
                if not procs:
                    return signal.SIGTERM
    for _ in range(50):
        procs = await asyncio.to_thread(find_tree, pid, marker)
        if not procs:
            break
        _signal_all(pgid, procs, signal.SIGKILL)
        await asyncio.sleep(0.02)
    return signal.SIGKILL
