"""Spawning one session's process and killing its whole tree.

A child runs in a new session (so its own process group) with stdin from /dev/null
and both pipes drained by an asyncio protocol.  Every child carries the environment
variable `MARKER_ENV` naming its session run, so descendants that left the group
(`setsid`, double forks) are still found and killed.  ccx-tui's own secrets
(`SECRET_ENV` and whatever the caller adds) never reach a child: they are removed from
the inherited environment (a session's own declared env may still set them).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Mapping

import psutil

MARKER_ENV = "CCX_TUI_SESSION"
SECRET_ENV = frozenset({"CCX_TUI_TOKEN"})
"""Variables of ccx-tui's own that no session inherits, whatever the configuration."""
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
    scrub: frozenset[str] = SECRET_ENV,
    base: Mapping[str, str] | None = None,
) -> tuple[asyncio.SubprocessTransport, OutputProtocol]:
    """Start `argv` in its own session; raises OSError if it cannot be started.

    The child inherits `base` (default: our environment) minus `scrub` and
    `SECRET_ENV`, plus `env`.
    """
    full_env = child_env(env, scrub, base)
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


def child_env(
    env: dict[str, str],
    scrub: frozenset[str] = SECRET_ENV,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`base` (default: our environment) without the secret variables, updated with
    `env`.  A marker in `base` (the client's own session's) is dropped too."""
    hidden = scrub | SECRET_ENV | {MARKER_ENV}
    source = os.environ if base is None else base
    full_env = {k: v for k, v in source.items() if k not in hidden}
    full_env.update(env)
    return full_env


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


def find_marked(markers: Collection[str]) -> dict[str, list[psutil.Process]]:
    """Live processes (and their descendants) carrying one of `markers`, by marker:
    one pass over every process, however many markers."""
    wanted = set(markers)
    found: dict[str, dict[int, psutil.Process]] = {}
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error):
            marker = proc.environ().get(MARKER_ENV)
            if marker in wanted:
                group = found.setdefault(marker, {})
                group[proc.pid] = proc
                for child in proc.children(recursive=True):
                    group[child.pid] = child
    return {m: [p for p in g.values() if _alive(p)] for m, g in found.items()}


async def kill_marked(markers: Collection[str], *, grace: float) -> set[str]:
    """TERM every process carrying one of `markers`, wait up to `grace` seconds, then
    KILL what is left (for the trees of a ccx-tui that died).  Returns the markers
    that had live processes.  Signals already sent stay sent if cancelled."""
    found = await asyncio.to_thread(find_marked, markers)
    found = {m: procs for m, procs in found.items() if procs}
    procs = [p for group in found.values() for p in group]
    if not procs:
        return set()
    _signal_all(None, procs, signal.SIGTERM)
    _signal_all(None, procs, signal.SIGCONT)  # a stopped process must see its TERM
    deadline = time.monotonic() + grace
    while procs and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        procs = [p for p in procs if _alive(p)]
    for _ in range(50):
        left = await asyncio.to_thread(find_marked, found)
        procs = [p for group in left.values() for p in group]
        if not procs:
            break
        _signal_all(None, procs, signal.SIGKILL)
        await asyncio.sleep(0.02)
    return set(found)
