"""`switch`: tab-switch key-to-screen latency under load, in the real app, tmux and mprocs.

N sessions each print 100 lines/s (a paced python loop; every line starts `@S<k> line`, so the
screen says which session it shows). Ours: the sessions are started in the engine process
first, then `ccx-tui attach` shows them (the app started with N commands opens their tabs one
by one, and under this load took minutes to open 100). After a warm-up of load, `]`, a digit
and `[` take turns; each switch is timed from `send-keys` until `capture-pane` shows only
session k's lines, at least MIN_ROWS of them. Baselines run the same load in the same run:
tmux itself (an inner tmux client in the outer pane, N windows, keys `C-b n`, `C-b DIGIT`,
`C-b p`) and mprocs (`j`, `j`, `k`: it has no key that jumps to a process by number).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.common import PY, Row, fmt_mb, fmt_ratio, yes_no
from ccx_tui.engine.server.daemon_client import stop_engine
from ccx_tui.engine.server.paths import engine_pid
from ccx_tui.engine.sessions.session import SessionSpec
from ccx_tui.engine.wire.client import EngineClient

RATE = 100  # lines per second per session
MEDIAN_TARGET = 0.050
P90_TARGET = 0.100
MEMORY_TARGET = 100 * 1000 * 1000
"""Issue 14: the whole ccx-tui process tree (app and engine) within 100 MB: what they hold
in memory together, their PSS summed (summing RSS counts their shared pages twice)."""
GIVE_UP = 60.0  # for one switch
READY_GIVE_UP = 300.0  # for the first screen: attaching to 100 busy sessions takes a while
SETTLE = 0.2  # seconds between two switches: each starts from a screen that is done drawing
POLL = 0.002
MIN_ROWS = 20  # a screen showing fewer rows of the session is still drawing
WIDTH, HEIGHT = 120, 36
TAG = re.compile(r"@S(\d+) line ")
MPROCS_HINT = "npm install -g mprocs"

LOAD = """\
import sys, time
tag = sys.argv[1]
out, t0, i = sys.stdout, time.monotonic(), 0
while True:
    out.write(f"@{tag} line {i:07d} of some realistic length {'.' * 40}\\n")
    out.flush()
    i += 1
    due = t0 + i / RATE - time.monotonic()
    if due > 0:  # paced against the start: an overshooting sleep is caught up
        time.sleep(due)
""".replace("RATE", str(RATE))


def _line_bytes(k: int) -> int:
    """Length of every line session k prints (the loop above, with its newline)."""
    return len(f"@S{k} line {0:07d} of some realistic length {'.' * 40}\n")


@dataclass(frozen=True, slots=True)
class Keys:
    """What to send for the next / previous tab and for a jump to tab 1-9 (if any)."""

    next: tuple[str, ...]
    prev: tuple[str, ...]
    jump: Callable[[int], tuple[str, ...]] | None
    shown: str  # for the table


OURS_KEYS = Keys(("]",), ("[",), lambda d: (str(d),), "`]`, digit, `[`")
TMUX_KEYS = Keys(("C-b", "n"), ("C-b", "p"), lambda d: ("C-b", str(d)), "C-b n/DIGIT/p")
MPROCS_KEYS = Keys(("j",), ("k",), None, "j, j, k")


Step = tuple[tuple[str, ...], int]
"""Keys to send, and the 1-based tab they show."""


def plan(reps: int, sessions: int, keys: Keys) -> list[Step]:
    """(keys to send, 1-based tab then shown) for `reps` switches starting on tab 1: next, a
    jump (or next), previous, in turn; previous from tab 1 wraps to the last tab."""
    current, steps = 1, []
    for i in range(reps):
        if i % 3 == 1 and keys.jump is not None:
            target = (current + 3) % 9 + 1  # 1-9 and never the current tab
            steps.append((keys.jump(target), target))
        elif i % 3 == 2:
            target = (current - 2) % sessions + 1
            steps.append((keys.prev, target))
        else:
            target = current % sessions + 1
            steps.append((keys.next, target))
        current = target
    return steps


class Tmux:
    """A tmux server of this run's own (`-L`), no user config."""

    def __init__(self, tag: str, config: Path | None = None) -> None:
        conf = str(config) if config else "/dev/null"
        self.name = f"bench-switch-{os.getpid()}-{tag}"
        self.argv = ["tmux", "-L", self.name, "-f", conf]
        self._server: psutil.Process | None = None
        self._socket = ""

    def __call__(self, *args: str, check: bool = True) -> str:
        return subprocess.run(
            [*self.argv, *args], capture_output=True, text=True, check=check
        ).stdout

    def start(self, command: str, *, height: int = HEIGHT) -> None:
        env = {**os.environ, "TERM": "xterm-256color"}
        env.pop("TMUX", None)  # a bench run from inside tmux still gets servers of its own
        subprocess.run(
            [*self.argv, "new-session", "-d", "-s", "bench", "-x", str(WIDTH), "-y", str(height)]
            + [command],
            check=True,
            env=env,
        )
        self._socket = self("display-message", "-p", "#{socket_path}").strip()
        self._server = psutil.Process(int(self("display-message", "-p", "#{pid}")))

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "bench", check=False)

    def pane_procs(self) -> list[psutil.Process]:
        """The pane's process and everything under it."""
        pane = psutil.Process(int(self("display-message", "-p", "-t", "bench", "#{pane_pid}")))
        return [pane, *pane.children(recursive=True)]

    def server(self) -> psutil.Process:
        assert self._server is not None
        return self._server

    def close(self) -> None:
        """Kill the server, then whatever it started that outlived it (only ours)."""
        procs: list[psutil.Process] = []
        if self._server is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                procs = [self._server, *self._server.children(recursive=True)]
        self("kill-server", check=False)
        _, alive = psutil.wait_procs(procs, timeout=5)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        if self._socket:
            Path(self._socket).unlink(missing_ok=True)


