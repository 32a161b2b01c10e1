"""`keys`: key-press-to-screen latency in the real app in tmux while another tab floods.

Tab 1 holds `seq 1 200000`; tab 2 is `yes ...` at full speed (baseline: `sleep 1000`). After
switching to tab 1, `g` (top) and `G` (bottom) alternate; each is timed from `send-keys` until
`capture-pane` shows the expected screen (`1` on the first content row, `200000` in view).
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import time
from pathlib import Path

import psutil

from bench.common import PY, Row, fmt_ratio, yes_no
from ccx_tui.engine.server.daemon_client import stop_engine

TARGET_RATIO = 2.0
GIVE_UP = 30.0
LAST = "200000"
VIEWER = f"seq 1 {LAST}; sleep 1000"
FLOOD = "yes flood-line-of-some-length"
IDLE = "sleep 1000"
FIRST_ROW = 2  # tab bar and its underline come first


class _Tmux:
    def __init__(self, tag: str) -> None:
        self.argv = ["tmux", "-L", f"bench-keys-{os.getpid()}-{tag}", "-f", "/dev/null"]

    def __call__(self, *args: str, check: bool = True) -> str:
        return subprocess.run(
            [*self.argv, *args], capture_output=True, text=True, check=check
        ).stdout

    def content(self) -> list[str]:
        """The transcript column of each screen row (left of the sidebar's `▏`)."""
        rows = self("capture-pane", "-p", "-t", "bench", check=False).splitlines()
        return [row.split("▏", 1)[0].strip() for row in rows]


def _wait_for(tmux: _Tmux, ok, what: str) -> float:
    start = time.perf_counter()
    while (now := time.perf_counter() - start) < GIVE_UP:
        if ok(tmux.content()):
            return now
        time.sleep(0.002)
    raise RuntimeError(f"{what} not seen within {GIVE_UP:g} s")


def _at_top(rows: list[str]) -> bool:
    return len(rows) > FIRST_ROW and rows[FIRST_ROW] == "1"


def _at_bottom(rows: list[str]) -> bool:
    return LAST in rows[FIRST_ROW:]


def _case(other: str, reps: int, data_dir: Path, tag: str) -> list[float]:
    """Seconds per key press (g and G alternating, `reps` of each)."""
    tmux = _Tmux(tag)
    app = shlex.join([PY, "-m", "ccx_tui", "--data-dir", str(data_dir), VIEWER, other])
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run(
        [*tmux.argv, "new-session", "-d", "-s", "bench", "-x", "120", "-y", "36", app],
        check=True,
        env=env,
    )
    procs: list[psutil.Process] = []
    socket = ""
    try:
        socket = tmux("display-message", "-p", "#{socket_path}").strip()
        pane = psutil.Process(int(tmux("display-message", "-p", "-t", "bench", "#{pane_pid}")))
        time.sleep(1.0)  # let the app mount before it gets keys
        tmux("send-keys", "-t", "bench", "1")
        _wait_for(tmux, _at_bottom, "tab 1 at its last line")
        procs = [pane, *pane.children(recursive=True)]
        times = []
        for _ in range(reps):
            tmux("send-keys", "-t", "bench", "g")
            times.append(_wait_for(tmux, _at_top, "`1` at the top after g"))
            tmux("send-keys", "-t", "bench", "G")
            times.append(_wait_for(tmux, _at_bottom, f"`{LAST}` after G"))
        return times
    finally:
        tmux("send-keys", "-t", "bench", "q", check=False)
        time.sleep(0.5)
        tmux("send-keys", "-t", "bench", "k", check=False)  # kill them and quit
        _, alive = psutil.wait_procs(procs, timeout=5)
        tmux("kill-server", check=False)
        stop_engine(data_dir)  # the sessions run in the engine process: end them all
        for proc in alive:  # only what this run started under its own pane
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        if socket:
            Path(socket).unlink(missing_ok=True)


def run(reps: int, work: Path) -> list[Row]:
    base = _case(IDLE, reps, work / "keys-idle", "idle")
    ours = _case(FLOOD, reps, work / "keys-flood", "flood")
    med, base_med = statistics.median(ours), statistics.median(base)
    return [
        Row(
            f"keys (g/G x {reps} each in tmux 120x36, other tab `{FLOOD}`; "
            f"max {max(ours) * 1000:.0f} ms)",
            f"{med * 1000:.0f} ms median",
            f"{base_med * 1000:.0f} ms (other tab `{IDLE}`)",
            fmt_ratio(med, base_med),
            f"<= {TARGET_RATIO:g}x",
            yes_no(med <= TARGET_RATIO * base_med),
        )
    ]
