"""`--peers`: the capture and open scenarios through tmux, mprocs, toolong, less and lnav.

Each peer runs as a user would run it, in a tmux pane of 120x36, and is measured in the same
run as ccx-tui, rounds alternating (medians compared: this machine is shared and noisy, so
ratios mean more than seconds). A peer that is not installed is a cell saying so, with the
command that installs it; nothing here is needed by `.ci/run`.

Capture (N MiB of 64-byte lines with the UI following): ccx-tui is `bench.attached`'s run of
the app with `cat FILE` as its session; tmux is an inner server (history-limit above the line
count) whose client runs in the outer pane, with `cat FILE; touch DONE; exec cat` started in
a new window once the client is attached; mprocs is `mprocs 'cat FILE; touch DONE; exec cat'`
in the pane (the trailing `exec cat` keeps the command alive as a user's shell would be: see
`_command`). "Done" is the session's run for ccx-tui (from its process starting to its last
byte in the transcript) and from starting the command to the DONE file for the peers; "on
screen" adds the time until the file's last line shows. RSS is the peak of the tool's whole
process tree (psutil, sampled every POLL seconds), the terminal (the outer tmux) left out.
The limit, `cat FILE > file` and `cat FILE > /dev/null`, is measured in every round.

Open (a big log to its last screen): `ccx-tui view FILE`, `tl FILE` (toolong), `less +G FILE`
and `lnav FILE`, each timed from starting its pane until the file's last line shows, with the
peak RSS of its process tree until then and for SETTLE seconds after.

Tab switching against tmux and mprocs is `bench.switch`, which `--peers` runs as it is.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import attached
from bench.common import PY, Row, fmt_mb, fmt_ratio, fmt_s, line_text, run_timed

# switch.py's tmux wrapper (a server of the run's own, killed with all it started) and its
# mprocs lookup: reused rather than copied.
from bench.switch import HEIGHT, MPROCS_HINT, WIDTH, Tmux, cleanup, mprocs_binary

ROUNDS = 3
POLL = 0.05
SCREEN_POLL = 0.02  # the open scenario times sub-second viewers: poll the screen faster
SETTLE = 0.5  # RSS is still sampled this long after the last line shows (indexing goes on)
GIVE_UP = 900.0  # tmux takes minutes for a few hundred MiB on a loaded machine
SHOWN_GIVE_UP = 60.0  # once the command is done, for its last line to show

TMUX_HINT = "apt-get install tmux"
TOOLONG_HINT = "pipx install toolong (or pip, into a venv of its own)"
LESS_HINT = "apt-get install less"
LNAV_HINT = "apt-get install lnav"


def _last_line(source: Path) -> str:
    """The text of the file's last line that a screen shows, e.g. `line 0001048575`."""
    return line_text(source.stat().st_size // 64 - 1).decode().split(".")[0].strip()


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _rss(procs: list[psutil.Process]) -> int:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def _version(argv: list[str]) -> str:
    """The first line `argv` prints (a tool's version), or '' if it prints none."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def _missing(hint: str) -> str:
    return f"not installed (`{hint}`)"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- capture ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capture:
    """One tool's run of the capture scenario."""

    done: float  # from the command starting to its last byte taken in
    shown: float | None  # from the command starting to the file's last line on screen
    rss: int  # peak RSS of the tool's process tree
    kept: str  # how much of the output it keeps, for the table


def _poll_done(
    marker: Path, procs: Callable[[], list[psutil.Process]], start: float
) -> tuple[float, int]:
    """(seconds from `start` until `marker` exists, peak RSS of `procs` meanwhile)."""
    peak = 0
    while (now := time.perf_counter() - start) < GIVE_UP:
        peak = max(peak, _rss(procs()))
        if marker.exists():
            return now, max(peak, _rss(procs()))
        time.sleep(POLL)
    raise RuntimeError(f"{marker.name} not there within {GIVE_UP:g} s")


def _poll_screen(screen: Callable[[], str], text: str, start: float) -> float | None:
    """Seconds from `start` until `text` shows, or None if it has not within SHOWN_GIVE_UP."""
    deadline = time.perf_counter() + SHOWN_GIVE_UP
    while time.perf_counter() < deadline:
        if text in screen():
            return time.perf_counter() - start
        time.sleep(POLL)
    return None


def _command(source: Path, marker: Path) -> str:
    """The peers' command. It stays alive (`exec cat` reads the tty) once done, as a user's
    shell would: a pane whose process exits can lose the pty's last unread bytes (tmux did)."""
    return f"cat {shlex.quote(str(source))}; touch {shlex.quote(str(marker))}; exec cat"


def capture_ours(source: Path, work: Path, tag: str) -> Capture:
    """ccx-tui's app following `cat FILE`, as `bench.attached` runs it."""
    got = attached.attached(source, work / f"peers-ours-{tag}", f"peers-{tag}", verify_hash=False)
    size = source.stat().st_size
    if got.got == size:
        kept = "every byte"
    elif got.got == size + size // 64:  # a session in a pty: its line discipline's CRLF
        kept = "every line (CRLF from its pty)"
    else:
        kept = f"**{got.got:,} bytes of {size:,}**"
    # `shown` counts from starting the app; less the app's and engine's start-up (wall - run,
    # up to one poll late) it counts from the session starting, as the peers' figures do.
    shown = got.shown - (got.wall - got.run)
    return Capture(got.run, shown, got.app_rss + got.engine_rss[1], kept)


def capture_tmux(source: Path, work: Path, tag: str) -> Capture:
    """`cat FILE; touch DONE` in a window of an inner tmux whose client runs in the pane."""
    lines = source.stat().st_size // 64
    conf = work / "peers-tmux.conf"
    conf.write_text(f"set -g history-limit {lines + 1000}\n")
    marker = work / f"peers-tmux-{tag}.done"
    inner, outer = Tmux(f"peers-inner-{tag}", conf), Tmux(f"peers-outer-{tag}")
    try:
        inner.start("cat", height=HEIGHT - 1)  # an idle first window (cat reads its tty)
        outer.start(shlex.join(["env", "-u", "TMUX", *inner.argv, "attach", "-t", "bench"]))
        deadline = time.perf_counter() + 60
        while not inner("list-clients", check=False).strip():
            if time.perf_counter() > deadline:
                raise RuntimeError("the tmux client did not attach within 60 s")
            time.sleep(POLL)
        clients = [p for p in outer.pane_procs() if p.name() == "tmux"]
        server = inner.server()
        start = time.perf_counter()
        inner("new-window", "-t", "bench:", _command(source, marker))
        done, rss = _poll_done(marker, lambda: [*_tree(server), *clients], start)
        shown = _poll_screen(outer.screen, _last_line(source), start)
        kept = inner("display-message", "-p", "-t", "bench:", "#{history_size} #{pane_height}")
        lines_kept = sum(int(n) for n in kept.split())
        return Capture(done, shown, rss, f"{lines_kept:,} lines (history + screen)")
    finally:
        cleanup(outer.close, inner.close)
        marker.unlink(missing_ok=True)


def capture_mprocs(binary: Path, source: Path, work: Path, tag: str) -> Capture:
    """`mprocs 'cat FILE; touch DONE'` in the pane, from a folder with no mprocs.yaml."""
    home = work / "peers-mprocs"
    home.mkdir(exist_ok=True)
    marker = work / f"peers-mprocs-{tag}.done"
    argv = [str(binary), _command(source, marker)]
    tmux = Tmux(f"peers-mprocs-{tag}")
    try:
        start = time.perf_counter()
        tmux.start(f"cd {shlex.quote(str(home))} && exec {shlex.join(argv)}")
        pane = tmux.pane_procs()[0]
        done, rss = _poll_done(marker, lambda: _tree(pane), start)
        shown = _poll_screen(tmux.screen, _last_line(source), start)
        return Capture(done, shown, rss, "1,000 lines (its default scrollback)")
    finally:
        tmux.close()
        marker.unlink(missing_ok=True)


def _floor(source: Path, work: Path) -> tuple[float, float]:
    """(`cat FILE > file`, `cat FILE > /dev/null`) seconds."""
    out = work / "peers-floor.out"
    to_file = run_timed(["sh", "-c", f"cat '{source}' > '{out}'"]).seconds
    out.unlink()
    to_null = run_timed(["cat", str(source)]).seconds
    return to_file, to_null


def capture(source: Path, work: Path, rounds: int = ROUNDS) -> list[Row]:
    """ccx-tui, tmux and mprocs capturing `source` with the UI following; rows side by side."""
    size_mib = source.stat().st_size >> 20
    peers: dict[str, Callable[[str], Capture] | str] = {
        "tmux": _missing(TMUX_HINT),
        "mprocs": _missing(MPROCS_HINT),
    }
    if shutil.which("tmux"):
        peers["tmux"] = lambda tag: capture_tmux(source, work, tag)
    if (mprocs := mprocs_binary()) is not None:
        binary = mprocs
        peers["mprocs"] = lambda tag: capture_mprocs(binary, source, work, tag)
    floors: list[tuple[float, float]] = []
    ours: list[Capture] = []
    theirs: dict[str, list[Capture] | str] = {
        name: [] if callable(how) else how for name, how in peers.items()
    }
    for i in range(rounds):
        floors.append(_floor(source, work))
        ours.append(capture_ours(source, work, str(i)))
        for name, how in peers.items():
            got = theirs[name]
            if callable(how) and isinstance(got, list):
                try:
                    got.append(how(str(i)))
                except Exception as exc:  # a peer failing is a cell, not a lost row
                    theirs[name] = f"error: {type(exc).__name__}: {exc}"
    to_file = _median([f[0] for f in floors])
    to_null = _median([f[1] for f in floors])

    def cell(runs: list[Capture]) -> str:
        done = _median([r.done for r in runs])
        shown = [r.shown for r in runs if r.shown is not None]
        on_screen = (
            fmt_s(_median(shown))
            if len(shown) == len(runs)
            else f"**last line not shown within {SHOWN_GIVE_UP:g} s in "
            f"{len(runs) - len(shown)} of {len(runs)}**"
        )
        return (
            f"{fmt_s(done)} = {fmt_ratio(done, to_file)} `cat > file`; on screen {on_screen}; "
            f"{fmt_mb(max(r.rss for r in runs))} peak; keeps {runs[0].kept}"
        )

    ours_cell = cell(ours)
    ours_done = _median([r.done for r in ours])
    versions = {
        "tmux": _version(["tmux", "-V"]),
        "mprocs": _version([str(mprocs), "--version"]) if mprocs else "mprocs",
    }
    rows = [
        Row(
            f"peers capture: the limit ({size_mib} MiB of 64-byte lines, median of {rounds})",
            "-",
            f"`cat > file` {fmt_s(to_file)}; `cat > /dev/null` {fmt_s(to_null)}",
            "-",
            "(reported)",
            "-",
        )
    ]
    for name, runs in theirs.items():
        what = versions[name] or name
        if name == "tmux":
            what += f" (history-limit {(source.stat().st_size // 64) + 1000:,})"
        rows.append(
            Row(
                f"peers capture {size_mib} MiB, UI following in tmux {WIDTH}x{HEIGHT}: "
                f"ccx-tui vs {what}; done = command start to last byte taken in (ccx-tui: "
                f"session run; RSS app + engine peaks); ratio ccx-tui / {name}",
                ours_cell,
                f"{name}: {cell(runs)}" if isinstance(runs, list) and runs else f"{name} {runs}",
                fmt_ratio(ours_done, _median([r.done for r in runs]))
                if isinstance(runs, list) and runs
                else "-",
                "(reported)",
                "-",
            )
        )
    return rows


# --- open ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opened:
    """One viewer's run of the open scenario."""

    seconds: float  # from starting its pane to the file's last line on screen
    rss: int  # peak RSS of its process tree, until SETTLE seconds after that


def open_in_tmux(command: str, last: str, tag: str) -> Opened:
    """Run `command` in a tmux pane until `last` shows on its screen."""
    tmux = Tmux(f"peers-open-{tag}")
    try:
        start = time.perf_counter()
        tmux.start(command)
        pane = tmux.pane_procs()[0]
        peak, seen = 0, None
        while (now := time.perf_counter() - start) < GIVE_UP:
            peak = max(peak, _rss(_tree(pane)))
            if seen is None and last in tmux.screen():
                seen = now
            if seen is not None and now - seen >= SETTLE:
                return Opened(seen, peak)
            time.sleep(SCREEN_POLL)
        raise RuntimeError(f"`{last}` not on screen within {GIVE_UP:g} s")
    finally:
        tmux.close()


def open_log(source: Path, work: Path, rounds: int = ROUNDS) -> list[Row]:
    """ccx-tui's viewer, toolong, `less +G` and lnav opening `source` to its last screen."""
    size_mib = source.stat().st_size >> 20
    last = _last_line(source)
    path = shlex.quote(str(source))
    # lnav writes its config and an index database under $HOME (even for -V): a throwaway
    # one, made first (given one that does not exist, lnav wrote them in the current
    # directory).
    (work / "peers-lnav-home").mkdir(exist_ok=True)
    lnav_home = shlex.quote(str(work / "peers-lnav-home"))
    viewers: dict[str, tuple[str, str] | str] = {}
    if tl := shutil.which("tl"):
        viewers["toolong"] = (f"{shlex.quote(tl)} {path}", _version([tl, "--version"]))
    else:
        viewers["toolong"] = _missing(TOOLONG_HINT)
    viewers["less +G"] = (
        (f"less +G {path}", _version(["less", "--version"]))
        if shutil.which("less")
        else _missing(LESS_HINT)
    )
    lnav_env = f"env HOME={lnav_home} XDG_CONFIG_HOME={lnav_home}"
    viewers["lnav"] = (
        (f"{lnav_env} lnav {path}", _version([*shlex.split(lnav_env), "lnav", "-V"]))
        if shutil.which("lnav")
        else _missing(LNAV_HINT)
    )
    ours_command = shlex.join(
        [PY, "-m", "ccx_tui", "view", "--data-dir", str(work / "peers-view"), str(source)]
    )
    ours: list[Opened] = []
    theirs: dict[str, list[Opened] | str] = {
        name: [] if isinstance(how, tuple) else how for name, how in viewers.items()
    }
    for i in range(rounds):
        ours.append(open_in_tmux(ours_command, last, f"ours-{i}"))
        for name, how in viewers.items():
            got = theirs[name]
            if isinstance(how, tuple) and isinstance(got, list):
                try:
                    got.append(open_in_tmux(how[0], last, f"{name.split()[0]}-{i}"))
                except Exception as exc:  # a peer failing is a cell, not a lost row
                    theirs[name] = f"error: {type(exc).__name__}: {exc}"

    def cell(runs: list[Opened]) -> str:
        return f"{fmt_s(_median([r.seconds for r in runs]))}, {fmt_mb(max(r.rss for r in runs))}"

    ours_s = _median([r.seconds for r in ours])
    rows = []
    for name, runs in theirs.items():
        how = viewers[name]
        what = how[1] if isinstance(how, tuple) and how[1] else name
        ok = isinstance(runs, list) and bool(runs)
        rows.append(
            Row(
                f"peers open a {size_mib} MiB log to its last screen in tmux {WIDTH}x{HEIGHT}: "
                f"`ccx-tui view` vs {name} ({what}); time to the last line on screen, peak RSS "
                f"of its process tree; median of {rounds}; ratio ccx-tui / {name}",
                cell(ours),
                f"{name}: {cell(runs)}" if isinstance(runs, list) and ok else f"{name} {runs}",
                fmt_ratio(ours_s, _median([r.seconds for r in runs]))
                if isinstance(runs, list) and ok
                else "-",
                "(reported)",
                "-",
            )
        )
    return rows