def cleanup(*steps: Callable[[], object]) -> None:
    """Run every step, even after one fails; then raise the first failure."""
    errors: list[Exception] = []
    for step in steps:
        try:
            step()
        except Exception as exc:  # the next steps must still run
            errors.append(exc)
    if errors:
        raise errors[0]


def shows(screen: str, k: int) -> bool:
    """Whether the screen shows session k's lines, and only its (a frame done drawing)."""
    tags = TAG.findall(screen)
    return len(tags) >= MIN_ROWS and all(tag == str(k) for tag in tags)


def wait_screen(
    tmux: Tmux, ok: Callable[[str], bool], what: str, start: float, give_up: float = GIVE_UP
) -> float:
    """Seconds from `start` until `ok(screen)`; raises naming `what` past `give_up`."""
    while (now := time.perf_counter() - start) < give_up:
        if ok(tmux.screen()):
            return now
        time.sleep(POLL)
    raise RuntimeError(f"{what} not on screen within {give_up:g} s")


def wait_session(tmux: Tmux, k: int, start: float, give_up: float = GIVE_UP) -> float:
    return wait_screen(tmux, lambda screen: shows(screen, k), f"session S{k}", start, give_up)


class _Cpu:
    """CPU seconds of groups of processes over a window, as % of one core."""

    def __init__(self, groups: dict[str, list[psutil.Process]]) -> None:
        self.groups = groups
        self._mark = self._now()

    def _now(self) -> tuple[float, dict[str, float]]:
        used: dict[str, float] = {}
        for name, procs in self.groups.items():
            used[name] = 0.0
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = proc.cpu_times()
                    used[name] += times.user + times.system
        return time.perf_counter(), used

    def lap(self) -> dict[str, float]:
        """% of one core each group used since the last lap (or the start)."""
        (t0, before), (t1, after) = self._mark, self._now()
        self._mark = (t1, after)
        return {name: 100 * (after[name] - before[name]) / (t1 - t0) for name in after}

    def memory(self) -> Memory:
        """Memory of every process of every group now."""
        rss = pss = 0
        for procs in self.groups.values():
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    full = proc.memory_full_info()  # (reads smaps: a few ms)
                    rss += full.rss
                    pss += full.pss
        return Memory(rss, pss)


@dataclass(frozen=True, slots=True)
class Memory:
    """A group of processes' memory, in bytes.  `rss` sums each one's resident memory,
    counting the pages they share (the libraries, Python's own) once per process;
    `pss` shares each page out among the processes that map it, so its sum is what the
    group holds in memory together (as `smem` reports it)."""

    rss: int
    pss: int

    def __str__(self) -> str:
        return f"{fmt_mb(self.pss)} PSS ({fmt_mb(self.rss)} RSS summed)"


