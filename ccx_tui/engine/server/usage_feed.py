"""One sampler of the sessions' CPU and memory, shared by every client that wants it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ccx_tui.engine.sessions.events import TreeUsage
from ccx_tui.engine.sessions.usage import UsageSampler

INTERVAL = 1.0


class UsageFeed:
    """Samples this process's session trees once every `interval` seconds, in a
    thread, while anyone follows it (and not at all otherwise)."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.latest: dict[str, TreeUsage] = {}
        self._sampler = UsageSampler()
        self._seq = 0
        self._changed = asyncio.Event()
        self._followers = 0
        self._task: asyncio.Task[None] | None = None

    async def follow(self) -> AsyncIterator[dict[str, TreeUsage]]:
        """Each new sample as it is taken.  Cancelling is safe."""
        self._followers += 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            seen = self._seq
            while True:
                while self._seq == seen:
                    await self._changed.wait()
                seen = self._seq
                yield self.latest
        finally:
            self._followers -= 1
            if not self._followers:
                await self.aclose()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self.latest = await asyncio.to_thread(self._sampler.sample)
            self._seq += 1
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
            await asyncio.sleep(self.interval)
