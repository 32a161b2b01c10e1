"""`startup`: how long ccx-tui takes to start, against `python -c pass` in the same run.

Two figures, medians of alternating runs: `ccx-tui exec -- true` to its exit (import,
engine, one process, report), and `ccx-tui view FILE` in tmux until its first screen
shows the file's line (import of Textual and the app, first frame).  `python -c pass`
is the floor of any Python program; `python -c "import textual.app"` is what the app's
toolkit alone costs.  Nothing here is a wall-clock threshold: ratios are reported.
Every command runs with bytecode cached in a directory of this run's own, after one
round that is not counted (as an installed ccx-tui starts: a machine that sets
PYTHONDONTWRITEBYTECODE would otherwise compile each module edited since its .pyc).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path

from bench.common import PY, Row, ccx, fmt_ratio, fmt_s, run_timed

ROUNDS = 5
GIVE_UP = 30.0


def _cached_env(work: Path) -> dict[str, str]:
    """The environment of every run: bytecode written to and read from work/pycache."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(work / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _first_screen(source: Path, data_dir: Path, tag: str, env: dict[str, str]) -> float:
    """`ccx-tui view FILE` in a fresh tmux server until the file's line is on screen."""
    tmux = ["tmux", "-L", f"bench-startup-{os.getpid()}-{tag}", "-f", "/dev/null"]
    argv = " ".join([PY, "-m", "ccx_tui", "view", "--data-dir", str(data_dir), str(source)])
    env = {**env, "TERM": "xterm-256color"}
    env.pop("TMUX", None)
    start = time.perf_counter()
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "bench", "-x", "120", "-y", "36", argv],
        check=True,
        env=env,
    )
    try:
        while (elapsed := time.perf_counter() - start) < GIVE_UP:
            screen = subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", "bench"], capture_output=True, text=True
            ).stdout
            if "startup-bench-line" in screen:
                return elapsed
            time.sleep(0.002)
        raise RuntimeError(f"the first screen did not show within {GIVE_UP:g} s")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def run(work: Path) -> list[Row]:
    source = work / "startup.txt"
    source.write_text("startup-bench-line\n")
    floor: list[float] = []
    toolkit: list[float] = []
    execs: list[float] = []
    screens: list[float] = []
    env = _cached_env(work)
    exec_argv = ccx("exec", "--data-dir", str(work / "startup-data"), "--", "true")
    for i in range(ROUNDS + 1):  # round 0 writes the bytecode: not counted
        runs = (
            run_timed([PY, "-c", "pass"], env=env).seconds,
            run_timed([PY, "-c", "import textual.app"], env=env).seconds,
            run_timed(exec_argv, env=env).seconds,
            _first_screen(source, work / "startup-view", str(i), env),
        )
        if i:
            for figures, seconds in zip((floor, toolkit, execs, screens), runs, strict=True):
                figures.append(seconds)
    base, tk = statistics.median(floor), statistics.median(toolkit)
    ex, sc = statistics.median(execs), statistics.median(screens)
    return [
        Row(
            f"startup: `ccx-tui exec -- true` to its exit (median of {ROUNDS} alternating)",
            fmt_s(ex),
            f"{fmt_s(base)} (python -c pass)",
            fmt_ratio(ex, base),
            "(reported)",
            "-",
        ),
        Row(
            "startup: `ccx-tui view FILE` in tmux until the file shows"
            f" (`import textual.app` alone {fmt_s(tk)})",
            fmt_s(sc),
            f"{fmt_s(base)} (python -c pass)",
            fmt_ratio(sc, base),
            "(reported)",
            "-",
        ),
    ]
