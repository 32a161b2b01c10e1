"""`open`: `ccx-tui view FILE` in tmux until the last line shows, vs `tail -n 50 FILE`."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import psutil

from bench.common import PY, Row, fmt_mb, fmt_ratio, fmt_s, line_text, run_timed, yes_no

TARGET_SECONDS = 1.0
JUMP_LINE = 5_000_000  # 1-based, as the user types it
GIVE_UP = 60.0


def _tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run(source: Path, lines: int, work: Path) -> list[Row]:
    size_mib = source.stat().st_size >> 20
    base = run_timed(["tail", "-n", "50", str(source)])
    last = line_text(lines - 1).decode().split(".")[0].strip()  # e.g. "line 0001048575"

    tmux = ["tmux", "-L", f"bench-{os.getpid()}", "-f", "/dev/null"]
    data_dir = work / "view-data"
    command = shlex.join([PY, "-m", "ccx_tui", "view", "--data-dir", str(data_dir), str(source)])
    env = {**os.environ, "TERM": "xterm-256color"}
    start = time.perf_counter()
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "bench", "-x", "120", "-y", "36", command],
        check=True,
        env=env,
    )
    seen: float | None = None
    rss = 0
    jumps: dict[str, float | None] = {}

    def capture() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "bench"], capture_output=True, text=True
        ).stdout

    def wait_for(text: str, first_row: bool = False) -> float | None:
        """Seconds until `text` shows (in the first row only, if asked), or None."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < GIVE_UP:
            shown = capture()
            if text in (shown.split("\n")[0] if first_row else shown):
                return time.perf_counter() - t0
            time.sleep(0.01)
        return None

    def send(*keys: str) -> None:
        subprocess.run([*tmux, "send-keys", "-t", "bench", *keys], check=True)

    target = min(JUMP_LINE, lines // 2)
    try:
        pane_pid = int(
            subprocess.run(
                [*tmux, "display-message", "-p", "-t", "bench", "#{pane_pid}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        while time.perf_counter() - start < GIVE_UP:
            screen = subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", "bench"], capture_output=True, text=True
            ).stdout
            if last in screen:
                seen = time.perf_counter() - start
                break
            time.sleep(0.02)
        time.sleep(0.5)  # let it settle before reading memory
        rss = _tree_rss(pane_pid)
        if seen is not None and wait_for(f"of {lines}") is not None:  # indexed
            send(":")
            if wait_for("Go to line") is not None:
                send("-l", str(target))
                send("Enter")
                jumps["line"] = wait_for(line_text(target - 1).decode().split(".")[0].strip())
                send("g")
                jumps["top"] = wait_for(line_text(0).decode().split(".")[0].strip(), True)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)

    if seen is None:
        ours, ratio, met = f"last line not seen in {GIVE_UP:g} s", "-", "**no**"
    else:
        ours, ratio, met = fmt_s(seen), fmt_ratio(seen, base.seconds), yes_no(seen <= 1.2)
    return [
        Row(
            f"open ({size_mib} MiB line file, view in tmux 120x36)",
            ours,
            fmt_s(base.seconds) + " (tail -n 50)",
            ratio,
            f"~{TARGET_SECONDS:g} s absolute",
            met,
        ),
        *[
            Row(
                f"jump ({what}, `{keys}` once the file is indexed)",
                "not seen" if jumps.get(key) is None else fmt_s(jumps[key] or 0.0),
                "-",
                "-",
                "(reported)",
                "-" if jumps.get(key) is not None else "**no**",
            )
            for key, what, keys in [
                ("line", f"last screen to line {target:,}", f":{target}"),
                ("top", f"line {target:,} to the top", "g"),
            ]
        ],
        Row(
            "open: viewer RSS after opening",
            fmt_mb(rss),
            "-",
            "-",
            "(reported)",
            "-",
        ),
    ]
