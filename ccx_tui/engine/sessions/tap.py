"""Live output taps: a session's bytes, in transcript order, straight from the engine.

A consumer that shows output as it happens (`exec`'s stdout, a server's senders, a
view) must not depend on the disk: a full disk or a deleted data dir stops the
transcript, never the live output.  A tap receives every chunk the engine writes to a
session's transcript (stdout and stderr already merged at line boundaries by LineMux),
with the offset it has, or would have had, in the transcript, whether or not the
disk kept it.

Memory is bounded in one of two ways:

- With back-pressure (`PauseGate`), a tap holding more than `HIGH_WATER` bytes stops
  the process's pipes until its consumer reads: the process waits for a slow reader as
  it would on a pipe.  `exec` uses this: nothing is ever lost.
- Without (a window of `window` bytes), the oldest chunks are dropped when the consumer
  falls behind; `lost` counts them and the offsets show the gap.  What was dropped is
  in the transcript if the disk kept it (below the session's transcript size).
- A consumer that reads what the disk kept from the transcript (a server's sender, a
  view) asks for the rest only (`kept`): chunks the disk has written are dropped as
  soon as it has, so while the disk is fine such a tap holds no more than the writer's
  backlog, however far its consumer lags.

A source that cannot pause (a remote process) bounds a back-pressure tap by
`HARD_LIMIT` the same way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

HIGH_WATER = 2 * 1024 * 1024
"""A back-pressure tap holding more than this pauses the source."""
HARD_LIMIT = 64 * 1024 * 1024
"""A back-pressure tap whose source cannot pause drops its oldest bytes past this."""
DEFAULT_WINDOW = 8 * 1024 * 1024
"""What a tap without back-pressure keeps for a consumer that falls behind."""
UNKEPT_TAIL = 1024 * 1024
"""At least this much of the latest output its transcript did not keep is held by the
engine per session (at most twice as much), for a view that taps it later: a full
disk's tail is not lost to a client that came a moment late."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes from `stream` (0 stdout, 1 stderr, 2 ccx-tui's own) at transcript `offset`."""

    offset: int
    stream: int
    data: bytes


class PauseGate:
    """Pauses one source (a process's pipes) while anyone holds it: the disk writer
    and any number of taps pause and resume independently."""

    def __init__(self) -> None:
        self._holders: set[object] = set()
        self._pause: Callable[[], None] | None = None
        self._resume: Callable[[], None] | None = None

    @property
    def can_pause(self) -> bool:
        return self._pause is not None

    def attach(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """A new source (a run started): paused at once if someone holds the gate."""
        self._pause, self._resume = pause, resume
        if self._holders:
            pause()

    def detach(self) -> None:
        """The source is gone (the run ended); holders stay for the next one."""
        self._pause = self._resume = None

    def hold(self, holder: object) -> None:
        if holder in self._holders:
            return
        self._holders.add(holder)
        if len(self._holders) == 1 and self._pause is not None:
            self._pause()

    def release(self, holder: object) -> None:
        if holder not in self._holders:
            return
        self._holders.discard(holder)
        if not self._holders and self._resume is not None:
            self._resume()


class OutputTap:
    """One consumer's queue of a session's live output.  Use on the event loop only.

    `offset` is the transcript offset of the next byte the tap will deliver.
    """

    def __init__(
        self,
        offset: int,
        *,
        gate: PauseGate | None = None,
        window: int = DEFAULT_WINDOW,
        kept: Callable[[], int] | None = None,
        on_close: Callable[[OutputTap], None] = lambda _tap: None,
    ) -> None:
        """`kept`, if given, tells how far the transcript on disk goes: chunks below
        it are not held (the consumer reads those from the disk)."""
        self.offset = offset
        self.lost = 0
        """Bytes dropped because the consumer fell behind (0 with back-pressure, unless
        the source cannot pause)."""
        self._gate = gate
        self._window = window
        self._kept = kept
        self._on_close = on_close
        self._chunks: deque[Chunk] = deque()
        self._queued = 0
        self._ready = asyncio.Event()
        self.closed = False

    @property
    def backlog(self) -> int:
        """Bytes waiting for the consumer."""
        return self._queued

    def put(self, offset: int, stream: int, data: bytes) -> None:
        """Called by the engine for every chunk it writes to the transcript."""
        if self.closed or not data:
            return
        self._chunks.append(Chunk(offset, stream, data))
        self._queued += len(data)
        self._ready.set()
        gate = self._gate
        if gate is not None and gate.can_pause:
            if self._queued > HIGH_WATER:
                gate.hold(self)
            return
        self.drop_kept()
        limit = HARD_LIMIT if gate is not None else self._window
        while self._queued > limit and len(self._chunks) > 1:
            dropped = self._chunks.popleft()
            self._queued -= len(dropped.data)
            self.lost += len(dropped.data)

    def drop_kept(self) -> None:
        """Let go of the chunks the transcript now has (a tap made with `kept`): called
        on every put and whenever the disk writer gets further, so a stalled consumer
        holds no byte the disk already has."""
        if self._kept is None or not self._chunks:
            return
        kept = self._kept()
        chunks = self._chunks
        while chunks and chunks[0].offset + len(chunks[0].data) <= kept:
            self._queued -= len(chunks.popleft().data)

    def close(self) -> None:
        """No more output (the session ended, or the consumer is done); what is queued
        can still be read."""
        if self.closed:
            return
        self.closed = True
        self._ready.set()
        if self._gate is not None:
            self._gate.release(self)
        self._on_close(self)

    def held(self) -> list[Chunk]:
        """What is queued, without taking it."""
        return list(self._chunks)

    def read_nowait(self) -> list[Chunk]:
        """Everything queued now (possibly nothing); lets the source go on."""
        chunks = list(self._chunks)
        self._chunks.clear()
        self._queued = 0
        if not self.closed:
            self._ready.clear()
        if chunks:
            self.offset = chunks[-1].offset + len(chunks[-1].data)
        if self._gate is not None:
            self._gate.release(self)
        return chunks

    async def read(self) -> list[Chunk]:
        """Wait for output and return all of it; [] once the tap is closed and empty.

        Cancelling is safe: nothing is taken from the queue until the wait is over.
        """
        while not self._chunks and not self.closed:
            self._ready.clear()  # chunks the disk kept may have gone since it was set
            await self._ready.wait()
        return self.read_nowait()
