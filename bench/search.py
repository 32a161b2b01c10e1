"""`search`: every matching line of a transcript-like file counted by `Searcher` vs `grep -c -E`.

Both run as child processes over the same page-cached file, alternating, RUNS times each
(the medians count).  Our figure is the scan itself, as the app runs it in an already
started process (the whole child, Python start-up and imports included, is in the
label); grep's is its whole process.  The label also gives how soon the first match is
known (published to readers, as the view's worker publishes it) from the start of the
scan.  Memory is the searching child's peak RSS.  Counts must agree or the row says so.
`python -m bench.search [--mib N]` runs just this.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import MIB, PY, Row, Timed, fmt_mb, fmt_ratio, fmt_s, run_timed, yes_no

TARGET = 1.5  # issue 14: at most 1.5x `grep -c` with the same case flags
STEP = 32 * 1024 * 1024  # bytes per `scan` call, as the UI's worker does
RUNS = 3
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Case:
    pattern: str
    grep_flags: tuple[str, ...]
    note: str


CASES = [
    Case("ERROR [0-9]+", (), "literal prefix"),
    Case("timeout|refused", ("-i",), "smart case: ignore case"),
    Case("error [0-9]+", ("-i",), "smart case: ignore case"),
    Case("worker-7 .*theta", ("-i",), "smart case: ignore case; inner literals, no prefix"),
]


def make_transcript(path: Path, size: int) -> int:
    """Write log-like lines (~95 bytes) up to `size` bytes; return the line count.

    About 1% of lines hold `ERROR <n>`, 1% `timeout` or `connection refused`; many more
    hold `error` in other forms.  Every line names one of 8 workers (`worker-7` in 1 of 8)
    and 2% name a phase (`theta` or `Theta` in 2 of 3 of those).  A pool of 8 MiB of
    random lines is written repeatedly.
    """
    rng = random.Random(20261123)
    words = "GET POST /api/v1/items /health worker cache hit miss user session ok".split()
    words += "request handled status=200 status=404 queue depth=3 retry error_rate=0".split()
    pool: list[bytes] = []
    pool_bytes = 0
    while pool_bytes < 8 * MIB:
        n = len(pool)
        stamp = f"2026-11-23T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.{n % 997:03d}Z"
        body = " ".join(rng.choice(words) for _ in range(rng.randint(6, 11)))
        roll = rng.random()
        if roll < 0.01:
            body += f" ERROR {rng.randint(100, 599)} upstream failed"
        elif roll < 0.016:
            body += " connection refused"
        elif roll < 0.021:
            body += f" timeout after {rng.randint(1, 60)}s"
        elif roll < 0.041:
            body += f" phase {rng.choice(('alpha', 'theta', 'Theta'))}"
        line = f"{stamp} worker-{n % 8} {body}\n".encode()
        pool.append(line)
        pool_bytes += len(line)
    block = b"".join(pool)
    written = lines = 0
    with open(path, "wb") as out:
        while written < size:
            part = block[: size - written]
            part = part[: part.rfind(b"\n") + 1]
            if not part:
                break
            out.write(part)
            written += len(part)
            lines += part.count(b"\n")
    return lines


def _once(argv: list[str], out: Path, env: dict[str, str] | None = None) -> tuple[Timed, str]:
    """One run of `argv`, with what it printed."""
    with open(out, "wb") as f:
        timed = run_timed(argv, stdout=f.fileno(), env=env)
    if timed.returncode not in (0, 1):  # grep -c exits 1 when nothing matches
        raise RuntimeError(f"{shlex.join(argv[:4])} exited {timed.returncode}")
    return timed, out.read_text()


@dataclass(frozen=True, slots=True)
class Ours:
    seconds: float
    process: float
    first: float  # seconds to the first match (nan: none)
    total: int
    lines: int
    rss_before: int
    rss_after: int


def _ours(pattern: str, path: Path, out: Path) -> Ours:
    """One child: scan seconds, process seconds, first match, count, lines, peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    timed, text = _once([PY, "-m", "bench.search", "count", pattern, str(path)], out, env)
    total, lines, seconds, first, before, after = text.split()
    return Ours(
        float(seconds), timed.seconds, float(first), int(total), int(lines), int(before), int(after)
    )


