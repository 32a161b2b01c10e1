"""`ingest` and `memory`: `ccx-tui exec -- cat FILE` vs `sh -c 'cat FILE > OUT'`."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from bench.common import Row, ccx, fmt_mb, fmt_ratio, fmt_s, run_timed, yes_no

TIME_TARGET = 3.0
MEMORY_TARGET = 50e6


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _transcript(data_dir: Path) -> Path:
    found = list((data_dir / "sessions").glob("*/transcript.log"))
    if len(found) != 1:
        raise RuntimeError(f"expected one transcript in {data_dir}, found {len(found)}")
    return found[0]


def take_transcript(
    data_dir: Path, source: Path, ok: bool, *, verify_hash: bool
) -> tuple[bool, int]:
    """Check the one transcript in `data_dir` against `source`, then delete it.

    Returns (intact, its size); `ok` is whether the command itself succeeded.
    """
    transcript = _transcript(data_dir)
    got = transcript.stat().st_size
    intact = ok and got == source.stat().st_size
    if intact and verify_hash:
        intact = _sha256(transcript) == _sha256(source)
    transcript.unlink()
    return intact, got


ROUNDS = 3
"""Baseline and ours alternate this many times; the medians are compared (this VM's
disk timings swing by several times from one minute to the next)."""


def run(source: Path, work: Path, *, verify_hash: bool) -> list[Row]:
    size = source.stat().st_size
    out = work / "baseline.out"
    idle_dir = work / "ingest-idle"
    idle = run_timed(ccx("exec", "--data-dir", str(idle_dir), "--", "true"))

    data_dir = work / "ingest"
    bases, runs = [], []
    intact, got = True, size
    for _ in range(ROUNDS):
        bases.append(run_timed(["sh", "-c", f"cat '{source}' > '{out}'"]))
        out.unlink()
        done = run_timed(ccx("exec", "--data-dir", str(data_dir), "--", f"cat '{source}'"))
        ok, got = take_transcript(data_dir, source, done.returncode == 0, verify_hash=verify_hash)
        intact = intact and ok
        runs.append(done)
    base = sorted(bases, key=lambda r: r.seconds)[ROUNDS // 2]
    ours = sorted(runs, key=lambda r: r.seconds)[ROUNDS // 2]
    ours = replace(ours, maxrss_bytes=max(r.maxrss_bytes for r in runs))

    check = "sha256 ok" if verify_hash else "size ok"
    note = check if intact else f"**transcript {got} of {size} bytes, rc {ours.returncode}**"
    ratio = ours.seconds / base.seconds
    growth = ours.maxrss_bytes - idle.maxrss_bytes
    return [
        Row(
            f"ingest ({size >> 20} MiB, {note}; median of {ROUNDS} alternating runs; "
            f"`exec -- true` alone {idle.seconds:.2f} s)",
            fmt_s(ours.seconds),
            fmt_s(base.seconds) + " (sh cat > file)",
            fmt_ratio(ours.seconds, base.seconds),
            f"<= {TIME_TARGET:g}x",
            yes_no(intact and ratio <= TIME_TARGET),
        ),
        Row(
            f"memory (peak RSS of exec, {size >> 20} MiB)",
            fmt_mb(ours.maxrss_bytes),
            fmt_mb(idle.maxrss_bytes) + " (exec true)",
            "+" + fmt_mb(growth),
            "+ <= 50 MB",
            yes_no(growth <= MEMORY_TARGET),
        ),
    ]