@dataclass(frozen=True, slots=True)
class Result:
    times: list[float]
    ready: float  # from starting the UI to its first screen of session lines
    cpu_load: dict[str, float]  # during the warm-up: the load alone
    cpu_switch: dict[str, float]  # during the switches
    lines_per_s: float | None  # the load the engine took in (ours only)
    memory_peak: Memory  # all groups' processes, sampled after the warm-up and each switch

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p90(self) -> float:
        return statistics.quantiles(self.times, n=10, method="inclusive")[-1]


def measure(
    tmux: Tmux,
    ready: float,
    groups: dict[str, list[psutil.Process]],
    warmup: float,
    steps: list[Step],
    lines: Callable[[], float] | None = None,
) -> Result:
    """Let the load run `warmup` seconds more, then time each switch of `steps`."""
    cpu = _Cpu(groups)
    start, lines0 = time.perf_counter(), lines() if lines else 0.0
    time.sleep(warmup)
    cpu_load = cpu.lap()
    peak = cpu.memory()
    times = []
    for keys, target in steps:
        time.sleep(SETTLE)
        sent = time.perf_counter()
        tmux("send-keys", "-t", "bench", *keys)
        times.append(wait_session(tmux, target, sent))
        now = cpu.memory()  # after the timing: never inside it
        peak = Memory(max(peak.rss, now.rss), max(peak.pss, now.pss))
    cpu_switch = cpu.lap()
    rate = (lines() - lines0) / (time.perf_counter() - start) if lines else None
    return Result(times, ready, cpu_load, cpu_switch, rate, peak)


def _commands(script: Path, sessions: int) -> list[list[str]]:
    return [[PY, "-S", str(script), f"S{k}"] for k in range(1, sessions + 1)]


def _transcript_lines(data_dir: Path) -> float:
    """Lines in every session's transcript (sizes over each session's line length)."""
    total = 0.0
    for path in (data_dir / "sessions").glob("*/transcript.log"):
        with contextlib.suppress(OSError), path.open("rb") as f:
            first = f.readline()
            if match := TAG.match(first.decode(errors="replace")):
                total += path.stat().st_size / _line_bytes(int(match.group(1)))
    return total


async def start_in_engine(data_dir: Path, commands: list[str]) -> None:
    """Start the sessions in the data dir's engine process (started first), then detach."""
    client = EngineClient(data_dir, engine_args=("--max-sessions", str(len(commands))))
    await client.open()
    try:
        for command in commands:
            await client.start(SessionSpec(command))
    finally:
        await client.aclose()


def ours(sessions: int, warmup: float, reps: int, script: Path, work: Path) -> Result:
    """The app attached to an engine already running the sessions (started with N commands
    on a loaded machine, the app opens their tabs too slowly to wait for: see the notes)."""
    data_dir = work / "switch-ours"
    commands = [shlex.join(argv) for argv in _commands(script, sessions)]
    return in_app(
        "ours",
        data_dir,
        commands,
        lambda screen: shows(screen, sessions),  # it shows the latest session
        warmup,
        plan(reps, sessions, OURS_KEYS),
        lambda: _transcript_lines(data_dir),
    )


def in_app(
    tag: str,
    data_dir: Path,
    commands: list[str],
    first: Callable[[str], bool],
    warmup: float,
    steps: list[Step],
    lines: Callable[[], float] | None = None,
) -> Result:
    """`ccx-tui attach` to an engine of `data_dir` started first with `commands`, from the
    first screen (`first(screen)` holds) on tab 1, switched by `steps`."""
    app_argv = [PY, "-m", "ccx_tui", "attach", "--data-dir", str(data_dir), "--on-exit", "detach"]
    tmux = Tmux(tag)
    try:
        asyncio.run(start_in_engine(data_dir, commands))
        start = time.perf_counter()
        tmux.start(shlex.join(app_argv))
        ready = wait_screen(tmux, first, "the app's first screen", start, READY_GIVE_UP)
        tmux("send-keys", "-t", "bench", "1")
        wait_session(tmux, 1, time.perf_counter())
        app = [p for p in tmux.pane_procs() if "ccx_tui" in " ".join(cmdline(p))]
        pid = engine_pid(data_dir)
        if not app or pid is None:
            raise RuntimeError("app or engine process not found")
        groups = {"app": app, "engine": [psutil.Process(pid)]}
        return measure(tmux, ready, groups, warmup, steps, lines)
    finally:  # the sessions run in the engine process: stopping it ends them all
        cleanup(lambda: quit_app(tmux), tmux.close, lambda: stop_engine(data_dir))


