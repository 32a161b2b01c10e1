"""`limit`: 500 queued `sleep 0.05` sessions through LocalEngine vs a plain semaphore."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.common import Row, fmt_ratio, fmt_s, yes_no
from ccx_tui.engine import EngineConfig, LocalEngine, SessionSpec

COMMAND = "sleep 0.05"


async def _engine(count: int, limit: int, data_dir: Path) -> tuple[float, int]:
    config = EngineConfig(data_dir=data_dir, max_sessions=limit, load_history=False)
    max_live = 0
    async with LocalEngine(config) as engine:
        sub = engine.subscribe()
        start = time.perf_counter()
        infos = [await engine.start(SessionSpec(COMMAND)) for _ in range(count)]

        async def watch() -> None:
            nonlocal max_live
            while await sub.get() is not None:
                max_live = max(max_live, engine.stats.live)

        watcher = asyncio.create_task(watch())
        for info in infos:
            await engine.wait(info.id)
        elapsed = time.perf_counter() - start
        watcher.cancel()
        engine.unsubscribe(sub)
    return elapsed, max_live


async def _baseline(count: int, limit: int) -> float:
    gate = asyncio.Semaphore(limit)

    async def one() -> None:
        async with gate:
            proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", COMMAND)
            await proc.wait()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - start


def run(count: int, limit: int, work: Path) -> list[Row]:
    base = asyncio.run(_baseline(count, limit))
    ours, max_live = asyncio.run(_engine(count, limit, work / "limit"))
    return [
        Row(
            f"limit ({count} x `{COMMAND}`, max {limit}; max live seen {max_live})",
            fmt_s(ours) + " to drain",
            fmt_s(base) + " (asyncio.Semaphore)",
            fmt_ratio(ours, base),
            f"max live <= {limit} (ratio reported)",
            yes_no(max_live <= limit),
        )
    ]
