"""`attached`: `cat FILE` as a session with the app attached and following it, vs `exec`.

The app runs in tmux (120x36) with `cat FILE` as its one session, whose tab it shows and
follows. Its time is the session's own run (started_at to ended_at in its meta.json, both set
by the engine: from the process starting to its last byte being in the transcript), so the
app's and the engine's start-up are not in it; the baseline is the same figure of a headless
`ccx-tui exec -- cat FILE` (which runs its engine in-process, its stdout to /dev/null), and
`cat FILE > OUT` is the floor. The app's state is polled from meta.json (a small file read
every POLL seconds, no process started), and the engine's RSS is sampled at the same time.
Each timed run starts after `sync`: otherwise the run that follows another's 1 GiB of writes
pays for their writeback, and the ratio measured the order of the runs (exec after the
floor, the app after exec) more than the app (the same code gave 1.0x and 2.0x).
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.common import PY, Row, ccx, fmt_mb, fmt_ratio, fmt_s, line_text, run_timed, yes_no
from bench.ingest import take_transcript
from bench.switch import cleanup
from ccx_tui.engine.server.daemon_client import stop_engine
from ccx_tui.engine.server.paths import engine_pid
from ccx_tui.engine.sessions.session import State

TARGET = 1.2
ROUNDS = 5
"""Headless and attached alternate this many times; medians are compared (disk timings on
this VM swing from one minute to the next)."""
POLL = 0.05
GIVE_UP = 300.0  # 1 GiB on a slow disk, with a loaded machine


@dataclass(frozen=True, slots=True)
class Attached:
    run: float  # the session's own started_at -> ended_at
    wall: float  # from starting the app to the session's state final
    shown: float  # from starting the app to its last line on screen
    engine_rss: tuple[int, int]  # first sample once the session is on, peak
    app_rss: int  # peak
    intact: bool
    got: int


def _meta(data_dir: Path) -> dict[str, object] | None:
    """The one session's meta.json, None until it is there and readable whole."""
    for path in (data_dir / "sessions").glob("*/meta.json"):
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):  # not written yet, or caught mid-write
            return None
        return data if isinstance(data, dict) else None
    return None


def _run_seconds(meta: dict[str, object]) -> float:
    started, ended = meta.get("started_at"), meta.get("ended_at")
    if not isinstance(started, float | int) or not isinstance(ended, float | int):
        raise RuntimeError(f"session has no start or end time: {meta}")
    return float(ended) - float(started)


def _rss(proc: psutil.Process | None) -> int:
    if proc is None:
        return 0
    try:
        return int(proc.memory_info().rss)
    except psutil.NoSuchProcess:
        return 0


def headless(source: Path, data_dir: Path, *, verify_hash: bool) -> tuple[float, float, bool, int]:
    """(session run, process wall, transcript intact, its size) of `exec -- cat FILE`."""
    done = run_timed(ccx("exec", "--data-dir", str(data_dir), "--", f"cat '{source}'"))
    meta = _meta(data_dir)
    if meta is None:
        raise RuntimeError(f"exec left no meta.json in {data_dir}")
    seconds = _run_seconds(meta)
    intact, got = take_transcript(data_dir, source, done.returncode == 0, verify_hash=verify_hash)
    return seconds, done.seconds, intact, got


