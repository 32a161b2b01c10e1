"""Losing the terminal: the app's process is gone within seconds; its sessions run on."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import wait_gone_for
from tests.test_e2e_tmux import TMUX, Tmux, ccx, sessions

pytestmark = [
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed"),
    pytest.mark.timeout(90),
]

SESSIONS = 10
DEADLINE = 30.0
"""Generous: ending takes about a second; only a hang runs into it."""


def _live_apps(data: Path) -> list[psutil.Process]:
    """The ccx-tui app processes on `data` still alive (not zombies; not its engine
    process, which outlives them on purpose)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if str(data) in cmdline and "ccx_tui" in cmdline and "engine" not in cmdline:
            if proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def _wait_app_gone(data: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    while apps := _live_apps(data):
        if time.monotonic() > deadline:
            raise AssertionError(f"the app is still there: {[p.pid for p in apps]}")
        time.sleep(0.05)


def test_losing_the_terminal_detaches(tmp_path: Path) -> None:
    """Ten running sessions, and the terminal dies (SIGHUP).

    Round 1 killed every session then (and before that fix, the app hung for good
    writing to the dead terminal).  Now the app is gone within seconds and every
    session runs on in the engine process, its output byte-exact across the hangup;
    `ccx-tui kill --all` then ends them all, leaving no process behind.
    """
    data = tmp_path / "data"
    tmux = Tmux(tmp_path)
    lines = 3000
    counter = f"i=0; while [ $i -lt {lines} ]; do echo line-$i; i=$((i+1)); done; sleep 1000"
    try:
        commands = [f"trap '' TERM; echo up-{i}; sleep 100{i}" for i in range(SESSIONS - 1)]
        # The counter starts after a moment, so it prints across the hangup.
        tmux.start(
            ccx("--no-config", "--data-dir", str(data), "--kill-grace", "2", *commands, counter)
        )
        tmux.wait_screen(
            lambda s: f"running {SESSIONS}/16" in s, f"{SESSIONS} sessions running", timeout=30
        )
    finally:
        tmux.close()  # the terminal dies: kill-server closes the pane's pty
    _wait_app_gone(data)
    listed = sessions(data)
    assert [s["state"] for s in listed.values()] == ["running"] * SESSIONS
    transcript = Path(listed[counter]["transcript"])
    # A terminal session: the bytes its terminal delivered (a newline is CRLF there).
    expected = "".join(f"line-{i}\r\n" for i in range(lines)).encode()
    deadline = time.monotonic() + DEADLINE
    while transcript.read_bytes() != expected:
        assert time.monotonic() < deadline, "the counter's output is not byte-exact"
        time.sleep(0.05)
    kill = subprocess.run(
        ccx("kill", "--all", "--data-dir", str(data)), capture_output=True, text=True, timeout=60
    )
    assert kill.returncode == 0, kill.stderr
    assert f"killed {SESSIONS} session(s)" in kill.stdout
    assert wait_gone_for(data, timeout=DEADLINE) == []
    assert {s["state"] for s in sessions(data).values()} == {"killed"}


def test_quit_and_kill_then_hangup_kills_every_session(tmp_path: Path) -> None:
    """`q` `k` (kill and quit), and the terminal dies while the kill is under way (the
    sessions ignore SIGTERM: it takes the 2 s grace).  The engine process finishes
    the kill whatever becomes of the app: no session process is left."""
    data = tmp_path / "data"
    tmux = Tmux(tmp_path)
    try:
        commands = [f"trap '' TERM; sleep 100{i}" for i in range(SESSIONS)]
        tmux.start(ccx("--no-config", "--data-dir", str(data), "--kill-grace", "2", *commands))
        tmux.wait_screen(
            lambda s: f"running {SESSIONS}/16" in s, f"{SESSIONS} sessions running", timeout=30
        )
        tmux.send("q")
        tmux.wait_for_screen("still running or queued")
        tmux.send("k")
        tmux.wait_for_screen("stopping sessions")  # the kill is under way, then:
    finally:
        tmux.close()
    _wait_app_gone(data)
    assert wait_gone_for(data, timeout=DEADLINE) == []
    assert {s["state"] for s in sessions(data).values()} == {"killed"}
