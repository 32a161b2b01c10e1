"""Shared helpers: result rows, timed child processes, test data, machine info."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
PY = sys.executable


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results table."""

    scenario: str
    ours: str = "-"
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: str = "not yet measured"


@dataclass(frozen=True, slots=True)
class Timed:
    seconds: float
    maxrss_bytes: int
    returncode: int


def run_timed(
    argv: list[str], *, stdout: int | None = subprocess.DEVNULL, env: dict[str, str] | None = None
) -> Timed:
    """Run `argv`, returning wall time and the peak RSS of the child (from `os.wait4`)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout, stdin=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: keep Popen quiet
    return Timed(elapsed, usage.ru_maxrss * 1024, proc.returncode)


def ccx(*args: str) -> list[str]:
    """argv for the real product entry point, with this interpreter."""
    return [PY, "-m", "ccx_tui", *args]


def line_text(n: int) -> bytes:
    """Line `n` of the generated line file (64 bytes with its newline)."""
    return b"line %010d " % n + b"." * 47 + b"\n"


def make_line_file(path: Path, size: int) -> int:
    """Write numbered 64-byte lines up to `size` bytes in big blocks; return the line count."""
    per_block = 16384  # 1 MiB
    lines = size // 64
    with open(path, "wb", buffering=0) as out:
        for first in range(0, lines, per_block):
            last = min(first + per_block, lines)
            out.write(b"".join(line_text(i) for i in range(first, last)))
    return lines


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def fmt_mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def fmt_ratio(ours: float, base: float) -> str:
    return f"{ours / base:.2f}x" if base > 0 else "n/a"


def yes_no(ok: bool) -> str:
    return "yes" if ok else "**no**"


def machine_info() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (
        f"nproc {os.cpu_count()}, memory {mem / 2**30:.1f} GiB, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}, "
        f"open files {soft}"
    )