def quit_app(tmux: Tmux) -> None:
    """Quit the app (it detaches, as --on-exit says) and wait for it."""
    with contextlib.suppress(psutil.NoSuchProcess, subprocess.CalledProcessError, ValueError):
        procs = tmux.pane_procs()
        tmux("send-keys", "-t", "bench", "q", check=False)
        psutil.wait_procs(procs, timeout=10)


def cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def with_tmux(sessions: int, warmup: float, reps: int, script: Path, work: Path) -> Result:
    commands = [shlex.join(argv) for argv in _commands(script, sessions)]
    return in_tmux("", commands, warmup, plan(reps, sessions, TMUX_KEYS), work)


def in_tmux(tag: str, commands: list[str], warmup: float, steps: list[Step], work: Path) -> Result:
    """tmux itself under the load of `commands` (window k runs the k-th), switched by
    `steps`: an inner server runs them, a client of it runs in the outer pane."""
    conf = work / f"switch-inner{tag}.conf"
    conf.write_text("set -g base-index 1\n")  # windows 1..N, as the app's tabs
    inner, outer = Tmux(f"inner{tag}", conf), Tmux(f"outer{tag}")
    try:
        inner.start(commands[0], height=HEIGHT - 1)  # less its status line
        for command in commands[1:]:
            inner("new-window", "-d", "-t", "bench:", command)
        inner("select-window", "-t", "bench:1")
        client = shlex.join(["env", "-u", "TMUX", *inner.argv, "attach", "-t", "bench"])
        start = time.perf_counter()
        outer.start(client)
        ready = wait_session(outer, 1, start, READY_GIVE_UP)
        clients = [p for p in outer.pane_procs() if p.name() == "tmux"]
        groups = {"tmux": [inner.server(), *clients]}
        return measure(outer, ready, groups, warmup, steps)
    finally:
        cleanup(outer.close, inner.close)


def mprocs_binary() -> Path | None:
    """The mprocs executable: npm's package runs it from a node script; run it directly."""
    found = shutil.which("mprocs")
    if found is None:
        return None
    path = Path(found).resolve()
    if path.suffix == ".js":
        machine = platform.machine()
        native = sorted(path.parent.glob(f"mprocs-*-linux-{machine}*/mprocs"))
        if native:
            return native[-1]
    return path


def with_mprocs(
    binary: Path, sessions: int, warmup: float, reps: int, script: Path, work: Path
) -> Result:
    procs = [{"cmd": argv} for argv in _commands(script, sessions)]
    return in_mprocs(binary, "", procs, warmup, plan(reps, sessions, MPROCS_KEYS), work)


def in_mprocs(
    binary: Path,
    tag: str,
    procs: list[dict[str, object]],
    warmup: float,
    steps: list[Step],
    work: Path,
) -> Result:
    """mprocs running `procs` (each a process of its config), switched by `steps`."""
    config = work / f"switch-mprocs{tag}.yaml"
    named = {f"p{k:03d}": proc for k, proc in enumerate(procs, 1)}
    config.write_text(json.dumps({"procs": named}))  # JSON is YAML
    tmux = Tmux(f"mprocs{tag}")
    try:
        start = time.perf_counter()
        tmux.start(shlex.join([str(binary), "--config", str(config)]))
        ready = wait_session(tmux, 1, start, READY_GIVE_UP)
        groups = {"mprocs": [p for p in tmux.pane_procs() if p.name() == "mprocs"]}
        return measure(tmux, ready, groups, warmup, steps)
    finally:
        tmux.close()


