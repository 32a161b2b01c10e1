"""Losing the terminal: the app's process is gone within seconds, its sessions too."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import wait_gone_for
from tests.test_e2e_tmux import TMUX, Tmux, ccx

pytestmark = [
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed"),
    pytest.mark.timeout(90),
]

SESSIONS = 10
DEADLINE = 30.0
"""Generous: ending takes about a second; only a hang runs into it."""


def _live_apps(data: Path) -> list[psutil.Process]:
    """The ccx-tui processes serving `data` that are still alive (not zombies)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if str(data) in cmdline and "ccx_tui" in cmdline:
            if proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def _wait_all_gone(data: Path) -> None:
    """The app and every process of its sessions end before DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while apps := _live_apps(data):
        if time.monotonic() > deadline:
            raise AssertionError(f"the app is still there: {[p.pid for p in apps]}")
        time.sleep(0.05)
    assert wait_gone_for(data, timeout=max(0.0, deadline - time.monotonic())) == []


@pytest.mark.parametrize("answer_quit", [True, False], ids=["quit-then-hangup", "hangup"])
def test_the_process_ends_when_its_terminal_dies(tmp_path: Path, answer_quit: bool) -> None:
    """Ten running sessions; `q` `y` (or nothing), and the terminal dies.

    Before the fix the app hung for good: the kernel's SIGCONT after the SIGHUP made
    Textual restart application mode, the main thread blocked writing to the dead
    terminal, and the SIGHUP handler, queued on that blocked loop, never ran (the
    process stayed, burning CPU on the deleted tty). Now it is gone within seconds
    and so is every session process.
    """
    data = tmp_path / "data"
    tmux = Tmux(tmp_path)
    try:
        # Sessions that ignore SIGTERM: the quit takes the kill grace (2 s), so the
        # terminal surely dies while it is under way.
        commands = [f"trap '' TERM; sleep 100{i}" for i in range(SESSIONS)]
        tmux.start(ccx("--no-config", "--data-dir", str(data), "--kill-grace", "2", *commands))
        tmux.wait_screen(
            lambda s: f"running {SESSIONS}/16" in s, f"{SESSIONS} sessions running", timeout=30
        )
        if answer_quit:
            tmux.send("q")
            tmux.wait_for_screen("still running or queued")
            tmux.send("y")
            tmux.wait_for_screen("stopping sessions")  # the quit is under way, then:
    finally:
        tmux.close()  # the terminal dies: kill-server closes the pane's pty
    _wait_all_gone(data)
