"""Typed bytes to sessions, in order: one request at a time, bursts merged.

Keys arrive faster than a request to the engine returns (a paste, a held key, fast
typing over a slow link): each is queued, and one loop sends them in order, merging
what queued up for the same session into one request.  No Textual here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from ccx_tui.engine.api import Engine
from ccx_tui.errors import CcxError

MAX_BURST = 64 * 1024
"""Bytes merged into one request at most."""


class Typist:
    """Queues input for sessions and sends it in order (see the module docstring)."""

    def __init__(
        self,
        engine_of: Callable[[str], Engine],
        on_error: Callable[[str, str], None],
    ) -> None:
        """`on_error(session_id, message)` is told when a session refuses input; what
        was queued for it then is dropped."""
        self._engine_of = engine_of
        self._on_error = on_error
        self._queue: deque[tuple[str, bytes]] = deque()
        self._ready = asyncio.Event()

    def send(self, session_id: str, data: bytes) -> None:
        if data:
            self._queue.append((session_id, data))
            self._ready.set()

    async def run(self) -> None:
        """Send until cancelled (cancelling is safe: what is queued is dropped)."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                session_id, data = self._queue.popleft()
                burst = bytearray(data)
                while (
                    self._queue
                    and self._queue[0][0] == session_id
                    and len(burst) + len(self._queue[0][1]) <= MAX_BURST
                ):
                    burst += self._queue.popleft()[1]
                try:
                    await self._engine_of(session_id).send_input(session_id, bytes(burst))
                except CcxError as exc:
                    self._queue = deque(item for item in self._queue if item[0] != session_id)
                    self._on_error(session_id, str(exc))