def run(size: int, work: Path) -> list[Row]:
    path = work / "search.log"
    lines = make_transcript(path, size)
    mib = path.stat().st_size >> 20
    grep = shutil.which("grep") or "grep"
    out = work / "search.out"
    rows: list[Row] = []
    rss = (0, 0)
    try:
        for case in CASES:
            argv = [grep, "-c", "-E", *case.grep_flags, "--", case.pattern, str(path)]
            greps: list[float] = []
            runs: list[Ours] = []
            wants: set[str] = set()
            for _ in range(RUNS):  # alternating, so that a noisy neighbour hits both
                timed, grep_text = _once(argv, out)
                greps.append(timed.seconds)
                wants.add(grep_text.strip())
                runs.append(_ours(case.pattern, path, out))
            base = statistics.median(greps)
            seconds = statistics.median(r.seconds for r in runs)
            process = statistics.median(r.process for r in runs)
            first = statistics.median(r.first for r in runs)
            rss = max(rss, *((r.rss_after, r.rss_before) for r in runs))
            got = {r.total for r in runs}
            scanned = {r.lines for r in runs}
            want = int(wants.pop()) if len(wants) == 1 else -1
            ok = got == {want} and scanned == {lines}
            check = f"{want} lines match" if ok else f"**count {got} != grep {want}**"
            if scanned != {lines}:
                check += f" **{scanned} lines scanned of {lines}**"
            flags = " ".join(("-c", "-E", *case.grep_flags))
            rows.append(
                Row(
                    f"search `{case.pattern}` ({mib} MiB, {lines} lines, {check}; {case.note};"
                    f" first match after {first * 1000:.0f} ms; whole process {process:.2f} s)",
                    fmt_s(seconds),
                    f"{fmt_s(base)} (grep {flags})",
                    fmt_ratio(seconds, base),
                    f"<= {TARGET:g}x",
                    yes_no(ok and seconds <= TARGET * base),
                )
            )
    finally:
        path.unlink(missing_ok=True)
    peak, before = rss
    rows.append(
        Row(
            "search: peak RSS of the searching process (VmHWM)",
            fmt_mb(peak),
            f"{fmt_mb(before)} (same, before scanning)",
            "+" + fmt_mb(peak - before),
            "(reported)",
            "-",
        )
    )
    return rows


def _hwm() -> int:
    """Peak RSS of this process since exec (VmHWM; ru_maxrss would include the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _count(pattern: str, path: str) -> None:
    """Child: scan the whole file the way the UI's worker does; print total, lines, time."""
    from ccx_tui.engine.transcripts.search import Searcher, compile_query

    query = compile_query(pattern)
    searcher = Searcher(path, query)
    before = _hwm()
    start = time.perf_counter()
    while True:
        searcher.scan(STEP, final=True)
        if searcher.caught_up:
            break
    seconds = time.perf_counter() - start
    # How soon a reader (the view) can see the first match: scan one block at a time,
    # as often as the view's worker publishes.
    first = Searcher(path, query)
    start = time.perf_counter()
    while not first.total and not first.caught_up:
        first.scan(1, final=True)
    found = time.perf_counter() - start if first.total else float("nan")
    print(searcher.total, searcher.lines_scanned, f"{seconds:.4f}", f"{found:.4f}", before, _hwm())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    count = sub.add_parser("count", help="(child) count the lines matching PATTERN in FILE")
    count.add_argument("pattern")
    count.add_argument("file")
    parser.add_argument("--mib", type=int, default=64, help="file size for a standalone run")
    ns = parser.parse_args(argv)
    if ns.command == "count":
        _count(ns.pattern, ns.file)
        return 0
    from bench.__main__ import table

    with tempfile.TemporaryDirectory(prefix="ccx-bench-") as tmp:
        print(table(run(ns.mib * MIB, Path(tmp))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
