"""`switch_light`: tab-switch key-to-screen latency with idle sessions, then with one tab
flooding, in the real app, tmux and mprocs (issue 14's 20 ms and 30 ms medians).

Nine sessions each print 200 lines (`@S<k> line ...`, as in `switch`) and sleep; in the
second case a tenth runs `yes` at full speed behind them, never shown. The switches go
between tabs 1-9 only: `]`, a digit and `[` take turns, turning back at the ends instead
of wrapping to the tenth (mprocs, with no key that jumps to a process, uses `j` and `k`).
Each is timed from `send-keys` until `capture-pane` shows only that session's lines, as
in `switch`, whose tmux wrapper and timing loop this reuses.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import PY, Row, fmt_mb, fmt_ratio, yes_no
from bench.switch import (
    MEMORY_TARGET,
    MPROCS_KEYS,
    OURS_KEYS,
    TMUX_KEYS,
    Keys,
    Result,
    Step,
    in_app,
    in_mprocs,
    in_tmux,
    mprocs_baseline,
    ms,
    script_file,
    shows,
)

SESSIONS = 9
LINES = 200
TARGETS = {"idle": 0.020, "flood": 0.030}
WARMUP = 3.0  # seconds: the flood's transcript grows by about a GB a second meanwhile
FLOOD_TEXT = "flood-line-of-some-length"
FLOOD = f"yes {FLOOD_TEXT}"

IDLE = """\
import sys, time
tag = sys.argv[1]
sys.stdout.write("".join(
    f"@{tag} line {i:07d} of some realistic length {'.' * 40}\\n" for i in range(LINES)
))
sys.stdout.flush()
time.sleep(1e6)
""".replace("LINES", str(LINES))


def bounce(reps: int, sessions: int, keys: Keys) -> list[Step]:
    """(keys, 1-based tab then shown) for `reps` switches among tabs 1..`sessions`, starting
    on tab 1: next, a jump (or a step), previous, in turn; a step past either end turns
    back instead of wrapping (the tab past the last one is the flood)."""
    current, direction, steps = 1, 1, []
    for i in range(reps):
        if i % 3 == 1 and keys.jump is not None:
            target = (current + 3) % sessions + 1  # never the current tab
            steps.append((keys.jump(target), target))
            current = target
            continue
        step = 1 if i % 3 != 2 else -1
        if not 1 <= current + step * direction <= sessions:
            direction = -direction
        step *= direction
        steps.append((keys.next if step > 0 else keys.prev, current + step))
        current += step
    return steps


def _commands(script: Path, flood: bool) -> list[str]:
    idle = [shlex.join([PY, "-S", str(script), f"S{k}"]) for k in range(1, SESSIONS + 1)]
    return [*idle, FLOOD] if flood else idle


def ours(flood: bool, reps: int, script: Path, work: Path) -> Result:
    """The app attached to an engine already running the sessions, as in `switch`."""
    data_dir = work / f"switch-light-ours-{int(flood)}"
    try:
        return in_app(
            f"light-ours-{int(flood)}",
            data_dir,
            _commands(script, flood),
            # It shows the latest session first.
            (lambda screen: FLOOD_TEXT in screen)
            if flood
            else (lambda screen: shows(screen, SESSIONS)),
            WARMUP,
            bounce(reps, SESSIONS, OURS_KEYS),
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # the flood's gigabytes


def with_tmux(flood: bool, reps: int, script: Path, work: Path) -> Result:
    steps = bounce(reps, SESSIONS, TMUX_KEYS)
    return in_tmux(f"-light-{int(flood)}", _commands(script, flood), WARMUP, steps, work)


def with_mprocs(binary: Path, flood: bool, reps: int, script: Path, work: Path) -> Result:
    procs: list[dict[str, object]] = [{"shell": c} for c in _commands(script, flood)]
    steps = bounce(reps, SESSIONS, MPROCS_KEYS)
    return in_mprocs(binary, f"-light-{int(flood)}", procs, WARMUP, steps, work)


@dataclass(frozen=True, slots=True)
class _Case:
    name: str
    ours: Result
    tmux: Result
    mprocs: Result | str  # a string: not installed, or its error


def _case(flood: bool, reps: int, script: Path, work: Path) -> _Case:
    base = with_tmux(flood, reps, script, work)
    ours_ = ours(flood, reps, script, work)
    mprocs = mprocs_baseline(lambda binary: with_mprocs(binary, flood, reps, script, work))
    return _Case("flood" if flood else "idle", ours_, base, mprocs)


def _other(case: _Case, pick: Callable[[Result], float]) -> str:
    mprocs = case.mprocs if isinstance(case.mprocs, str) else ms(pick(case.mprocs))
    return f"{ms(pick(case.tmux))} (tmux); {mprocs} (mprocs)"


def run(reps: int, work: Path) -> list[Row]:
    with script_file(work, "switch-light-idle.py", IDLE) as script:
        cases = [_case(False, reps, script, work), _case(True, reps, script, work)]
    keys = f"{OURS_KEYS.shown}; tmux {TMUX_KEYS.shown}; mprocs {MPROCS_KEYS.shown}"
    rows = []
    for case in cases:
        load = (
            f"{SESSIONS} idle sessions of {LINES} lines"
            if case.name == "idle"
            else f"the same and a tenth running `{FLOOD}`, never shown"
        )
        target = TARGETS[case.name]
        times = case.ours.times
        rows.append(
            Row(
                f"switch, {case.name} ({load}; tmux 120x36, after {WARMUP:g} s; {reps} "
                f"switches among tabs 1-{SESSIONS}: {keys}; p90 {ms(case.ours.p90)}, "
                f"max {ms(max(times))}; tmux p90 {ms(case.tmux.p90)})",
                f"{ms(case.ours.median)} median",
                _other(case, lambda r: r.median),
                fmt_ratio(case.ours.median, case.tmux.median),
                f"<= {ms(target)}",
                yes_no(case.ours.median <= target),
            )
        )
    flood = cases[1]
    mprocs_memory = flood.mprocs if isinstance(flood.mprocs, str) else str(flood.mprocs.memory_peak)
    rows.append(
        Row(
            "switch, flood: peak memory (sampled after the warm-up and each switch; the "
            "sessions' own processes not counted)",
            f"{flood.ours.memory_peak} (app + engine)",
            f"{flood.tmux.memory_peak} (tmux server + client); {mprocs_memory} (mprocs)",
            fmt_ratio(flood.ours.memory_peak.pss, flood.tmux.memory_peak.pss),
            f"<= {fmt_mb(MEMORY_TARGET)} PSS",
            yes_no(flood.ours.memory_peak.pss <= MEMORY_TARGET),
        )
    )
    return rows