def mprocs_baseline(run: Callable[[Path], Result]) -> Result | str:
    """`run(mprocs's binary)`, or why it has no result: not installed, or its error
    (a baseline failing is a cell of the table, not a lost row)."""
    binary = mprocs_binary()
    if binary is None:
        return f"not installed (`{MPROCS_HINT}`)"
    try:
        return run(binary)
    except Exception as exc:  # reported in the cell
        return f"error: {type(exc).__name__}: {exc}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def cpu_pair(result: Result) -> str:
    """'app 56% / 63% + engine 18% / 18%': each process group, warm-up / switches."""
    return " + ".join(
        f"{name} {result.cpu_load[name]:.0f}% / {result.cpu_switch[name]:.0f}%"
        for name in result.cpu_load
    )


@contextlib.contextmanager
def script_file(work: Path, name: str, text: str) -> Iterator[Path]:
    """`text` as the script `work/name` while the block runs."""
    script = work / name
    script.write_text(text)
    try:
        yield script
    finally:
        script.unlink(missing_ok=True)


def run(sessions: int, warmup: float, reps: int, work: Path) -> list[Row]:
    load = f"{sessions} sessions x {RATE} lines/s"
    with script_file(work, "switch-load.py", LOAD) as script:
        base = with_tmux(sessions, warmup, reps, script, work)
        ours_ = ours(sessions, warmup, reps, script, work)
        mprocs = mprocs_baseline(
            lambda binary: with_mprocs(binary, sessions, warmup, reps, script, work)
        )

    def other(pick: Callable[[Result], float]) -> str:
        if isinstance(mprocs, str):
            return f"{ms(pick(base))} (tmux); mprocs {mprocs}"
        return f"{ms(pick(base))} (tmux); {ms(pick(mprocs))} (mprocs)"

    held = ours_.lines_per_s or 0.0
    what = (
        f"{load}, tmux {WIDTH}x{HEIGHT}, after {warmup:g} s of load; {reps} switches "
        f"({OURS_KEYS.shown}; tmux {TMUX_KEYS.shown}; mprocs {MPROCS_KEYS.shown}); "
        f"load taken in {held:.0f} lines/s of {sessions * RATE}"
    )
    rows = [
        Row(
            f"switch median ({what})",
            f"{ms(ours_.median)} median",
            other(lambda r: r.median),
            fmt_ratio(ours_.median, base.median),
            f"<= {ms(MEDIAN_TARGET)}",
            yes_no(ours_.median <= MEDIAN_TARGET),
        ),
        Row(
            f"switch p90 (same run; max {ms(max(ours_.times))})",
            f"{ms(ours_.p90)} p90",
            other(lambda r: r.p90),
            fmt_ratio(ours_.p90, base.p90),
            f"<= {ms(P90_TARGET)}",
            yes_no(ours_.p90 <= P90_TARGET),
        ),
    ]
    mprocs_ready = mprocs if isinstance(mprocs, str) else f"{mprocs.ready:.2f} s"
    rows.append(
        Row(
            f"switch: attach to {load} until the latest session is on screen",
            f"{ours_.ready:.2f} s (`ccx-tui attach`)",
            f"{base.ready:.2f} s (`tmux attach`); mprocs {mprocs_ready} (starting them too)",
            fmt_ratio(ours_.ready, base.ready),
            "(reported)",
            "-",
        )
    )
    mprocs_cpu = f"mprocs {mprocs}" if isinstance(mprocs, str) else cpu_pair(mprocs)
    rows.append(
        Row(
            f"switch: CPU under the load ({load}), % of one core during the warm-up / the switches",
            cpu_pair(ours_),
            f"{cpu_pair(base)} (server + client); {mprocs_cpu}",
            "-",
            "(reported)",
            "-",
        )
    )
    mprocs_memory = (
        f"mprocs {mprocs}" if isinstance(mprocs, str) else f"{mprocs.memory_peak} (mprocs)"
    )
    rows.append(
        Row(
            f"switch: peak memory under the load ({load}; sampled after the warm-up and each "
            "switch; the sessions' own processes not counted)",
            f"{ours_.memory_peak} (app + engine)",
            f"{base.memory_peak} (tmux server + client); {mprocs_memory}",
            fmt_ratio(ours_.memory_peak.pss, base.memory_peak.pss),
            f"<= {fmt_mb(MEMORY_TARGET)} PSS",
            yes_no(ours_.memory_peak.pss <= MEMORY_TARGET),
        )
    )
    return rows
