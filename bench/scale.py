"""`scale`: many sessions each printing 100 lines/s through LocalEngine; count every line.

Each session is `python -c` writing one flushed line at a time, paced against its own start
(line i is due at i / 100 s, then `time.sleep` until the next is due), so the rate holds at
100 lines/s even when a sleep overshoots. The CPU figure is the bench process itself (the
engine runs in it): `getrusage(RUSAGE_SELF)` user + sys over the run, children excluded.
"""

from __future__ import annotations

import asyncio
import resource
import shlex
import time
from pathlib import Path

from bench.common import PY, Row, yes_no
from ccx_tui.engine import EngineConfig, LocalEngine, SessionSpec

RATE = 100  # lines per second per session

CODE = """\
import sys, time
n, tag = int(sys.argv[1]), sys.argv[2]
out, t0 = sys.stdout, time.monotonic()
for i in range(n):
    out.write(f"{tag} line {i}\\n")
    out.flush()
    due = t0 + (i + 1) / RATE - time.monotonic()
    if due > 0:
        time.sleep(due)
""".replace("RATE", str(RATE))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(sessions: int, seconds: float, data_dir: Path) -> tuple[int, int, float, float]:
    """Return (lines expected, lines found, wall seconds, own CPU seconds)."""
    per_session = int(RATE * seconds)
    config = EngineConfig(data_dir=data_dir, max_sessions=sessions, load_history=False)
    async with LocalEngine(config) as engine:
        cpu0, start = _cpu(), time.perf_counter()
        infos = []
        for n in range(sessions):
            command = shlex.join([PY, "-c", CODE, str(per_session), f"s{n}"])
            infos.append(await engine.start(SessionSpec(command)))
        done = [await engine.wait(info.id) for info in infos]
        wall, cpu = time.perf_counter() - start, _cpu() - cpu0
    found = 0
    for info in done:
        if info.exit_code != 0:
            raise RuntimeError(f"session {info.spec.name or info.id} ended {info.state}: {info}")
        with open(info.transcript, "rb") as f:
            found += f.read().count(b"\n")
    return per_session * sessions, found, wall, cpu


def run(sessions: int, seconds: float, work: Path) -> list[Row]:
    expected, found, wall, cpu = asyncio.run(_run(sessions, seconds, work / "scale"))
    lost = expected - found
    return [
        Row(
            f"scale ({sessions} sessions x {RATE} lines/s x {seconds:g} s, paced `python -c`)",
            f"{lost} lines lost ({found} found)",
            f"{expected} lines expected",
            f"{found / expected:.4f}",
            "0 lost",
            yes_no(lost == 0),
        ),
        Row(
            f"scale: ccx-tui CPU during the run ({wall:.1f} s wall)",
            f"{100 * cpu / wall:.1f}% of one core",
            f"{cpu:.2f} s user+sys",
            "-",
            "(reported)",
            "-",
        ),
    ]
