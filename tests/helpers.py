"""Shared test helpers: polling with a deadline and finding our processes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import psutil

from ccx_tui.engine.process import MARKER_ENV


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