def attached(source: Path, data_dir: Path, tag: str, *, verify_hash: bool) -> Attached:
    """The app in tmux with `cat FILE` as its session, until the session has ended and its
    last line is on screen."""
    tmux = ["tmux", "-L", f"bench-attached-{os.getpid()}-{tag}", "-f", "/dev/null"]
    # On pipes, as `exec` runs it: the same bytes (a terminal would write CRLF) through
    # the same capture path, so the ratio is the UI's cost alone.
    argv = [PY, "-m", "ccx_tui", "--no-tty", "--data-dir", str(data_dir), f"cat '{source}'"]
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("TMUX", None)
    last = line_text(source.stat().st_size // 64 - 1).decode().split(".")[0].strip()
    engine: psutil.Process | None = None
    app: list[psutil.Process] = []
    socket = ""

    def tmux_out(*args: str) -> str:
        return subprocess.run([*tmux, *args], capture_output=True, text=True).stdout

    def stop_app() -> None:
        subprocess.run([*tmux, "send-keys", "-t", "bench", "q"], capture_output=True)
        _, alive = psutil.wait_procs(app, timeout=10)
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        for proc in alive:  # only what this run started under its own pane
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        if socket:
            Path(socket).unlink(missing_ok=True)

    start = time.perf_counter()
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "bench", "-x", "120", "-y", "36", shlex.join(argv)],
        check=True,
        env=env,
    )
    try:
        socket = tmux_out("display-message", "-p", "#{socket_path}").strip()
        pane = psutil.Process(int(tmux_out("display-message", "-p", "-t", "bench", "#{pane_pid}")))
        app = [pane, *pane.children(recursive=True)]
        first_engine, peak_engine, peak_app = 0, 0, 0
        meta: dict[str, object] | None = None
        wall: float | None = None
        while (now := time.perf_counter() - start) < GIVE_UP:
            if engine is None and (pid := engine_pid(data_dir)) is not None:
                engine = psutil.Process(pid)
            rss = _rss(engine)
            peak_engine = max(peak_engine, rss)
            peak_app = max(peak_app, sum(_rss(p) for p in app))
            meta = _meta(data_dir)
            if meta is not None and not first_engine:  # the engine is up, the session on
                first_engine = rss
            state = meta.get("state") if meta else None
            if isinstance(state, str) and State(state).final:
                wall = now
                break
            time.sleep(POLL)
        if meta is None or wall is None:
            raise RuntimeError(f"the session did not end within {GIVE_UP:g} s")
        # Following the tab, the app shows the file's last line once it has caught up.
        while (shown := time.perf_counter() - start) < GIVE_UP:
            if last in tmux_out("capture-pane", "-p", "-t", "bench"):
                break
            time.sleep(POLL)
        else:
            raise RuntimeError(f"`{last}` not on screen within {GIVE_UP:g} s")
        peak_engine = max(peak_engine, _rss(engine))
        ok = meta.get("state") == State.EXITED.value and meta.get("exit_code") == 0
        intact, got = take_transcript(data_dir, source, ok, verify_hash=verify_hash)
        return Attached(
            _run_seconds(meta), wall, shown, (first_engine, peak_engine), peak_app, intact, got
        )
    finally:
        cleanup(stop_app, lambda: stop_engine(data_dir))


def run(source: Path, work: Path, *, verify_hash: bool) -> list[Row]:
    size = source.stat().st_size
    out = work / "attached-floor.out"
    floors: list[float] = []
    heads: list[tuple[float, float, bool, int]] = []
    ours: list[Attached] = []
    for i in range(ROUNDS):
        os.sync()
        floors.append(run_timed(["sh", "-c", f"cat '{source}' > '{out}'"]).seconds)
        out.unlink()
        os.sync()
        heads.append(headless(source, work / f"attached-exec-{i}", verify_hash=verify_hash))
        os.sync()
        ours.append(attached(source, work / f"attached-app-{i}", str(i), verify_hash=verify_hash))
    floor = statistics.median(floors)
    head_run = statistics.median(h[0] for h in heads)
    head_wall = statistics.median(h[1] for h in heads)
    our_run = statistics.median(a.run for a in ours)
    intact = all(h[2] for h in heads) and all(a.intact for a in ours)
    sizes = {h[3] for h in heads} | {a.got for a in ours}
    check = ("sha256" if verify_hash else "size") + " ok"
    note = check if intact else f"**transcript sizes {sorted(sizes)} of {size} bytes**"
    first = min(a.engine_rss[0] for a in ours)
    peak = max(a.engine_rss[1] for a in ours)
    return [
        Row(
            f"attached ({size >> 20} MiB `cat` in the app in tmux 120x36, following its tab; "
            f"{note}; session run, median of {ROUNDS} alternating; from starting the app: "
            f"ended {statistics.median(a.wall for a in ours):.2f} s, last line on screen "
            f"{statistics.median(a.shown for a in ours):.2f} s; exec's whole process "
            f"{head_wall:.2f} s; `cat > file` {floor:.2f} s)",
            fmt_s(our_run),
            fmt_s(head_run) + " (exec, same figure)",
            fmt_ratio(our_run, head_run),
            f"<= {TARGET:g}x",
            yes_no(intact and our_run <= TARGET * head_run),
        ),
        Row(
            f"attached: engine process RSS while it ingests {size >> 20} MiB "
            f"(sampled every {POLL * 1000:.0f} ms; app's peak "
            f"{fmt_mb(max(a.app_rss for a in ours))})",
            fmt_mb(peak) + " peak",
            fmt_mb(first) + " (as the session starts)",
            "+" + fmt_mb(peak - first),
            "flat (reported)",
            "-",
        ),
    ]
