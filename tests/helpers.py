"""Shared test helpers: polling with a deadline and finding our processes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from ccx_tui.engine.sessions.process import MARKER_ENV


async def until(
    predicate: Callable[[], bool], timeout: float = 20.0, what: str | Callable[[], str] = ""
) -> None:
    """Poll `predicate` until it holds; fail after `timeout` seconds (never a fixed sleep).

    `what` names the wait in the failure (a callable: computed then, to show the state).
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out waiting for {said or predicate}")
        await asyncio.sleep(0.01)


def marked_processes(prefix: str = "") -> list[psutil.Process]:
    """Live (non-zombie) processes whose ccx-tui marker starts with `prefix`."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            marker = proc.environ().get(MARKER_ENV)
            if marker is not None and marker.startswith(prefix):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
    return found


def live_markers() -> list[str]:
    """The ccx-tui markers of every live (non-zombie) process."""
    markers = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            marker = proc.environ().get(MARKER_ENV)
            if marker is not None and proc.status() != psutil.STATUS_ZOMBIE:
                markers.append(marker)
    return markers


def wait_gone(prefix: str, timeout: float = 10.0) -> list[psutil.Process]:
    """Processes with the marker still alive after `timeout` (empty means all gone)."""
    deadline = time.monotonic() + timeout
    left = marked_processes(prefix)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = marked_processes(prefix)
    return left


def wait_gone_for(data_dir: Path, timeout: float = 10.0) -> list[psutil.Process]:
    """Processes of the sessions recorded in `data_dir` still alive after `timeout`.

    Scoped to this data dir's sessions (their markers start with the session id), so
    a test sees its own leftovers and never another test's, or another run's, on the
    same machine.
    """
    deadline = time.monotonic() + timeout
    while True:
        sessions = data_dir / "sessions"
        ids = [d.name for d in sessions.iterdir()] if sessions.is_dir() else []
        left = [p for p in marked_processes() if _marker_of(p).split(".")[0] in ids]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _marker_of(proc: psutil.Process) -> str:
    try:
        return proc.environ().get(MARKER_ENV, "")
    except psutil.Error:
        return ""


def stop_engines_under(root: Path) -> None:
    """Stop the engine processes of every data dir under `root` (apps detach on exit,
    leaving them running, as they should for users; a test's must end with it)."""
    from ccx_tui.engine.server.daemon_client import stop_engine

    for lock in root.rglob("engine.lock"):
        stop_engine(lock.parent)
