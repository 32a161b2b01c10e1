"""Transcript writes off the event loop: a writer thread per busy session, with
back-pressure on the process's pipes when the disk falls behind.

A session that prints a little is written inline (one small `write()` costs less than a
hand-over to a thread).  Once a chunk is big, or writes are already queued, bytes go to
the session's writer thread, in order; the event loop only reads the pipes.  The loop
sees what is on disk through `offset`, `newlines`, `error` and `bytes_lost`, updated
after each batch the thread writes (`on_written` is called then, on the loop).  When
more than `HIGH_WATER` bytes wait, `pause()` is called (stop reading the pipes: the
process blocks on a full pipe, like `cmd > file` on a slow disk), and `resume()` once
the backlog is under `LOW_WATER`.  A source that cannot pause is bounded too: past
`HARD_LIMIT` queued bytes, `write` waits for the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from ccx_tui.engine.transcripts.transcript import TranscriptWriter

INLINE_MAX = 16 * 1024
"""A chunk this small, with nothing queued, is written at once on the loop."""
HIGH_WATER = 2 * 1024 * 1024
LOW_WATER = 512 * 1024
HARD_LIMIT = 32 * 1024 * 1024


class WriteBehind:
    """Writes a session's output to its `TranscriptWriter`, mostly on a thread.

    Use from the event loop only (`write`, `aclose`); the thread is internal.
    """

    def __init__(
        self,
        writer: TranscriptWriter,
        loop: asyncio.AbstractEventLoop,
        *,
        on_written: Callable[[], None] = lambda: None,
        pause: Callable[[], None] | None = None,
        resume: Callable[[], None] | None = None,
    ) -> None:
        self._writer = writer
        self._loop = loop
        self._on_written = on_written
        self.pause = pause
        """Stop reading the source (set once it exists); None: it cannot pause."""
        self.resume = resume
        self.offset = writer.offset
        self.newlines = writer.newlines
        self.error: str | None = writer.error
        self.bytes_lost = writer.bytes_lost
        self._cond = threading.Condition()
        self._queue: deque[tuple[int, bytes]] = deque()
        self._queued = 0  # bytes handed over and not yet written (guarded by _cond)
        self._busy = False  # the thread is writing a batch (guarded by _cond)
        self._closing = False
        self._paused = False
        self.pauses = 0
        """How many times the source was paused for the disk (for tests and benchmarks)."""
        self._thread: threading.Thread | None = None
        # What the thread last wrote up to: (offset, newlines, error, bytes_lost).
        self._snap = (self.offset, self.newlines, self.error, self.bytes_lost)

    @property
    def backlog(self) -> int:
        """Bytes waiting to be written."""
        with self._cond:
            return self._queued

    def write(self, stream: int, data: bytes) -> None:
        """Append `data` from `stream` (never raises; disk errors land in `error`)."""
        if not data:
            return
        with self._cond:
            idle = not self._queue and not self._busy
            if idle and len(data) <= INLINE_MAX:
                self._writer.write(stream, data)  # nothing in flight: order is kept
                self._mirror()
                return
            self._queue.append((stream, data))
            self._queued += len(data)
            queued = self._queued
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ccx-transcript-writer", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        if queued > HIGH_WATER and not self._paused and self.pause is not None:
            self._paused = True
            self.pauses += 1
            self.pause()
        elif queued > HARD_LIMIT:
            with self._cond:  # a source that cannot pause: wait for the disk
                while self._queued > HIGH_WATER:
                    self._cond.wait()

    async def aclose(self) -> None:
        """Write everything queued, stop the thread and close the transcript.

        Cancelling it is safe: the thread still writes what was queued.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        try:
            if thread is not None:
                await asyncio.shield(asyncio.to_thread(thread.join))
        finally:
            if thread is not None:
                thread.join()  # cancelled meanwhile: the rest is quick (bounded backlog)
            self._mirror()
            self._writer.close()

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._busy = True
            for stream, data in batch:
                self._writer.write(stream, data)
            writer = self._writer
            with self._cond:
                self._snap = (writer.offset, writer.newlines, writer.error, writer.bytes_lost)
                self._busy = False
                self._queued -= sum(len(data) for _, data in batch)
                self._cond.notify_all()
            try:
                self._loop.call_soon_threadsafe(self._published)
            except RuntimeError:  # the loop is closed: nobody is watching any more
                pass

    # -- on the loop --------------------------------------------------------------------

    def _mirror(self) -> None:
        writer = self._writer
        self.offset, self.newlines = writer.offset, writer.newlines
        self.error, self.bytes_lost = writer.error, writer.bytes_lost

    def _published(self) -> None:
        with self._cond:
            offset, newlines, error, lost = self._snap
            if offset >= self.offset:  # an inline write may have gone further since
                self.offset, self.newlines = offset, newlines
                self.error, self.bytes_lost = error, lost
            backlog = self._queued
        if self._paused and backlog < LOW_WATER:
            self._paused = False
            if self.resume is not None:
                self.resume()
        self._on_written()
